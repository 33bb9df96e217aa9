//! Writing into a buildcache directory, crash-safely.
//!
//! Every file is written to `.forge-tmp/` inside the cache (the same filesystem), fsynced, renamed
//! into place and its directory fsynced. Blobs are immutable and named by their sha256, so an
//! existing blob is never rewritten. A publisher holds an exclusive lock on
//! `.forge-tmp/lock` for the whole export, so two forge processes never interleave; readers
//! (Spack) need no lock: the export writes blobs first, then manifests, then the index, so a
//! reader or a `kill -9` at any moment never finds a manifest or index pointing at a missing or
//! partial blob. Leftover temporary files of a killed export are removed by the next one.
//!
//! Nothing is reached through a symbolic link (see [`crate::cachefs`]): a cache holding one
//! among the entries forge manages is refused before anything is written, directories are
//! opened and created component by component without following links, and files are renamed
//! into place relative to their directory's descriptor.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use sha2::{Digest as _, Sha256};

pub(crate) use crate::cachefs::TMP_DIR;
use crate::cachefs::{CacheDir, FsError, Kind, kind_at, list_fd};
use crate::error::ExportError;
use crate::manifest::BlobRecord;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hex of a sha256 digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 hex of bytes.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// sha256 and length of what a reader yields, streamed; at most `expected + 1` bytes are read
/// (so a length above `expected` shows, and a file that grows cannot keep the reader busy).
pub(crate) fn sha256_reader(r: impl Read, expected: u64) -> io::Result<(String, u64)> {
    let mut r = r.take(expected.saturating_add(1));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// A writer that hashes what passes through it.
#[derive(Debug)]
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }
    pub(crate) fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary file in the cache's temporary directory, open for writing and reading.
#[derive(Debug)]
pub(crate) struct TempFile {
    /// Its name in the temporary directory.
    name: OsString,
    /// The file.
    pub(crate) file: fs_err::File,
}

/// An open cache directory, locked for publishing; dropping it ends the export.
#[derive(Debug)]
pub(crate) struct CacheWriter {
    dir: CacheDir,
    tmp: OwnedFd,
    _lock: fs_err::File,
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        self.release();
    }
}

fn os_err(path: &Path) -> impl Fn(rustix::io::Errno) -> io::Error + '_ {
    move |e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("`{}`: {e}", path.display()))
    }
}

