//! `forge cache verify`: checks a buildcache directory as a careful consumer would.
//!
//! For every spec manifest: the signature (against the trusted keys), that every blob exists
//! with the recorded size and sha256, that the spec blob's root node is the package the file name
//! says, and that every node's DAG hash is what its content hashes to. Then that the index lists
//! exactly the manifests' packages with the same specs, and that the published keys are intact.
//! Every problem is collected (a hostile cache usually has several) and names its file.
//!
//! Only regular files are read, never through a symbolic link (see [`crate::cachefs`]): a link
//! anywhere in the cache, or a FIFO, socket or device, is itself a problem, and every read is
//! bounded (16 MiB for manifests, the key index and keys, 64 MiB for spec blobs and the index;
//! a tarball is hashed as a stream of at most its recorded length plus one byte).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cache::{sha256_hex, sha256_reader};
use crate::cachefs::{CacheDir, FsError, Kind, MAX_LARGE, MAX_SMALL};
use crate::error::VerifyError;
use crate::export::{INDEX_MANIFEST, KEYS_MANIFEST, decode_spec_blob, spec_manifest_path};
use crate::index::Index;
use crate::keys::{SignatureProblem, TrustedKeys};
use crate::manifest::{
    BlobRecord, MEDIA_INDEX, MEDIA_KEY, MEDIA_KEY_INDEX, MEDIA_SPEC, MEDIA_TARBALL, Manifest,
};
use crate::spec::dag_hash_of_json;

/// What to require.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Every spec manifest must be signed by a trusted key (Spack's default). When false,
    /// signatures are not looked at, like Spack's `--no-check-signature`.
    pub require_signatures: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            require_signatures: true,
        }
    }
}

