//! Buildcaches in object storage: an export to S3 is a directory export into a local staging
//! copy of the bucket's metadata, then an upload in the publishing order of
//! `store-layout/spack-export.md` (blobs, keys, spec manifests, store pointers, recipes and
//! README, and last the index manifest), so that at no moment does the bucket's index name an
//! object the bucket lacks. Blobs are content-addressed: one the bucket has (same size) is not
//! sent again, so a second run after an interruption uploads only what is missing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use forge_remote::{Put, Remote, RemoteError};

use crate::cachefs::MAX_SMALL;
use crate::manifest::{MEDIA_SPEC, Manifest, clearsigned_body, is_clearsigned};

/// What a pull brought into the staging directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Metadata objects (`v3/…`) downloaded.
    pub metadata: usize,
    /// Spec blobs downloaded.
    pub spec_blobs: usize,
}

/// What an upload did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pushed {
    /// Blobs uploaded.
    pub blobs_sent: usize,
    /// Blobs the bucket already had.
    pub blobs_present: usize,
    /// Metadata objects (manifests, pointers, recipes, README, index manifest) written.
    pub metadata_sent: usize,
    /// Bytes sent.
    pub bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// The relative path of a file under `root`, with `/` separators.
fn rel_of(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn files_under(root: &Path, dir: &str) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs_err::read_dir(at) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &p, out),
                Ok(t) if t.is_file() => out.push(rel_of(root, &p)),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out);
    out.sort();
    out
}

/// Brings the remote cache's metadata (everything under `v3/`) and the spec blobs its manifests
/// name into `staging`, so that a directory export there merges with what the bucket holds.
pub fn pull_metadata(remote: &Remote, staging: &Path) -> Result<Pulled, RemoteError> {
    let mut pulled = Pulled::default();
    for rel in remote.list("v3")? {
        let dest = staging.join(&rel);
        let Some(data) = remote.read(&rel, MAX_SMALL)? else {
            continue;
        };
        if fs_err::read(&dest).is_ok_and(|d| d == data) {
            continue;
        }
        write_new(&dest, &data).map_err(|e| io_err(remote, &rel, e))?;
        pulled.metadata += 1;
        if rel.starts_with("v3/manifests/spec/")
            && let Some(rec) = spec_record(&data)
            && let Some(blob) = rec.relative_path()
            && !staging.join(&blob).is_file()
        {
            let target = staging.join(&blob);
            fs_err::create_dir_all(target.parent().expect("blob paths have parents"))
                .map_err(|e| io_err(remote, &blob, e))?;
            if remote.download(&blob, &target, rec.content_length)? {
                pulled.spec_blobs += 1;
            }
        }
    }
    Ok(pulled)
}

fn io_err(remote: &Remote, rel: &str, e: std::io::Error) -> RemoteError {
    RemoteError {
        url: remote.url_of(rel),
        reason: format!("writing the local copy: {e}"),
    }
}

fn write_new(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    fs_err::create_dir_all(dest.parent().expect("relative paths have parents"))?;
    let tmp = dest.with_extension(format!("pull{}", std::process::id()));
    fs_err::write(&tmp, data)?;
    fs_err::rename(&tmp, dest)
}

fn spec_record(manifest: &[u8]) -> Option<crate::manifest::BlobRecord> {
    let text = String::from_utf8(manifest.to_vec()).ok()?;
    let body = if is_clearsigned(&text) {
        clearsigned_body(&text)?
    } else {
        text
    };
    Manifest::parse(&body).ok()?.record(MEDIA_SPEC).cloned()
}

/// Uploads the buildcache directory `staging` to `remote` in publishing order. `progress`
/// receives (bytes sent so far, bytes to send at most).
pub fn push(
    staging: &Path,
    remote: &Remote,
    progress: &dyn Fn(u64, u64),
) -> Result<Pushed, RemoteError> {
    let start = Instant::now();
    let mut pushed = Pushed::default();
    let blobs = files_under(staging, "blobs");
    let total: u64 = blobs
        .iter()
        .map(|b| fs_err::metadata(staging.join(b)).map_or(0, |m| m.len()))
        .sum();
    let sent = std::cell::Cell::new(0u64);
    for b in &blobs {
        let path = staging.join(b);
        let len = fs_err::metadata(&path)
            .map_err(|e| io_err(remote, b, e))?
            .len();
        if remote.size(b)? == Some(len) {
            pushed.blobs_present += 1;
            continue;
        }
        let before = sent.get();
        let put = remote.put_file(b, &path, true, &|n| {
            sent.set(sent.get() + n);
            progress(sent.get(), total);
        })?;
        match put {
            Put::Written => pushed.blobs_sent += 1,
            Put::Existed => {
                pushed.blobs_present += 1;
                sent.set(before);
            }
        }
    }
    // Then the metadata, the index manifest last.
    const INDEX: &str = crate::export::INDEX_MANIFEST;
    let mut metadata: Vec<String> = Vec::new();
    if staging.join("v3/layout.json").is_file() {
        metadata.push("v3/layout.json".into());
    }
    metadata.extend(files_under(staging, "v3/manifests/key"));
    metadata.extend(files_under(staging, "v3/manifests/spec"));
    metadata.extend(files_under(staging, "v3/forge"));
    metadata.extend(files_under(staging, crate::repo::REPO_DIR));
    if staging.join("README.md").is_file() {
        metadata.push("README.md".into());
    }
    if staging.join(INDEX).is_file() {
        metadata.push(INDEX.into());
    }
    metadata.dedup();
    for rel in &metadata {
        let path = staging.join(rel);
        let local = fs_err::read(&path).map_err(|e| io_err(remote, rel, e))?;
        if rel != INDEX && remote.read(rel, MAX_SMALL)?.is_some_and(|r| r == local) {
            continue;
        }
        let n = local.len() as u64;
        remote.put_file(rel, &path, false, &|_| {})?;
        pushed.metadata_sent += 1;
        pushed.bytes += n;
    }
    pushed.bytes += sent.get();
    pushed.seconds = start.elapsed().as_secs_f64();
    Ok(pushed)
}

