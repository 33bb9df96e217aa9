//! Export of store paths as Spack v1.0 buildcaches (layout v3), and the checks around it.
//!
//! The `export` stage of forge's pipeline. Its input is an [`ExportGraph`]: packages as Spack
//! should see them (name, version, namespace, variants, generic target), each *built* (a prefix
//! on disk, usually a store path) or *external* (the host compiler, glibc at `/usr`), with Spack's
//! dependency types. Its output is a directory that a stock Spack v1.0 lists, verifies and installs
//! from (`spack install --cache-only …`):
//!
//! - [`export`] writes tarballs, spec blobs (spec file format v5 with Spack's own DAG hashes),
//!   clearsigned manifests, the public key and the index, crash-safely and incrementally, after
//!   checking that Spack can relocate every prefix ([`Violation`]);
//! - [`Keyring`] manages the OpenPGP keys that sign caches ([`Signer`]) and that are trusted
//!   when checking them ([`TrustedKeys`]);
//! - [`verify_cache`] checks a cache as a careful consumer would and names every problem;
//! - [`relocate`] also implements Spack's install-time relocation, to test exports end to end.
//!
//! [`exportable`] builds that graph from planned requests and the store: every node as the plan
//! says it appears in Spack ([`forge_plan::SpackIdentity`]), built nodes at their store paths,
//! host tools as externals. The crate never reads recipes and never touches the network.
//!
//! ```no_run
//! use forge_spack::{Arch, DepTypes, ExportGraph, ExportOptions, Keyring, Node, export, host};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let arch = Arch::linux(host::platform_os()?, "x86_64_v3");
//! let mut g = ExportGraph::new("/forge/store/__forge_padding___________");
//! let libc = g.add(host::glibc_node(&host::glibc_version()?, arch.clone()));
//! let hello = g.add(
//!     Node::built("hello", "1.0", arch, "/forge/store/__forge_padding___________/abc…-hello-1.0")
//!         .build_log("/forge/store/.forge/logs/abc…-hello-1.0.log.zst"),
//! );
//! g.depend(hello, libc, DepTypes::LINK, &["libc"]);
//! g.set_sbang("/forge/store/bin/sbang"); // forge's store keeps it outside the padding
//! let signer = Keyring::open("keys")?.signer(None)?;
//! let report = export(&g, &[hello], "/srv/cache".as_ref(), Some(&signer), &ExportOptions::default())?;
//! # let _ = report; Ok(()) }
//! ```

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod base32;
mod buildinfo;
pub mod builtin;
mod cache;
mod cachefs;
mod error;
mod export;
mod graph;
pub mod gzip;
pub mod host;
mod index;
mod keys;
mod manifest;
mod package;
mod plan;
pub mod relocate;
pub mod remote;
mod repo;
mod spec;
pub mod substitute;
mod tar;
mod tarball;
mod verify;

pub use buildinfo::BuildInfo;
pub use error::{
    ExportError, GraphError, KeyError, RelocationError, RelocationErrors, VerifyError, Violation,
};
pub use export::{
    ExportOptions, ExportReport, ExportedSpec, INDEX_MANIFEST, KEYS_MANIFEST, RelocationCounts,
    SPEC_BLOB_LAYOUT_VERSION, StorePointer, export, spec_blob_json, spec_manifest_path,
    store_pointer_path,
};
pub use graph::{Dependency, ExportGraph, HashedGraph, Node, NodeId, NodeKind};
pub use index::{DB_VERSION, Index, IndexRecord};
pub use keys::{KeyInfo, Keyring, SignatureProblem, Signer, TrustedKeys};
pub use manifest::{
    BlobRecord, LAYOUT_VERSION, MEDIA_INDEX, MEDIA_KEY, MEDIA_KEY_INDEX, MEDIA_SPEC, MEDIA_TARBALL,
    Manifest, clearsigned_body, is_clearsigned,
};
pub use plan::{Exportable, PlanExportError, Request, describe, exportable};
pub use remote::{ListedSpec, list_cache};
pub use repo::{PackageMeta, REPO_DIR, VariantMeta, class_name, package_dir};
pub use spec::{
    Arch, CompilerFlags, DepEdge, DepTypes, External, SPEC_FORMAT_VERSION, SpecNode, Target,
    VariantValue, dag_hash_of_json, package_hash_of, spec_document,
};
pub use verify::{Problem, UNSIGNED_KEYS_NOTE, VerifyOptions, VerifyReport, verify_cache};

/// Entry points of the fuzz targets (`fuzz/`) into readers of untrusted bytes that are not
/// public otherwise. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::BTreeMap;

    /// `hash_to_prefix` of a `.spack/binary_distribution`, in forge's or Spack's form.
    pub fn hash_to_prefix_of(text: &str) -> Result<BTreeMap<String, String>, String> {
        crate::buildinfo::hash_to_prefix_of(text)
    }

    /// What an uncompressed install tarball says about itself: its prefix, and the name and
    /// hash of its spec's root node, as `cache verify` reads them.
    pub fn tar_facts(tar: &[u8]) -> Result<(String, String, String), String> {
        crate::tarball::read_plain_tar(tar).map(|f| (f.prefix, f.name, f.hash))
    }
}
