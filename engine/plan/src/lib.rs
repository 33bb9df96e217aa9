//! Planning: a concrete graph → derivations with content-addressed store paths.
//!
//! The third stage of forge's pipeline. Every node of a [`forge_resolve::Graph`] becomes a
//! [`Derivation`]: the canonical form of everything that can change its output, hashed with
//! blake3 into a 160-bit, Nix-base32 name, `<store>/<hash>-<name>-<version>`. This crate also
//! explains why two derivations differ ([`diff`]) and records how every node appears in Spack
//! ([`spack`]), so that later stages never read recipes again. It reads local sources beside
//! recipes (to hash them) and nothing else: no network, no store.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod arg;
mod buildsys;
pub mod derivation;
pub mod diff;
pub mod lock;
pub mod planner;
pub mod spack;

pub use arg::{Arg, Piece};
pub use derivation::{BUILD_PROTOCOL, Derivation, DrvHash, DrvInputs, DrvKind, Fetch};
pub use diff::{Derivations, Difference, diff, diff_by_hash};
pub use lock::{Drift, LOCK_FILE, Lock, LockError};
pub use planner::{Plan, Planner, is_archive, store_names, url_file_name};
pub use spack::{PackageMeta, SpackIdentity, VariantMeta};

// The typed pieces of derivations that come from earlier stages, for the builder and exporter.
pub use forge_recipe::{BuildSystem, DepType, DepTypes, VariantValue};
pub use forge_resolve::EdgeRole;
