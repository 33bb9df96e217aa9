//! Building one derivation: the builder, the compiler wrappers and the sandbox shim.
//!
//! Part of forge's realize stage, kept self-contained so that a derivation's build can run in
//! another process or on another host (a Slurm job, later): [`build`] takes a [`BuildRequest`] —
//! a derivation with the paths of its inputs, serializable — and produces the output directory;
//! it does not touch the store's database, decide what to build, or fetch anything.
//!
//! - [`request`]: the request, events, result and errors;
//! - `sources`: sources unpacked into the scratch directory, host tools linked;
//! - [`env`]: the scrubbed environment and the host programs a build may use;
//! - `phases`: patches and phases, each command run through the [`sandbox`] shim;
//! - `fs`: removing, copying and staged-install helpers;
//! - [`wrapper`]: the compiler wrappers that add target flags and RUNPATHs.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod env;
mod fs;
mod phases;
pub mod request;
pub mod sandbox;
mod sources;
pub mod wrapper;

pub use fs::remove_dir_all_forced;
pub use phases::build;
pub use request::{BuildError, BuildEvent, BuildRequest, BuildResult, DepPath, EventSink};
pub use sandbox::{Isolation, Mounts, probe};
pub use sources::realize_host;
