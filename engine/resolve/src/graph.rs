//! The concrete DAG: one version and one value per variant for every node.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use forge_recipe::{DepTypes, Language, VariantValue, Version};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::host::HostTool;

/// Which toolchain instance builds a node. Nodes are unified per context: the zlib that the
/// compiler links (built by the host toolchain) and the zlib Slurm links (built by gcc 13) are two
/// nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    /// Taken from the host; no toolchain involved.
    Host,
    /// Built by toolchain `name` whose compiler is at `compiler_version`.
    Toolchain {
        /// Toolchain name.
        name: String,
        /// Its compiler's version.
        compiler_version: Version,
    },
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => f.write_str("host"),
            Self::Toolchain {
                name,
                compiler_version,
            } => write!(f, "{name}@{compiler_version}"),
        }
    }
}

/// Identity of a node during resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    /// Package name.
    pub package: String,
    /// Context.
    pub context: Context,
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.package, self.context)
    }
}

/// Where a node's output comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built from its recipe.
    Build,
    /// Taken from the host.
    Host(HostTool),
}

/// The toolchain a compiled node uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainUse {
    /// Toolchain name.
    pub name: String,
    /// Compiler package.
    pub compiler: String,
    /// Compiler version.
    pub compiler_version: Version,
    /// Whether the compiler is the host's.
    pub host: bool,
    /// Target architecture.
    pub arch: String,
    /// Flags for that architecture and compiler, from the target table.
    pub arch_flags: Vec<String>,
    /// Languages the node compiles.
    pub languages: Vec<Language>,
}

/// A resolved node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Package and context.
    pub key: NodeKey,
    /// Chosen version.
    pub version: Version,
    /// Every variant of the recipe with its chosen value.
    pub variants: BTreeMap<String, VariantValue>,
    /// Built or taken from the host.
    pub origin: Origin,
    /// Toolchain, for compiled nodes.
    pub toolchain: Option<ToolchainUse>,
}

impl Node {
    /// The package name.
    pub fn name(&self) -> &str {
        &self.key.package
    }
}

/// Why an edge exists.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EdgeRole {
    /// A `depends` line of the recipe.
    Declared,
    /// The compiler of the node's toolchain.
    Compiler,
    /// The runtime of the node's toolchain.
    Runtime,
}

impl EdgeRole {
    /// `declared`, `compiler` or `runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declared => "declared",
            Self::Compiler => "compiler",
            Self::Runtime => "runtime",
        }
    }
}

/// An edge from a dependent to a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Dependency types.
    pub types: DepTypes,
    /// Virtuals this edge satisfies (`mpi`), or the languages for a compiler edge (`c`, `cxx`).
    pub virtuals: Vec<String>,
    /// Why the edge exists.
    pub role: EdgeRole,
}

/// A resolved realization.
#[derive(Debug, Clone)]
pub struct Graph {
    /// What was asked for (target name or spec).
    pub name: String,
    /// Nodes and edges; nodes are stored dependencies-first in a deterministic order.
    pub graph: DiGraph<Node, Edge>,
    /// The root node.
    pub root: NodeIndex,
    /// Further roots (a target's `extra-root`s), in the order written.
    pub extra_roots: Vec<NodeIndex>,
    /// Target architecture.
    pub arch: String,
}

impl Graph {
    /// Adds `other`'s nodes that this graph lacks (in `other`'s order, so dependencies still
    /// come first) and makes its root one of the extra roots. Nodes are the same when their
    /// package and context are; if such a pair differs in version, variants, origin or toolchain,
    /// nothing is joined and the key is returned.
    pub fn join(&mut self, other: Graph) -> Result<(), NodeKey> {
        let here: BTreeMap<&NodeKey, NodeIndex> = self
            .graph
            .node_indices()
            .map(|i| (&self.graph[i].key, i))
            .collect();
        let mut map: BTreeMap<NodeIndex, Option<NodeIndex>> = BTreeMap::new();
        for i in other.graph.node_indices() {
            let n = &other.graph[i];
            match here.get(&n.key) {
                Some(&j) if self.graph[j] == *n => {
                    map.insert(i, Some(j));
                }
                Some(_) => return Err(n.key.clone()),
                None => {
                    map.insert(i, None);
                }
            }
        }
        let mut to_new: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        for i in other.graph.node_indices() {
            let j = match map[&i] {
                Some(j) => j,
                None => self.graph.add_node(other.graph[i].clone()),
            };
            to_new.insert(i, j);
        }
        for e in other.graph.edge_references() {
            // Edges among shared nodes are already there.
            if map[&e.source()].is_none() {
                self.graph
                    .add_edge(to_new[&e.source()], to_new[&e.target()], e.weight().clone());
            }
        }
        let root = to_new[&other.root];
        if root != self.root && !self.extra_roots.contains(&root) {
            self.extra_roots.push(root);
        }
        Ok(())
    }

    /// The root and the extra roots.
    pub fn roots(&self) -> Vec<NodeIndex> {
        std::iter::once(self.root)
            .chain(self.extra_roots.iter().copied())
            .collect()
    }

    /// Node indices, dependencies before dependents.
    pub fn topo(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.node_indices()
    }

    /// A node.
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.graph[i]
    }

    /// Direct dependencies of a node, sorted by package name then context.
    pub fn deps(&self, i: NodeIndex) -> Vec<(NodeIndex, &Edge)> {
        let mut v: Vec<_> = self
            .graph
            .edges_directed(i, Direction::Outgoing)
            .map(|e| (e.target(), e.weight()))
            .collect();
        v.sort_by(|a, b| self.graph[a.0].key.cmp(&self.graph[b.0].key));
        v
    }

    /// Direct dependents of a node.
    pub fn dependents(&self, i: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<_> = self
            .graph
            .neighbors_directed(i, Direction::Incoming)
            .collect();
        v.sort_by(|a, b| self.graph[*a].key.cmp(&self.graph[*b].key));
        v.dedup();
        v
    }

    /// The nodes `roots` need through edges that `follow` accepts, the roots included.
    pub fn closure(
        &self,
        roots: impl IntoIterator<Item = NodeIndex>,
        follow: impl Fn(NodeIndex, &Edge) -> bool,
    ) -> BTreeSet<NodeIndex> {
        forge_core::graph::closure(roots, |x| self.followed(*x, &follow))
    }

    /// The nodes reachable from `roots` through edges that `follow` accepts, in the order they
    /// are first reached ([`forge_core::graph::reachable`]); a root only when an edge reaches it.
    pub fn reachable(
        &self,
        roots: impl IntoIterator<Item = NodeIndex>,
        follow: impl Fn(NodeIndex, &Edge) -> bool,
    ) -> Vec<NodeIndex> {
        forge_core::graph::reachable(roots, |x| self.followed(*x, &follow))
    }

    fn followed(&self, x: NodeIndex, follow: &impl Fn(NodeIndex, &Edge) -> bool) -> Vec<NodeIndex> {
        self.deps(x)
            .into_iter()
            .filter(|(d, e)| follow(*d, e))
            .map(|(d, _)| d)
            .collect()
    }

    /// Finds nodes by package name.
    pub fn find(&self, package: &str) -> Vec<NodeIndex> {
        self.graph
            .node_indices()
            .filter(|i| self.graph[*i].key.package == package)
            .collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph is empty (never, for a resolved graph).
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}
