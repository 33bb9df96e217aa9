//! Building one derivation: the builder, the compiler wrappers and the sandbox shim.
//!
//! Part of forge's realize stage, kept self-contained so that a derivation's build can run in
//! another process or on another host (a Slurm job, later): [`builder::build`] takes a derivation
//! with the paths of its inputs and produces the output directory; it does not touch the store's
//! database, decide what to build, or fetch anything.

pub mod builder;
pub mod env;
pub mod sandbox;
pub mod wrapper;

pub use builder::{
    BuildError, BuildEvent, BuildRequest, BuildResult, DepPath, EventSink, build, realize_host,
    remove_dir_all_forced,
};
pub use sandbox::{Isolation, Mounts, probe};
