//! A resolved graph → one derivation per node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use forge_recipe::template::Piece as TemplatePiece;
use forge_recipe::{
    Diag, Facts, PatchDecl, Recipe, RecipeSet, SourceDecl, Spanned, Template, Var, VariantValue,
};
use forge_resolve::{EdgeRole, Graph, HostProbe, Node, Origin, Request, Resolver};
use petgraph::graph::NodeIndex;
use sha2::Digest as _;

use crate::arg::{Arg, Piece};
use crate::buildsys;
use crate::derivation::*;
use crate::spack::{PackageMeta, SpackIdentity};

/// A planned graph: the resolved nodes and their derivations.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The resolved graph.
    pub graph: Graph,
    /// `drvs[i]` is the derivation of node `i` (shared with the planner's cache and other plans:
    /// a node common to many targets is neither copied nor dropped per target).
    pub drvs: Vec<Arc<Derivation>>,
    /// `spack[i]` is how node `i` appears in Spack (for a host tool: the external's name).
    pub spack: Vec<Arc<SpackIdentity>>,
    /// Spack's name of the graph's target architecture (`x86_64_v3`).
    pub spack_arch: String,
    /// What Spack stub recipes declare about each package forge builds, by Spack name.
    pub packages: BTreeMap<String, Arc<PackageMeta>>,
}

impl Plan {
    /// The derivation of a node.
    pub fn drv(&self, i: NodeIndex) -> &Derivation {
        &self.drvs[i.index()]
    }

    /// The root's derivation.
    pub fn root(&self) -> &Derivation {
        self.drv(self.graph.root)
    }
}

/// The store names of every node of a plan, by node index.
pub fn store_names(plan: &Plan) -> Vec<forge_core::StoreName> {
    plan.drvs.iter().map(|d| d.store_name()).collect()
}

/// Turns graphs into plans. Keeps a cache of local-source hashes, so planning many targets
/// hashes each local source once, and of derivations by everything they are computed from, so a
/// node shared by many targets (the compiler, zlib) is derived once.
#[derive(Debug)]
pub struct Planner<'a> {
    set: &'a RecipeSet,
    local_hashes: Mutex<BTreeMap<PathBuf, (String, bool)>>,
    derived: Mutex<HashMap<[u8; 32], Derived>>,
    metas: Mutex<HashMap<String, Arc<PackageMeta>>>,
}

/// A planned node, as cached: its derivation and its Spack identity.
type Derived = (Arc<Derivation>, Arc<SpackIdentity>);

/// File names that are archives to unpack.
pub fn is_archive(name: &str) -> bool {
    const EXT: &[&str] = &[
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tzst",
        ".zip",
    ];
    let lower = name.to_ascii_lowercase();
    EXT.iter().any(|e| lower.ends_with(e))
}

/// The file name at the end of a URL (without query or fragment).
pub fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let trimmed = no_query.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    // SourceForge-style `…/file.tar.bz2/download`.
    if last == "download"
        && let Some(prev) = trimmed.rsplit('/').nth(1)
    {
        return prev.to_owned();
    }
    last.to_owned()
}

impl<'a> Planner<'a> {
    /// A planner for graphs resolved from `set`.
    pub fn new(set: &'a RecipeSet) -> Self {
        Self {
            set,
            local_hashes: Mutex::default(),
            derived: Mutex::default(),
            metas: Mutex::default(),
        }
    }

    /// Hash of a local source: the tree hash of a directory, or the sha256 of a file.
    fn local_hash(&self, path: &Path) -> Result<(String, bool), String> {
        if let Some(h) = self.local_hashes.lock().expect("cache").get(path) {
            return Ok(h.clone());
        }
        let meta = fs_err::metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_dir() && !meta.is_file() {
            // A device or a FIFO would never finish reading.
            return Err(format!("`{}` is not a file or directory", path.display()));
        }
        let h = if meta.is_dir() {
            (
                forge_core::treehash::hash_tree(path)
                    .map_err(|e| e.to_string())?
                    .hex(),
                true,
            )
        } else {
            let bytes = fs_err::read(path).map_err(|e| e.to_string())?;
            (format!("{:x}", sha2::Sha256::digest(&bytes)), false)
        };
        self.local_hashes
            .lock()
            .expect("cache")
            .insert(path.to_path_buf(), h.clone());
        Ok(h)
    }

