//! Per-path build locks, so that concurrent forge processes build each path once.
//!
//! A lock is an exclusive `flock` on `.forge/locks/<hash>.lock`. The garbage collector may delete
//! a lock file; a process that locked a file that was deleted meanwhile retries on the new file,
//! so two processes can never both believe they hold the lock of one path.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{HASH_LEN, Result, StoreError};

/// A held build lock; released when dropped.
#[derive(Debug)]
pub struct PathLock {
    file: fs_err::File,
    path: PathBuf,
}

impl PathLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PathLock {
    fn drop(&mut self) {
        let _ = self.file.file().unlock();
    }
}

fn err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

pub(crate) fn lock_file(dir: &Path, name: &str) -> PathBuf {
    let hash = name.get(..HASH_LEN).unwrap_or(name);
    dir.join(format!("{hash}.lock"))
}

/// Locks `name` exclusively; with `wait` false, returns `None` when someone else holds it.
pub(crate) fn acquire(dir: &Path, name: &str, wait: bool) -> Result<Option<PathLock>> {
    acquire_mode(dir, name, wait, false)
}

/// Takes a shared lock on `name`, waiting for an exclusive holder: readers (a build using the
/// path as an input, an export) pin it against the garbage collector.
pub(crate) fn acquire_shared(dir: &Path, name: &str) -> Result<PathLock> {
    acquire_mode(dir, name, true, true).map(|l| l.expect("blocking acquire returns a lock"))
}

/// Whether someone holds the lock of `name`, exclusively or shared, found without creating or
/// writing anything (for read-only commands: `flock` works on a file opened for reading).
pub(crate) fn is_held(dir: &Path, name: &str) -> Result<bool> {
    let path = lock_file(dir, name);
    let file = match fs_err::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(&path, std::io::Error::new(e.kind(), e.to_string()))),
    };
    match file.file().try_lock() {
        Ok(()) => {
            let _ = file.file().unlock();
            Ok(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(err(&path, e)),
    }
}

fn acquire_mode(dir: &Path, name: &str, wait: bool, shared: bool) -> Result<Option<PathLock>> {
    let path = lock_file(dir, name);
    loop {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| err(&path, std::io::Error::new(e.kind(), e.to_string())))?;
        if shared {
            file.file().lock_shared().map_err(|e| err(&path, e))?;
        } else if wait {
            file.file().lock().map_err(|e| err(&path, e))?;
        } else {
            match file.file().try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(err(&path, e)),
            }
        }
        // The lock counts only if the file we locked is still the one at `path`.
        let held = file
            .metadata()
            .map_err(|e| err(&path, std::io::Error::new(e.kind(), e.to_string())))?;
        match fs_err::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(Some(PathLock { file, path }));
            }
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_try_fails_while_held_and_succeeds_after() {
        let d = tempfile::tempdir().unwrap();
        let name = "0123456789abcdfghijklmnpqrsvwxyz-x-1";
        let a = acquire(d.path(), name, false).unwrap().unwrap();
        assert!(acquire(d.path(), name, false).unwrap().is_none());
        drop(a);
        assert!(acquire(d.path(), name, false).unwrap().is_some());
    }

    #[test]
    fn waiting_lock_gets_it_when_released() {
        let d = tempfile::tempdir().unwrap();
        let name = "0123456789abcdfghijklmnpqrsvwxyz-x-1";
        let a = acquire(d.path(), name, true).unwrap().unwrap();
        let dir = d.path().to_path_buf();
        let t = std::thread::spawn(move || acquire(&dir, name, true).unwrap().is_some());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!t.is_finished(), "must wait while the lock is held");
        drop(a);
        assert!(t.join().unwrap());
    }
}