/// One finding. Paths are relative to the cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A manifest that does not parse.
    ManifestUnreadable {
        /// The manifest.
        manifest: PathBuf,
        /// Why.
        reason: String,
    },
    /// A symbolic link inside the cache (a cache holds none: a reader would follow it out of
    /// the cache, or to a device).
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A file of the cache that is not a regular file or directory (a FIFO, socket or device),
    /// or a directory where a file is expected.
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is (`a FIFO`…).
        kind: String,
    },
    /// A blob that exists but cannot be read as a regular file.
    BlobUnreadable {
        /// The manifest.
        manifest: PathBuf,
        /// The blob.
        blob: PathBuf,
        /// Why.
        reason: String,
    },
    /// A manifest lacks a record Spack needs.
    MissingRecord {
        /// The manifest.
        manifest: PathBuf,
        /// The media type.
        media_type: String,
    },
    /// A spec manifest without signature.
    Unsigned {
        /// The manifest.
        manifest: PathBuf,
    },
    /// A signature by a trusted key that does not match the text: the manifest was altered.
    BadSignature {
        /// The manifest.
        manifest: PathBuf,
        /// What the verifier said.
        reason: String,
    },
    /// A signature by a key that is not trusted.
    UntrustedSignature {
        /// The manifest.
        manifest: PathBuf,
        /// The signing key's fingerprint or key ID.
        issuers: Vec<String>,
    },
    /// A record's blob does not exist.
    MissingBlob {
        /// The manifest.
        manifest: PathBuf,
        /// The blob.
        blob: PathBuf,
    },
    /// A blob's content is not what the record says.
    ChecksumMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// The blob.
        blob: PathBuf,
        /// Recorded sha256.
        expected: String,
        /// Actual sha256.
        actual: String,
    },
    /// A blob's size is not what the record says.
    SizeMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// The blob.
        blob: PathBuf,
        /// Recorded size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A record names a path outside `blobs/`.
    InvalidRecord {
        /// The manifest.
        manifest: PathBuf,
        /// The record's checksum field.
        checksum: String,
    },
    /// The spec blob does not decode.
    SpecUnreadable {
        /// The manifest.
        manifest: PathBuf,
        /// Why.
        reason: String,
    },
    /// The manifest's file name does not match the spec it holds.
    NameMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// The path the spec would have.
        expected: PathBuf,
    },
    /// A node's stored DAG hash is not the hash of its content.
    HashMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// `name@version`.
        node: String,
        /// Stored hash.
        stored: String,
        /// Recomputed hash.
        computed: String,
    },
    /// No index, or an unreadable one.
    IndexUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A package with a manifest is not in the index as cached.
    NotInIndex {
        /// The manifest.
        manifest: PathBuf,
    },
    /// The index's spec for a package differs from its manifest's.
    IndexSpecDiffers {
        /// The manifest.
        manifest: PathBuf,
        /// The hash.
        hash: String,
    },
    /// The index lists a cached package that has no manifest.
    IndexWithoutManifest {
        /// The path the manifest should have.
        manifest: PathBuf,
        /// The hash.
        hash: String,
    },
    /// The key index names a key whose manifest or blob is unusable.
    KeyUnusable {
        /// The key manifest.
        manifest: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManifestUnreadable { manifest, reason } => {
                write!(f, "`{}`: unreadable manifest: {reason}", manifest.display())
            }
            Self::Symlink { path } => write!(
                f,
                "`{}` is a symbolic link; a cache must not contain any (readers would follow it): remove it",
                path.display()
            ),
            Self::NotAFile { path, kind } => {
                write!(f, "`{}` is {kind}, not a regular file", path.display())
            }
            Self::BlobUnreadable {
                manifest,
                blob,
                reason,
            } => write!(
                f,
                "`{}`: blob `{}` is unreadable: {reason}",
                manifest.display(),
                blob.display()
            ),
            Self::MissingRecord {
                manifest,
                media_type,
            } => write!(f, "`{}`: no `{media_type}` record", manifest.display()),
            Self::Unsigned { manifest } => write!(f, "`{}`: not signed", manifest.display()),
            Self::BadSignature { manifest, reason } => write!(
                f,
                "`{}`: bad signature, the manifest was altered: {reason}",
                manifest.display()
            ),
            Self::UntrustedSignature { manifest, issuers } => write!(
                f,
                "`{}`: signed by an untrusted key ({})",
                manifest.display(),
                issuers.join(", ")
            ),
            Self::MissingBlob { manifest, blob } => write!(
                f,
                "`{}`: blob `{}` is missing",
                manifest.display(),
                blob.display()
            ),
            Self::ChecksumMismatch {
                manifest,
                blob,
                expected,
                actual,
            } => write!(
                f,
                "`{}`: blob `{}` has sha256 {actual}, the manifest says {expected}",
                manifest.display(),
                blob.display()
            ),
            Self::SizeMismatch {
                manifest,
                blob,
                expected,
                actual,
            } => write!(
                f,
                "`{}`: blob `{}` has {actual} bytes, the manifest says {expected}",
                manifest.display(),
                blob.display()
            ),
            Self::InvalidRecord { manifest, checksum } => write!(
                f,
                "`{}`: record `{checksum}` does not name a blob",
                manifest.display()
            ),
            Self::SpecUnreadable { manifest, reason } => {
                write!(
                    f,
                    "`{}`: unreadable spec blob: {reason}",
                    manifest.display()
                )
            }
            Self::NameMismatch { manifest, expected } => write!(
                f,
                "`{}`: holds the spec of `{}`",
                manifest.display(),
                expected.display()
            ),
            Self::HashMismatch {
                manifest,
                node,
                stored,
                computed,
            } => write!(
                f,
                "`{}`: node `{node}` says hash {stored} but hashes to {computed}",
                manifest.display()
            ),
            Self::IndexUnreadable { path, reason } => {
                write!(f, "`{}`: no usable index: {reason}", path.display())
            }
            Self::NotInIndex { manifest } => {
                write!(f, "`{}`: not listed in the index", manifest.display())
            }
            Self::IndexSpecDiffers { manifest, hash } => write!(
                f,
                "`{}`: the index holds a different spec for {hash}",
                manifest.display()
            ),
            Self::IndexWithoutManifest { manifest, hash } => write!(
                f,
                "the index lists {hash} as cached but `{}` does not exist",
                manifest.display()
            ),
            Self::KeyUnusable { manifest, reason } => {
                write!(f, "`{}`: {reason}", manifest.display())
            }
        }
    }
}

/// What `cache verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Spec manifests examined.
    pub manifests: usize,
    /// Blobs whose checksum was verified.
    pub blobs: usize,
    /// Manifests with a good signature, by signing fingerprint.
    pub signatures: BTreeMap<String, usize>,
    /// Everything wrong, in file order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the cache passed.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// At most this many symbolic links and special files are named (a hostile cache could hold
/// millions).
const MAX_FOREIGN: usize = 1000;

