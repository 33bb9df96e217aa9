//! The source cache and downloads.
//!
//! Sources are kept by sha256 under `<cache>/sha256/<hex>`. A file enters the cache only after its
//! digest matched: downloads go to `<cache>/partial/<hex>.part` (kept across interruptions so the
//! next attempt resumes with an HTTP range request) and are renamed into place once verified. A
//! mismatch deletes the partial file and reports URL, expected and actual digest. One process
//! downloads a given digest at a time, holding `<cache>/locks/<hex>.lock`.
//!
//! Lookup order for one source: the cache; each configured mirror (`<mirror>/sha256/<hex>`, then
//! `<mirror>/<file name>`); the recipe's URLs in order. `http(s)://` and `file://` are supported.
//! A mismatch at a mirror only means "not here" (the next location is tried); at a recipe's URL it
//! is an error. A cached file is hashed again each time it is used: one that no longer has its
//! digest is removed and fetched again.
//!
//! Every download is bounded: in size ([`FetchOptions::max_bytes`], checked against
//! `Content-Length` before and against the bytes received during), in time for one location over
//! all its attempts ([`FetchOptions::deadline`]), and in speed (below
//! [`FetchOptions::low_speed_limit`] bytes a second for [`FetchOptions::low_speed_time`], an
//! attempt fails and does not count as progress). [`SourceCache::clean_partial`] deletes partial
//! files no process is downloading (`forge gc` calls it).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Why a source could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Every location failed.
    #[error("could not fetch `{name}` (sha256 {sha256}):\n{}\nno location had it: add a mirror that does (`--mirror DIR|URL`, laid out as `sha256/<digest>` or by file name; `forge fetch TARGET --to DIR` fills one where the URLs are reachable)", attempts.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n"))]
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
    /// The expected digest is not a sha256 (64 hexadecimal digits).
    #[error("`{sha256}` is not a sha256 digest (64 hexadecimal digits)")]
    BadDigest {
        /// What was given.
        sha256: String,
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
    /// Attempts per URL for transient failures (connection errors, 5xx, truncated bodies). An
    /// attempt that grew the partial file does not use one up.
    pub retries: u32,
    /// First back-off; doubled after each failed attempt.
    pub backoff: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout without progress while waiting for the response or reading the body.
    pub read_timeout: Duration,
    /// The largest file accepted, in bytes: a larger `Content-Length` is refused before the
    /// body, a body that grows past it is cut and deleted.
    pub max_bytes: u64,
    /// The longest one location may take, over all its attempts.
    pub deadline: Duration,
    /// An attempt receiving fewer than this many bytes a second, over `low_speed_time`, fails.
    pub low_speed_limit: u64,
    /// The window over which `low_speed_limit` is measured.
    pub low_speed_time: Duration,
}

/// The default [`FetchOptions::max_bytes`]: 16 GiB, four times the largest source of the
/// recipes (the CUDA installer).
pub const DEFAULT_MAX_BYTES: u64 = 16 << 30;

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            mirrors: Vec::new(),
            retries: 3,
            backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            max_bytes: DEFAULT_MAX_BYTES,
            deadline: Duration::from_secs(2 * 3600),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(60),
        }
    }
}

/// Attempts that made progress are free, up to this many, so a flaky but working connection
/// finishes a large download while a server that trickles forever does not keep us forever.
const MAX_PROGRESSING_ATTEMPTS: u32 = 100;

/// The content-addressed source cache.
#[derive(Debug, Clone)]
pub struct SourceCache {
    dir: PathBuf,
    options: FetchOptions,
}

/// One place to look for the bytes.
struct Candidate {
    /// What messages show.
    url: String,
    /// A local file, for `file://` URLs and [`SourceCache::add_file`].
    local: Option<PathBuf>,
    /// Whether a mismatch here is an error (else: "not here").
    authoritative: bool,
}

impl Candidate {
    fn url(url: String, authoritative: bool) -> Self {
        let local = url.strip_prefix("file://").map(file_url_path);
        Self {
            url,
            local: local.flatten(),
            authoritative,
        }
    }
}

enum Attempt {
    /// The bytes are in the partial file with the right digest.
    Done,
    /// Not there (404, missing file): try the next location.
    Absent(String),
    /// Failed after retries.
    Failed(String),
}

enum HttpOutcome {
    /// The body arrived; `resumed` if it was appended to an earlier partial file.
    Complete { resumed: bool },
    /// Not there, or a status retrying will not change.
    NotFound(String),
    /// Worth another attempt.
    Transient(String),
    /// Worth another attempt, but what arrived does not count as progress (a trickle).
    TooSlow(String),
    /// Not worth another attempt from this location: too large, or past the deadline.
    GiveUp(String),
}

