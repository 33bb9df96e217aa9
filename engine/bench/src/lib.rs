//! Benchmarks of forge's pipeline, kept in the repository: `forge-bench plan` loads, validates,
//! resolves and plans every target of a recipe tree (the repository's, or a synthetic one of any
//! size) several times and reports the wall time of a full run; `realize-noop`, `scheduler` and
//! `hash` measure the realize stage against baselines taken in the same run.
//!
//! This crate measures; it changes nothing in the engine and is not a timed test: numbers
//! depend on the machine, so they are printed, not asserted.

pub mod content;
pub mod measure;
pub mod realize;
pub mod synthetic;