struct Checker {
    dir: CacheDir,
    report: VerifyReport,
    /// Symbolic links and special files already named.
    flagged: BTreeSet<PathBuf>,
}

impl Checker {
    /// Names a symbolic link or special file, once.
    fn flag(&mut self, path: &Path, kind: Kind) {
        if !self.flagged.insert(path.to_path_buf()) {
            return;
        }
        self.report.problems.push(match kind {
            Kind::Symlink => Problem::Symlink {
                path: path.to_path_buf(),
            },
            k => Problem::NotAFile {
                path: path.to_path_buf(),
                kind: k.describe().to_string(),
            },
        });
    }

    /// Names the symbolic link or special file an error is about (once); returns its text.
    fn fs_reason(&mut self, e: &FsError) -> String {
        match e {
            FsError::Symlink(p) => self.flag(p, Kind::Symlink),
            FsError::WrongKind {
                path,
                kind: kind @ (Kind::Special(_) | Kind::Dir),
                ..
            } => self.flag(path, *kind),
            _ => {}
        }
        e.to_string()
    }

    /// Reads a regular file of at most `limit` bytes as text.
    fn read_text(&mut self, rel: &Path, limit: u64) -> Result<String, String> {
        let data = self.dir.read(rel, limit).map_err(|e| self.fs_reason(&e))?;
        String::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())
    }

    /// Checks a record's blob; returns its bytes when `load` (the most to read) is given and it
    /// is intact.
    fn blob(&mut self, manifest: &Path, rec: &BlobRecord, load: Option<u64>) -> Option<Vec<u8>> {
        let Some(rel) = rec.relative_path() else {
            self.report.problems.push(Problem::InvalidRecord {
                manifest: manifest.to_path_buf(),
                checksum: rec.checksum.clone(),
            });
            return None;
        };
        let rel = PathBuf::from(rel);
        let unreadable = |c: &mut Self, reason: String| {
            c.report.problems.push(Problem::BlobUnreadable {
                manifest: manifest.to_path_buf(),
                blob: rel.clone(),
                reason,
            });
            None
        };
        let (file, size) = match self.dir.open_file(&rel) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => {
                self.report.problems.push(Problem::MissingBlob {
                    manifest: manifest.to_path_buf(),
                    blob: rel,
                });
                return None;
            }
            Err(e) => {
                let reason = self.fs_reason(&e);
                return unreadable(self, reason);
            }
        };
        self.report.blobs += 1;
        let size_mismatch = |c: &mut Self, actual: u64| {
            c.report.problems.push(Problem::SizeMismatch {
                manifest: manifest.to_path_buf(),
                blob: rel.clone(),
                expected: rec.content_length,
                actual,
            });
            None
        };
        if size != rec.content_length {
            return size_mismatch(self, size);
        }
        if let Some(limit) = load
            && size > limit
        {
            return unreadable(self, format!("larger than {} MiB", limit >> 20));
        }
        // Read at most the recorded length plus one byte: a file that grows is caught, and
        // cannot keep the check busy.
        let (sha, len, data) = if load.is_some() {
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            if let Err(e) = (&file)
                .take(rec.content_length.saturating_add(1))
                .read_to_end(&mut data)
            {
                return unreadable(self, e.to_string());
            }
            (sha256_hex(&data), data.len() as u64, Some(data))
        } else {
            match sha256_reader(&file, rec.content_length) {
                Ok((sha, len)) => (sha, len, None),
                Err(e) => return unreadable(self, e.to_string()),
            }
        };
        if len != rec.content_length {
            return size_mismatch(self, len);
        }
        if sha != rec.checksum {
            self.report.problems.push(Problem::ChecksumMismatch {
                manifest: manifest.to_path_buf(),
                blob: rel,
                expected: rec.checksum.clone(),
                actual: sha,
            });
            return None;
        }
        data
    }

    /// Every `*.spec.manifest.json` below `v3/manifests/spec/`, relative, sorted.
    fn spec_manifests(&mut self) -> Vec<PathBuf> {
        let base = Path::new("v3/manifests/spec");
        let mut out = Vec::new();
        let pkgs = match self.dir.list(base) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return out,
            Err(e) => {
                let reason = self.fs_reason(&e);
                self.report.problems.push(Problem::ManifestUnreadable {
                    manifest: base.to_path_buf(),
                    reason,
                });
                return out;
            }
        };
        for (pkg, kind) in pkgs {
            let dir = base.join(&pkg);
            match kind {
                Kind::Dir => {}
                Kind::File => continue,
                k => {
                    self.flag(&dir, k);
                    continue;
                }
            }
            let files = match self.dir.list(&dir) {
                Ok(l) => l,
                Err(e) => {
                    let reason = self.fs_reason(&e);
                    self.report.problems.push(Problem::ManifestUnreadable {
                        manifest: dir,
                        reason,
                    });
                    continue;
                }
            };
            for (name, _) in files {
                if name
                    .to_str()
                    .is_some_and(|n| n.ends_with(".spec.manifest.json"))
                {
                    out.push(dir.join(name));
                }
            }
        }
        out.sort();
        out
    }
}

