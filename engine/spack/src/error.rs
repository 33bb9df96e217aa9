//! The errors of this crate. Every variant that concerns a file names it.

use std::fmt;
use std::path::PathBuf;

/// An invalid [`ExportGraph`](crate::ExportGraph).
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The store root is relative.
    #[error("store root `{}` is not an absolute path", root.display())]
    StoreRootNotAbsolute {
        /// The root.
        root: PathBuf,
    },
    /// A name Spack would not accept.
    #[error("`{name}` is not a valid Spack package name (lower-case letters, digits, `-`, `_`)")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// An empty or malformed version.
    #[error("`{node}` has an invalid version `{version}`")]
    InvalidVersion {
        /// The node's name.
        node: String,
        /// The version.
        version: String,
    },
    /// A namespace Spack would not accept.
    #[error("`{node}` has an invalid namespace `{namespace}`")]
    InvalidNamespace {
        /// The node.
        node: String,
        /// The namespace.
        namespace: String,
    },
    /// A built node's prefix is not below the store root (or not UTF-8).
    #[error("prefix `{}` of `{node}` is not a UTF-8 path below the store root `{}`", prefix.display(), store_root.display())]
    PrefixOutsideStore {
        /// The node.
        node: String,
        /// Its prefix.
        prefix: PathBuf,
        /// The graph's store root.
        store_root: PathBuf,
    },
    /// Two built nodes share a prefix.
    #[error("`{first}` and `{second}` have the same prefix `{}`", prefix.display())]
    DuplicatePrefix {
        /// One node.
        first: String,
        /// The other.
        second: String,
        /// The prefix.
        prefix: PathBuf,
    },
    /// Two nodes are the same Spack spec.
    #[error("`{first}` and `{second}` are the same Spack spec (hash `{hash}`)")]
    DuplicateNode {
        /// One node.
        first: String,
        /// The other.
        second: String,
        /// Their DAG hash.
        hash: String,
    },
    /// A node depends on itself.
    #[error("`{node}` depends on itself")]
    SelfDependency {
        /// The node.
        node: String,
    },
    /// An edge has no dependency type.
    #[error("the edge `{from}` -> `{to}` has no dependency type")]
    EdgeWithoutType {
        /// Dependent.
        from: String,
        /// Dependency.
        to: String,
    },
    /// The graph has a cycle.
    #[error("dependency cycle among {}", nodes.join(", "))]
    Cycle {
        /// The nodes on or behind the cycle.
        nodes: Vec<String>,
    },
}

/// One reason a prefix cannot be relocated by Spack. Paths are relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A file embeds a store path that is not part of the export.
    UnexportedStorePath {
        /// The file.
        file: PathBuf,
        /// The store path it names.
        path: String,
    },
    /// A file embeds the prefix of an exported package that Spack does not relocate for this
    /// one (it is neither a transitive `link` nor a direct `run` dependency).
    NotADependency {
        /// The file.
        file: PathBuf,
        /// The referenced package (`name@version`).
        package: String,
        /// Its prefix.
        path: String,
    },
    /// A file that is neither ELF nor text embeds a store path: Spack rewrites neither.
    Unrelocatable {
        /// The file.
        file: PathBuf,
        /// The store path it names.
        path: String,
    },
    /// A binary embeds a prefix too short for a consumer prefix of the supported length.
    PrefixTooShort {
        /// The file.
        file: PathBuf,
        /// The embedded prefix.
        path: String,
        /// Its length.
        len: usize,
        /// The length it would need.
        needed: usize,
    },
    /// A relative symbolic link points outside the prefix.
    LinkEscapesPrefix {
        /// The link.
        file: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A file name that is not UTF-8 cannot be listed in `binary_distribution`.
    NonUtf8Name {
        /// The file.
        file: PathBuf,
    },
    /// A device, socket or FIFO.
    UnsupportedFileType {
        /// The file.
        file: PathBuf,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexportedStorePath { file, path } => write!(
                f,
                "`{}` references store path `{path}`, which is not exported",
                file.display()
            ),
            Self::NotADependency {
                file,
                package,
                path,
            } => write!(
                f,
                "`{}` references `{path}` of `{package}`, which is not a link or run dependency (Spack would not relocate it)",
                file.display()
            ),
            Self::Unrelocatable { file, path } => write!(
                f,
                "`{}` is neither ELF nor text but references `{path}` (Spack does not relocate such files)",
                file.display()
            ),
            Self::PrefixTooShort {
                file,
                path,
                len,
                needed,
            } => write!(
                f,
                "`{}` embeds `{path}` ({len} bytes) but consumer prefixes need {needed} bytes: pad the store root",
                file.display()
            ),
            Self::LinkEscapesPrefix { file, target } => write!(
                f,
                "symbolic link `{}` -> `{}` points outside the prefix",
                file.display(),
                target.display()
            ),
            Self::NonUtf8Name { file } => {
                write!(f, "`{}` has a name that is not UTF-8", file.display())
            }
            Self::UnsupportedFileType { file } => write!(
                f,
                "`{}` is a device, socket or FIFO, which a tarball cannot carry",
                file.display()
            ),
        }
    }
}

