//! Binary cache transports: where a buildcache lives, behind one small interface.
//!
//! A cache URL is `file:///dir` (or a plain path), `http(s)://host/path` (read-only) or
//! `s3://bucket/prefix`. S3 goes through the `object_store` crate (SigV4, multipart uploads,
//! conditional writes); its endpoint, region and credentials come from the standard AWS
//! environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, …) and, for what they leave unset, from
//! the profile files (`AWS_PROFILE`, else `default`, in `AWS_SHARED_CREDENTIALS_FILE` or
//! `~/.aws/credentials` and `AWS_CONFIG_FILE` or `~/.aws/config`), so the same command works
//! against AWS, a CDN-fronted bucket and a local server.
//!
//! Every call is blocking: the callers (export, substitution, `cache` commands) are. Inside a
//! tokio runtime (a `spawn_blocking` thread) the calls run on it; elsewhere on a runtime of their
//! own.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

/// Objects at least this large are uploaded in parts of this size.
pub const MULTIPART_PART: usize = 16 << 20;

/// A transport failure, naming the URL.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct RemoteError {
    /// The object's URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// What a conditional upload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Written.
    Written,
    /// Not written: the object was already there (a create-only upload).
    Existed,
}

/// A cache location.
#[derive(Debug, Clone)]
pub enum Remote {
    /// A local directory.
    Dir(PathBuf),
    /// An HTTP(S) base URL (read-only), without a trailing `/`.
    Http(String),
    /// An S3 bucket and key prefix.
    S3(S3),
}

/// An S3 bucket with a key prefix.
#[derive(Debug, Clone)]
pub struct S3 {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

fn runtime_block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
            .block_on(f),
    }
}

/// Reads `key` of an INI-style profile section of `file`.
fn profile_value(file: &Path, sections: &[String], key: &str) -> Option<String> {
    let text = fs_err::read_to_string(file).ok()?;
    let mut current = None::<String>;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(s.trim().to_owned());
            continue;
        }
        if current.as_ref().is_some_and(|c| sections.contains(c))
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

/// The S3 settings the environment leaves unset, from the AWS profile files.
fn profile_settings() -> BTreeMap<&'static str, String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    let cred_sections = vec![profile.clone()];
    let config_sections = if profile == "default" {
        vec!["default".to_owned()]
    } else {
        vec![format!("profile {profile}")]
    };
    let mut out = BTreeMap::new();
    for (env, file, sections, key) in [
        (
            "AWS_ACCESS_KEY_ID",
            &credentials,
            &cred_sections,
            "aws_access_key_id",
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            &credentials,
            &cred_sections,
            "aws_secret_access_key",
        ),
        (
            "AWS_SESSION_TOKEN",
            &credentials,
            &cred_sections,
            "aws_session_token",
        ),
        ("AWS_REGION", &config, &config_sections, "region"),
        (
            "AWS_ENDPOINT_URL",
            &config,
            &config_sections,
            "endpoint_url",
        ),
    ] {
        if std::env::var_os(env).is_none()
            && let Some(v) = profile_value(file, sections, key)
        {
            out.insert(env, v);
        }
    }
    out
}

