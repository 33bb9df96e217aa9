//! Resolution: a target or a spec → a concrete DAG.
//!
//! The second stage of forge's pipeline. Given a [`forge_recipe::RecipeSet`] and a request
//! (`slurm-25.11-gcc13`, or `slurm@25.11 +pmix %gcc@13.4.0 target=x86-64-v3`), it chooses one
//! version and one value per variant for every node, evaluates conditional dependencies and
//! provider choices, attaches every compiled node to its toolchain's compiler and runtime,
//! checks conflicts, and returns a [`Graph`]. It asks the host only through [`HostProbe`], never
//! touches the store, and is deterministic: same recipes and host, same graph.

// Every dependency is used by the library itself (dev-dependencies are for tests).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod graph;
pub mod host;
pub mod resolve;

pub use graph::{Context, Edge, EdgeRole, Graph, Node, NodeKey, Origin, ToolchainUse};
pub use host::{FixedHost, HostError, HostProbe, HostTool, SystemHost};
pub use resolve::{Request, Resolver, SpecOrigin};
