//! Derivations: the canonical, self-contained description of how to produce one store path.
//!
//! A [`Derivation`] holds everything that can change a node's output — source digests, patch
//! digests, the build phases with their arguments, environment, toolchain and target flags, the
//! derivation hashes of its dependencies, the build protocol — and nothing else. Its hash names
//! the store path. URLs and mirrors are kept beside it ([`Fetch`]) because they change where bytes
//! come from, never which bytes. `store-layout/derivation.md` specifies the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_recipe::{BuildSystem, DepTypes, VariantValue};
use forge_resolve::EdgeRole;

use crate::arg::Arg;
use serde::{Deserialize, Serialize};

/// Version of the contract between derivations and the builder. Bump it whenever the builder
/// changes in a way that can change outputs (wrappers, environment, install handling): every
/// hash changes with it.
pub const BUILD_PROTOCOL: u32 = 3;

/// Domain separator for derivation hashes.
const DOMAIN: &[u8] = b"forge-derivation-v1\0";

/// What kind of node a derivation describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrvKind {
    /// Built from sources by the builder.
    Build,
    /// A tool taken from the host; realized as links to it.
    Host,
}

/// A source input, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvSource {
    /// File or directory name (decides how it is unpacked).
    pub name: String,
    /// sha256 of a file, lower-case hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Tree hash (`forge-tree-v1`, hex) of a local directory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tree: Option<String>,
    /// Whether it is an archive to unpack.
    pub unpack: bool,
    /// For a wrapper archive, the archive inside it that is unpacked instead.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inner: Option<DrvInner>,
    /// Entry names with control characters are unpacked rather than refused (absent when
    /// false, so derivations that do not ask keep their hashes).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allow_control_chars: bool,
}

/// The archive inside a wrapper archive, by name pattern and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvInner {
    /// File name pattern (`*` any run of characters, `?` one character); exactly one file of
    /// the unpacked wrapper matches it.
    pub pattern: String,
    /// sha256 of that file, lower-case hex.
    pub sha256: String,
}

/// A patch, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvPatch {
    /// File name, for logs.
    pub name: String,
    /// sha256 of the patch, lower-case hex.
    pub sha256: String,
    /// `patch -p` level.
    pub level: u32,
}

/// One command of a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvCommand {
    /// Program and arguments, run without a shell.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub argv: Option<Vec<Arg>>,
    /// A shell command line, run with `sh -c`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sh: Option<String>,
    /// Working directory relative to the source root (empty: the root).
    pub cwd: String,
}

/// A build phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvPhase {
    /// Phase name.
    pub name: String,
    /// Commands, in order.
    pub commands: Vec<DrvCommand>,
    /// Whether `DESTDIR` is set for this phase (install phases of autotools, make, cmake,
    /// meson): the builder stages the install and keeps only what lands under the output.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub destdir: bool,
}

/// How a node is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvBuild {
    /// Build system the phases came from (informational, but hashed like everything else).
    pub system: BuildSystem,
    /// Phases, in order.
    pub phases: Vec<DrvPhase>,
    /// Environment set for every phase.
    pub env: BTreeMap<String, Arg>,
}

/// The toolchain a node is compiled with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvToolchain {
    /// Toolchain name.
    pub name: String,
    /// Compiler package.
    pub compiler: String,
    /// Compiler version.
    pub compiler_version: String,
    /// Whether the compiler is the host's.
    pub host: bool,
    /// Target architecture.
    pub arch: String,
    /// Target flags added to every compile.
    pub flags: Vec<String>,
    /// Languages compiled.
    pub languages: Vec<String>,
}

/// A dependency, by derivation hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvDep {
    /// Package name.
    pub name: String,
    /// Its derivation hash.
    pub drv: String,
    /// Dependency types.
    pub types: DepTypes,
    /// Why the edge exists: `declared`, `compiler` or `runtime`.
    pub role: EdgeRole,
    /// Virtuals (or languages, for the compiler) this edge satisfies.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub virtuals: Vec<String>,
}

impl DrvDep {
    /// The order dependencies are listed in, which the hash covers: by name, derivation, then
    /// the written forms of types and role.
    fn sort_key(&self) -> (&str, &str, Vec<&'static str>, &'static str, &[String]) {
        (
            &self.name,
            &self.drv,
            self.types.names(),
            self.role.as_str(),
            &self.virtuals,
        )
    }
}

