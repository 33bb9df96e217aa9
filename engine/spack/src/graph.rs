//! The input of an export: a DAG of packages as Spack should see them.
//!
//! An [`ExportGraph`] is independent of forge's store and resolver: whoever calls the exporter
//! (the CLI) translates its own graph into nodes with a Spack name, version, namespace, variants
//! and target, each either *built* (a prefix directory on disk, exported as a tarball) or
//! *external* (a path on the consumer's machine, such as the host compiler or glibc at `/usr`),
//! and edges with Spack's dependency types and virtuals. [`ExportGraph::hashed`] validates the
//! graph and computes every node's DAG hash bottom-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::spec::{
    Arch, CompilerFlags, DepEdge, DepTypes, External, SpecNode, VariantValue, package_hash_of,
    spec_document,
};

/// A node of an [`ExportGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// The position of the node in the order it was added.
    pub fn index(self) -> usize {
        self.0
    }
}

#[cfg(test)]
pub(crate) fn test_node_id(i: usize) -> NodeId {
    NodeId(i)
}

/// Where a node's files are.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// Built by forge: exported as a tarball of `prefix`.
    Built {
        /// The store path (absolute, below the graph's store root).
        prefix: PathBuf,
        /// The build log, shipped gzip'd as `.spack/spack-build-out.txt.gz` (Spack needs that
        /// file when the package recipe has no URL): plain text, zstd-compressed (as forge's
        /// store keeps logs) or already gzip'd. A short placeholder is written without it.
        build_log: Option<PathBuf>,
    },
    /// Provided by the consumer's system (`/usr`): never exported, written as `external`.
    External(External),
}

/// A package as Spack should see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Spack package name (`slurm`, `gcc-runtime`).
    pub name: String,
    /// Version as Spack's recipe spells it (`25-11-2-1` for slurm).
    pub version: String,
    /// Package repository namespace: `builtin` for packages that Spack's own recipes describe,
    /// `forge` (or another) for packages that get a generated stub recipe.
    pub namespace: String,
    /// Platform, OS and target.
    pub arch: Arch,
    /// Variant values by Spack variant name (`build_system` included).
    pub variants: BTreeMap<String, VariantValue>,
    /// Compiler flags (normally empty: forge's flags come from the target table).
    pub flags: CompilerFlags,
    /// Applied patches (sha256 hex), in order.
    pub patches: Vec<String>,
    /// Spack's `package_hash`. Default: derived from the store path (built nodes) or from
    /// name, version and path (externals).
    pub package_hash: Option<String>,
    /// Built or external.
    pub kind: NodeKind,
}

impl Node {
    /// A node built by forge into `prefix`, in namespace `forge`, with
    /// `build_system=generic` (what a stub recipe derived from Spack's `Package` declares).
    pub fn built(
        name: impl Into<String>,
        version: impl Into<String>,
        arch: Arch,
        prefix: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            namespace: "forge".into(),
            arch,
            variants: [(
                "build_system".to_string(),
                VariantValue::Single("generic".into()),
            )]
            .into(),
            flags: CompilerFlags::default(),
            patches: Vec::new(),
            package_hash: None,
            kind: NodeKind::Built {
                prefix: prefix.into(),
                build_log: None,
            },
        }
    }

    /// An external at `path` (`/usr`), in namespace `builtin`, with no variants.
    pub fn external(
        name: impl Into<String>,
        version: impl Into<String>,
        arch: Arch,
        path: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            namespace: "builtin".into(),
            arch,
            variants: BTreeMap::new(),
            flags: CompilerFlags::default(),
            patches: Vec::new(),
            package_hash: None,
            kind: NodeKind::External(External {
                path: path.into(),
                module: None,
                extra_attributes: Map::new(),
            }),
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets a variant.
    pub fn variant(mut self, name: impl Into<String>, value: VariantValue) -> Self {
        self.variants.insert(name.into(), value);
        self
    }

    /// Sets the build log of a built node (ignored for externals).
    pub fn build_log(mut self, path: impl Into<PathBuf>) -> Self {
        if let NodeKind::Built { build_log, .. } = &mut self.kind {
            *build_log = Some(path.into());
        }
        self
    }

    /// Sets `package_hash` (see [`package_hash_of`](crate::spec::package_hash_of)).
    pub fn package_hash(mut self, h: impl Into<String>) -> Self {
        self.package_hash = Some(h.into());
        self
    }

    /// Sets an external's `extra_attributes` (ignored for built nodes).
    pub fn extra_attributes(mut self, attrs: Map<String, Value>) -> Self {
        if let NodeKind::External(e) = &mut self.kind {
            e.extra_attributes = attrs;
        }
        self
    }

    /// Whether the node is exported as a tarball.
    pub fn is_built(&self) -> bool {
        matches!(self.kind, NodeKind::Built { .. })
    }

    /// The store path of a built node.
    pub fn prefix(&self) -> Option<&Path> {
        match &self.kind {
            NodeKind::Built { prefix, .. } => Some(prefix),
            NodeKind::External(_) => None,
        }
    }

    /// `name@version`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// An edge to a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The dependency.
    pub node: NodeId,
    /// How it is needed.
    pub deptypes: DepTypes,
    /// The virtuals it provides through this edge (`c`, `cxx` for a compiler; `libc`; `mpi`).
    pub virtuals: BTreeSet<String>,
}