/// The violations found in one package's prefix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{package}` (`{}`) cannot be relocated by Spack:{}", prefix.display(), list(.violations))]
pub struct RelocationError {
    /// The package (`name@version`).
    pub package: String,
    /// Its prefix.
    pub prefix: PathBuf,
    /// Every violation, in file order.
    pub violations: Vec<Violation>,
}

/// The violations, one per line; long lists are cut (the error keeps all of them).
fn list(v: &[Violation]) -> String {
    const SHOWN: usize = 20;
    let mut s: String = v.iter().take(SHOWN).map(|x| format!("\n  - {x}")).collect();
    if v.len() > SHOWN {
        s.push_str(&format!("\n  … and {} more", v.len() - SHOWN));
    }
    s
}

/// Every package of an export that cannot be relocated, in export order (dependencies
/// first): the export checks them all before giving up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct RelocationErrors {
    /// One entry per refused package.
    pub packages: Vec<RelocationError>,
}

impl RelocationErrors {
    fn render(&self) -> String {
        let mut s: Vec<String> = self.packages.iter().map(ToString::to_string).collect();
        if self.packages.len() > 1 {
            s.push(format!(
                "{} packages cannot be relocated; nothing was published",
                self.packages.len()
            ));
        }
        s.join("\n")
    }
}

impl From<RelocationError> for RelocationErrors {
    fn from(e: RelocationError) -> Self {
        Self { packages: vec![e] }
    }
}

/// An error of key management or signing.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Bytes that are not an OpenPGP key.
    #[error("`{}` holds no usable OpenPGP key: {message}", path.display())]
    Parse {
        /// The file (or `-` for bytes given directly).
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// No key with that fingerprint.
    #[error("no key `{fingerprint}` in keyring `{}`", keyring.display())]
    NotFound {
        /// The fingerprint asked for.
        fingerprint: String,
        /// The keyring directory.
        keyring: PathBuf,
    },
    /// No secret key to sign with.
    #[error("keyring `{}` holds no secret key; hint: run `forge key generate`", keyring.display())]
    NoSecretKey {
        /// The keyring directory.
        keyring: PathBuf,
    },
    /// Several secret keys and none chosen.
    #[error("keyring `{}` holds several secret keys ({}); choose one by fingerprint", keyring.display(), fingerprints.join(", "))]
    AmbiguousSecretKey {
        /// The keyring directory.
        keyring: PathBuf,
        /// The candidates.
        fingerprints: Vec<String>,
    },
    /// The key cannot sign (no valid signing-capable key, expired, revoked…).
    #[error("key `{fingerprint}` cannot sign: {message}")]
    CannotSign {
        /// The key.
        fingerprint: String,
        /// Why.
        message: String,
    },
    /// A cryptographic operation failed.
    #[error("OpenPGP: {0}")]
    Crypto(String),
}

/// Why an export failed. Nothing is published (no manifest, no index change) when the
/// relocation check or a graph check fails.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The graph is invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Prefixes cannot be relocated.
    #[error(transparent)]
    Relocation(#[from] RelocationErrors),
    /// A root is not a built node.
    #[error("`{node}` is external and cannot be exported")]
    RootIsExternal {
        /// The node.
        node: String,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The existing cache holds something this export cannot merge with.
    #[error("existing cache file `{}` is invalid: {message}", path.display())]
    ExistingCache {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The cache holds a symbolic link (or a FIFO, socket or device) among the entries forge
    /// manages (`v3/`, `blobs/`, `spack-repo/`, `.forge-tmp/`, `README.md`): forge never writes
    /// through one, so nothing is written.
    #[error("`{}` in the cache `{}` is {kind}; forge does not write into a cache through symbolic links or special files: remove it", path.display(), cache.display())]
    UnsafeCacheEntry {
        /// The cache directory.
        cache: PathBuf,
        /// The entry, relative to the cache.
        path: PathBuf,
        /// What it is ("a symbolic link", "a FIFO"…).
        kind: &'static str,
    },
    /// The prefix already contains a `.spack` directory.
    #[error("prefix `{}` already contains `.spack`; forge writes that directory itself", prefix.display())]
    PrefixHasSpackDir {
        /// The prefix.
        prefix: PathBuf,
    },
}

/// A failure that stops `cache verify` before it can examine the cache.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The directory is not a v3 buildcache.
    #[error("`{}` is not a Spack v3 buildcache (no `v3/` directory)", path.display())]
    NotACache {
        /// The directory.
        path: PathBuf,
    },
}
