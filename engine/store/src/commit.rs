//! Making an output valid: normalize, rewrite long shebangs, scan references, hash, sync,
//! rename into place. The database row is written by the caller, last.

use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

use crate::{Result, Store, StoreError};

/// The longest `#!` line the kernel is guaranteed to honour (Linux before 5.1 cut at 127 bytes;
/// Spack uses the same limit). Longer lines are rewritten to go through `sbang`.
pub const SHEBANG_LIMIT: usize = 127;

/// What [`Store::commit`] needs.
#[derive(Debug)]
pub struct CommitRequest<'a> {
    /// The store name (`<hash>-<name>-<version>`).
    pub name: &'a str,
    /// The finished output: a directory (or file) on the store's filesystem, renamed to the final
    /// path by the commit; or the final path itself when the build wrote there directly.
    pub staged: &'a Path,
    /// The derivation hash that produced it.
    pub deriver: &'a str,
    /// Store names the output may reference (the build's inputs and itself).
    pub candidates: &'a [String],
    /// Wall time of the build, in seconds.
    pub build_seconds: f64,
}

pub(crate) struct Prepared {
    pub(crate) content_hash: String,
    pub(crate) size: u64,
    pub(crate) files: u64,
    pub(crate) references: Vec<String>,
    pub(crate) embeds_build_dir: Vec<PathBuf>,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fs_err_at(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// Writes `data` to `path` atomically ([`forge_core::fs::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    forge_core::fs::write_atomic(path, data).map_err(|e| fs_err_at(path, e))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = fs_err::File::open(dir).map_err(|e| fs_err_at(dir, e))?;
    f.sync_all().map_err(|e| fs_err_at(dir, e))
}

const SBANG: &str = r#"#!/bin/sh
# sbang: run a script whose `#!` line is too long for the kernel.
#
# forge rewrites such scripts to start with `#!/bin/sh <store>/bin/sbang`; the original
# `#!interpreter args` line follows on line two. This script reads that line and runs the
# interpreter on the script. Spack relocates this path when it installs a forge export.
script="$1"
shift
if [ ! -r "$script" ]; then
    echo "sbang: cannot read $script" >&2
    exit 1
fi
line=$(sed -n '2p' "$script")
case "$line" in
    '#!'*) ;;
    *) echo "sbang: $script has no second #! line" >&2; exit 1 ;;
esac
interp=${line#\#!}
# shellcheck disable=SC2086 # the interpreter line may carry one argument, as the kernel allows
exec $interp "$script" "$@"
"#;

/// Installs `<root>/bin/sbang` (once; it never changes, so its content is part of the layout).
pub(crate) fn install_sbang(root: &Path) -> Result<()> {
    let bin = root.join("bin");
    let path = bin.join("sbang");
    if fs_err::read_to_string(&path).is_ok_and(|t| t == SBANG) {
        return Ok(());
    }
    fs_err::create_dir_all(&bin).map_err(|e| fs_err_at(&bin, e))?;
    write_atomic(&path, SBANG.as_bytes())?;
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fs_err_at(&path, e))
}

/// Rewrites `path` to start with `#!/bin/sh <sbang>` when its `#!` line is too long.
fn rewrite_shebang(path: &Path, sbang: &Path) -> Result<bool> {
    let mut head = [0u8; 512];
    let n = {
        use std::io::Read;
        let mut f = fs_err::File::open(path).map_err(|e| fs_err_at(path, e))?;
        f.read(&mut head).map_err(io_at(path))?
    };
    if n < 2 || &head[..2] != b"#!" {
        return Ok(false);
    }
    let line_len = head[..n].iter().position(|&b| b == b'\n').unwrap_or(n);
    if line_len <= SHEBANG_LIMIT {
        return Ok(false);
    }
    let data = fs_err::read(path).map_err(|e| fs_err_at(path, e))?;
    let mut out = format!("#!/bin/sh {}\n", sbang.display()).into_bytes();
    out.extend_from_slice(&data);
    let perms = fs_err::metadata(path)
        .map_err(|e| fs_err_at(path, e))?
        .permissions();
    fs_err::write(path, &out).map_err(|e| fs_err_at(path, e))?;
    fs_err::set_permissions(path, perms).map_err(|e| fs_err_at(path, e))?;
    Ok(true)
}

/// mtime of every entry of a valid path, as in Nix: one second after the epoch.
const MTIME: Timespec = Timespec {
    tv_sec: 1,
    tv_nsec: 0,
};

