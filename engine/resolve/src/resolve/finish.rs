//! The end of a resolution: conflicts, providers and the request's `^` clauses checked on the
//! final choices, then the nodes ordered dependencies first into a [`Graph`].

use std::collections::{BTreeMap, BTreeSet};

use forge_recipe::{ArchDecl, Diag, Facts};
use petgraph::graph::{DiGraph, NodeIndex};

use super::{Pass0, Request, Resolver};
use crate::graph::{Edge, Graph, Node, NodeKey, Origin, ToolchainUse};

/// The toolchain use of each compiled node.
type Toolchains<'k> = BTreeMap<&'k NodeKey, ToolchainUse>;

impl Resolver<'_> {
    pub(super) fn finish(
        &self,
        req: &Request,
        arch: &ArchDecl,
        p: Pass0<'_>,
    ) -> Result<Graph, Box<Diag>> {
        let toolchains: Toolchains<'_> = p
            .compiled
            .iter()
            .map(|(k, flags)| (k, self.toolchain_use(k, flags, arch)))
            .collect();
        self.check_conflicts(req, arch, &p, &toolchains)?;
        self.check_providers(arch, &p, &toolchains)?;
        self.check_request_deps(req, &p)?;
        let order = dependency_order(&p);
        if order.len() != p.nodes.len() {
            let placed: BTreeSet<&NodeKey> = order.iter().copied().collect();
            let cycle = find_cycle(&p.edges, &placed);
            let names: Vec<String> = cycle.iter().map(|k| k.package.clone()).collect();
            let d = Diag::error("resolve::dependency-cycle", format!("dependency cycle in `{}`: {}", req.name, names.join(" → ")))
                .help("the conditions that switch these dependencies on form a loop; disable one with a variant");
            return Err(Box::new(self.diag_for(req, d, None, "for this spec")));
        }
        Ok(build_graph(req, arch, &p, &order, &toolchains))
    }

    /// No built node's final choices meet one of its recipe's conflicts.
    fn check_conflicts(
        &self,
        req: &Request,
        arch: &ArchDecl,
        p: &Pass0<'_>,
        toolchains: &Toolchains<'_>,
    ) -> Result<(), Box<Diag>> {
        let set = self.set;
        for (key, chosen) in &p.nodes {
            if !matches!(chosen.origin, Origin::Build) {
                continue;
            }
            let r = self.recipe(&key.package);
            let tc = toolchains.get(key);
            let facts = Facts {
                version: &chosen.version,
                variants: &chosen.variants,
                toolchain: tc.map(|t| (t.name.as_str(), &t.compiler_version)),
                arch: Some(&arch.name.value),
            };
            for c in &r.conflicts {
                if c.cond.holds_for(&facts) && c.when.as_ref().is_none_or(|w| w.holds_for(&facts)) {
                    let why = c
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("`{}` is declared as a conflict", c.cond.spec));
                    let d = Diag::error(
                        "resolve::conflict",
                        format!(
                            "`{}@{}` conflicts with `{}` in `{}`: {why}",
                            key.package, chosen.version, c.cond.spec, req.name
                        ),
                    )
                    .label(&set.sources, c.span, "declared here")
                    .help("change the version, variant or toolchain named in the conflict");
                    return Err(Box::new(d));
                }
            }
        }
        Ok(())
    }

    /// A provider must provide the virtual with the version and variants it was chosen at.
    fn check_providers(
        &self,
        arch: &ArchDecl,
        p: &Pass0<'_>,
        toolchains: &Toolchains<'_>,
    ) -> Result<(), Box<Diag>> {
        let set = self.set;
        for (key, virt) in &p.provider_checks {
            let Some(chosen) = p.nodes.get(key) else {
                continue;
            };
            let r = self.recipe(&key.package);
            let facts = Facts {
                version: &chosen.version,
                variants: &chosen.variants,
                toolchain: toolchains
                    .get(key)
                    .map(|t| (t.name.as_str(), &t.compiler_version)),
                arch: Some(&arch.name.value),
            };
            let ok = r.provides.iter().any(|pr| {
                pr.spec.name() == virt && pr.when.as_ref().is_none_or(|w| w.holds_for(&facts))
            });
            if !ok {
                let d = Diag::error(
                    "resolve::not-provided",
                    format!("`{}@{}` was chosen to provide `{virt}`, but does not provide it in this configuration", key.package, chosen.version),
                )
                .label(&set.sources, r.name.span, "provider")
                .help(format!("choose another provider of `{virt}` with `provider \"{virt}\" \"…\"`"));
                return Err(Box::new(d));
            }
        }
        Ok(())
    }

    /// `^dep` clauses of the request must each have met a node.
    fn check_request_deps(&self, req: &Request, p: &Pass0<'_>) -> Result<(), Box<Diag>> {
        for dep in &req.spec.deps {
            let dn = dep.name().unwrap_or_default();
            if !p.nodes.keys().any(|k| k.package == dn) {
                let d = Diag::error(
                    "resolve::unused-constraint",
                    format!(
                        "`^{dep}` constrains `{dn}`, which is not in the graph of `{}`",
                        req.name
                    ),
                )
                .help("remove the clause, or enable the variant that pulls the package in");
                return Err(Box::new(self.diag_for(
                    req,
                    d,
                    Some(&dep.span),
                    "not in the graph",
                )));
            }
        }
        Ok(())
    }
}