    /// Resolves and plans every request, on all cores, with `host` answering for host tools:
    /// what `forge plan --all` and `forge lint` do for every target. Results are in the order of
    /// the requests and do not depend on the number of threads: each is what
    /// `Resolver::resolve` and [`Self::plan`] give for it alone.
    pub fn resolve_and_plan_all(
        &self,
        host: &dyn HostProbe,
        requests: &[Request],
    ) -> Vec<Result<Plan, Box<Diag>>> {
        let one = |req: &Request| {
            Resolver::new(self.set, host)
                .resolve(req)
                .and_then(|g| self.plan(g))
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(requests.len());
        if workers <= 1 {
            return requests.iter().map(one).collect();
        }
        // Workers take the next request from a shared counter, so one slow target does not
        // leave a core idle.
        let next = AtomicUsize::new(0);
        type Slot = Mutex<Option<Result<Plan, Box<Diag>>>>;
        let results: Vec<Slot> = requests.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(req) = requests.get(i) else { break };
                        let r = one(req);
                        *results[i].lock().expect("result slot") = Some(r);
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .expect("result slot")
                    .expect("every request was taken by a worker")
            })
            .collect()
    }

    /// Plans every node of `graph`.
    pub fn plan(&self, graph: Graph) -> Result<Plan, Box<Diag>> {
        let mut drvs: Vec<Arc<Derivation>> = Vec::with_capacity(graph.len());
        let mut spack = Vec::with_capacity(graph.len());
        let mut packages = BTreeMap::new();
        for i in graph.topo() {
            let (d, id) = self.node(&graph, i, &drvs)?;
            if matches!(graph.node(i).origin, Origin::Build) && !packages.contains_key(&id.name) {
                packages.insert(id.name.clone(), self.meta(graph.node(i).name()));
            }
            drvs.push(d);
            spack.push(id);
        }
        let spack_arch = self
            .set
            .arches
            .get(&graph.arch)
            .map_or_else(|| graph.arch.replace('-', "_"), |d| d.spack_name.clone());
        Ok(Plan {
            graph,
            drvs,
            spack,
            spack_arch,
            packages,
        })
    }

    /// The stub-recipe metadata of `package`, read from its recipe once.
    fn meta(&self, package: &str) -> Arc<PackageMeta> {
        let mut metas = self.metas.lock().expect("cache");
        Arc::clone(
            metas
                .entry(package.to_owned())
                .or_insert_with(|| Arc::new(PackageMeta::of(&self.set.packages[package]))),
        )
    }

    /// The derivation and Spack identity of node `i`, from the cache when an identical node
    /// (same package, version as written, variants, origin, toolchain, target and dependency
    /// derivations: everything [`Self::derive`] reads besides the recipe) was planned before.
    fn node(
        &self,
        graph: &Graph,
        i: NodeIndex,
        done: &[Arc<Derivation>],
    ) -> Result<Derived, Box<Diag>> {
        let key = memo_key(graph, i, done);
        // Copied out of the lock: other threads planning other targets use the cache too.
        let hit = self.derived.lock().expect("cache").get(&key).cloned();
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let d = Arc::new(self.derive(graph, i, self.deps(graph, i, done))?);
        let node = graph.node(i);
        let id = Arc::new(SpackIdentity::of(
            &self.set.packages[node.name()],
            &node.version,
            &node.variants,
        ));
        self.derived
            .lock()
            .expect("cache")
            .insert(key, (Arc::clone(&d), Arc::clone(&id)));
        Ok((d, id))
    }

    /// The dependencies of node `i` as a derivation lists them.
    fn deps(&self, graph: &Graph, i: NodeIndex, done: &[Arc<Derivation>]) -> Vec<DrvDep> {
        let mut v: Vec<DrvDep> = graph
            .deps(i)
            .into_iter()
            .map(|(d, e)| DrvDep {
                name: graph.node(d).name().to_owned(),
                drv: done[d.index()].hash.to_string(),
                types: e.types,
                role: e.role,
                virtuals: e.virtuals.clone(),
            })
            .collect();
        v.sort();
        v
    }

    fn derive(
        &self,
        graph: &Graph,
        i: NodeIndex,
        deps: Vec<DrvDep>,
    ) -> Result<Derivation, Box<Diag>> {
        let node = graph.node(i);
        let recipe = &self.set.packages[node.name()];
        if let Origin::Host(tool) = &node.origin {
            let inputs = DrvInputs {
                protocol: BUILD_PROTOCOL,
                name: node.name().to_owned(),
                version: node.version.to_string(),
                system: "x86_64-linux".to_owned(),
                kind: DrvKind::Host,
                variants: BTreeMap::new(),
                sources: Vec::new(),
                patches: Vec::new(),
                build: None,
                toolchain: None,
                deps: Vec::new(),
                host: Some(DrvHost {
                    executables: tool.executables.iter().map(|(n, _)| n.clone()).collect(),
                }),
            };
            let fetch = tool
                .executables
                .iter()
                .map(|(_, p)| Fetch {
                    urls: Vec::new(),
                    path: Some(p.clone()),
                })
                .collect();
            return Ok(Derivation::new(inputs, fetch, Vec::new()));
        }
        let facts = Facts {
            version: &node.version,
            variants: &node.variants,
            toolchain: node
                .toolchain
                .as_ref()
                .map(|t| (t.name.as_str(), &t.compiler_version)),
            arch: Some(&graph.arch),
        };
        let dep_names: BTreeSet<&str> = deps
            .iter()
            .flat_map(|d| {
                std::iter::once(d.name.as_str()).chain(d.virtuals.iter().map(String::as_str))
            })
            .collect();
        let render = |t: &Spanned<Template>| render(self.set, recipe, node, &dep_names, t);
        // Sources.
        let mut sources = Vec::new();
        let mut fetch = Vec::new();
        if let Some(vd) = recipe
            .version(&node.version)
            .filter(|_| recipe.runtime_for.is_none())
        {
            let inner = vd.inner.as_ref().map(|i| DrvInner {
                pattern: i.pattern.value.clone(),
                sha256: i.sha256.value.to_hex(),
            });
            match &vd.source {
                SourceDecl::Remote {
                    url,
                    sha256,
                    expand,
                } => {
                    let primary = url
                        .as_ref()
                        .or(recipe.url.as_ref())
                        .expect("validated: remote versions have a URL");
                    let primary = render(primary)?;
                    let mut urls = vec![primary.clone()];
                    for m in &recipe.mirrors {
                        urls.push(render(m)?);
                    }
                    let name = url_file_name(&primary);
                    sources.push(DrvSource {
                        unpack: *expand && is_archive(&name),
                        name,
                        sha256: Some(sha256.value.to_hex()),
                        tree: None,
                        inner: inner.clone(),
                        allow_control_chars: vd.allow_control_chars,
                    });
                    fetch.push(Fetch { urls, path: None });
                }
                SourceDecl::Mirrored {
                    file,
                    sha256,
                    expand,
                } => {
                    sources.push(DrvSource {
                        unpack: *expand && is_archive(&file.value),
                        name: file.value.clone(),
                        sha256: Some(sha256.value.to_hex()),
                        tree: None,
                        inner: inner.clone(),
                        allow_control_chars: vd.allow_control_chars,
                    });
                    // No URL: the configured mirrors are searched by digest and by this name.
                    fetch.push(Fetch {
                        urls: Vec::new(),
                        path: None,
                    });
                }
                SourceDecl::Local { path } => {
                    let full = recipe.dir.join(&path.value);
                    let (hash, is_dir) = self.local_hash(&full).map_err(|e| {
                        Box::new(
                            Diag::error(
                                "plan::local-source",
                                format!("cannot hash local source `{}`: {e}", full.display()),
                            )
                            .label(&self.set.sources, path.span, "this source")
                            .help("the path is relative to the recipe's directory"),
                        )
                    })?;
                    let name = full
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "source".into());
                    sources.push(if is_dir {
                        DrvSource {
                            name,
                            sha256: None,
                            tree: Some(hash),
                            unpack: false,
                            inner: None,
                            allow_control_chars: false,
                        }
                    } else {
                        DrvSource {
                            unpack: is_archive(&name),
                            name,
                            sha256: Some(hash),
                            tree: None,
                            inner: None,
                            allow_control_chars: vd.allow_control_chars,
                        }
                    });
                    fetch.push(Fetch {
                        urls: Vec::new(),
                        path: Some(full),
                    });
                }
            }
        }
        // Patches.
        let mut patches = Vec::new();
        let mut patch_files = Vec::new();
        for p in &recipe.patches {
            if p.when.as_ref().is_none_or(|w| w.holds_for(&facts)) {
                patches.push(DrvPatch {
                    name: p.file.value.clone(),
                    sha256: p.sha256.value.to_hex(),
                    level: p.level,
                });
                patch_files.push(self.patch_file(recipe, p)?);
            }
        }
        let mut render_arg =
            |t: &Spanned<Template>| render_arg(self.set, recipe, node, &dep_names, t);
        let build = match &recipe.build {
            Some(b) => Some(buildsys::build(b, &facts, &mut render_arg)?),
            None => None,
        };
        let toolchain = node.toolchain.as_ref().map(|t| DrvToolchain {
            name: t.name.clone(),
            compiler: t.compiler.clone(),
            compiler_version: t.compiler_version.to_string(),
            host: t.host,
            arch: t.arch.clone(),
            flags: t.arch_flags.clone(),
            languages: t.languages.iter().map(|l| l.as_str().to_owned()).collect(),
        });
        let inputs = DrvInputs {
            protocol: BUILD_PROTOCOL,
            name: node.name().to_owned(),
            version: node.version.to_string(),
            system: "x86_64-linux".to_owned(),
            kind: DrvKind::Build,
            variants: node.variants.clone(),
            sources,
            patches,
            build,
            toolchain,
            deps,
            host: None,
        };
        Ok(Derivation::new(inputs, fetch, patch_files))
    }

    /// Where the build reads a patch: the file with its symlinks resolved now, so a symlink
    /// swapped in after the recipes were checked is not followed, and refused if it has come
    /// to lead out of the recipe tree. A missing file is the builder's to report.
    fn patch_file(&self, recipe: &Recipe, p: &PatchDecl) -> Result<PathBuf, Box<Diag>> {
        let file = recipe.dir.join(&p.file.value);
        let Ok(real) = fs_err::canonicalize(&file) else {
            return Ok(file);
        };
        let root = fs_err::canonicalize(&self.set.root).unwrap_or_else(|_| self.set.root.clone());
        if real.starts_with(&root) {
            return Ok(real);
        }
        Err(Box::new(
            Diag::error(
                "recipe::bad-path",
                format!(
                    "patch `{}` leads outside the recipe tree, to `{}`",
                    p.file.value,
                    real.display()
                ),
            )
            .label(&self.set.sources, p.file.span, "a symlink out of the tree")
            .help("recipes read only files of their own tree: replace the symlink with a copy of the file"),
        ))
    }
}