/// Verifies the buildcache at `dir` against `trusted` keys.
pub fn verify_cache(
    dir: &Path,
    trusted: &TrustedKeys,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let not_a_cache = || VerifyError::NotACache {
        path: dir.to_path_buf(),
    };
    let cache = CacheDir::open(dir).map_err(|_| not_a_cache())?;
    if !matches!(
        cache.kind(Path::new("v3")),
        Ok(Some(Kind::Dir | Kind::Symlink))
    ) {
        return Err(not_a_cache());
    }
    let mut c = Checker {
        dir: cache,
        report: VerifyReport::default(),
        flagged: BTreeSet::new(),
    };
    // Symbolic links and special files anywhere in what a cache holds.
    let mut foreign = Vec::new();
    if let Err(e) = c.dir.foreign(&mut foreign, MAX_FOREIGN) {
        return Err(e.into_io(dir).into());
    }
    for (path, kind) in foreign {
        c.flag(&path, kind);
    }
    // hash → (manifest, root node)
    let mut cached: BTreeMap<String, (PathBuf, Value)> = BTreeMap::new();

    for rel in c.spec_manifests() {
        c.report.manifests += 1;
        let text = match c.read_text(&rel, MAX_SMALL) {
            Ok(t) => t,
            Err(reason) => {
                c.report.problems.push(Problem::ManifestUnreadable {
                    manifest: rel,
                    reason,
                });
                continue;
            }
        };
        if opts.require_signatures {
            match trusted.verify_clearsigned(&text) {
                Ok(fpr) => *c.report.signatures.entry(fpr).or_default() += 1,
                Err(SignatureProblem::NotSigned) if opts.require_signatures => {
                    c.report.problems.push(Problem::Unsigned {
                        manifest: rel.clone(),
                    })
                }
                Err(SignatureProblem::NotSigned) => {}
                Err(SignatureProblem::UntrustedKey { issuers }) => {
                    c.report.problems.push(Problem::UntrustedSignature {
                        manifest: rel.clone(),
                        issuers,
                    })
                }
                Err(
                    SignatureProblem::BadSignature(reason) | SignatureProblem::Malformed(reason),
                ) => c.report.problems.push(Problem::BadSignature {
                    manifest: rel.clone(),
                    reason,
                }),
            }
        }
        let manifest = match Manifest::parse(&text) {
            Ok(m) => m,
            Err(reason) => {
                c.report.problems.push(Problem::ManifestUnreadable {
                    manifest: rel,
                    reason,
                });
                continue;
            }
        };
        match manifest.record(MEDIA_TARBALL) {
            Some(r) => {
                c.blob(&rel, r, None);
            }
            None => c.report.problems.push(Problem::MissingRecord {
                manifest: rel.clone(),
                media_type: MEDIA_TARBALL.into(),
            }),
        }
        let Some(spec_rec) = manifest.record(MEDIA_SPEC) else {
            c.report.problems.push(Problem::MissingRecord {
                manifest: rel,
                media_type: MEDIA_SPEC.into(),
            });
            continue;
        };
        let Some(data) = c.blob(&rel, spec_rec, Some(MAX_LARGE)) else {
            continue;
        };
        let nodes = decode_spec_blob(&data).and_then(|doc| {
            doc.pointer("/spec/nodes")
                .and_then(Value::as_array)
                .filter(|n| !n.is_empty())
                .cloned()
                .ok_or_else(|| "no `spec.nodes`".to_string())
        });
        let nodes = match nodes {
            Ok(n) => n,
            Err(reason) => {
                c.report.problems.push(Problem::SpecUnreadable {
                    manifest: rel,
                    reason,
                });
                continue;
            }
        };
        for n in &nodes {
            let Some(obj) = n.as_object() else { continue };
            let stored = obj.get("hash").and_then(Value::as_str).unwrap_or_default();
            let computed = dag_hash_of_json(obj);
            if stored != computed {
                let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("?");
                c.report.problems.push(Problem::HashMismatch {
                    manifest: rel.clone(),
                    node: format!("{}@{}", s("name"), s("version")),
                    stored: stored.into(),
                    computed,
                });
            }
        }
        let root = &nodes[0];
        let s = |k: &str| root.get(k).and_then(Value::as_str).unwrap_or_default();
        let expected = spec_manifest_path(s("name"), s("version"), s("hash"));
        if expected != rel {
            c.report.problems.push(Problem::NameMismatch {
                manifest: rel.clone(),
                expected,
            });
        }
        cached.insert(s("hash").to_string(), (rel, root.clone()));
    }

    // The index.
    let index_path = PathBuf::from(INDEX_MANIFEST);
    let index = read_single(&mut c, &index_path, MEDIA_INDEX, MAX_LARGE)
        .and_then(|d| Index::parse(&d).map_err(|reason| (index_path.clone(), reason)));
    match index {
        Err((path, reason)) => c
            .report
            .problems
            .push(Problem::IndexUnreadable { path, reason }),
        Ok(index) => {
            for (hash, (manifest, root)) in &cached {
                match index.records.get(hash) {
                    Some(r) if r.in_buildcache => {
                        if Some(&r.spec) != root.as_object() {
                            c.report.problems.push(Problem::IndexSpecDiffers {
                                manifest: manifest.clone(),
                                hash: hash.clone(),
                            });
                        }
                    }
                    _ => c.report.problems.push(Problem::NotInIndex {
                        manifest: manifest.clone(),
                    }),
                }
            }
            for (hash, r) in &index.records {
                if r.in_buildcache && !cached.contains_key(hash) {
                    c.report.problems.push(Problem::IndexWithoutManifest {
                        manifest: spec_manifest_path(r.field("name"), r.field("version"), hash),
                        hash: hash.clone(),
                    });
                }
            }
        }
    }

    // The keys, if any are published.
    let keys_path = PathBuf::from(KEYS_MANIFEST);
    if c.dir.kind(&keys_path).ok().flatten().is_some() {
        match read_single(&mut c, &keys_path, MEDIA_KEY_INDEX, MAX_SMALL) {
            Err((path, reason)) => c.report.problems.push(Problem::KeyUnusable {
                manifest: path,
                reason,
            }),
            Ok(data) => {
                let fprs: BTreeSet<String> = serde_json::from_slice::<Value>(&data)
                    .ok()
                    .and_then(|v| v.get("keys").and_then(Value::as_object).cloned())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for f in fprs {
                    let p = PathBuf::from(format!("v3/manifests/key/{f}.key.manifest.json"));
                    if let Err((manifest, reason)) = read_single(&mut c, &p, MEDIA_KEY, MAX_SMALL) {
                        c.report
                            .problems
                            .push(Problem::KeyUnusable { manifest, reason });
                    }
                }
            }
        }
    }
    Ok(c.report)
}

/// Reads a one-record manifest and its intact blob (of at most `limit` bytes).
fn read_single(
    c: &mut Checker,
    rel: &Path,
    media_type: &str,
    limit: u64,
) -> Result<Vec<u8>, (PathBuf, String)> {
    let text = c
        .read_text(rel, MAX_SMALL)
        .map_err(|e| (rel.to_path_buf(), e))?;
    let m = Manifest::parse(&text).map_err(|e| (rel.to_path_buf(), e))?;
    let rec = m
        .record(media_type)
        .ok_or_else(|| (rel.to_path_buf(), format!("no `{media_type}` record")))?
        .clone();
    let before = c.report.problems.len();
    match c.blob(rel, &rec, Some(limit)) {
        Some(d) => Ok(d),
        None => {
            // The blob problem itself is already recorded.
            let reason = c
                .report
                .problems
                .get(before)
                .map_or("blob unusable".to_string(), ToString::to_string);
            c.report.problems.truncate(before);
            Err((rel.to_path_buf(), reason))
        }
    }
}
