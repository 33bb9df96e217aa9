//! File-system helpers of the builder: removing read-only trees, copying sources, and moving a
//! staged (`DESTDIR`) install into the output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub use forge_core::fs::remove_dir_all_forced;

/// Copies a directory tree (files, symlinks, directories, executable bits).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs_err::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let t = fs_err::read_link(from)?;
        fs_err::os::unix::fs::symlink(t, to)?;
    } else if meta.is_dir() {
        fs_err::create_dir_all(to)?;
        let mut entries: Vec<_> = fs_err::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        fs_err::copy(from, to)?;
        let mode = if meta.permissions().mode() & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        fs_err::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Moves what an install staged under `destdir` for `out` into `real_out` (which is `out`
/// unless the build is redirected), noting what it installed elsewhere.
pub(crate) fn collect_destdir(
    destdir: &Path,
    out: &Path,
    real_out: &Path,
) -> std::io::Result<Vec<String>> {
    let rel = out.strip_prefix("/").unwrap_or(out);
    let staged = destdir.join(rel);
    let mut notes = Vec::new();
    if fs_err::symlink_metadata(&staged).is_ok() {
        if fs_err::symlink_metadata(real_out).is_err() {
            fs_err::rename(&staged, real_out)?;
        } else {
            merge_into(&staged, real_out)?;
        }
    }
    // Whatever is left besides the path down to `out` was installed outside the prefix.
    let mut stray = Vec::new();
    let mut stack = vec![destdir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let inside = Path::new("/").join(p.strip_prefix(destdir).unwrap_or(&p));
            if out.starts_with(&inside) && e.file_type()?.is_dir() {
                stack.push(p);
            } else if !inside.starts_with(out) {
                stray.push(inside.display().to_string());
            }
        }
    }
    stray.sort();
    if !stray.is_empty() {
        notes.push(format!(
            "dropped what the install wrote outside the prefix: {}",
            stray.join(", ")
        ));
    }
    remove_dir_all_forced(destdir)?;
    fs_err::create_dir_all(destdir)?;
    Ok(notes)
}

fn merge_into(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in fs_err::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        let is_dir = e.file_type()?.is_dir();
        match fs_err::symlink_metadata(&target) {
            Ok(m) if m.is_dir() && is_dir => merge_into(&e.path(), &target)?,
            Ok(m) => {
                if m.is_dir() {
                    remove_dir_all_forced(&target)?;
                } else {
                    fs_err::remove_file(&target)?;
                }
                fs_err::rename(e.path(), &target)?;
            }
            Err(_) => fs_err::rename(e.path(), &target)?,
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destdir_install_moves_the_prefix_and_reports_strays() {
        let d = tempfile::tempdir().unwrap();
        let destdir = d.path().join("destdir");
        let out = d.path().join("store/abc-munge-1");
        fs_err::create_dir_all(d.path().join("store")).unwrap();
        let staged = destdir.join(out.strip_prefix("/").unwrap());
        fs_err::create_dir_all(staged.join("bin")).unwrap();
        fs_err::write(staged.join("bin/munged"), "x").unwrap();
        fs_err::create_dir_all(destdir.join("var/lib/munge")).unwrap();
        let notes = collect_destdir(&destdir, &out, &out).unwrap();
        assert!(out.join("bin/munged").is_file());
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("/var"), "{notes:?}");
        assert!(!notes[0].contains("abc-munge"), "{notes:?}");
    }
}