/// A digest of everything the derivation of node `i` depends on besides its recipe, written
/// without ambiguity (every string length-prefixed) and hashed with blake3, so that looking up
/// a derivation costs no allocation.
fn memo_key(graph: &Graph, i: NodeIndex, done: &[Arc<Derivation>]) -> [u8; 32] {
    fn put(h: &mut blake3::Hasher, bytes: &[u8]) {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    fn count(h: &mut blake3::Hasher, n: usize) {
        h.update(&(n as u64).to_le_bytes());
    }
    let node = graph.node(i);
    let mut h = blake3::Hasher::new();
    put(&mut h, node.name().as_bytes());
    put(&mut h, node.version.as_str().as_bytes());
    put(&mut h, graph.arch.as_bytes());
    count(&mut h, node.variants.len());
    for (name, value) in &node.variants {
        put(&mut h, name.as_bytes());
        match value {
            VariantValue::Bool(b) => {
                h.update(&[0, u8::from(*b)]);
            }
            VariantValue::Single(v) => {
                h.update(&[1]);
                put(&mut h, v.as_bytes());
            }
            VariantValue::Multi(vs) => {
                h.update(&[2]);
                count(&mut h, vs.len());
                for v in vs {
                    put(&mut h, v.as_bytes());
                }
            }
        }
    }
    match &node.origin {
        Origin::Build => {
            h.update(&[0]);
        }
        Origin::Host(tool) => {
            h.update(&[1]);
            put(&mut h, tool.version.as_str().as_bytes());
            count(&mut h, tool.executables.len());
            for (name, path) in &tool.executables {
                put(&mut h, name.as_bytes());
                put(&mut h, path.as_os_str().as_encoded_bytes());
            }
        }
    }
    match &node.toolchain {
        None => {
            h.update(&[0]);
        }
        Some(t) => {
            h.update(&[1, u8::from(t.host)]);
            put(&mut h, t.name.as_bytes());
            put(&mut h, t.compiler.as_bytes());
            put(&mut h, t.compiler_version.as_str().as_bytes());
            put(&mut h, t.arch.as_bytes());
            count(&mut h, t.arch_flags.len());
            for f in &t.arch_flags {
                put(&mut h, f.as_bytes());
            }
            count(&mut h, t.languages.len());
            for l in &t.languages {
                put(&mut h, l.as_str().as_bytes());
            }
        }
    }
    let deps = graph.deps(i);
    count(&mut h, deps.len());
    for (d, e) in deps {
        put(&mut h, graph.node(d).name().as_bytes());
        h.update(&done[d.index()].hash.0);
        let role = match e.role {
            EdgeRole::Declared => 0,
            EdgeRole::Compiler => 1,
            EdgeRole::Runtime => 2,
        };
        let types = e.types.iter().fold(0u8, |acc, t| acc | 1 << (t as u8));
        h.update(&[role, types]);
        count(&mut h, e.virtuals.len());
        for v in &e.virtuals {
            put(&mut h, v.as_bytes());
        }
    }
    *h.finalize().as_bytes()
}

/// A URL template of the recipe, filled in for `node`.
fn render(
    set: &RecipeSet,
    recipe: &Recipe,
    node: &Node,
    deps: &BTreeSet<&str>,
    t: &Spanned<Template>,
) -> Result<String, Box<Diag>> {
    t.value.render(|v| fill(set, recipe, node, deps, t, v))
}

/// A build argument of the recipe for `node`: what the planner knows filled in, the rest left
/// to the builder as typed pieces.
fn render_arg(
    set: &RecipeSet,
    recipe: &Recipe,
    node: &Node,
    deps: &BTreeSet<&str>,
    t: &Spanned<Template>,
) -> Result<Arg, Box<Diag>> {
    let mut arg = Arg::default();
    for p in t.value.pieces() {
        arg.push(match p {
            TemplatePiece::Lit(s) => Piece::Lit(s.clone()),
            TemplatePiece::Var(v, _) => match fill(set, recipe, node, deps, t, v)? {
                Some(s) => Piece::Lit(s),
                None => match v {
                    Var::Out => Piece::Out,
                    Var::Src => Piece::Src,
                    Var::Jobs => Piece::Jobs,
                    Var::Dep(n) => Piece::Dep(n.clone()),
                    other => unreachable!("`{other}` is always filled in"),
                },
            },
        });
    }
    Ok(arg)
}

/// The value of placeholder `v` for `node`, or `None` for those the builder fills in.
fn fill(
    set: &RecipeSet,
    recipe: &Recipe,
    node: &Node,
    deps: &BTreeSet<&str>,
    t: &Spanned<Template>,
    v: &Var,
) -> Result<Option<String>, Box<Diag>> {
    match v {
        Var::Version(None) => Ok(Some(node.version.to_string())),
        Var::Version(Some(form)) => node.version.derived(form).map(Some).ok_or_else(|| {
            Box::new(
                Diag::error(
                    "plan::version-form",
                    format!("`{}@{}` has no `{form}` form", node.name(), node.version),
                )
                .label(&set.sources, t.span, "in this string")
                .help("the version has too few components for this form"),
            )
        }),
        Var::Name => Ok(Some(recipe.name.value.clone())),
        Var::Variant(n) => match node.variants.get(n) {
            Some(VariantValue::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Ok(Some(other.to_string())),
            None => Err(Box::new(
                Diag::error(
                    "plan::unknown-variant",
                    format!("`{{variant:{n}}}`: `{}` has no such variant", node.name()),
                )
                .label(&set.sources, t.span, "in this string")
                .help("declare the variant"),
            )),
        },
        Var::Dep(n) => {
            if deps.contains(n.as_str()) {
                Ok(None)
            } else {
                Err(Box::new(
                    Diag::error(
                        "plan::missing-dependency",
                        format!("`{{dep:{n}}}` is used, but `{}@{}` has no dependency `{n}` in this configuration", node.name(), node.version),
                    )
                    .label(&set.sources, t.span, "used here")
                    .help("make the argument conditional with the same `when=` as the dependency"),
                ))
            }
        }
        Var::Out | Var::Src | Var::Jobs => Ok(None),
    }
}
