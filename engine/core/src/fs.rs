//! File-system helpers several stages share: removing trees a build left read-only, and the
//! cheap signature that tells whether a file changed since it was last read.

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

#[cfg(test)]
mod tests {
    use super::*;

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
