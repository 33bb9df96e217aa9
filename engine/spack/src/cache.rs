//! Writing into a buildcache directory, crash-safely.
//!
//! Every file is written to `.forge-tmp/` inside the cache (the same filesystem), fsynced, renamed
//! into place and its directory fsynced. Blobs are immutable and named by their sha256, so an
//! existing blob is never rewritten. A publisher holds an exclusive lock on
//! `.forge-tmp/lock` for the whole export, so two forge processes never interleave; readers
//! (Spack) need no lock: the export writes blobs first, then manifests, then the index, so a
//! reader or a `kill -9` at any moment never finds a manifest or index pointing at a missing or
//! partial blob. Leftover temporary files of a killed export are removed by the next one.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use crate::manifest::BlobRecord;

/// Name of the directory of temporary files inside a cache.
pub(crate) const TMP_DIR: &str = ".forge-tmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hex of a sha256 digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 hex of bytes.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// sha256 and length of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = fs_err::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
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

/// An open cache directory, locked for publishing.
#[derive(Debug)]
pub(crate) struct CacheWriter {
    root: PathBuf,
    tmp: PathBuf,
    _lock: fs_err::File,
}

impl CacheWriter {
    /// Creates the layout below `root` if needed and takes the publish lock.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        for d in [
            "v3/manifests/spec",
            "v3/manifests/index",
            "v3/manifests/key",
            "blobs/sha256",
            TMP_DIR,
        ] {
            fs_err::create_dir_all(root.join(d))?;
        }
        let tmp = root.join(TMP_DIR);
        let lock_path = tmp.join("lock");
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        lock.file().lock().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot lock `{}`: {e}", lock_path.display()),
            )
        })?;
        // Whatever a killed export left behind.
        for e in fs_err::read_dir(&tmp)? {
            let e = e?;
            if e.file_name() != "lock" {
                let p = e.path();
                if p.is_dir() {
                    fs_err::remove_dir_all(&p)?;
                } else {
                    fs_err::remove_file(&p)?;
                }
            }
        }
        let w = Self {
            root: root.to_path_buf(),
            tmp,
            _lock: lock,
        };
        let layout = w.root.join("v3/layout.json");
        if !layout.exists() {
            w.write_atomic(Path::new("v3/layout.json"), br#"{"signing": "gpg"}"#)?;
        }
        Ok(w)
    }

    /// The cache root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh temporary path in the cache's temporary directory.
    pub(crate) fn temp_path(&self, hint: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{hint}.{}.{n}", std::process::id()))
    }

    /// Writes `data` at `rel` (relative to the root) atomically and durably.
    pub(crate) fn write_atomic(&self, rel: &Path, data: &[u8]) -> io::Result<()> {
        let dest = self.root.join(rel);
        let dir = dest.parent().expect("cache files live in directories");
        fs_err::create_dir_all(dir)?;
        let tmp = self.temp_path("file");
        {
            let mut f = fs_err::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        fs_err::rename(&tmp, &dest)?;
        fsync_dir(dir)
    }

    /// The absolute path of a blob.
    pub(crate) fn blob_path(&self, sha: &str) -> PathBuf {
        self.root.join(format!("blobs/sha256/{}/{sha}", &sha[..2]))
    }

    /// Whether a blob exists with this size and content.
    pub(crate) fn blob_intact(&self, rec: &BlobRecord) -> bool {
        let Some(rel) = rec.relative_path() else {
            return false;
        };
        let p = self.root.join(rel);
        match fs_err::metadata(&p) {
            Ok(m) if m.len() == rec.content_length => {
                sha256_file(&p).is_ok_and(|(h, _)| h == rec.checksum)
            }
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
        let tmp = self.temp_path("blob");
        {
            let mut f = fs_err::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        self.commit_blob(&tmp, &sha)?;
        Ok((rec, true))
    }

    /// Moves a finished (and fsynced) temporary file into place as blob `sha`; if that blob
    /// already exists intact, the temporary file is dropped instead. Returns whether it was new.
    pub(crate) fn commit_blob(&self, tmp: &Path, sha: &str) -> io::Result<bool> {
        let dest = self.blob_path(sha);
        let len = fs_err::metadata(tmp)?.len();
        if fs_err::metadata(&dest).is_ok_and(|m| m.len() == len)
            && sha256_file(&dest).is_ok_and(|(h, _)| h == sha)
        {
            fs_err::remove_file(tmp)?;
            return Ok(false);
        }
        let dir = dest.parent().expect("blob directory");
        fs_err::create_dir_all(dir)?;
        fs_err::rename(tmp, &dest)?;
        fsync_dir(dir)?;
        Ok(true)
    }

    /// Reads a file of the cache, if it exists.
    pub(crate) fn read_opt(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs_err::read(self.root.join(rel)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
