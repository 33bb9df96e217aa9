//! From plans to an [`ExportGraph`]: the Spack graph of some requests' closures, read from their
//! plans (which say how each node appears in Spack) and the store (where each built node is).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use forge_core::StoreName;
use forge_plan::{DepType, DrvKind, EdgeRole, PackageMeta, Plan};
use forge_resolve::Origin;
use forge_store::Store;
use petgraph::graph::NodeIndex;

use crate::graph::{ExportGraph, Node, NodeId};
use crate::spec::{Arch, DepTypes};

/// One thing to export: the plan a request stands for and the nodes of it to export.
#[derive(Debug)]
pub struct Request<'a> {
    /// What the user asked for (a target, a spec or a store path), for messages.
    pub name: &'a str,
    /// Its plan.
    pub plan: &'a Plan,
    /// The nodes to export with their closures.
    pub roots: Vec<NodeIndex>,
}

/// What an export covers: the Spack graph of the requests' closures, its roots, and the
/// stub-recipe metadata of the packages involved.
#[derive(Debug)]
pub struct Exportable {
    /// The graph.
    pub graph: ExportGraph,
    /// The nodes asked for.
    pub roots: Vec<NodeId>,
    /// Metadata by Spack package name.
    pub meta: BTreeMap<String, PackageMeta>,
}

/// Why requests cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum PlanExportError {
    /// The host's identity (OS, glibc) could not be read.
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    /// Nodes the export needs were never built (or were deleted).
    #[error("{} path{} of `{request}` {} not in the store", missing.len(), if missing.len() == 1 { "" } else { "s" }, if missing.len() == 1 { "is" } else { "are" })]
    NotRealized {
        /// The request.
        request: String,
        /// Their store names.
        missing: Vec<StoreName>,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] forge_store::StoreError),
}