/// Human-readable byte count for messages.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The lower-case digest, if `sha256` is one.
fn normalize_digest(sha256: &str) -> Result<String, FetchError> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(FetchError::BadDigest {
            sha256: sha256.to_owned(),
        })
    }
}

/// The path of a `file://` URL (after the scheme): `/p`, `localhost/p`, percent-decoded.
fn file_url_path(rest: &str) -> Option<PathBuf> {
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(h) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// `name` as one URL path segment.
fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn len_of(path: &Path) -> u64 {
    fs_err::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The first byte position and the total length of a `Content-Range: bytes a-b/total` header.
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
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
        self.dir.join("sha256").join(sha256.to_ascii_lowercase())
    }

    /// The cached file, if present.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let sha = normalize_digest(sha256).ok()?;
        let p = self.path_for(&sha);
        p.is_file().then_some(p)
    }

    /// Adds a local file to the cache after checking its digest (for `forge recipe add-version`
    /// and for filling mirrors).
    pub fn add_file(&self, path: &Path, sha256: &str) -> Result<PathBuf, FetchError> {
        let sha = normalize_digest(sha256)?;
        if let Some(p) = self.get(&sha) {
            return Ok(p);
        }
        let url = format!("file://{}", path.display());
        let candidate = Candidate {
            url: url.clone(),
            local: Some(path.to_path_buf()),
            authoritative: true,
        };
        self.fetch_one(&url, &sha, &[candidate], None)
    }

    /// The cached file if it still has its digest. One that does not (a planted or damaged
    /// entry) is removed, so that it is fetched again; the returned note says so.
    fn verified(&self, sha256: &str) -> Result<(Option<PathBuf>, Option<String>), FetchError> {
        let Some(p) = self.get(sha256) else {
            return Ok((None, None));
        };
        let actual = sha256_file(&p)?;
        if actual == sha256 {
            return Ok((Some(p), None));
        }
        fs_err::remove_file(&p).map_err(io(&p))?;
        Ok((
            None,
            Some(format!(
                "{}: the cached file had other bytes (sha256 {actual}) and was removed",
                p.display()
            )),
        ))
    }

    /// Returns the cached file for `sha256`, fetching it from the mirrors and `urls` if needed.
    /// `name` is the file's name (used for name-based mirror lookups and messages). A cached file
    /// is hashed again before it is returned.
    pub fn fetch(&self, name: &str, sha256: &str, urls: &[String]) -> Result<PathBuf, FetchError> {
        let sha = normalize_digest(sha256)?;
        let (found, note) = self.verified(&sha)?;
        if let Some(p) = found {
            return Ok(p);
        }
        // Only a plain file name can be looked up by name; anything else would name another path.
        let by_name = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
        let mut candidates = Vec::new();
        for m in &self.options.mirrors {
            let base = m.trim_end_matches('/');
            // A bad entry at a mirror (damaged, planted, or another file under that name — a
            // repack) only means "not here": the next mirror and the recipe's URLs follow.
            candidates.push(Candidate::url(format!("{base}/sha256/{sha}"), false));
            if by_name {
                candidates.push(Candidate::url(
                    format!("{base}/{}", encode_segment(name)),
                    false,
                ));
            }
        }
        candidates.extend(urls.iter().map(|u| Candidate::url(u.clone(), true)));
        self.fetch_one(name, &sha, &candidates, note)
    }

    fn fetch_one(
        &self,
        name: &str,
        sha256: &str,
        candidates: &[Candidate],
        note: Option<String>,
    ) -> Result<PathBuf, FetchError> {
        let partial_dir = self.dir.join("partial");
        let final_dir = self.dir.join("sha256");
        let lock_dir = self.dir.join("locks");
        for d in [&partial_dir, &final_dir, &lock_dir] {
            fs_err::create_dir_all(d).map_err(io(d))?;
        }
        // One process downloads a given digest at a time. The lock lives apart from `partial/`
        // so that directory only ever holds partial downloads.
        let lock_path = lock_dir.join(format!("{sha256}.lock"));
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
        let (found, removed) = self.verified(sha256)?;
        if let Some(p) = found {
            return Ok(p);
        }
        let part = partial_dir.join(format!("{sha256}.part"));
        let mut attempts: Vec<String> = note.or(removed).into_iter().collect();
        for c in candidates {
            let outcome = match self.attempt(c, sha256, &part) {
                Err(FetchError::Mismatch { actual, .. }) if !c.authoritative => {
                    attempts.push(format!("{}: different content (sha256 {actual})", c.url));
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
                    attempts.push(format!("{}: {why}", c.url))
                }
            }
        }
        if candidates.is_empty() {
            attempts.push(
                "no URL and no mirror to try: this source is only served by mirrors; pass `--mirror URL` (a directory laid out as `sha256/<digest>` or by file name)"
                    .into(),
            );
        }
        Err(FetchError::Unavailable {
            name: name.to_owned(),
            sha256: sha256.to_owned(),
            attempts,
        })
    }

    fn attempt(&self, c: &Candidate, sha256: &str, part: &Path) -> Result<Attempt, FetchError> {
        let url = c.url.as_str();
        if let Some(path) = &c.local {
            return self.copy_local(url, path, sha256, part);
        }
        if url.starts_with("file://") {
            return Ok(Attempt::Absent(
                "a file URL needs an absolute path (`file:///…`)".into(),
            ));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Ok(Attempt::Absent(
                "unsupported URL scheme (use http, https or file)".into(),
            ));
        }
        let retries = self.options.retries.max(1);
        let mut delay = self.options.backoff;
        let mut failures = 0;
        let mut made_progress = 0;
        let mut restarted = false;
        let deadline = Instant::now() + self.options.deadline;
        let mut last;
        loop {
            let before = len_of(part);
            let mut progressed = true;
            match self.http(url, sha256, part, deadline)? {
                HttpOutcome::Complete { resumed } => match self.check(url, sha256, part) {
                    // The prefix may have come from another server or an older file: a resumed
                    // download that does not verify is fetched once more from the start before
                    // the mismatch counts.
                    Err(FetchError::Mismatch { .. }) if resumed && !restarted => {
                        restarted = true;
                        continue;
                    }
                    other => return other,
                },
                HttpOutcome::NotFound(s) => return Ok(Attempt::Absent(s)),
                HttpOutcome::GiveUp(s) => return Ok(Attempt::Failed(s)),
                HttpOutcome::Transient(s) => last = s,
                HttpOutcome::TooSlow(s) => {
                    progressed = false;
                    last = s;
                }
            }
            if progressed && len_of(part) > before && made_progress < MAX_PROGRESSING_ATTEMPTS {
                made_progress += 1;
                delay = self.options.backoff;
                continue;
            }
            failures += 1;
            if failures >= retries {
                break;
            }
            if Instant::now() + delay >= deadline {
                last = format!("{last}; {}", self.past_deadline());
                break;
            }
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
        Ok(Attempt::Failed(format!(
            "{last} (after {} attempts)",
            failures + made_progress
        )))
    }

    /// Deletes the partial downloads no process is working on (those of a digest whose lock is
    /// free, and `import-<pid>` files of processes that are gone), or with `dry_run` only finds
    /// them. Returns each file and its size. A download in progress is never touched.
    pub fn clean_partial(&self, dry_run: bool) -> Result<Vec<(PathBuf, u64)>, FetchError> {
        let dir = self.dir.join("partial");
        let entries = match fs_err::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".part") else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            // Held while the lock is: a downloader of this digest waits rather than resuming
            // a file that is being deleted.
            let _guard;
            if let Some(pid) = stem.strip_prefix("import-") {
                if Path::new("/proc").join(pid).exists() {
                    continue;
                }
            } else {
                let lock_path = self.dir.join("locks").join(format!("{stem}.lock"));
                let lock = match fs_err::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                {
                    Ok(l) => l,
                    Err(_) => continue,
                };
                if lock.file().try_lock().is_err() {
                    continue;
                }
                _guard = lock;
            }
            if dry_run {
                removed.push((path, size));
                continue;
            }
            match fs_err::remove_file(&path) {
                Ok(()) => removed.push((path, size)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Brings a file whose digest is not known yet into the cache (`forge recipe add-version`):
    /// a local path, a `file://` URL or an `http(s)` URL. Returns the cached file and its sha256.
    pub fn import(&self, location: &str) -> Result<(PathBuf, String), FetchError> {
        let local = match location.strip_prefix("file://") {
            Some(rest) => file_url_path(rest),
            None if !location.contains("://") => Some(PathBuf::from(location)),
            None => None,
        };
        if let Some(path) = local {
            let sha = sha256_file(&path)?;
            let cached = self.add_file(&path, &sha)?;
            return Ok((cached, sha));
        }
        let partial = self.dir.join("partial");
        fs_err::create_dir_all(&partial).map_err(io(&partial))?;
        let part = partial.join(format!("import-{}.part", std::process::id()));
        let _ = fs_err::remove_file(&part);
        let mut delay = self.options.backoff;
        let mut last = String::new();
        let deadline = Instant::now() + self.options.deadline;
        for attempt in 0..self.options.retries.max(1) {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay *= 2;
            }
            // No digest to resume against: every attempt starts over.
            let _ = fs_err::remove_file(&part);
            match self.http(location, "", &part, deadline)? {
                HttpOutcome::Complete { .. } => {
                    let sha = sha256_file(&part)?;
                    let dest = self.path_for(&sha);
                    fs_err::create_dir_all(self.dir.join("sha256")).map_err(io(&dest))?;
                    fs_err::rename(&part, &dest).map_err(io(&dest))?;
                    return Ok((dest, sha));
                }
                HttpOutcome::NotFound(why) | HttpOutcome::GiveUp(why) => {
                    let _ = fs_err::remove_file(&part);
                    return Err(FetchError::Unavailable {
                        name: location.to_owned(),
                        sha256: "unknown".into(),
                        attempts: vec![format!("{location}: {why}")],
                    });
                }
                HttpOutcome::Transient(why) | HttpOutcome::TooSlow(why) => last = why,
            }
        }
        let _ = fs_err::remove_file(&part);
        Err(FetchError::Unavailable {
            name: location.to_owned(),
            sha256: "unknown".into(),
            attempts: vec![format!("{location}: {last}")],
        })
    }

    fn copy_local(
        &self,
        url: &str,
        src: &Path,
        sha256: &str,
        part: &Path,
    ) -> Result<Attempt, FetchError> {
        let mut from = match fs_err::File::open(src) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            Ok(_) => return Ok(Attempt::Absent("not a regular file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Attempt::Absent("no such file".into()));
            }
            Err(e) => return Ok(Attempt::Absent(e.to_string())),
        };
        let mut to = fs_err::File::create(part).map_err(io(part))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Attempt::Failed(format!("reading: {e}"))),
            };
            to.write_all(&buf[..n]).map_err(io(part))?;
        }
        to.flush().map_err(io(part))?;
        drop(to);
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

    fn past_deadline(&self) -> String {
        format!(
            "gave up after {} s, the limit for one location (`--download-deadline`)",
            self.options.deadline.as_secs()
        )
    }

    fn too_large(&self, what: &str) -> String {
        format!(
            "{what}, more than the {} a download may have (`--max-download`); nothing was kept",
            bytes(self.options.max_bytes)
        )
    }

    fn http(
        &self,
        url: &str,
        sha256: &str,
        part: &Path,
        deadline: Instant,
    ) -> Result<HttpOutcome, FetchError> {
        let mut have = len_of(part);
        if have >= self.options.max_bytes {
            let _ = fs_err::remove_file(part);
            have = 0;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(HttpOutcome::GiveUp(self.past_deadline()));
        }
        // No single wait may run past the deadline either.
        let read_timeout = self.options.read_timeout.min(deadline - now);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(self.options.connect_timeout))
            .timeout_recv_response(Some(read_timeout))
            // A stalled body fails after `read_timeout` without a byte; a slow one after
            // `low_speed_time` below `low_speed_limit`; any after the deadline. What arrived is
            // kept and resumed.
            .timeout_per_read(Some(read_timeout))
            .timeout_recv_body(None)
            // The bytes as stored, never a transfer-compressed form of them: the digest is over
            // the file, and a range only makes sense on the file.
            .accept_encoding("identity")
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
            Err(ureq::Error::BadUri(e)) => {
                return Ok(HttpOutcome::NotFound(format!("invalid URL: {e}")));
            }
            Err(e) => return Ok(HttpOutcome::Transient(e.to_string())),
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = resp.status().as_u16();
        let (append, total) = match status {
            206 if have > 0 => match header("content-range").as_deref().and_then(content_range) {
                Some((start, total)) if start == have => (true, total),
                other => {
                    // Not the range asked for: appending would corrupt the file.
                    let _ = fs_err::remove_file(part);
                    return Ok(HttpOutcome::Transient(format!(
                        "HTTP 206 with an unexpected range ({}), restarting from the beginning",
                        other.map_or("none".into(), |(s, _)| format!("from byte {s}"))
                    )));
                }
            },
            200 => (
                false,
                header("content-length").and_then(|v| v.trim().parse::<u64>().ok()),
            ),
            404 | 410 => return Ok(HttpOutcome::NotFound(format!("HTTP {status}"))),
            416 if have > 0 => {
                // Either the partial file is already whole (a download killed after its last
                // byte), or it is longer than the resource: keep it only in the first case.
                if sha256_file(part)? == sha256 {
                    return Ok(HttpOutcome::Complete { resumed: true });
                }
                let _ = fs_err::remove_file(part);
                return Ok(HttpOutcome::Transient(
                    "HTTP 416, restarting from the beginning".into(),
                ));
            }
            s if s >= 500 || s == 429 || s == 408 => {
                return Ok(HttpOutcome::Transient(format!("HTTP {s}")));
            }
            s => return Ok(HttpOutcome::NotFound(format!("HTTP {s}"))),
        };
        if let Some(total) = total
            && total > self.options.max_bytes
        {
            let _ = fs_err::remove_file(part);
            return Ok(HttpOutcome::GiveUp(
                self.too_large(&format!("the server announces {}", bytes(total))),
            ));
        }
        let mut out = fs_err::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(io(part))?;
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = if append { have } else { 0 };
        let window = self.options.low_speed_time;
        let floor = self
            .options
            .low_speed_limit
            .saturating_mul(window.as_millis() as u64)
            / 1000;
        let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Keep what arrived: the next attempt resumes from it.
                Err(_) if Instant::now() >= deadline => {
                    return Ok(HttpOutcome::GiveUp(self.past_deadline()));
                }
                Err(e) => {
                    return Ok(HttpOutcome::Transient(format!("download interrupted: {e}")));
                }
            };
            size += n as u64;
            if size > self.options.max_bytes {
                drop(out);
                let _ = fs_err::remove_file(part);
                return Ok(HttpOutcome::GiveUp(self.too_large(&format!(
                    "the body grew past {}",
                    bytes(self.options.max_bytes)
                ))));
            }
            out.write_all(&buf[..n]).map_err(io(part))?;
            window_bytes += n as u64;
            let now = Instant::now();
            if now >= deadline {
                return Ok(HttpOutcome::GiveUp(self.past_deadline()));
            }
            if now.duration_since(window_start) >= window {
                if window_bytes < floor {
                    return Ok(HttpOutcome::TooSlow(format!(
                        "too slow: {window_bytes} bytes in {:.1} s, under {} B/s (`--download-low-speed`)",
                        now.duration_since(window_start).as_secs_f64(),
                        self.options.low_speed_limit
                    )));
                }
                (window_start, window_bytes) = (now, 0);
            }
        }
        out.flush().map_err(io(part))?;
        drop(out);
        if let Some(total) = total {
            let got = len_of(part);
            if got < total {
                return Ok(HttpOutcome::Transient(format!(
                    "download interrupted after {got} of {total} bytes"
                )));
            }
        }
        Ok(HttpOutcome::Complete { resumed: append })
    }
}

/// sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = fs_err::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Reads a small resource whole: a `file://` URL (a regular file, never through a final
/// symlink) or an `http(s)://` one, at most `limit` bytes, with the connect and read timeouts of
/// `options`. `Ok(None)` when it does not exist (no such file, HTTP 404 or 410); an error for
/// anything else, a body over `limit` included. For the metadata of binary caches; blobs go
/// through [`SourceCache::fetch`].
pub fn read_url(url: &str, limit: u64, options: &FetchOptions) -> Result<Option<Vec<u8>>, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        let path = file_url_path(rest)
            .ok_or_else(|| format!("`{url}`: a file URL needs an absolute path (`file:///…`)"))?;
        return read_local(&path, limit);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "`{url}`: only file://, http:// and https:// URLs are supported"
        ));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .accept_encoding("identity")
        .http_status_as_error(false)
        .user_agent(concat!("forge/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| format!("`{url}`: {e}"))?;
    match resp.status().as_u16() {
        200 => {}
        404 | 410 => return Ok(None),
        s => return Err(format!("`{url}`: HTTP {s}")),
    }
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("`{url}`: {e}"))?;
    if body.len() as u64 > limit {
        return Err(format!("`{url}` is larger than {}", bytes(limit)));
    }
    Ok(Some(body))
}

/// A local regular file, at most `limit` bytes; `None` when missing.
fn read_local(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, String> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let shown = || path.display().to_string();
    let f = match fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32,
        )
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", shown())),
    };
    let meta = f.metadata().map_err(|e| format!("{}: {e}", shown()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", shown()));
    }
    let mut body = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{}: {e}", shown()))?;
    if body.len() as u64 > limit {
        return Err(format!("{} is larger than {}", shown(), bytes(limit)));
    }
    Ok(Some(body))
}
