//! `forge cache verify`: checks a buildcache directory as a careful consumer would.
//!
//! For every spec manifest: the signature (against the trusted keys), that every blob exists
//! with the recorded size and sha256, that the spec blob's root node is the package the file name
//! says, and that every node's DAG hash is what its content hashes to. Then that the index lists
//! exactly the manifests' packages with the same specs, and that the published keys are intact.
//! Every problem is collected (a hostile cache usually has several) and names its file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cache::sha256_reader;
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

struct Checker<'a> {
    root: &'a Path,
    report: VerifyReport,
    hashed: BTreeMap<PathBuf, Result<(String, u64), String>>,
}

impl Checker<'_> {
    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(self.root).unwrap_or(p).to_path_buf()
    }

    /// Checks a record's blob; returns its bytes when `load` and it is intact.
    fn blob(&mut self, manifest: &Path, rec: &BlobRecord, load: bool) -> Option<Vec<u8>> {
        let Some(rel) = rec.relative_path() else {
            self.report.problems.push(Problem::InvalidRecord {
                manifest: manifest.to_path_buf(),
                checksum: rec.checksum.clone(),
            });
            return None;
        };
        let rel = PathBuf::from(rel);
        let abs = self.root.join(&rel);
        if fs_err::symlink_metadata(&abs).is_err() {
            self.report.problems.push(Problem::MissingBlob {
                manifest: manifest.to_path_buf(),
                blob: rel,
            });
            return None;
        }
        let digest = self
            .hashed
            .entry(rel.clone())
            .or_insert_with(|| {
                fs_err::File::open(&abs)
                    .and_then(|f| sha256_reader(f, u64::MAX - 1))
                    .map_err(|e| e.to_string())
            })
            .clone();
        self.report.blobs += 1;
        match digest {
            Err(reason) => {
                self.report.problems.push(Problem::ManifestUnreadable {
                    manifest: rel,
                    reason,
                });
                None
            }
            Ok((sha, len)) => {
                if sha != rec.checksum {
                    self.report.problems.push(Problem::ChecksumMismatch {
                        manifest: manifest.to_path_buf(),
                        blob: rel,
                        expected: rec.checksum.clone(),
                        actual: sha,
                    });
                    None
                } else if len != rec.content_length {
                    self.report.problems.push(Problem::SizeMismatch {
                        manifest: manifest.to_path_buf(),
                        blob: rel,
                        expected: rec.content_length,
                        actual: len,
                    });
                    None
                } else if load {
                    fs_err::read(&abs).ok()
                } else {
                    None
                }
            }
        }
    }
}

/// Verifies the buildcache at `dir` against `trusted` keys.
pub fn verify_cache(
    dir: &Path,
    trusted: &TrustedKeys,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    if !dir.join("v3").is_dir() {
        return Err(VerifyError::NotACache {
            path: dir.to_path_buf(),
        });
    }
    let mut c = Checker {
        root: dir,
        report: VerifyReport::default(),
        hashed: BTreeMap::new(),
    };
    // hash → (manifest, root node)
    let mut cached: BTreeMap<String, (PathBuf, Value)> = BTreeMap::new();

    for path in spec_manifests(dir)? {
        let rel = c.rel(&path);
        c.report.manifests += 1;
        let text = match fs_err::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                c.report.problems.push(Problem::ManifestUnreadable {
                    manifest: rel,
                    reason: e.to_string(),
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
                c.blob(&rel, r, false);
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
        let Some(data) = c.blob(&rel, spec_rec, true) else {
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
    let index = read_single(&mut c, &index_path, MEDIA_INDEX)
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
    if dir.join(&keys_path).exists() {
        match read_single(&mut c, &keys_path, MEDIA_KEY_INDEX) {
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
                    if let Err((manifest, reason)) = read_single(&mut c, &p, MEDIA_KEY) {
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

/// Reads a one-record manifest and its intact blob.
fn read_single(
    c: &mut Checker<'_>,
    rel: &Path,
    media_type: &str,
) -> Result<Vec<u8>, (PathBuf, String)> {
    let text =
        fs_err::read_to_string(c.root.join(rel)).map_err(|e| (rel.to_path_buf(), e.to_string()))?;
    let m = Manifest::parse(&text).map_err(|e| (rel.to_path_buf(), e))?;
    let rec = m
        .record(media_type)
        .ok_or_else(|| (rel.to_path_buf(), format!("no `{media_type}` record")))?
        .clone();
    let before = c.report.problems.len();
    match c.blob(rel, &rec, true) {
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

/// Every `*.spec.manifest.json` below `v3/manifests/spec/`, sorted.
fn spec_manifests(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let dir = root.join("v3/manifests/spec");
    if !dir.is_dir() {
        return Ok(out);
    }
    for pkg in fs_err::read_dir(&dir)? {
        let pkg = pkg?;
        if !pkg.file_type()?.is_dir() {
            continue;
        }
        for f in fs_err::read_dir(pkg.path())? {
            let f = f?;
            let name = f.file_name();
            if name
                .to_str()
                .is_some_and(|n| n.ends_with(".spec.manifest.json"))
            {
                out.push(f.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