fn set_mtime(path: &Path) -> Result<()> {
    let ts = Timestamps {
        last_access: MTIME,
        last_modification: MTIME,
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Normalizes permissions and times, depth first: files `0444`, or `0555` when the owner could
/// execute them; directories `0555`; no setuid, setgid or sticky bits; mtime 1. The top
/// directory itself is finished by [`finish_top`] after it has been renamed (renaming a
/// directory to a new parent needs write permission on it).
fn normalize(path: &Path, sbang: &Path, top: bool) -> Result<()> {
    let meta = fs_err::symlink_metadata(path).map_err(|e| fs_err_at(path, e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return set_mtime(path);
    }
    if ft.is_dir() {
        // Make sure we may enter and modify it.
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fs_err_at(path, e))?;
        let mut children: Vec<PathBuf> = fs_err::read_dir(path)
            .map_err(|e| fs_err_at(path, e))?
            .map(|e| e.map(|e| e.path()).map_err(io_at(path)))
            .collect::<Result<_>>()?;
        children.sort();
        for c in children {
            normalize(&c, sbang, false)?;
        }
        if top {
            return Ok(());
        }
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| fs_err_at(path, e))?;
        return set_mtime(path);
    }
    if ft.is_file() {
        let exec = meta.permissions().mode() & 0o100 != 0;
        if exec {
            fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| fs_err_at(path, e))?;
            rewrite_shebang(path, sbang)?;
        }
        let mode = if exec { 0o555 } else { 0o444 };
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| fs_err_at(path, e))?;
        return set_mtime(path);
    }
    Err(StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("outputs may hold only files, directories and symlinks"),
    })
}

fn finish_top(path: &Path) -> Result<()> {
    let meta = fs_err::symlink_metadata(path).map_err(|e| fs_err_at(path, e))?;
    if meta.is_dir() {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| fs_err_at(path, e))?;
        set_mtime(path)?;
        sync_dir(path)?;
    }
    Ok(())
}

/// Normalizes a whole tree as a commit does (modes, times, long shebangs), without scanning,
/// hashing, moving or registering it.
pub(crate) fn normalize_tree(path: &Path, sbang: &Path) -> Result<()> {
    normalize(path, sbang, false)
}

/// Replaces every occurrence of `from` by `to` (same length) in the files and symlink targets
/// under `root`; returns how many were changed. Used by `forge check` to give a rebuilt output
/// its stored path back before comparing.
pub fn rewrite_same_length(root: &Path, from: &[u8], to: &[u8]) -> Result<usize> {
    assert_eq!(from.len(), to.len(), "same-length rewrite");
    let finder = memchr::memmem::Finder::new(from);
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs_err::symlink_metadata(&p).map_err(|e| fs_err_at(&p, e))?;
        if meta.file_type().is_symlink() {
            let t = fs_err::read_link(&p).map_err(|e| fs_err_at(&p, e))?;
            use std::os::unix::ffi::{OsStrExt, OsStringExt};
            let bytes = t.as_os_str().as_bytes();
            if finder.find(bytes).is_some() {
                let new = replace_all(bytes, &finder, to);
                fs_err::remove_file(&p).map_err(|e| fs_err_at(&p, e))?;
                fs_err::os::unix::fs::symlink(std::ffi::OsString::from_vec(new), &p)
                    .map_err(|e| fs_err_at(&p, e))?;
                changed += 1;
            }
        } else if meta.is_dir() {
            for e in fs_err::read_dir(&p).map_err(|e| fs_err_at(&p, e))? {
                stack.push(e.map_err(io_at(&p))?.path());
            }
        } else if meta.is_file() {
            let data = fs_err::read(&p).map_err(|e| fs_err_at(&p, e))?;
            if finder.find(&data).is_some() {
                let new = replace_all(&data, &finder, to);
                let perms = meta.permissions();
                fs_err::set_permissions(&p, std::fs::Permissions::from_mode(perms.mode() | 0o200))
                    .map_err(|e| fs_err_at(&p, e))?;
                fs_err::write(&p, &new).map_err(|e| fs_err_at(&p, e))?;
                fs_err::set_permissions(&p, perms).map_err(|e| fs_err_at(&p, e))?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

fn replace_all(data: &[u8], finder: &memchr::memmem::Finder<'_>, to: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for at in finder.find_iter(data) {
        out[at..at + to.len()].copy_from_slice(to);
    }
    out
}

pub(crate) fn prepare(store: &Store, req: &crate::CommitRequest<'_>) -> Result<Prepared> {
    if crate::parse_name(req.name).is_none() {
        return Err(StoreError::BadName(req.name.to_owned()));
    }
    let final_path = store.path_of(req.name);
    normalize(req.staged, &store.sbang_path(), true)?;
    let mut candidates: Vec<String> = req.candidates.to_vec();
    candidates.push(req.name.to_owned());
    // Every build runs in a scratch directory under this one; an output that names it depends
    // on where the store is, and on a directory that is gone once the build ends.
    let mut build_root = store.meta.join("build").into_os_string().into_vec();
    build_root.push(b'/');
    let scan = crate::refs::scan(req.staged, &candidates, Some(&build_root))?;
    let references: Vec<String> = scan.references.into_iter().collect();
    let tree = forge_core::treehash::hash_tree(req.staged)?;
    // Everything written so far reaches the disk before the path appears under its name.
    let dir = fs_err::File::open(store.paths_dir()).map_err(|e| fs_err_at(store.paths_dir(), e))?;
    rustix::fs::syncfs(dir.file()).map_err(|e| StoreError::Io {
        path: store.paths_dir().to_path_buf(),
        source: e.into(),
    })?;
    if req.staged != final_path {
        fs_err::rename(req.staged, &final_path).map_err(|e| fs_err_at(&final_path, e))?;
    }
    finish_top(&final_path)?;
    sync_dir(store.paths_dir())?;
    Ok(Prepared {
        content_hash: tree.hex(),
        size: tree.bytes,
        files: tree.files,
        references,
        embeds_build_dir: scan.containing,
    })
}
