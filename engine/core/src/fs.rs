//! File-system helpers several stages share: removing trees a build left read-only, the cheap
//! signature that tells whether a file changed since it was last read, writing a file
//! atomically, and the last lines of a log.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Removes a directory tree that may contain read-only directories (builds and unpacked
/// binaries leave them). A missing tree is not an error. Symlinks are removed, never followed.
pub fn remove_dir_all_forced(p: &Path) -> std::io::Result<()> {
    fn writable(p: &Path) {
        if let Ok(m) = fs_err::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = fs_err::read_dir(p) {
                for e in rd.flatten() {
                    writable(&e.path());
                }
            }
        }
    }
    if fs_err::symlink_metadata(p).is_err() {
        return Ok(());
    }
    writable(p);
    fs_err::remove_dir_all(p)
}

/// What changes when a file is rewritten, replaced or touched: size, modification time
/// (seconds and nanoseconds), inode, device and mode. `None` when the path does not exist.
/// `follow` reads what a final symlink leads to instead of the link itself.
pub fn signature(path: &Path, follow: bool) -> Option<[u64; 6]> {
    let m = if follow {
        fs_err::metadata(path)
    } else {
        fs_err::symlink_metadata(path)
    }
    .ok()?;
    Some([
        m.len(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ino(),
        m.dev(),
        u64::from(m.mode()),
    ])
}

/// Writes `data` to `path` through a temporary file in the same directory: fsync, rename, fsync
/// the directory. Readers see the old content or the new, never a part.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = fs_err::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs_err::rename(&tmp, path)?;
    fs_err::File::open(dir)?.sync_all()
}

/// The last `n` lines of a text file (a build log, a job's output); none when it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let bytes = fs_err::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one\ntwo\nthree\n").unwrap();
        write_atomic(&p, b"1\n2\n3\n4\n").unwrap();
        assert_eq!(fs_err::read_to_string(&p).unwrap(), "1\n2\n3\n4\n");
        assert_eq!(fs_err::read_dir(d.path()).unwrap().count(), 1);
        assert_eq!(tail_lines(&p, 2), ["3", "4"]);
        assert_eq!(tail_lines(&p, 9).len(), 4);
        assert!(tail_lines(&d.path().join("missing"), 3).is_empty());
    }

    #[test]
    fn read_only_trees_are_removed_and_missing_ones_are_fine() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        fs_err::create_dir_all(t.join("a/b")).unwrap();
        fs_err::write(t.join("a/b/f"), "x").unwrap();
        for p in [t.join("a/b"), t.join("a")] {
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_dir_all_forced(&t).unwrap();
        assert!(!t.exists());
        remove_dir_all_forced(&t).unwrap();
    }

    #[test]
    fn a_signature_changes_with_the_content_and_sees_links_as_asked() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        assert_eq!(signature(&f, false), None);
        fs_err::write(&f, "one").unwrap();
        let first = signature(&f, false).unwrap();
        fs_err::write(&f, "three").unwrap();
        assert_ne!(signature(&f, false).unwrap(), first);
        let l = d.path().join("l");
        fs_err::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(signature(&l, true), signature(&f, true));
        assert_ne!(signature(&l, false), signature(&f, false));
    }
}
