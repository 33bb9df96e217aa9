//! The foundations every stage of forge shares, in the manner of snix's `nix-compat`: small,
//! dependency-light and free of policy.
//!
//! - [`name`]: store names (`<hash>-<name>-<version>`) and the 160-bit hash that starts them;
//! - [`nixbase32`]: Nix's base-32 alphabet and bit order;
//! - [`json`]: canonical JSON (what derivation hashes cover) and Python-style JSON (what Spack
//!   hashes), written by one serializer with one string-escaping routine;
//! - [`treehash`]: content hashes of file trees;
//! - [`graph`]: the closure of a set of nodes under an edge relation;
//! - [`elf`]: a bounded reader of the few ELF structures forge looks at;
//! - [`fs`]: removing read-only trees, and the signature that tells a file changed;
//! - [`text`]: outside text (names, specs, build output) escaped for a terminal.
//!
//! Nothing here reads recipes, touches the network or knows about the store's database.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod elf;
pub mod fs;
pub mod graph;
pub mod json;
pub mod name;
pub mod nixbase32;
pub mod text;
pub mod treehash;

pub use name::{HASH_BYTES, HASH_LEN, StoreHash, StoreName};
