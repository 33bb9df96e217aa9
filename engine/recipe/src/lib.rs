//! forge's recipe language: KDL files → a typed, validated model.
//!
//! The first stage of forge's pipeline (`recipe → resolve → plan → realize → store → export`).
//! It owns the syntax and meaning of everything under `recipes/` and `toolchains/`: packages,
//! versions, variants, dependencies, build systems, toolchains, the target-architecture table and
//! named targets. Every mistake is a [`Diag`] with a span and a help line; loading reports all of
//! them. This crate never touches the network, the store or the host (except to check that files
//! named by recipes exist).

// Every dependency is used by the library itself (dev-dependencies are for tests).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod decode;
pub mod diag;
mod eval;
pub mod fmt;
pub mod lex;
pub mod model;
pub mod set;
pub mod spec;
pub mod template;
pub mod validate;
pub mod version;

pub use diag::{Diag, Diagnostics, FileId, Sources, Span};
pub use model::*;
pub use set::{Loaded, RecipeSet, Unloaded};
pub use spec::Spec;
pub use template::{Template, Var};
pub use version::{Version, VersionReq};
