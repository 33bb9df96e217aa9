//! `forge cache verify`: checks a buildcache directory as a careful consumer would.
//!
//! For every spec manifest: the signature (against the trusted keys), that every blob exists
//! with the recorded size and sha256, that the spec blob's root node is the package the file name
//! says, that every node's DAG hash is what its content hashes to, and that the tarball is that
//! package's (its `.spack/spec.json` and the prefix its `binary_distribution` maps the hash to).
//! Then that the index lists exactly the manifests' packages with the same specs, and that the
//! published keys are what their names say and are the keys that signed the manifests: key
//! manifests and the key index are not signed (Spack writes them that way), so a key published
//! in a cache proves nothing by itself (the report carries a note saying so).
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

use sha2::{Digest as _, Sha256};

use crate::cache::{hex, sha256_hex, sha256_reader};
use crate::cachefs::{CacheDir, FsError, Kind, MAX_LARGE, MAX_SMALL};
use crate::error::VerifyError;
use crate::export::{INDEX_MANIFEST, KEYS_MANIFEST, decode_spec_blob, spec_manifest_path};
use crate::index::Index;
use crate::keys::certificate_fingerprints;
use crate::keys::{SignatureProblem, TrustedKeys};
use crate::manifest::{
    BlobRecord, MEDIA_INDEX, MEDIA_KEY, MEDIA_KEY_INDEX, MEDIA_SPEC, MEDIA_TARBALL, Manifest,
};
use crate::spec::dag_hash_of_json;
use crate::tarball::{TarballFacts, read_tarball};

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
    /// The index lists a cached package whose manifest exists but cannot be used.
    IndexedManifestUnreadable {
        /// The manifest.
        manifest: PathBuf,
        /// The hash.
        hash: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The key index names a key whose manifest or blob is unusable.
    KeyUnusable {
        /// The key manifest.
        manifest: PathBuf,
        /// Why.
        reason: String,
    },
    /// A published key is not the key its manifest's name says (a key replaced by another).
    KeyFingerprintMismatch {
        /// The key manifest.
        manifest: PathBuf,
        /// The fingerprint in the manifest's name.
        named: String,
        /// The fingerprint of the key its blob holds.
        actual: String,
    },
    /// The spec manifests are signed by a key the cache does not publish.
    SignerNotPublished {
        /// The signing key.
        fingerprint: String,
    },
    /// A published key signed no spec manifest, while others signed them.
    KeySignedNothing {
        /// The key manifest.
        manifest: PathBuf,
        /// The published key.
        fingerprint: String,
        /// The keys that signed the spec manifests.
        signers: Vec<String>,
    },
    /// The install tarball holds another package than the manifest's spec.
    TarballSpecMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// The tarball blob.
        blob: PathBuf,
        /// The manifest's spec: `name/hash`.
        expected: String,
        /// The root of the tarball's `.spack/spec.json`: `name/hash`.
        found: String,
    },
    /// The tarball's `binary_distribution` does not map the spec's hash to the prefix its
    /// members live under.
    TarballPrefixMismatch {
        /// The manifest.
        manifest: PathBuf,
        /// The tarball blob.
        blob: PathBuf,
        /// The spec's DAG hash.
        hash: String,
        /// The prefix the members live under.
        prefix: String,
        /// What `hash_to_prefix` maps the hash to.
        mapped: Option<String>,
    },
    /// The tarball is not a readable Spack install tarball.
    TarballUnreadable {
        /// The manifest.
        manifest: PathBuf,
        /// The tarball blob.
        blob: PathBuf,
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
            Self::IndexedManifestUnreadable {
                manifest,
                hash,
                reason,
            } => write!(
                f,
                "the index lists {hash} as cached but its manifest `{}` is unreadable: {reason}",
                manifest.display()
            ),
            Self::KeyUnusable { manifest, reason } => {
                write!(f, "`{}`: {reason}", manifest.display())
            }
            Self::KeyFingerprintMismatch {
                manifest,
                named,
                actual,
            } => write!(
                f,
                "`{}`: publishes key {actual}, not {named} as its name says (a replaced key)",
                manifest.display()
            ),
            Self::SignerNotPublished { fingerprint } => write!(
                f,
                "the spec manifests are signed by {fingerprint}, which the cache does not publish (no valid `v3/manifests/key/{fingerprint}.key.manifest.json`)"
            ),
            Self::KeySignedNothing {
                manifest,
                fingerprint,
                signers,
            } => write!(
                f,
                "`{}`: the cache publishes key {fingerprint}, which signed no spec manifest (they are signed by {})",
                manifest.display(),
                signers.join(", ")
            ),
            Self::TarballSpecMismatch {
                manifest,
                blob,
                expected,
                found,
            } => write!(
                f,
                "`{}`: tarball `{}` holds {found}, not the manifest's spec {expected}",
                manifest.display(),
                blob.display()
            ),
            Self::TarballPrefixMismatch {
                manifest,
                blob,
                hash,
                prefix,
                mapped,
            } => write!(
                f,
                "`{}`: tarball `{}` lives under `{prefix}` but its binary_distribution maps {hash} to {}",
                manifest.display(),
                blob.display(),
                mapped
                    .as_ref()
                    .map_or("nothing".to_string(), |m| format!("`{m}`"))
            ),
            Self::TarballUnreadable {
                manifest,
                blob,
                reason,
            } => write!(
                f,
                "`{}`: tarball `{}` is not a Spack install tarball: {reason}",
                manifest.display(),
                blob.display()
            ),
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
    /// What the checks cannot establish, worth telling the user (not problems).
    pub notes: Vec<String>,
}

