//! What one node's build is given from the graph: its dependencies' paths, the `PATH` of its
//! build tools, the RUNPATH of what it links, and the store names it may reference.

use std::path::PathBuf;

use forge_builder::DepPath;
use forge_core::StoreName;
use forge_plan::DepType;
use forge_plan::{DrvKind, Plan};
use forge_store::Store;
use petgraph::graph::NodeIndex;

/// The direct dependencies of node `i`, with their store paths.
pub(crate) fn deps_of(
    plan: &Plan,
    i: NodeIndex,
    names: &[StoreName],
    store: &Store,
) -> Vec<DepPath> {
    plan.graph
        .deps(i)
        .into_iter()
        .map(|(d, e)| DepPath {
            name: plan.graph.node(d).name().to_owned(),
            virtuals: e.virtuals.clone(),
            path: store.path_of(&names[d.index()]),
            types: e.types,
            role: e.role,
        })
        .collect()
}

/// `bin` dirs of the run-time closure of a node's build tools.
pub(crate) fn tool_paths(
    plan: &Plan,
    i: NodeIndex,
    names: &[StoreName],
    store: &Store,
) -> Vec<PathBuf> {
    let g = &plan.graph;
    let tools = g
        .deps(i)
        .into_iter()
        .filter(|(_, e)| e.types.contains(DepType::Build))
        .map(|(d, _)| d);
    g.reachable(tools, |_, e| e.types.contains(DepType::Run))
        .into_iter()
        .map(|d| store.path_of(&names[d.index()]).join("bin"))
        .collect()
}

/// `lib` dirs of the link closure: RUNPATH entries for everything the node links.
pub(crate) fn rpaths(
    plan: &Plan,
    i: NodeIndex,
    names: &[StoreName],
    store: &Store,
) -> Vec<PathBuf> {
    let linked = plan.graph.reachable([i], |d, e| {
        e.types.contains(DepType::Link) && plan.drv(d).inputs.kind == DrvKind::Build
    });
    let mut out = Vec::new();
    for d in linked {
        let p = store.path_of(&names[d.index()]);
        // Dependencies are complete: only directories that exist go on the RUNPATH.
        for sub in ["lib", "lib64"] {
            if p.join(sub).is_dir() {
                out.push(p.join(sub));
            }
        }
    }
    out
}

/// Every store name the node's build can see (its whole dependency closure): the candidates for
/// runtime references.
pub(crate) fn input_closure(plan: &Plan, i: NodeIndex, names: &[StoreName]) -> Vec<StoreName> {
    let mut seen = plan.graph.reachable([i], |_, _| true);
    seen.sort_unstable();
    seen.into_iter().map(|d| names[d.index()].clone()).collect()
}
