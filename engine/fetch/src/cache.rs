//! The source cache and downloads.
//!
//! Sources are kept by sha256 under `<cache>/sha256/<hex>`. A file enters the cache only after its
//! digest matched: downloads go to `<cache>/partial/<hex>.part` (kept across interruptions so the
//! next attempt resumes with an HTTP range request) and are renamed into place once verified. A
//! mismatch deletes the partial file and reports URL, expected and actual digest.
//!
//! Lookup order for one source: the cache; each configured mirror (`<mirror>/sha256/<hex>`, then
//! `<mirror>/<file name>`); the recipe's URLs in order. `http(s)://` and `file://` are supported.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Why a source could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Every location failed.
    #[error("could not fetch `{name}` (sha256 {sha256}):\n{}", attempts.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n"))]
    Unavailable {
        /// File name.
        name: String,
        /// Expected digest.
        sha256: String,
        /// One line per location tried.
        attempts: Vec<String>,
    },
    /// Bytes were downloaded but are not the expected ones.
    #[error(
        "checksum mismatch for `{url}`:\n  expected sha256 {expected}\n  actual   sha256 {actual}\nnothing was kept; if upstream re-released the file on purpose, update the recipe's sha256"
    )]
    Mismatch {
        /// Where the bytes came from.
        url: String,
        /// The recipe's digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A local filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// How downloads behave.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Base URLs of source mirrors tried before the recipe's URLs.
    pub mirrors: Vec<String>,
    /// Attempts per URL for transient failures (connection errors, 5xx, truncated bodies).
    pub retries: u32,
    /// First back-off; doubled after each failed attempt.
    pub backoff: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout without progress while reading.
    pub read_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            mirrors: Vec::new(),
            retries: 3,
            backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// The content-addressed source cache.
#[derive(Debug, Clone)]
pub struct SourceCache {
    dir: PathBuf,
    options: FetchOptions,
}

enum Attempt {
    /// The bytes are in the partial file with the right digest.
    Done,
    /// Not there (404, missing file): try the next location.
    Absent(String),
    /// Failed after retries.
    Failed(String),
}

impl SourceCache {
    /// A cache rooted at `dir` (created on demand).
    pub fn new(dir: impl Into<PathBuf>, options: FetchOptions) -> Self {
        Self {
            dir: dir.into(),
            options,
        }
    }

    /// The cache's root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a verified file with this digest lives.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join("sha256").join(sha256)
    }

    /// The cached file, if present.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.path_for(sha256);
        p.is_file().then_some(p)
    }

    /// Adds a local file to the cache after checking its digest (for `forge recipe add-version`
    /// and for filling mirrors).
    pub fn add_file(&self, path: &Path, sha256: &str) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.get(sha256) {
            return Ok(p);
        }
        let url = format!("file://{}", path.display());
        self.fetch_one(&url, sha256, &[(url.clone(), true)])
    }

    /// Returns the cached file for `sha256`, fetching it from the mirrors and `urls` if needed.
    /// `name` is the file's name (used for name-based mirror lookups and messages).
    pub fn fetch(&self, name: &str, sha256: &str, urls: &[String]) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.get(sha256) {
            return Ok(p);
        }
        let mut candidates = Vec::new();
        for m in &self.options.mirrors {
            let base = m.trim_end_matches('/');
            candidates.push((format!("{base}/sha256/{sha256}"), true));
            // A mirror laid out by file name may hold other bytes under that name (a repack):
            // a mismatch there only means "not here".
            candidates.push((format!("{base}/{name}"), false));
        }
        candidates.extend(urls.iter().map(|u| (u.clone(), true)));
        self.fetch_one(name, sha256, &candidates)
    }

    fn fetch_one(
        &self,
        name: &str,
        sha256: &str,
        candidates: &[(String, bool)],
    ) -> Result<PathBuf, FetchError> {
        let partial_dir = self.dir.join("partial");
        let final_dir = self.dir.join("sha256");
        fs_err::create_dir_all(&partial_dir).map_err(io(&partial_dir))?;
        fs_err::create_dir_all(&final_dir).map_err(io(&final_dir))?;
        // One process downloads a given digest at a time.
        let lock_path = partial_dir.join(format!("{sha256}.lock"));
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.file().lock().map_err(|e| FetchError::Io {
            path: lock_path.clone(),
            source: e,
        })?;
        if let Some(p) = self.get(sha256) {
            return Ok(p);
        }
        let part = partial_dir.join(format!("{sha256}.part"));
        let mut attempts = Vec::new();
        for (url, authoritative) in candidates {
            let outcome = match self.attempt(url, sha256, &part) {
                Err(FetchError::Mismatch { actual, .. }) if !authoritative => {
                    attempts.push(format!("{url}: different content (sha256 {actual})"));
                    continue;
                }
                other => other?,
            };
            match outcome {
                Attempt::Done => {
                    let dest = self.path_for(sha256);
                    fs_err::File::open(&part)
                        .and_then(|f| f.sync_all())
                        .map_err(io(&part))?;
                    fs_err::rename(&part, &dest).map_err(io(&dest))?;
                    if let Ok(d) = fs_err::File::open(&final_dir) {
                        let _ = d.sync_all();
                    }
                    return Ok(dest);
                }
                Attempt::Absent(why) | Attempt::Failed(why) => {
                    attempts.push(format!("{url}: {why}"))
                }
            }
        }
        Err(FetchError::Unavailable {
            name: name.to_owned(),
            sha256: sha256.to_owned(),
            attempts,
        })
    }

    fn attempt(&self, url: &str, sha256: &str, part: &Path) -> Result<Attempt, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            return self.copy_local(url, Path::new(path), sha256, part);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Ok(Attempt::Absent(
                "unsupported URL scheme (use http, https or file)".into(),
            ));
        }
        let mut delay = self.options.backoff;
        let mut last = String::new();
        for attempt in 0..self.options.retries.max(1) {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay *= 2;
            }
            match self.http(url, part) {
                Ok(HttpOutcome::Complete) => return self.check(url, sha256, part),
                Ok(HttpOutcome::NotFound(s)) => return Ok(Attempt::Absent(s)),
                Ok(HttpOutcome::Transient(s)) => last = s,
                Err(e) => return Err(e),
            }
        }
        Ok(Attempt::Failed(format!(
            "{last} (after {} attempts)",
            self.options.retries.max(1)
        )))
    }

    fn copy_local(
        &self,
        url: &str,
        src: &Path,
        sha256: &str,
        part: &Path,
    ) -> Result<Attempt, FetchError> {
        let Ok(mut from) = fs_err::File::open(src) else {
            return Ok(Attempt::Absent("no such file".into()));
        };
        let mut to = fs_err::File::create(part).map_err(io(part))?;
        std::io::copy(&mut from, &mut to).map_err(io(part))?;
        self.check(url, sha256, part)
    }

    /// Verifies the partial file; on mismatch deletes it and reports.
    fn check(&self, url: &str, sha256: &str, part: &Path) -> Result<Attempt, FetchError> {
        let actual = sha256_file(part)?;
        if actual == sha256 {
            return Ok(Attempt::Done);
        }
        let _ = fs_err::remove_file(part);
        Err(FetchError::Mismatch {
            url: url.to_owned(),
            expected: sha256.to_owned(),
            actual,
        })
    }

    fn http(&self, url: &str, part: &Path) -> Result<HttpOutcome, FetchError> {
        let have = fs_err::metadata(part).map(|m| m.len()).unwrap_or(0);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(self.options.connect_timeout))
            .timeout_recv_body(None)
            .timeout_recv_response(Some(self.options.read_timeout))
            .http_status_as_error(false)
            .user_agent(concat!("forge/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut req = agent.get(url);
        if have > 0 {
            req = req.header("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e) => return Ok(HttpOutcome::Transient(e.to_string())),
        };
        let status = resp.status().as_u16();
        let append = match status {
            206 if have > 0 => true,
            200 => false,
            404 | 410 => return Ok(HttpOutcome::NotFound(format!("HTTP {status}"))),
            416 => {
                // Our partial file is longer than the resource: start over.
                let _ = fs_err::remove_file(part);
                return Ok(HttpOutcome::Transient("HTTP 416, restarting".into()));
            }
            s if s >= 500 || s == 429 || s == 408 => {
                return Ok(HttpOutcome::Transient(format!("HTTP {s}")));
            }
            s => return Ok(HttpOutcome::NotFound(format!("HTTP {s}"))),
        };
        let mut out = fs_err::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(io(part))?;
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.write_all(&buf[..n]).map_err(io(part))?,
                // Keep what arrived: the next attempt resumes from it.
                Err(e) => return Ok(HttpOutcome::Transient(format!("download interrupted: {e}"))),
            }
        }
        out.flush().map_err(io(part))?;
        Ok(HttpOutcome::Complete)
    }
}

enum HttpOutcome {
    Complete,
    NotFound(String),
    Transient(String),
}

/// sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = fs_err::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}