/// Copies every object of `remote` into the empty directory `dest` (for `cache verify`), at
/// most `limit` bytes each. Returns the number of objects.
pub fn pull_all(remote: &Remote, dest: &Path, limit: u64) -> Result<usize, RemoteError> {
    let mut n = 0;
    for dir in ["v3", "blobs", crate::repo::REPO_DIR] {
        for rel in remote.list(dir)? {
            let target: PathBuf = dest.join(&rel);
            fs_err::create_dir_all(target.parent().expect("relative paths have parents"))
                .map_err(|e| io_err(remote, &rel, e))?;
            if remote.download(&rel, &target, limit)? {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// One spec of a cache's index, as `forge cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSpec {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// DAG hash.
    pub hash: String,
    /// Target (`x86_64_v3`).
    pub target: String,
    /// Operating system (`debian12`).
    pub platform_os: String,
    /// Whether the cache holds its tarball (else the index only describes it, as a dependency).
    pub in_buildcache: bool,
    /// `signed by <FPR>`, `signed by an untrusted key (<ids>)`, `BAD SIGNATURE: …`,
    /// `unsigned`, or `no manifest`.
    pub signature: String,
}

/// What `remote`'s index lists (any Spack v1.0 buildcache), sorted by name, version and hash,
/// with each spec manifest's signature checked against `trusted`.
pub fn list_cache(
    remote: &Remote,
    trusted: &crate::keys::TrustedKeys,
) -> Result<Vec<ListedSpec>, String> {
    use crate::cachefs::MAX_LARGE;
    use crate::keys::SignatureProblem;
    let index_rel = crate::export::INDEX_MANIFEST;
    let text = remote
        .read(index_rel, MAX_SMALL)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} has no index: not a Spack v1.0 buildcache (layout v3)",
                remote.url_of(index_rel)
            )
        })?;
    let text = String::from_utf8(text).map_err(|_| format!("{index_rel} is not UTF-8"))?;
    let manifest = Manifest::parse(&text).map_err(|e| format!("{index_rel}: {e}"))?;
    let rec = manifest
        .record(crate::manifest::MEDIA_INDEX)
        .ok_or_else(|| format!("{index_rel} names no index blob"))?;
    let blob_rel = rec
        .relative_path()
        .ok_or_else(|| format!("{index_rel}: an index record with an unsafe checksum"))?;
    let blob = remote
        .read(&blob_rel, MAX_LARGE)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} is missing (the index manifest names it)",
                remote.url_of(&blob_rel)
            )
        })?;
    if crate::cache::sha256_hex(&blob) != rec.checksum {
        return Err(format!(
            "{}: sha256 differs from the index manifest's",
            remote.url_of(&blob_rel)
        ));
    }
    let index = crate::index::Index::parse(&blob).map_err(|e| format!("{blob_rel}: {e}"))?;
    let mut out = Vec::new();
    for (hash, r) in &index.records {
        let arch = r.spec.get("arch");
        let target = arch
            .and_then(|a| a.get("target"))
            .map(|t| match t {
                serde_json::Value::String(s) => s.clone(),
                other => other
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .unwrap_or_default();
        let platform_os = arch
            .and_then(|a| a.get("platform_os"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (name, version) = (r.field("name").to_owned(), r.field("version").to_owned());
        let signature = if r.in_buildcache {
            let m = crate::export::spec_manifest_path(&name, &version, hash);
            match remote
                .read(&m.to_string_lossy(), MAX_SMALL)
                .map_err(|e| e.to_string())?
            {
                None => "no manifest".to_owned(),
                Some(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    match trusted.verify_clearsigned(&text) {
                        Ok(fpr) => format!("signed by {fpr}"),
                        Err(SignatureProblem::NotSigned) => "unsigned".to_owned(),
                        Err(SignatureProblem::UntrustedKey { issuers }) => {
                            format!("signed by an untrusted key ({})", issuers.join(", "))
                        }
                        Err(p) => format!("BAD SIGNATURE: {p}"),
                    }
                }
            }
        } else {
            String::new()
        };
        out.push(ListedSpec {
            name,
            version,
            hash: hash.clone(),
            target,
            platform_os,
            in_buildcache: r.in_buildcache,
            signature,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.version, &a.hash).cmp(&(&b.name, &b.version, &b.hash)));
    Ok(out)
}
