//! Planning: a concrete graph → derivations with content-addressed store paths.
//!
//! The third stage of forge's pipeline. Every node of a [`forge_resolve::Graph`] becomes a
//! [`Derivation`]: the canonical form of everything that can change its output, hashed with
//! blake3 into a 160-bit, Nix-base32 name, `<store>/<hash>-<name>-<version>`. This crate also
//! explains why two derivations differ ([`diff`]). It reads local sources beside recipes (to hash
//! them) and nothing else: no network, no store.

pub mod arg;
mod buildsys;
pub mod derivation;
pub mod diff;
pub mod planner;

pub use arg::{Arg, Piece};
pub use derivation::{BUILD_PROTOCOL, Derivation, DrvHash, DrvInputs, DrvKind, Fetch};
pub use diff::{Difference, diff};
pub use planner::{Plan, Planner, is_archive, url_file_name};

// The typed pieces of derivations that come from earlier stages, for the builder.
pub use forge_recipe::{DepType, DepTypes};
pub use forge_resolve::EdgeRole;