impl S3 {
    /// `s3://bucket/prefix` with the environment's (and profile files') settings.
    fn open(url: &str) -> Result<Self, RemoteError> {
        let err = |reason: String| RemoteError {
            url: url.to_owned(),
            reason,
        };
        let rest = url.strip_prefix("s3://").expect("an s3 URL");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(err("no bucket name".into()));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let profile = profile_settings();
        if let Some(v) = profile.get("AWS_ACCESS_KEY_ID") {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = profile.get("AWS_SECRET_ACCESS_KEY") {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = profile.get("AWS_SESSION_TOKEN") {
            b = b.with_token(v);
        }
        let region = std::env::var("AWS_REGION")
            .ok()
            .or_else(|| profile.get("AWS_REGION").cloned());
        if let Some(r) = region {
            b = b.with_region(r);
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok()
            .or_else(|| profile.get("AWS_ENDPOINT_URL").cloned());
        if let Some(e) = endpoint {
            if e.starts_with("http://") {
                b = b.with_allow_http(true);
            }
            b = b.with_endpoint(e);
        }
        let store = b.build().map_err(|e| err(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn key(&self, rel: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.prefix))
        }
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Remote {
    /// Parses a cache URL or a local directory path.
    pub fn parse(given: &str) -> Result<Self, RemoteError> {
        let trimmed = given.trim_end_matches('/');
        let err = |reason: &str| RemoteError {
            url: given.to_owned(),
            reason: reason.to_owned(),
        };
        if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
            return Ok(Self::Http(trimmed.to_owned()));
        }
        if trimmed.starts_with("s3://") {
            return S3::open(trimmed).map(Self::S3);
        }
        if let Some(p) = trimmed.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(err("a file URL needs an absolute path (`file:///…`)"));
            }
            return Ok(Self::Dir(PathBuf::from(p)));
        }
        if trimmed.contains("://") {
            return Err(err(
                "a cache is a directory, `file:///…`, `http(s)://…` or `s3://bucket/prefix`",
            ));
        }
        let abs = std::path::absolute(given).map_err(|e| err(&e.to_string()))?;
        Ok(Self::Dir(abs))
    }

    /// The URL of the cache root.
    pub fn url(&self) -> String {
        match self {
            Self::Dir(d) => format!("file://{}", d.display()),
            Self::Http(u) => u.clone(),
            Self::S3(s) if s.prefix.is_empty() => format!("s3://{}", s.bucket),
            Self::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }

    /// The URL of `rel` in the cache.
    pub fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url())
    }

    fn err(&self, rel: &str, reason: impl std::fmt::Display) -> RemoteError {
        RemoteError {
            url: self.url_of(rel),
            reason: reason.to_string(),
        }
    }

    /// Whether objects can be written (a directory or S3).
    pub fn writable(&self) -> bool {
        !matches!(self, Self::Http(_))
    }

    /// Reads `rel` whole, at most `limit` bytes; `None` when it does not exist.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        match self {
            Self::Dir(_) | Self::Http(_) => forge_fetch::read_url(
                &self.url_of(rel),
                limit,
                &forge_fetch::FetchOptions::default(),
            )
            .map_err(|e| RemoteError {
                url: self.url_of(rel),
                reason: e,
            }),
            Self::S3(s) => runtime_block_on(async {
                let got = match s.store.get(&s.key(rel)).await {
                    Ok(g) => g,
                    Err(e) if is_not_found(&e) => return Ok(None),
                    Err(e) => return Err(self.err(rel, e)),
                };
                if got.meta.size > limit {
                    return Err(self.err(rel, format!("larger than {limit} bytes")));
                }
                let bytes = got.bytes().await.map_err(|e| self.err(rel, e))?;
                Ok(Some(bytes.to_vec()))
            }),
        }
    }

    /// Copies `rel` to the new file `dest` (at most `limit` bytes); `false` when it does not
    /// exist. Streams: memory does not grow with the object.
    pub fn download(&self, rel: &str, dest: &Path, limit: u64) -> Result<bool, RemoteError> {
        match self {
            Self::Dir(d) => {
                let src = d.join(rel);
                let meta = match fs_err::symlink_metadata(&src) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                    Err(e) => return Err(self.err(rel, e)),
                };
                if !meta.is_file() {
                    return Err(self.err(rel, "not a regular file"));
                }
                if meta.len() > limit {
                    return Err(self.err(rel, format!("larger than {limit} bytes")));
                }
                fs_err::copy(&src, dest).map_err(|e| self.err(rel, e))?;
                Ok(true)
            }
            Self::Http(_) => {
                // Small objects only over this path; blobs go through the source cache.
                match self.read(rel, limit)? {
                    Some(b) => {
                        fs_err::write(dest, b).map_err(|e| self.err(rel, e))?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            Self::S3(s) => runtime_block_on(async {
                let got = match s.store.get(&s.key(rel)).await {
                    Ok(g) => g,
                    Err(e) if is_not_found(&e) => return Ok(false),
                    Err(e) => return Err(self.err(rel, e)),
                };
                if got.meta.size > limit {
                    return Err(self.err(rel, format!("larger than {limit} bytes")));
                }
                let mut out = fs_err::File::create(dest).map_err(|e| self.err(rel, e))?;
                let mut stream = got.into_stream();
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.err(rel, e))?;
                    n += chunk.len() as u64;
                    if n > limit {
                        return Err(self.err(rel, format!("larger than {limit} bytes")));
                    }
                    out.write_all(&chunk).map_err(|e| self.err(rel, e))?;
                }
                out.sync_all().map_err(|e| self.err(rel, e))?;
                Ok(true)
            }),
        }
    }

    /// The size of `rel`, if it exists (a HEAD request on S3).
    pub fn size(&self, rel: &str) -> Result<Option<u64>, RemoteError> {
        match self {
            Self::Dir(d) => match fs_err::symlink_metadata(d.join(rel)) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Err(self.err(rel, "not a regular file")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.err(rel, e)),
            },
            Self::Http(_) => Err(self.err(rel, "HTTP caches are read-only")),
            Self::S3(s) => runtime_block_on(async {
                match s.store.head(&s.key(rel)).await {
                    Ok(m) => Ok(Some(m.size)),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(self.err(rel, e)),
                }
            }),
        }
    }

    /// Uploads the file `src` as `rel` on S3: in one request below [`MULTIPART_PART`], else in
    /// parts; `create_only` uses a conditional write (`If-None-Match: *`) and reports an object
    /// already there instead of replacing it. `progress` is told the bytes sent as they go.
    pub fn put_file(
        &self,
        rel: &str,
        src: &Path,
        create_only: bool,
        progress: &dyn Fn(u64),
    ) -> Result<Put, RemoteError> {
        let Self::S3(s) = self else {
            return Err(self.err(rel, "only S3 caches are uploaded to"));
        };
        let len = fs_err::metadata(src).map_err(|e| self.err(rel, e))?.len();
        let key = s.key(rel);
        runtime_block_on(async {
            if (len as usize) < MULTIPART_PART {
                let data = fs_err::read(src).map_err(|e| self.err(rel, e))?;
                let opts = PutOptions {
                    mode: if create_only {
                        PutMode::Create
                    } else {
                        PutMode::Overwrite
                    },
                    ..PutOptions::default()
                };
                let n = data.len() as u64;
                match s.store.put_opts(&key, PutPayload::from(data), opts).await {
                    Ok(_) => {
                        progress(n);
                        Ok(Put::Written)
                    }
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. })
                        if create_only =>
                    {
                        Ok(Put::Existed)
                    }
                    Err(e) => Err(self.err(rel, e)),
                }
            } else {
                // Multipart uploads are not conditional on S3; a HEAD just before keeps the
                // window small, and blobs are content-addressed, so a race writes equal bytes.
                if create_only && s.store.head(&key).await.is_ok() {
                    return Ok(Put::Existed);
                }
                let upload = s
                    .store
                    .put_multipart(&key)
                    .await
                    .map_err(|e| self.err(rel, e))?;
                let mut w =
                    object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
                let mut f = fs_err::File::open(src).map_err(|e| self.err(rel, e))?;
                let mut buf = vec![0u8; MULTIPART_PART];
                loop {
                    let n = f.read(&mut buf).map_err(|e| self.err(rel, e))?;
                    if n == 0 {
                        break;
                    }
                    w.wait_for_capacity(4).await.map_err(|e| self.err(rel, e))?;
                    w.write(&buf[..n]);
                    progress(n as u64);
                }
                w.finish().await.map_err(|e| self.err(rel, e))?;
                Ok(Put::Written)
            }
        })
    }

    /// Every object under `dir` (relative to the cache root), sorted. Symlinks and other
    /// special files of a directory cache are listed too: readers refuse them.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, RemoteError> {
        match self {
            Self::Dir(root) => {
                let mut out = Vec::new();
                fn walk(root: &Path, at: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
                    let rd = match fs_err::read_dir(at) {
                        Ok(rd) => rd,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                        Err(e) => return Err(e),
                    };
                    for e in rd {
                        let e = e?;
                        let p = e.path();
                        if e.file_type()?.is_dir() {
                            walk(root, &p, out)?;
                        } else if let Ok(r) = p.strip_prefix(root) {
                            out.push(r.to_string_lossy().into_owned());
                        }
                    }
                    Ok(())
                }
                walk(root, &root.join(dir), &mut out).map_err(|e| self.err(dir, e))?;
                out.sort();
                Ok(out)
            }
            Self::Http(_) => Err(self.err(dir, "HTTP caches cannot be listed")),
            Self::S3(s) => runtime_block_on(async {
                let prefix = s.key(dir.trim_end_matches('/'));
                let mut stream = s.store.list(Some(&prefix));
                let mut out = Vec::new();
                let strip = if s.prefix.is_empty() {
                    String::new()
                } else {
                    format!("{}/", s.prefix)
                };
                while let Some(m) = stream.next().await {
                    let m = m.map_err(|e| self.err(dir, e))?;
                    let key = m.location.to_string();
                    out.push(key.strip_prefix(&strip).unwrap_or(&key).to_owned());
                }
                out.sort();
                Ok(out)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_files_are_read_by_section() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("credentials");
        fs_err::write(
            &f,
            "[default]\naws_access_key_id = A\n# comment\n[ci]\naws_access_key_id=B\naws_secret_access_key = S\n",
        )
        .unwrap();
        let s = |n: &str| vec![n.to_owned()];
        assert_eq!(
            profile_value(&f, &s("default"), "aws_access_key_id").as_deref(),
            Some("A")
        );
        assert_eq!(
            profile_value(&f, &s("ci"), "aws_access_key_id").as_deref(),
            Some("B")
        );
        assert_eq!(
            profile_value(&f, &s("ci"), "aws_secret_access_key").as_deref(),
            Some("S")
        );
        assert_eq!(
            profile_value(&f, &s("default"), "aws_secret_access_key"),
            None
        );
        assert_eq!(profile_value(&d.path().join("none"), &s("ci"), "x"), None);
    }

    #[test]
    fn urls_parse_and_directories_read_and_list() {
        let d = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(d.path().join("v3/a")).unwrap();
        fs_err::write(d.path().join("v3/a/x.json"), "{}").unwrap();
        let r = Remote::parse(&format!("file://{}/", d.path().display())).unwrap();
        assert_eq!(r.url(), format!("file://{}", d.path().display()));
        assert_eq!(r.read("v3/a/x.json", 10).unwrap().unwrap(), b"{}");
        assert!(r.read("v3/a/none", 10).unwrap().is_none());
        assert!(r.read("v3/a/x.json", 1).is_err(), "over the limit");
        assert_eq!(r.list("v3").unwrap(), ["v3/a/x.json"]);
        assert_eq!(r.size("v3/a/x.json").unwrap(), Some(2));
        assert!(
            matches!(Remote::parse("https://h/c/").unwrap(), Remote::Http(u) if u == "https://h/c")
        );
        assert!(!Remote::parse("https://h/c").unwrap().writable());
        assert!(Remote::parse("file://relative").is_err());
        assert!(
            Remote::parse("ftp://h/x")
                .unwrap_err()
                .reason
                .contains("a cache is")
        );
        assert!(
            Remote::parse("s3:///nobucket")
                .unwrap_err()
                .reason
                .contains("no bucket")
        );
    }
}