/// The nodes dependencies first: Kahn's algorithm with the smallest ready key first, so indices
/// are stable. Nodes on a cycle are left out.
fn dependency_order<'p>(p: &'p Pass0<'_>) -> Vec<&'p NodeKey> {
    let mut indeg: BTreeMap<&NodeKey, usize> = p.nodes.keys().map(|k| (k, 0)).collect();
    // Count dependencies (outgoing edges) per node: a node is ready once all its deps are placed.
    for (from, tos) in &p.edges {
        *indeg.get_mut(from).expect("edge source is a node") = tos.len();
    }
    let mut dependents: BTreeMap<&NodeKey, Vec<&NodeKey>> = BTreeMap::new();
    for (from, tos) in &p.edges {
        for to in tos.keys() {
            dependents.entry(to).or_default().push(from);
        }
    }
    let mut ready: BTreeSet<&NodeKey> = indeg
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut order: Vec<&NodeKey> = Vec::with_capacity(p.nodes.len());
    while let Some(k) = ready.pop_first() {
        order.push(k);
        for dep in dependents.get(k).map(Vec::as_slice).unwrap_or_default() {
            let d = indeg.get_mut(dep).expect("dependent is a node");
            *d -= 1;
            if *d == 0 {
                ready.insert(dep);
            }
        }
    }
    order
}

/// The graph of the chosen nodes in `order`, the root last.
fn build_graph(
    req: &Request,
    arch: &ArchDecl,
    p: &Pass0<'_>,
    order: &[&NodeKey],
    toolchains: &Toolchains<'_>,
) -> Graph {
    let mut graph: DiGraph<Node, Edge> = DiGraph::with_capacity(order.len(), order.len() * 2);
    let mut index: BTreeMap<&NodeKey, NodeIndex> = BTreeMap::new();
    for k in order {
        let c = &p.nodes[*k];
        let i = graph.add_node(Node {
            key: (*k).clone(),
            version: c.version.clone(),
            variants: c.variants.clone(),
            origin: c.origin.clone(),
            toolchain: toolchains.get(*k).cloned(),
        });
        index.insert(k, i);
    }
    for k in order {
        if let Some(tos) = p.edges.get(*k) {
            for (to, e) in tos {
                graph.add_edge(index[*k], index[to], e.clone());
            }
        }
    }
    let root_key = order.last().copied().expect("at least the root");
    Graph {
        name: req.name.clone(),
        root: index[root_key],
        extra_roots: Vec::new(),
        graph,
        arch: arch.name.value.clone(),
    }
}

fn find_cycle<'k>(
    edges: &'k BTreeMap<NodeKey, BTreeMap<NodeKey, Edge>>,
    placed: &BTreeSet<&NodeKey>,
) -> Vec<&'k NodeKey> {
    // Walk unplaced nodes along unplaced dependencies until a node repeats.
    let start = edges.keys().find(|k| !placed.contains(k));
    let Some(mut cur) = start else {
        return Vec::new();
    };
    let mut path: Vec<&NodeKey> = Vec::new();
    loop {
        if let Some(pos) = path.iter().position(|k| *k == cur) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(cur);
            return cycle;
        }
        path.push(cur);
        let next = edges
            .get(cur)
            .and_then(|tos| tos.keys().find(|k| !placed.contains(k)));
        match next {
            Some(n) => cur = n,
            None => return path,
        }
    }
}