impl CacheWriter {
    /// Creates the layout below `root` if needed and takes the publish lock. Refuses a cache
    /// with a symbolic link (or a FIFO, socket or device) among the entries forge manages.
    pub(crate) fn open(root: &Path) -> Result<Self, ExportError> {
        fs_err::create_dir_all(root)?;
        let dir = CacheDir::open(root)?;
        if let Some((path, kind)) = dir.find_foreign().map_err(|e| e.into_io(root))? {
            return Err(ExportError::UnsafeCacheEntry {
                cache: root.to_path_buf(),
                path,
                kind: kind.describe(),
            });
        }
        for d in [
            "v3/manifests/spec",
            "v3/manifests/index",
            "v3/manifests/key",
            "blobs/sha256",
        ] {
            dir.dir(Path::new(d), true).map_err(|e| e.into_io(root))?;
        }
        let lock_path = root.join(TMP_DIR).join("lock");
        // The export that ends removes the lock file and `.forge-tmp/` (a published cache holds
        // nothing of forge's), so a lock taken on a file that is no longer linked there, or in
        // a directory already removed, is taken again.
        let (tmp, lock) = loop {
            let tmp = dir
                .dir(Path::new(TMP_DIR), true)
                .map_err(|e| e.into_io(root))?;
            let lock = match rustix::fs::openat(
                &tmp,
                "lock",
                OFlags::RDWR
                    | OFlags::CREATE
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            ) {
                Ok(l) => l,
                // `.forge-tmp/` was removed between opening it and creating the file.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(os_err(&lock_path)(e).into()),
            };
            let st = rustix::fs::fstat(&lock).map_err(os_err(&lock_path))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a regular file: remove it", lock_path.display()),
                )
                .into());
            }
            rustix::fs::flock(&lock, FlockOperation::LockExclusive).map_err(|e| {
                let e = io::Error::from(e);
                io::Error::new(
                    e.kind(),
                    format!("cannot lock `{}`: {e}", lock_path.display()),
                )
            })?;
            let linked = rustix::fs::statat(&tmp, "lock", AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|now| now.st_ino == st.st_ino && now.st_dev == st.st_dev)
                && rustix::fs::fstat(&tmp).is_ok_and(|d| d.st_nlink > 0);
            if linked {
                break (tmp, lock);
            }
        };
        #[allow(clippy::disallowed_types)] // wrapped at once into fs_err's, which names the path
        let lock = fs_err::File::from_parts(std::fs::File::from(lock), lock_path);
        let w = Self {
            dir,
            tmp,
            _lock: lock,
        };
        // Whatever a killed export left behind.
        for (name, kind) in list_fd(w.tmp_fd()?, Path::new(TMP_DIR)).map_err(|e| e.into_io(root))? {
            if name != "lock" {
                w.remove_at(&w.tmp, &name, kind, &Path::new(TMP_DIR).join(&name))?;
            }
        }
        if w.dir
            .kind(Path::new("v3/layout.json"))
            .map_err(|e| e.into_io(root))?
            != Some(Kind::File)
        {
            w.write_atomic(Path::new("v3/layout.json"), br#"{"signing": "gpg"}"#)?;
        }
        Ok(w)
    }

    /// Ends the export: removes the lock file while still holding it (a process waiting for
    /// it then finds it unlinked and takes a new one), then `.forge-tmp/` if nothing else is in
    /// it, so the published cache holds only what consumers read.
    fn release(&self) {
        let _ = rustix::fs::unlinkat(&self.tmp, "lock", AtFlags::empty());
        if let Ok(root) = rustix::fs::openat(
            self.dir.fd(),
            ".",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        ) {
            // Fails, harmlessly, when another export already works in it.
            let _ = rustix::fs::unlinkat(&root, TMP_DIR, AtFlags::REMOVEDIR);
        }
    }

    fn tmp_fd(&self) -> io::Result<OwnedFd> {
        rustix::fs::openat(
            &self.tmp,
            ".",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(os_err(&self.root().join(TMP_DIR)))
    }

    fn io(&self, e: FsError) -> io::Error {
        e.into_io(self.dir.root())
    }

    /// The cache root.
    pub(crate) fn root(&self) -> &Path {
        self.dir.root()
    }

    /// A fresh temporary file in the cache's temporary directory.
    pub(crate) fn temp_file(&self, hint: &str) -> io::Result<TempFile> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!("{hint}.{}.{n}", std::process::id()));
        let path = self.root().join(TMP_DIR).join(&name);
        let fd = rustix::fs::openat(
            &self.tmp,
            &name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(os_err(&path))?;
        #[allow(clippy::disallowed_types)] // wrapped at once into fs_err's, which names the path
        let file = fs_err::File::from_parts(std::fs::File::from(fd), path);
        Ok(TempFile { name, file })
    }

    /// Removes a temporary file (best effort: it is removed by the next export otherwise).
    pub(crate) fn remove_temp(&self, t: TempFile) {
        let _ = rustix::fs::unlinkat(&self.tmp, &t.name, AtFlags::empty());
    }

    /// Moves a finished temporary file to `rel` and makes that durable.
    fn place(&self, t: TempFile, rel: &Path) -> io::Result<()> {
        let dest = self.root().join(rel);
        let name = rel.file_name().expect("cache files have names");
        let dir = self
            .dir
            .dir(rel.parent().unwrap_or(Path::new("")), true)
            .map_err(|e| self.io(e))?;
        drop(t.file);
        rustix::fs::renameat(&self.tmp, &t.name, &dir, name).map_err(os_err(&dest))?;
        rustix::fs::fsync(&dir).map_err(os_err(dest.parent().unwrap_or(&dest)))
    }

    /// Writes `data` at `rel` (relative to the root) atomically and durably.
    pub(crate) fn write_atomic(&self, rel: &Path, data: &[u8]) -> io::Result<()> {
        let mut t = self.temp_file("file")?;
        t.file.write_all(data)?;
        t.file.sync_all()?;
        self.place(t, rel)
    }

    /// Whether a blob exists with this size and content.
    pub(crate) fn blob_intact(&self, rec: &BlobRecord) -> bool {
        let Some(rel) = rec.relative_path() else {
            return false;
        };
        match self.dir.open_file(Path::new(&rel)) {
            Ok((f, size)) if size == rec.content_length => sha256_reader(&f, rec.content_length)
                .is_ok_and(|(h, n)| h == rec.checksum && n == size),
            _ => false,
        }
    }

    /// Stores bytes as a blob (skipped when it already exists).
    pub(crate) fn put_blob(
        &self,
        data: &[u8],
        media_type: &str,
        compression: &str,
    ) -> io::Result<(BlobRecord, bool)> {
        let sha = sha256_hex(data);
        let rec = BlobRecord::sha256(media_type, compression, sha.clone(), data.len() as u64);
        if self.blob_intact(&rec) {
            return Ok((rec, false));
        }
        let mut t = self.temp_file("blob")?;
        t.file.write_all(data)?;
        t.file.sync_all()?;
        self.commit_blob(t, &sha, data.len() as u64)?;
        Ok((rec, true))
    }

    /// Moves a finished (and fsynced) temporary file of `len` bytes into place as blob `sha`;
    /// if that blob already exists intact, the temporary file is dropped instead. Returns
    /// whether it was new.
    pub(crate) fn commit_blob(&self, t: TempFile, sha: &str, len: u64) -> io::Result<bool> {
        let rec = BlobRecord::sha256("", "", sha.to_string(), len);
        if self.blob_intact(&rec) {
            self.remove_temp(t);
            return Ok(false);
        }
        let rel = rec.relative_path().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{sha}` is not a digest"),
            )
        })?;
        self.place(t, Path::new(&rel))?;
        Ok(true)
    }

    /// Reads a regular file of the cache of at most `limit` bytes, if it exists.
    pub(crate) fn read_opt(&self, rel: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
        match self.dir.read(rel, limit) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// The entries of a directory of the cache (none if it does not exist).
    pub(crate) fn list(&self, rel: &Path) -> io::Result<Vec<(OsString, Kind)>> {
        match self.dir.list(rel) {
            Ok(l) => Ok(l),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Removes `rel` and, if it is a directory, everything below it, never following a
    /// symbolic link.
    pub(crate) fn remove_tree(&self, rel: &Path) -> io::Result<()> {
        let name = rel.file_name().expect("a named entry");
        let parent = self
            .dir
            .dir(rel.parent().unwrap_or(Path::new("")), false)
            .map_err(|e| self.io(e))?;
        let kind = kind_at(&parent, name).map_err(os_err(&self.root().join(rel)))?;
        self.remove_at(&parent, name, kind, rel)
    }

    fn remove_at(&self, parent: &OwnedFd, name: &OsStr, kind: Kind, rel: &Path) -> io::Result<()> {
        let abs = self.root().join(rel);
        if kind == Kind::Dir {
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
                Mode::empty(),
            )
            .map_err(os_err(&abs))?;
            let again = rustix::fs::openat(
                &fd,
                ".",
                OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
                Mode::empty(),
            )
            .map_err(os_err(&abs))?;
            for (child, k) in list_fd(again, rel).map_err(|e| self.io(e))? {
                self.remove_at(&fd, &child, k, &rel.join(&child))?;
            }
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(os_err(&abs))
        } else {
            rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(os_err(&abs))
        }
    }
}