impl PartialOrd for DrvDep {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DrvDep {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// A host tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvHost {
    /// Executables linked into the output's `bin/`.
    pub executables: Vec<String>,
}

/// The hashed content of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DrvInputs {
    /// [`BUILD_PROTOCOL`].
    pub protocol: u32,
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Platform the output runs on.
    pub system: String,
    /// Build or host.
    pub kind: DrvKind,
    /// Variant values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub variants: BTreeMap<String, VariantValue>,
    /// Sources, in unpack order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sources: Vec<DrvSource>,
    /// Patches, in application order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub patches: Vec<DrvPatch>,
    /// Build steps.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub build: Option<DrvBuild>,
    /// Toolchain.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toolchain: Option<DrvToolchain>,
    /// Dependencies, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub deps: Vec<DrvDep>,
    /// For host tools.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<DrvHost>,
}

/// Where a source's bytes can be found. Not hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Fetch {
    /// URLs to try, in order (primary first, then mirrors).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub urls: Vec<String>,
    /// A local file or directory beside the recipe.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<PathBuf>,
}

/// A derivation hash: blake3 of the canonical form, first 160 bits. It names the store path.
pub type DrvHash = forge_core::StoreHash;

/// A planned node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// What is hashed.
    pub inputs: DrvInputs,
    /// Its canonical JSON.
    pub canonical: String,
    /// The hash of the canonical JSON.
    pub hash: DrvHash,
    /// Where each source can be fetched, parallel to `inputs.sources`.
    pub fetch: Vec<Fetch>,
    /// Patch files on disk, parallel to `inputs.patches`.
    pub patch_files: Vec<PathBuf>,
}

impl Derivation {
    /// Builds a derivation from its inputs.
    pub fn new(inputs: DrvInputs, fetch: Vec<Fetch>, patch_files: Vec<PathBuf>) -> Self {
        let value = serde_json::to_value(&inputs).expect("derivation inputs serialize");
        let canonical = forge_core::json::canonical(&value);
        let hash = hash_canonical(&canonical);
        Self {
            inputs,
            canonical,
            hash,
            fetch,
            patch_files,
        }
    }

    /// `<hash>-<name>-<version>`: the store path's last component.
    pub fn store_name(&self) -> forge_core::StoreName {
        forge_core::StoreName::new(self.hash, &self.inputs.name, &self.inputs.version)
    }

    /// The output path in the store at `store`.
    pub fn store_path(&self, store: &Path) -> PathBuf {
        store.join(self.store_name())
    }

    /// The derivation as a document for `forge show-derivation` and the store's `.drv` files:
    /// the hashed inputs, the hash, and the fetch locations (which are not hashed).
    pub fn to_document(&self) -> serde_json::Value {
        serde_json::json!({
            "hash": self.hash.to_string(),
            "inputs": serde_json::to_value(&self.inputs).expect("serializes"),
            "fetch": self.fetch,
        })
    }
}

/// The serialized form of a [`Derivation`]: the document of [`Derivation::to_document`] plus where
/// its patches are on this machine.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DrvDocument {
    hash: DrvHash,
    inputs: DrvInputs,
    fetch: Vec<Fetch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    patch_files: Vec<PathBuf>,
}

impl Serialize for Derivation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DrvDocument {
            hash: self.hash,
            inputs: self.inputs.clone(),
            fetch: self.fetch.clone(),
            patch_files: self.patch_files.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Derivation {
    /// Reads a derivation back, recomputing its hash: a document whose inputs do not hash to the
    /// hash it states is refused.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let doc = DrvDocument::deserialize(d)?;
        let drv = Derivation::new(doc.inputs, doc.fetch, doc.patch_files);
        if drv.hash != doc.hash {
            return Err(serde::de::Error::custom(format!(
                "the derivation's inputs hash to {}, not to the {} it states",
                drv.hash, doc.hash
            )));
        }
        Ok(drv)
    }
}

/// The hash of a canonical form.
pub fn hash_canonical(canonical: &str) -> DrvHash {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(canonical.as_bytes());
    DrvHash::from_digest(h.finalize().as_bytes())
}