/// The note a report carries when the cache publishes keys.
pub const UNSIGNED_KEYS_NOTE: &str = "the key index and key manifests are not signed (Spack writes them that way): a published key was checked against its fingerprint and against the manifests' signatures, but it proves nothing by itself; compare its fingerprint with one obtained from its owner before trusting it";

impl VerifyReport {
    /// Whether the cache passed.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What to do with a blob besides checking it.
#[derive(Clone, Copy)]
enum Want {
    Hash,
    /// Its bytes, at most this many.
    Bytes(u64),
    /// What the install tarball says about its package.
    Tarball,
}

enum Got {
    Hashed,
    Bytes(Vec<u8>),
    Tarball(Result<TarballFacts, String>),
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
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
        match self.blob_as(manifest, rec, load.map_or(Want::Hash, Want::Bytes))? {
            Got::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Checks a tarball blob, reading what it says about its package in the same pass; `None`
    /// when the blob itself is not intact.
    fn tarball(
        &mut self,
        manifest: &Path,
        rec: &BlobRecord,
    ) -> Option<Result<TarballFacts, String>> {
        match self.blob_as(manifest, rec, Want::Tarball)? {
            Got::Tarball(t) => Some(t),
            _ => None,
        }
    }

    fn blob_as(&mut self, manifest: &Path, rec: &BlobRecord, want: Want) -> Option<Got> {
        let load = match want {
            Want::Bytes(limit) => Some(limit),
            _ => None,
        };
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
        let (sha, len, got) = match want {
            Want::Bytes(_) => {
                let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                if let Err(e) = (&file)
                    .take(rec.content_length.saturating_add(1))
                    .read_to_end(&mut data)
                {
                    return unreadable(self, e.to_string());
                }
                (sha256_hex(&data), data.len() as u64, Got::Bytes(data))
            }
            Want::Hash => match sha256_reader(&file, rec.content_length) {
                Ok((sha, len)) => (sha, len, Got::Hashed),
                Err(e) => return unreadable(self, e.to_string()),
            },
            Want::Tarball => {
                // One pass: the bytes are hashed as the tar stream is read, and the rest (after
                // the end of the archive, or after an error) is hashed too.
                let mut r = HashingReader {
                    inner: (&file).take(rec.content_length.saturating_add(1)),
                    hasher: Sha256::new(),
                    len: 0,
                };
                let facts = read_tarball(&mut r);
                if let Err(e) = std::io::copy(&mut r, &mut std::io::sink()) {
                    return unreadable(self, e.to_string());
                }
                (hex(&r.hasher.finalize()), r.len, Got::Tarball(facts))
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
        Some(got)
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
    // Manifests that exist but whose spec could not be read, and why.
    let mut failed: BTreeMap<PathBuf, String> = BTreeMap::new();

    for rel in c.spec_manifests() {
        c.report.manifests += 1;
        let text = match c.read_text(&rel, MAX_SMALL) {
            Ok(t) => t,
            Err(reason) => {
                failed.insert(rel.clone(), reason.clone());
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
                failed.insert(rel.clone(), format!("it does not parse: {reason}"));
                c.report.problems.push(Problem::ManifestUnreadable {
                    manifest: rel,
                    reason,
                });
                continue;
            }
        };
        let tarball = match manifest.record(MEDIA_TARBALL) {
            Some(r) => c.tarball(&rel, r).map(|t| (r, t)),
            None => {
                c.report.problems.push(Problem::MissingRecord {
                    manifest: rel.clone(),
                    media_type: MEDIA_TARBALL.into(),
                });
                None
            }
        };
        let Some(spec_rec) = manifest.record(MEDIA_SPEC) else {
            failed.insert(rel.clone(), format!("it has no `{MEDIA_SPEC}` record"));
            c.report.problems.push(Problem::MissingRecord {
                manifest: rel,
                media_type: MEDIA_SPEC.into(),
            });
            continue;
        };
        let Some(data) = c.blob(&rel, spec_rec, Some(MAX_LARGE)) else {
            failed.insert(
                rel.clone(),
                format!(
                    "its spec blob `{}` is unusable",
                    spec_rec.relative_path().unwrap_or_default()
                ),
            );
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
                failed.insert(
                    rel.clone(),
                    format!("its spec blob does not decode: {reason}"),
                );
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
        if let Some((rec, facts)) = tarball {
            let blob = PathBuf::from(rec.relative_path().unwrap_or_default());
            match facts {
                Err(reason) => c.report.problems.push(Problem::TarballUnreadable {
                    manifest: rel.clone(),
                    blob,
                    reason,
                }),
                Ok(t) if t.name != s("name") || t.hash != s("hash") => {
                    c.report.problems.push(Problem::TarballSpecMismatch {
                        manifest: rel.clone(),
                        blob,
                        expected: format!("{}/{}", s("name"), s("hash")),
                        found: format!("{}/{}", t.name, t.hash),
                    })
                }
                Ok(t) => {
                    let mapped = t.hash_to_prefix.get(&t.hash);
                    if mapped != Some(&t.prefix) {
                        c.report.problems.push(Problem::TarballPrefixMismatch {
                            manifest: rel.clone(),
                            blob,
                            hash: t.hash.clone(),
                            mapped: mapped.cloned(),
                            prefix: t.prefix,
                        });
                    }
                }
            }
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
                if !r.in_buildcache || cached.contains_key(hash) {
                    continue;
                }
                let manifest = spec_manifest_path(r.field("name"), r.field("version"), hash);
                // It may exist without being usable: say why rather than that it is missing.
                let reason =
                    failed
                        .get(&manifest)
                        .cloned()
                        .or_else(|| match c.dir.kind(&manifest) {
                            Ok(None) => None,
                            Ok(Some(_)) => Some(match c.dir.read(&manifest, MAX_SMALL) {
                                Err(e) => e.to_string(),
                                Ok(_) => "it was not examined".into(),
                            }),
                            Err(e) => Some(e.to_string()),
                        });
                c.report.problems.push(match reason {
                    None => Problem::IndexWithoutManifest {
                        manifest,
                        hash: hash.clone(),
                    },
                    Some(reason) => Problem::IndexedManifestUnreadable {
                        manifest,
                        hash: hash.clone(),
                        reason,
                    },
                });
            }
        }
    }

    check_keys(&mut c, opts);
    Ok(c.report)
}

/// The published keys: each must be the certificate its manifest's name says, and, when
/// signatures are required, the keys that signed the spec manifests must be the published ones.
fn check_keys(c: &mut Checker, opts: &VerifyOptions) {
    let key_dir = Path::new("v3/manifests/key");
    let manifest_of = |f: &str| key_dir.join(format!("{f}.key.manifest.json"));
    // Listed in the key index (what `spack buildcache keys --install` fetches) or present.
    let mut names = BTreeSet::new();
    let keys_path = PathBuf::from(KEYS_MANIFEST);
    let has_index = c.dir.kind(&keys_path).ok().flatten().is_some();
    if has_index {
        match read_single(c, &keys_path, MEDIA_KEY_INDEX, MAX_SMALL) {
            Err((path, reason)) => c.report.problems.push(Problem::KeyUnusable {
                manifest: path,
                reason,
            }),
            Ok(data) => match serde_json::from_slice::<Value>(&data)
                .ok()
                .and_then(|v| v.get("keys").and_then(Value::as_object).cloned())
            {
                Some(m) => names.extend(m.keys().cloned()),
                None => c.report.problems.push(Problem::KeyUnusable {
                    manifest: keys_path.clone(),
                    reason: "the key index blob has no `keys` object".into(),
                }),
            },
        }
    }
    if let Ok(entries) = c.dir.list(key_dir) {
        names.extend(entries.into_iter().filter_map(|(n, _)| {
            n.to_str()
                .and_then(|n| n.strip_suffix(".key.manifest.json"))
                .map(str::to_owned)
        }));
    }
    if !has_index && names.is_empty() && c.report.signatures.is_empty() {
        return;
    }
    if has_index || !names.is_empty() {
        c.report.notes.push(UNSIGNED_KEYS_NOTE.to_string());
    }
    // Fingerprint → key manifest, for every published key that is what its name says.
    let mut published: BTreeMap<String, PathBuf> = BTreeMap::new();
    for name in names {
        let p = manifest_of(&name);
        let data = match read_single(c, &p, MEDIA_KEY, MAX_SMALL) {
            Ok(d) => d,
            Err((manifest, reason)) => {
                c.report
                    .problems
                    .push(Problem::KeyUnusable { manifest, reason });
                continue;
            }
        };
        match certificate_fingerprints(&data).as_deref() {
            Err(reason) => c.report.problems.push(Problem::KeyUnusable {
                manifest: p,
                reason: format!("the key blob is not an OpenPGP certificate: {reason}"),
            }),
            Ok([actual]) if actual.eq_ignore_ascii_case(&name) => {
                published.insert(actual.to_ascii_uppercase(), p);
            }
            Ok([actual]) => c.report.problems.push(Problem::KeyFingerprintMismatch {
                manifest: p,
                named: name,
                actual: actual.clone(),
            }),
            Ok(many) => c.report.problems.push(Problem::KeyUnusable {
                manifest: p,
                reason: format!(
                    "the key blob holds {} certificates ({}), not one",
                    many.len(),
                    many.join(", ")
                ),
            }),
        }
    }
    if !opts.require_signatures {
        return;
    }
    let signers: Vec<String> = c
        .report
        .signatures
        .keys()
        .map(|f| f.to_ascii_uppercase())
        .collect();
    for s in &signers {
        if !published.contains_key(s) {
            c.report.problems.push(Problem::SignerNotPublished {
                fingerprint: s.clone(),
            });
        }
    }
    if signers.is_empty() {
        return;
    }
    for (fingerprint, manifest) in published {
        if !signers.contains(&fingerprint) {
            c.report.problems.push(Problem::KeySignedNothing {
                manifest,
                fingerprint,
                signers: signers.clone(),
            });
        }
    }
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