/// Builds the export graph of `requests` from their plans and `store`. Every built node their
/// roots need at run time (and at build time too with `with_build_deps`) must be valid.
pub fn exportable(
    store: &Store,
    requests: &[Request<'_>],
    with_build_deps: bool,
) -> Result<Exportable, PlanExportError> {
    for r in requests {
        check_realized(store, r, &forge_plan::store_names(r.plan), with_build_deps)?;
    }
    describe(store, requests)
}

/// The export graph of `requests` as it would be exported from `store`, whether or not their
/// nodes were built: the specs, their DAG hashes and the stub metadata depend on the plans
/// and the store's location only (`forge export --dry-run`).
pub fn describe(store: &Store, requests: &[Request<'_>]) -> Result<Exportable, PlanExportError> {
    let os = crate::host::platform_os()?;
    let glibc = crate::host::glibc_version()?;
    let mut g = ExportGraph::new(store.paths_dir());
    g.set_sbang(store.sbang_path());
    // Build directories and logs live beside the padded directory: no output may name them.
    g.set_store_dir(store.root());
    let mut ids: HashMap<StoreName, NodeId> = HashMap::new();
    let mut glibc_ids: HashMap<String, NodeId> = HashMap::new();
    let mut externals: HashMap<String, NodeId> = HashMap::new();
    let mut roots = Vec::new();
    let mut meta = BTreeMap::new();
    for r in requests {
        let plan = r.plan;
        let names = forge_plan::store_names(plan);
        let arch = Arch::linux(os.clone(), plan.spack_arch.clone());
        let libc = *glibc_ids.entry(plan.spack_arch.clone()).or_insert_with(|| {
            let node = crate::host::glibc_node(&glibc, arch.clone());
            let key = external_key(&node);
            let id = g.add(node);
            externals.extend(key.map(|k| (k, id)));
            id
        });
        let gr = &plan.graph;
        for i in gr.topo() {
            let name = &names[i.index()];
            if ids.contains_key(name) {
                continue;
            }
            let node = spack_node(store, plan, i, &arch, &mut meta);
            // Host tools that Spack sees as the same external (the host's glibc as a tool and
            // as libc; one tool in two contexts) are one node.
            let key = external_key(&node);
            if let Some(&id) = key.as_ref().and_then(|k| externals.get(k)) {
                ids.insert(name.clone(), id);
                continue;
            }
            let id = g.add(node);
            externals.extend(key.map(|k| (k, id)));
            ids.insert(name.clone(), id);
            for (d, e) in gr.deps(i) {
                let virtuals: Vec<&str> = e.virtuals.iter().map(String::as_str).collect();
                g.depend(id, ids[&names[d.index()]], e.types.into(), &virtuals);
            }
            if gr.node(i).toolchain.is_some() {
                g.depend(id, libc, DepTypes::LINK, &["libc"]);
            }
        }
        roots.extend(r.roots.iter().map(|i| ids[&names[i.index()]]));
    }
    Ok(Exportable {
        graph: g,
        roots,
        meta,
    })
}

/// What identifies an external node in Spack's eyes (it has no dependencies): its name,
/// version, namespace, arch, prefix, variants and attributes. `None` for a built node.
fn external_key(node: &Node) -> Option<String> {
    match &node.kind {
        crate::graph::NodeKind::External(e) => Some(format!(
            "{}\0{}\0{}\0{:?}\0{}\0{:?}\0{:?}",
            node.name,
            node.version,
            node.namespace,
            node.arch,
            e.path,
            node.variants,
            e.extra_attributes
        )),
        crate::graph::NodeKind::Built { .. } => None,
    }
}

/// Fails unless every built node the export of `r` needs is valid. Build-only nodes need not be
/// valid unless they are exported.
fn check_realized(
    store: &Store,
    r: &Request<'_>,
    names: &[StoreName],
    with_build_deps: bool,
) -> Result<(), PlanExportError> {
    let needed: BTreeSet<NodeIndex> = r.plan.graph.closure(r.roots.iter().copied(), |_, e| {
        with_build_deps || e.types.contains(DepType::Link) || e.types.contains(DepType::Run)
    });
    let mut missing = Vec::new();
    for i in needed {
        let name = &names[i.index()];
        if r.plan.drv(i).inputs.kind == DrvKind::Build && !store.is_valid(name)? {
            missing.push(name.clone());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PlanExportError::NotRealized {
            request: r.name.to_owned(),
            missing,
        })
    }
}

/// Node `i` of `plan` as Spack sees it: a built prefix of the store, the host compiler as an
/// external with its compilers, or another host tool as an external at its prefix.
fn spack_node(
    store: &Store,
    plan: &Plan,
    i: NodeIndex,
    arch: &Arch,
    meta: &mut BTreeMap<String, PackageMeta>,
) -> Node {
    let gr = &plan.graph;
    let n = gr.node(i);
    let id = &plan.spack[i.index()];
    match &n.origin {
        Origin::Host(tool) => {
            let is_compiler = gr.dependents(i).iter().any(|d| {
                gr.deps(*d)
                    .iter()
                    .any(|(x, e)| *x == i && e.role == EdgeRole::Compiler)
            });
            if is_compiler {
                let mut compilers = BTreeMap::new();
                for (exe, path) in &tool.executables {
                    let lang = match exe.as_str() {
                        "gcc" => "c",
                        "g++" => "cxx",
                        "gfortran" => "fortran",
                        _ => continue,
                    };
                    compilers.insert(lang.to_owned(), path.display().to_string());
                }
                crate::host::gcc_external_node(n.version.as_str(), arch.clone(), &compilers)
            } else if id.namespace == "builtin" {
                crate::host::external_node(
                    &id.name,
                    n.version.as_str(),
                    arch.clone(),
                    tool.prefix().display().to_string(),
                )
            } else {
                let mut node = Node::external(
                    &id.name,
                    n.version.as_str(),
                    arch.clone(),
                    tool.prefix().display().to_string(),
                )
                .namespace(&id.namespace);
                node.variants = id.variants.clone();
                node
            }
        }
        Origin::Build => {
            if let Some(m) = plan.packages.get(&id.name) {
                meta.entry(id.name.clone())
                    .or_insert_with(|| PackageMeta::clone(m));
            }
            let name = plan.drv(i).store_name();
            let mut node = Node::built(&id.name, &id.version, arch.clone(), store.path_of(&name))
                .namespace(&id.namespace)
                .build_log(store.log_path(&name))
                .package_hash(plan.drv(i).hash.to_string());
            node.variants = id.variants.clone();
            node
        }
    }
}