/// A DAG of packages to export.
#[derive(Debug, Clone)]
pub struct ExportGraph {
    store_root: PathBuf,
    sbang: Option<PathBuf>,
    store_dir: Option<PathBuf>,
    nodes: Vec<Node>,
    deps: Vec<Vec<Dependency>>,
}

impl ExportGraph {
    /// An empty graph whose built prefixes live below `store_root` (Spack's `buildpath`: the
    /// store directory, padded as it is).
    pub fn new(store_root: impl Into<PathBuf>) -> Self {
        Self {
            store_root: store_root.into(),
            sbang: None,
            store_dir: None,
            nodes: Vec::new(),
            deps: Vec::new(),
        }
    }

    /// The store root.
    pub fn store_root(&self) -> &Path {
        &self.store_root
    }

    /// Sets where the store's `sbang` trampoline is (default `<store root>/bin/sbang`). forge's
    /// store keeps it at `<unpadded root>/bin/sbang`, outside the padded directory.
    pub fn set_sbang(&mut self, path: impl Into<PathBuf>) {
        self.sbang = Some(path.into());
    }

    /// Sets the store's own directory, when the store root (Spack's `buildpath`) is a padded
    /// directory inside it. forge's store keeps there, beside the padded directory, `bin/sbang`
    /// and its metadata (`.forge/`: build directories, logs, database). Spack relocates neither:
    /// a file that embeds a path below this directory, other than the store root and `sbang`,
    /// is refused like a path of an unexported package ([`crate::Violation::UnexportedStorePath`]).
    pub fn set_store_dir(&mut self, dir: impl Into<PathBuf>) {
        self.store_dir = Some(dir.into());
    }

    /// The store's own directory, if set and it holds the store root.
    pub fn store_dir(&self) -> Option<&Path> {
        self.store_dir
            .as_deref()
            .filter(|d| self.store_root.starts_with(d) && self.store_root != *d)
    }

    /// The store's `sbang` path.
    pub fn sbang(&self) -> PathBuf {
        self.sbang
            .clone()
            .unwrap_or_else(|| self.store_root.join("bin/sbang"))
    }

    /// Adds a node.
    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.deps.push(Vec::new());
        NodeId(self.nodes.len() - 1)
    }

    /// Adds an edge `from → to`; a second edge between the same nodes merges into the first.
    pub fn depend(&mut self, from: NodeId, to: NodeId, deptypes: DepTypes, virtuals: &[&str]) {
        let edges = &mut self.deps[from.0];
        if let Some(e) = edges.iter_mut().find(|e| e.node == to) {
            e.deptypes |= deptypes;
            e.virtuals.extend(virtuals.iter().map(|v| v.to_string()));
        } else {
            edges.push(Dependency {
                node: to,
                deptypes,
                virtuals: virtuals.iter().map(|v| v.to_string()).collect(),
            });
        }
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// A node, to modify.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.0]
    }

    /// The direct dependencies of a node, in the order added.
    pub fn dependencies(&self, id: NodeId) -> &[Dependency] {
        &self.deps[id.0]
    }

    /// All node ids, in the order added.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len()).map(NodeId)
    }

    /// Nodes with this Spack name.
    pub fn find(&self, name: &str) -> Vec<NodeId> {
        self.ids().filter(|i| self.node(*i).name == name).collect()
    }

    /// Validates the graph and computes every node's spec node and DAG hash.
    pub fn hashed(&self) -> Result<HashedGraph<'_>, GraphError> {
        self.validate()?;
        let order = self.topological()?;
        let mut specs: Vec<Option<SpecNode>> = vec![None; self.nodes.len()];
        let mut hashes: Vec<String> = vec![String::new(); self.nodes.len()];
        for id in order {
            let n = self.node(id);
            let dependencies = self.deps[id.0]
                .iter()
                .map(|d| DepEdge {
                    name: self.node(d.node).name.clone(),
                    hash: hashes[d.node.0].clone(),
                    deptypes: d.deptypes,
                    virtuals: d.virtuals.iter().cloned().collect(),
                    direct: false,
                })
                .collect();
            let (external, default_hash) = match &n.kind {
                NodeKind::Built { prefix, .. } => {
                    let mut data = b"forge-store-path\0".to_vec();
                    data.extend_from_slice(prefix.as_os_str().as_encoded_bytes());
                    (None, package_hash_of(&data))
                }
                NodeKind::External(e) => {
                    let data = format!("forge-external\0{}\0{}\0{}", n.name, n.version, e.path);
                    (Some(e.clone()), package_hash_of(data.as_bytes()))
                }
            };
            let spec = SpecNode {
                name: n.name.clone(),
                version: n.version.clone(),
                arch: n.arch.clone(),
                namespace: n.namespace.clone(),
                variants: n.variants.clone(),
                flags: n.flags.clone(),
                external,
                patches: n.patches.clone(),
                package_hash: n.package_hash.clone().unwrap_or(default_hash),
                dependencies,
            };
            hashes[id.0] = spec.dag_hash();
            specs[id.0] = Some(spec);
        }
        let mut seen: BTreeMap<&str, NodeId> = BTreeMap::new();
        for id in self.ids() {
            if let Some(other) = seen.insert(&hashes[id.0], id) {
                return Err(GraphError::DuplicateNode {
                    first: self.node(other).label(),
                    second: self.node(id).label(),
                    hash: hashes[id.0].clone(),
                });
            }
        }
        Ok(HashedGraph {
            graph: self,
            specs: specs
                .into_iter()
                .map(|s| s.expect("every node hashed"))
                .collect(),
            hashes,
        })
    }

    fn validate(&self) -> Result<(), GraphError> {
        let mut prefixes: BTreeMap<&Path, NodeId> = BTreeMap::new();
        if !self.store_root.is_absolute() {
            return Err(GraphError::StoreRootNotAbsolute {
                root: self.store_root.clone(),
            });
        }
        for id in self.ids() {
            let n = self.node(id);
            if !valid_name(&n.name) {
                return Err(GraphError::InvalidName {
                    name: n.name.clone(),
                });
            }
            if n.version.is_empty() || n.version.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(GraphError::InvalidVersion {
                    node: n.name.clone(),
                    version: n.version.clone(),
                });
            }
            if !valid_name(&n.namespace) {
                return Err(GraphError::InvalidNamespace {
                    node: n.label(),
                    namespace: n.namespace.clone(),
                });
            }
            if let NodeKind::Built { prefix, .. } = &n.kind {
                let inside = prefix.is_absolute()
                    && prefix.starts_with(&self.store_root)
                    && prefix != &self.store_root
                    && prefix.to_str().is_some();
                if !inside {
                    return Err(GraphError::PrefixOutsideStore {
                        node: n.label(),
                        prefix: prefix.clone(),
                        store_root: self.store_root.clone(),
                    });
                }
                if let Some(other) = prefixes.insert(prefix, id) {
                    return Err(GraphError::DuplicatePrefix {
                        first: self.node(other).label(),
                        second: n.label(),
                        prefix: prefix.clone(),
                    });
                }
            }
            for d in &self.deps[id.0] {
                if d.node == id {
                    return Err(GraphError::SelfDependency { node: n.label() });
                }
                if d.deptypes.is_empty() {
                    return Err(GraphError::EdgeWithoutType {
                        from: n.label(),
                        to: self.node(d.node).label(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Nodes, dependencies before dependents (Kahn's algorithm; ties by insertion order).
    fn topological(&self) -> Result<Vec<NodeId>, GraphError> {
        let n = self.nodes.len();
        let mut pending: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ds) in self.deps.iter().enumerate() {
            for d in ds {
                dependents[d.node.0].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|i| pending[*i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(NodeId(i));
            for &p in &dependents[i] {
                pending[p] -= 1;
                if pending[p] == 0 {
                    ready.insert(p);
                }
            }
        }
        if order.len() < n {
            let nodes = (0..n)
                .filter(|i| pending[*i] > 0)
                .map(|i| self.nodes[i].label())
                .collect();
            return Err(GraphError::Cycle { nodes });
        }
        Ok(order)
    }
}

/// Spack package and namespace names: lower-case letters, digits, `-` and `_`, starting with a
/// letter or digit.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A validated graph with every node's Spack spec node and DAG hash.
#[derive(Debug)]
pub struct HashedGraph<'g> {
    graph: &'g ExportGraph,
    specs: Vec<SpecNode>,
    hashes: Vec<String>,
}

impl<'g> HashedGraph<'g> {
    /// The graph.
    pub fn graph(&self) -> &'g ExportGraph {
        self.graph
    }

    /// A node's DAG hash.
    pub fn dag_hash(&self, id: NodeId) -> &str {
        &self.hashes[id.0]
    }

    /// A node's JSON object with its hash, as in spec files and the index.
    fn node_json(&self, id: NodeId) -> Value {
        let mut m = self.specs[id.0].to_json_unhashed();
        m.insert("hash".into(), Value::String(self.hashes[id.0].clone()));
        Value::Object(m)
    }

    /// A node and everything it depends on (all dependency types), each once, in Spack's order:
    /// pre-order, children by name then hash.
    pub fn dag(&self, root: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            out.push(id);
            let mut children: Vec<NodeId> = self.graph.deps[id.0].iter().map(|d| d.node).collect();
            children.sort_by(|a, b| {
                (&self.graph.node(*a).name, &self.hashes[a.0])
                    .cmp(&(&self.graph.node(*b).name, &self.hashes[b.0]))
            });
            // Reversed onto the stack so that the first child is visited first.
            stack.extend(children.into_iter().rev().filter(|c| !seen.contains(c)));
        }
        out
    }

    /// The spec document of a node (`.spack/spec.json`): the node first, then its whole DAG.
    pub fn spec_document(&self, root: NodeId) -> Value {
        spec_document(
            self.dag(root)
                .into_iter()
                .map(|i| self.node_json(i))
                .collect(),
        )
    }

    /// The built nodes to export for `roots`: the roots and everything they reach through
    /// `link`/`run` edges (and `build` edges too with `with_build_deps`), externals excluded.
    /// Sorted by id.
    pub fn export_closure(&self, roots: &[NodeId], with_build_deps: bool) -> Vec<NodeId> {
        let follow = if with_build_deps {
            DepTypes::RUNTIME | DepTypes::BUILD
        } else {
            DepTypes::RUNTIME
        };
        forge_core::graph::closure(roots.iter().copied(), |id| {
            self.graph.deps[id.0]
                .iter()
                .filter(|d| d.deptypes.intersects(follow))
                .map(|d| d.node)
                .collect::<Vec<_>>()
        })
        .into_iter()
        .filter(|i| self.graph.node(*i).is_built())
        .collect()
    }

    /// The built nodes whose prefixes Spack relocates when it installs `id`: the node itself,
    /// everything reached through chains of `link` edges, and its direct `run` dependencies.
    /// Sorted by id.
    pub fn relocation_set(&self, id: NodeId) -> Vec<NodeId> {
        let mut seen = forge_core::graph::closure([id], |i| {
            self.graph.deps[i.0]
                .iter()
                .filter(|d| d.deptypes.contains(DepTypes::LINK))
                .map(|d| d.node)
                .collect::<Vec<_>>()
        });
        for d in &self.graph.deps[id.0] {
            if d.deptypes.contains(DepTypes::RUN) {
                seen.insert(d.node);
            }
        }
        seen.into_iter()
            .filter(|i| self.graph.node(*i).is_built())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Arch {
        Arch::linux("debian12", "x86_64_v3")
    }

    #[test]
    fn hashes_bottom_up_and_orders_the_dag_like_spack() {
        let mut g = ExportGraph::new("/s");
        let libc = g.add(Node::external("glibc", "2.36", arch(), "/usr"));
        let z = g.add(Node::built("zlib", "1.3", arch(), "/s/aaa-zlib-1.3"));
        let a = g.add(Node::built("app", "1.0", arch(), "/s/bbb-app-1.0"));
        let b = g.add(Node::built("bison", "3.8", arch(), "/s/ccc-bison-3.8"));
        g.depend(a, z, DepTypes::BUILD_LINK, &[]);
        g.depend(a, b, DepTypes::BUILD, &[]);
        g.depend(a, libc, DepTypes::LINK, &["libc"]);
        g.depend(z, libc, DepTypes::LINK, &["libc"]);
        let h = g.hashed().unwrap();
        let names: Vec<_> = h.dag(a).iter().map(|i| g.node(*i).name.clone()).collect();
        assert_eq!(names, ["app", "bison", "glibc", "zlib"]);
        let doc = h.spec_document(a);
        let deps = &doc["spec"]["nodes"][0]["dependencies"];
        assert_eq!(deps[2]["name"], "zlib");
        assert_eq!(deps[2]["hash"], h.dag_hash(z));
        assert_eq!(
            deps[2]["parameters"]["deptypes"],
            serde_json::json!(["build", "link"])
        );
        assert_eq!(h.export_closure(&[a], false), vec![z, a]);
        assert_eq!(h.export_closure(&[a], true), vec![z, a, b]);
        assert_eq!(h.relocation_set(a), vec![z, a]);
    }

    #[test]
    fn a_changed_build_dependency_changes_the_hash() {
        let build = |bison: &str| {
            let mut g = ExportGraph::new("/s");
            let a = g.add(Node::built("app", "1.0", arch(), "/s/bbb-app-1.0"));
            let b = g.add(Node::built("bison", bison, arch(), "/s/ccc-bison"));
            g.depend(a, b, DepTypes::BUILD, &[]);
            g.hashed().unwrap().dag_hash(a).to_string()
        };
        assert_ne!(build("3.8"), build("3.7"));
        assert_eq!(build("3.8"), build("3.8"));
    }

    #[test]
    fn rejects_cycles_and_prefixes_outside_the_store() {
        let mut g = ExportGraph::new("/s");
        let a = g.add(Node::built("a", "1", arch(), "/s/a"));
        let b = g.add(Node::built("b", "1", arch(), "/s/b"));
        g.depend(a, b, DepTypes::LINK, &[]);
        g.depend(b, a, DepTypes::RUN, &[]);
        assert!(matches!(g.hashed(), Err(GraphError::Cycle { .. })));

        let mut g = ExportGraph::new("/s");
        g.add(Node::built("a", "1", arch(), "/elsewhere/a"));
        let e = g.hashed().unwrap_err();
        assert!(matches!(e, GraphError::PrefixOutsideStore { .. }), "{e}");

        let mut g = ExportGraph::new("/s");
        g.add(Node::built("Bad", "1", arch(), "/s/a"));
        assert!(matches!(g.hashed(), Err(GraphError::InvalidName { .. })));
    }
}
