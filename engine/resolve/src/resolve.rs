//! Turning a target or a spec into a concrete [`Graph`].
//!
//! Resolution is a deterministic fixpoint rather than a SAT search. Each pass walks the graph from
//! the root and chooses every node from the constraints that the *previous* pass gathered for it
//! (newest matching version; variants from constraints, else defaults), gathering fresh
//! constraints from the dependencies that the choices switch on. When a pass gathers exactly the
//! constraints it started from, every choice is consistent with every constraint in the graph,
//! and the graph is the answer. Constraints are kept in ordered maps and each choice is a pure
//! function of them, so the result never depends on file order or hash order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use forge_recipe::spec::{VariantClause, VariantSetting};
use forge_recipe::{
    ArchDecl, ArchFlags, Diag, Facts, LitSpan, Recipe, RecipeSet, Span, Spec, TargetDecl,
    TargetSettings, ToolchainDecl, VariantKind, VariantValue, Version, VersionReq,
};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::graph::{Context, Edge, EdgeRole, Graph, Node, NodeKey, Origin, ToolchainUse};
use crate::host::{HostError, HostProbe, HostTool};

/// What to resolve: a root spec and the settings that apply to it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Target name, or the spec as given.
    pub name: String,
    /// The root spec.
    pub spec: Spec,
    /// Where the spec was written, for diagnostics.
    pub origin: SpecOrigin,
    /// Target settings merged over the defaults.
    pub settings: TargetSettings,
    /// Further roots of a target (`extra-root`), resolved with the same settings and joined to
    /// the root's graph.
    pub extra_roots: Vec<(Spec, SpecOrigin)>,
}

/// Where a root spec comes from.
#[derive(Debug, Clone)]
pub enum SpecOrigin {
    /// A target in a recipe file.
    Target(LitSpan),
    /// Typed on the command line.
    CommandLine(String),
}

impl Request {
    /// The request for a named target.
    pub fn for_target(set: &RecipeSet, t: &TargetDecl) -> Request {
        let mut settings = set.defaults.clone();
        if t.settings.arch.is_some() {
            settings.arch.clone_from(&t.settings.arch);
        }
        if t.settings.toolchain.is_some() {
            settings.toolchain.clone_from(&t.settings.toolchain);
        }
        for (k, v) in &t.settings.providers {
            settings.providers.insert(k.clone(), v.clone());
        }
        settings
            .from_source
            .extend(t.settings.from_source.iter().cloned());
        Request {
            name: t.name.value.clone(),
            spec: t.spec.spec.clone(),
            origin: SpecOrigin::Target(t.spec.lit),
            settings,
            extra_roots: t
                .extra_roots
                .iter()
                .map(|e| (e.spec.clone(), SpecOrigin::Target(e.lit)))
                .collect(),
        }
    }

    /// The request for a target name or a spec typed by the user.
    pub fn parse(set: &RecipeSet, text: &str) -> Result<Request, Box<Diag>> {
        if let Some(t) = set.target(text) {
            return Ok(Self::for_target(set, t));
        }
        let spec = Spec::parse(text, true).map_err(|e| {
            let looks_like_target = !text.contains(['@', '+', '~', '%', '=', ' ', '^']);
            let help = if looks_like_target {
                let names: Vec<&str> = set.targets.iter().map(|t| t.name.value.as_str()).collect();
                match forge_recipe::diag::did_you_mean(text, names) {
                    Some(s) => format!("no target is called `{text}`; did you mean `{s}`?"),
                    None => e.help.clone().unwrap_or_else(|| {
                        "give a target name from `recipes/targets.kdl` or a spec".into()
                    }),
                }
            } else {
                e.help
                    .clone()
                    .unwrap_or_else(|| "a spec looks like `slurm@25.11 +pmix %gcc@13.4.0`".into())
            };
            Box::new(
                Diag::error("resolve::bad-spec", format!("invalid spec: {}", e.message))
                    .label_text("command line", text, e.span.clone(), "here")
                    .help(help),
            )
        })?;
        let name = spec.name().unwrap_or_default().to_owned();
        if !set.packages.contains_key(&name) {
            let targets: Vec<&str> = set.targets.iter().map(|t| t.name.value.as_str()).collect();
            let all: Vec<&str> = set
                .packages
                .keys()
                .map(String::as_str)
                .chain(targets.iter().copied())
                .collect();
            let help = match forge_recipe::diag::did_you_mean(&name, all) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    "`forge lint --json` lists packages; `recipes/targets.kdl` lists targets".into()
                }
            };
            return Err(Box::new(
                Diag::error(
                    "resolve::unknown",
                    format!("`{name}` is neither a target nor a package"),
                )
                .label_text(
                    "command line",
                    text,
                    spec.name.as_ref().map_or(0..0, |n| n.span.clone()),
                    "unknown",
                )
                .help(help),
            ));
        }
        Ok(Request {
            name: text.to_owned(),
            spec,
            origin: SpecOrigin::CommandLine(text.to_owned()),
            settings: set.defaults.clone(),
            extra_roots: Vec::new(),
        })
    }
}

/// Resolves requests against a recipe set.
#[derive(Debug)]
pub struct Resolver<'a> {
    set: &'a RecipeSet,
    host: &'a dyn HostProbe,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Constraint {
    version: VersionReq,
    variants: Vec<(String, VariantSetting)>,
    origin: Rc<str>,
    span: Option<(usize, usize, usize)>,
}

impl Constraint {
    fn span(&self) -> Option<Span> {
        self.span
            .map(|(file, offset, len)| Span { file, offset, len })
    }
}

/// Constraints per node, each list sorted and without repetitions (a set; a sorted vector is
/// much cheaper than a `BTreeSet` for the handful of constraints a node gets).
type Known = BTreeMap<NodeKey, Vec<Constraint>>;

#[derive(Debug, Clone)]
struct Chosen {
    version: Version,
    variants: BTreeMap<String, VariantValue>,
    origin: Origin,
}

struct Pass<'r, 'a> {
    r: &'r Resolver<'a>,
    req: &'r Request,
    arch: &'a ArchDecl,
    root_ctx: Context,
    known: &'r Known,
    rejected: &'r BTreeSet<String>,
    gathered: Known,
    nodes: BTreeMap<NodeKey, Chosen>,
    /// Compiled nodes and the target flags of their compiler; their [`ToolchainUse`] is built
    /// once, for the final graph.
    compiled: BTreeMap<NodeKey, &'a ArchFlags>,
    edges: BTreeMap<NodeKey, BTreeMap<NodeKey, Edge>>,
    provider_checks: Vec<(NodeKey, String)>,
    newly_rejected: BTreeSet<String>,
    /// Host packages found on the host during this pass.
    on_host: BTreeSet<String>,
    /// Contexts of bootstrap toolchains, by toolchain name.
    bootstrap: BTreeMap<String, Context>,
}

enum PassOutcome<'a> {
    Done(Pass0<'a>),
    Restart(BTreeSet<String>, Known),
}

struct Pass0<'a> {
    gathered: Known,
    nodes: BTreeMap<NodeKey, Chosen>,
    compiled: BTreeMap<NodeKey, &'a ArchFlags>,
    edges: BTreeMap<NodeKey, BTreeMap<NodeKey, Edge>>,
    provider_checks: Vec<(NodeKey, String)>,
}

const MAX_PASSES: usize = 64;

impl<'a> Resolver<'a> {
    /// A resolver over `set` that probes `host` for host packages.
    pub fn new(set: &'a RecipeSet, host: &'a dyn HostProbe) -> Self {
        Self { set, host }
    }

    /// The recipe set.
    pub fn set(&self) -> &'a RecipeSet {
        self.set
    }

    fn recipe(&self, name: &str) -> &'a Recipe {
        &self.set.packages[name]
    }

    fn diag_for(
        &self,
        req: &Request,
        d: Diag,
        span: Option<&std::ops::Range<usize>>,
        label: &str,
    ) -> Diag {
        match (&req.origin, span) {
            (SpecOrigin::Target(lit), Some(r)) => {
                d.label(&self.set.sources, lit.at(r.clone()), label)
            }
            (SpecOrigin::Target(lit), None) => d.label(&self.set.sources, lit.span, label),
            (SpecOrigin::CommandLine(text), r) => d.label_text(
                "command line",
                text,
                r.cloned().unwrap_or(0..text.len()),
                label,
            ),
        }
    }

    /// The toolchain a `%name@version` clause (or the default) selects, as a context.
    fn toolchain_context(
        &self,
        req: &Request,
        name: &str,
        version: Option<&VersionReq>,
        span: Option<&std::ops::Range<usize>>,
    ) -> Result<Context, Box<Diag>> {
        let Some(tc) = self.set.toolchains.get(name) else {
            let d = Diag::error(
                "resolve::unknown-toolchain",
                format!("unknown toolchain `{name}`"),
            )
            .help(format!(
                "toolchains: {}",
                self.set
                    .toolchains
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Err(Box::new(self.diag_for(req, d, span, "unknown toolchain")));
        };
        let compiler = self.recipe(&tc.compiler.value);
        let compiler_version = if tc.host {
            let decl = compiler
                .host
                .as_ref()
                .expect("validated: host toolchains have a host line");
            let tool = self.host.probe(&compiler.name.value, decl).map_err(|e| {
                Box::new(
                    Diag::error("resolve::host-compiler", format!("toolchain `{name}` needs the host's `{}`: {e}", compiler.name.value))
                        .label(&self.set.sources, tc.compiler.span, "host compiler")
                        .help(format!("install `{}` on this machine, or pick a toolchain that builds its compiler", compiler.name.value)),
                )
            })?;
            if let Some(req_v) = version
                && !req_v.matches(&tool.version)
            {
                let d = Diag::error(
                    "resolve::host-compiler",
                    format!(
                        "toolchain `{name}` is the host's `{}` {}, not `@{req_v}`",
                        compiler.name.value, tool.version
                    ),
                )
                .help(format!(
                    "drop the version from `%{name}`, or use a toolchain that builds `{}@{req_v}`",
                    compiler.name.value
                ));
                return Err(Box::new(self.diag_for(
                    req,
                    d,
                    span,
                    "version not on the host",
                )));
            }
            tool.version
        } else {
            let req_v = version.cloned().unwrap_or_default();
            let best = compiler
                .versions
                .iter()
                .filter(|v| req_v.matches(&v.version.value) && (!v.deprecated || !req_v.is_any()))
                .map(|v| &v.version.value)
                .max();
            match best {
                Some(v) => v.clone(),
                None => {
                    let d = Diag::error(
                        "resolve::no-compiler-version",
                        format!(
                            "toolchain `{name}` has no `{}` version matching `@{req_v}`",
                            compiler.name.value
                        ),
                    )
                    .help(format!(
                        "versions of `{}`: {}",
                        compiler.name.value,
                        compiler
                            .versions
                            .iter()
                            .map(|v| v.version.value.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    return Err(Box::new(self.diag_for(
                        req,
                        d,
                        span,
                        "no such compiler version",
                    )));
                }
            }
        };
        Ok(Context::Toolchain {
            name: name.to_owned(),
            compiler_version,
        })
    }

    fn toolchain_decl(&self, ctx: &Context) -> Option<&'a ToolchainDecl> {
        match ctx {
            Context::Host => None,
            Context::Toolchain { name, .. } => self.set.toolchains.get(name),
        }
    }

    /// Resolves a request into a graph. Every error points somewhere: into the recipes when it
    /// can, else at the request's spec.
    pub fn resolve(&self, req: &Request) -> Result<Graph, Box<Diag>> {
        let mut graph = self.resolve_located(req)?;
        for (spec, origin) in &req.extra_roots {
            let extra = Request {
                name: req.name.clone(),
                spec: spec.clone(),
                origin: origin.clone(),
                settings: req.settings.clone(),
                extra_roots: Vec::new(),
            };
            let other = self.resolve_located(&extra)?;
            if let Err(key) = graph.join(other) {
                let d = Diag::error(
                    "resolve::roots-disagree",
                    format!(
                        "the roots of `{}` resolve `{key}` differently",
                        req.name
                    ),
                )
                .help("constrain it the same way in both specs (`^name@version +variant`) so that they share one node");
                return Err(Box::new(self.diag_for(&extra, d, None, "this root")));
            }
        }
        Ok(graph)
    }

    fn resolve_located(&self, req: &Request) -> Result<Graph, Box<Diag>> {
        self.resolve_unlocated(req).map_err(|d| {
            if d.location().is_some() {
                d
            } else {
                Box::new(self.diag_for(req, *d, None, "while resolving this"))
            }
        })
    }

    fn resolve_unlocated(&self, req: &Request) -> Result<Graph, Box<Diag>> {
        let set = self.set;
        let root_name = req.spec.name().unwrap_or_default();
        if !set.packages.contains_key(root_name) {
            let d = Diag::error(
                "resolve::unknown",
                format!("`{root_name}` is not a package"),
            );
            return Err(Box::new(self.diag_for(
                req,
                d,
                req.spec.name.as_ref().map(|n| &n.span),
                "unknown package",
            )));
        }
        // Architecture.
        let arch_name = match (&req.spec.target, &req.settings.arch) {
            (Some(t), _) => t.value.clone(),
            (None, Some(a)) => a.value.clone(),
            (None, None) => {
                let d = Diag::error("resolve::no-arch", "no target architecture given")
                    .help("add `target=x86-64-v3` to the spec, or `arch \"x86-64-v3\"` to `defaults` in `recipes/targets.kdl`");
                return Err(Box::new(self.diag_for(req, d, None, "for this spec")));
            }
        };
        let Some(arch) = set.arches.get(&arch_name) else {
            let d = Diag::error(
                "resolve::unknown-arch",
                format!("unknown target architecture `{arch_name}`"),
            )
            .help(format!(
                "the target table has: {}",
                set.arches.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            return Err(Box::new(self.diag_for(
                req,
                d,
                req.spec.target.as_ref().map(|t| &t.span),
                "not in the target table",
            )));
        };
        // Root toolchain.
        let root_ctx = match &req.spec.toolchain {
            Some(tc) => self.toolchain_context(
                req,
                &tc.name.value,
                tc.version.as_ref().map(|v| &v.value),
                Some(&tc.span),
            )?,
            None => {
                let name = match &req.settings.toolchain {
                    Some(t) => t.value.clone(),
                    None => {
                        let hosts: Vec<&String> = set
                            .toolchains
                            .values()
                            .filter(|t| t.host)
                            .map(|t| &t.name.value)
                            .collect();
                        match hosts.as_slice() {
                            [one] => (*one).clone(),
                            _ => {
                                let d = Diag::error("resolve::no-toolchain", "no toolchain given")
                                    .help("add `%host-gcc` (or another toolchain) to the spec, or `toolchain \"…\"` to `defaults`");
                                return Err(Box::new(self.diag_for(req, d, None, "for this spec")));
                            }
                        }
                    }
                };
                self.toolchain_context(req, &name, None, None)?
            }
        };
        let root_constraint = Constraint {
            version: req.spec.version_req(),
            variants: req
                .spec
                .variants
                .iter()
                .map(|c| (c.name.value.clone(), c.setting.clone()))
                .collect(),
            origin: format!("the request `{}`", req.name).into(),
            span: None,
        };
        self.check_request_variants(req, root_name, &req.spec.variants)?;
        for dep in &req.spec.deps {
            let dn = dep.name().unwrap_or_default();
            if let Some(r) = set.packages.get(dn) {
                self.check_request_variants(req, &r.name.value, &dep.variants)?;
            }
        }

        let mut rejected: BTreeSet<String> = BTreeSet::new();
        let mut known: Known = BTreeMap::new();
        let mut history: Vec<Known> = Vec::new();
        for _ in 0..MAX_PASSES {
            let pass = Pass::new(self, req, arch, &root_ctx, &known, &rejected);
            match pass.run(root_name, &root_constraint)? {
                PassOutcome::Restart(newly, gathered) => {
                    rejected.extend(newly);
                    known = gathered;
                    history.clear();
                }
                PassOutcome::Done(p) => {
                    if p.gathered == known || self.settled(req, arch, &root_ctx, &rejected, &p) {
                        return self.finish(req, arch, p);
                    }
                    if history.contains(&p.gathered) {
                        break;
                    }
                    history.push(known);
                    known = p.gathered;
                }
            }
        }
        let d = Diag::error("resolve::no-fixpoint", format!("resolution of `{}` does not settle", req.name)).help(
            "conditional dependencies switch each other on and off; pin the variants involved in the spec (e.g. `+pmix`)",
        );
        Err(Box::new(self.diag_for(req, d, None, "for this spec")))
    }

    /// Whether another pass would repeat `p` exactly, found without running it: a pass reads
    /// the previous pass's constraints only to choose, so when every node of `p`, chosen again
    /// from all the constraints `p` gathered, comes out the same, the next pass makes the same
    /// choices in the same order, expands them the same way and gathers the same constraints.
    /// Choosing is a fraction of a pass; this saves the confirming pass of most resolutions.
    fn settled(
        &self,
        req: &Request,
        arch: &'a ArchDecl,
        root_ctx: &Context,
        rejected: &BTreeSet<String>,
        p: &Pass0<'a>,
    ) -> bool {
        let mut again = Pass::new(self, req, arch, root_ctx, &p.gathered, rejected);
        p.nodes.iter().all(|(key, chosen)| match again.choose(key) {
            Ok(Some(c)) => {
                c.version.as_str() == chosen.version.as_str()
                    && c.variants == chosen.variants
                    && c.origin == chosen.origin
            }
            _ => false,
        }) && again.newly_rejected.is_empty()
    }

    fn check_request_variants(
        &self,
        req: &Request,
        package: &str,
        clauses: &[VariantClause],
    ) -> Result<(), Box<Diag>> {
        let r = self.recipe(package);
        for c in clauses {
            let Some(decl) = r.variant(&c.name.value) else {
                let names: Vec<&str> = r.variants.iter().map(|v| v.name.value.as_str()).collect();
                let help =
                    match forge_recipe::diag::did_you_mean(&c.name.value, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if names.is_empty() => format!("`{package}` has no variants"),
                        None => format!("variants of `{package}`: {}", names.join(", ")),
                    };
                let d = Diag::error(
                    "resolve::unknown-variant",
                    format!("`{package}` has no variant `{}`", c.name.value),
                )
                .help(help);
                return Err(Box::new(self.diag_for(
                    req,
                    d,
                    Some(&c.span),
                    "unknown variant",
                )));
            };
            let ok = match (&decl.kind, &c.setting) {
                (VariantKind::Bool { .. }, VariantSetting::Bool(_)) => true,
                (VariantKind::Single { values, .. }, VariantSetting::Values(v)) => {
                    v.len() == 1 && (values.is_empty() || values.contains(&v[0]))
                }
                (VariantKind::Multi { values, .. }, VariantSetting::Values(v)) => {
                    v.iter().all(|x| values.contains(x))
                }
                _ => false,
            };
            if !ok {
                let allowed = match &decl.kind {
                    VariantKind::Bool { .. } => format!("`+{0}` or `~{0}`", c.name.value),
                    VariantKind::Single { values, .. } if values.is_empty() => {
                        "any one value".to_owned()
                    }
                    VariantKind::Single { values, .. } => format!("one of {}", values.join(", ")),
                    VariantKind::Multi { values, .. } => format!("any of {}", values.join(", ")),
                };
                let d = Diag::error(
                    "resolve::bad-variant-value",
                    format!("`{c}` is not a valid setting of `{package}`"),
                )
                .help(format!("`{}` takes {allowed}", c.name.value));
                return Err(Box::new(self.diag_for(req, d, Some(&c.span), "invalid")));
            }
        }
        Ok(())
    }

    /// The toolchain of a compiled node.
    fn toolchain_use(&self, key: &NodeKey, flags: &ArchFlags, arch: &ArchDecl) -> ToolchainUse {
        let Context::Toolchain {
            name,
            compiler_version,
        } = &key.context
        else {
            unreachable!("compiled nodes have a toolchain context");
        };
        let tc = &self.set.toolchains[name];
        ToolchainUse {
            name: name.clone(),
            compiler: tc.compiler.value.clone(),
            compiler_version: compiler_version.clone(),
            host: tc.host,
            arch: arch.name.value.clone(),
            arch_flags: flags.flags.clone(),
            languages: self.recipe(&key.package).languages.clone(),
        }
    }

    fn finish(&self, req: &Request, arch: &ArchDecl, p: Pass0<'_>) -> Result<Graph, Box<Diag>> {
        let set = self.set;
        let toolchains: BTreeMap<&NodeKey, ToolchainUse> = p
            .compiled
            .iter()
            .map(|(k, flags)| (k, self.toolchain_use(k, flags, arch)))
            .collect();
        // Conflicts, on the final choices.
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
        // A provider must provide the virtual with the version and variants it was chosen at.
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
        // `^dep` clauses of the request must each have met a node.
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
        // Order: Kahn's algorithm with the smallest ready key first, so indices are stable.
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
        if order.len() != p.nodes.len() {
            let placed: BTreeSet<&NodeKey> = order.iter().copied().collect();
            let cycle = find_cycle(&p.edges, &placed);
            let names: Vec<String> = cycle.iter().map(|k| k.package.clone()).collect();
            let d = Diag::error("resolve::dependency-cycle", format!("dependency cycle in `{}`: {}", req.name, names.join(" → ")))
                .help("the conditions that switch these dependencies on form a loop; disable one with a variant");
            return Err(Box::new(self.diag_for(req, d, None, "for this spec")));
        }
        let mut graph: DiGraph<Node, Edge> = DiGraph::with_capacity(order.len(), order.len() * 2);
        let mut index: BTreeMap<&NodeKey, NodeIndex> = BTreeMap::new();
        for k in &order {
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
        for k in &order {
            if let Some(tos) = p.edges.get(*k) {
                for (to, e) in tos {
                    graph.add_edge(index[*k], index[to], e.clone());
                }
            }
        }
        let root_key = order.last().copied().expect("at least the root");
        Ok(Graph {
            name: req.name.clone(),
            root: index[root_key],
            extra_roots: Vec::new(),
            graph,
            arch: arch.name.value.clone(),
        })
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

impl<'r, 'a> Pass<'r, 'a> {
    fn new(
        r: &'r Resolver<'a>,
        req: &'r Request,
        arch: &'a ArchDecl,
        root_ctx: &Context,
        known: &'r Known,
        rejected: &'r BTreeSet<String>,
    ) -> Self {
        Pass {
            r,
            req,
            arch,
            root_ctx: root_ctx.clone(),
            known,
            rejected,
            gathered: BTreeMap::new(),
            nodes: BTreeMap::new(),
            compiled: BTreeMap::new(),
            edges: BTreeMap::new(),
            provider_checks: Vec::new(),
            newly_rejected: BTreeSet::new(),
            on_host: BTreeSet::new(),
            bootstrap: BTreeMap::new(),
        }
    }

    fn run(
        mut self,
        root_name: &str,
        root_constraint: &Constraint,
    ) -> Result<PassOutcome<'a>, Box<Diag>> {
        let root_key = self.key_for(root_name, &self.root_ctx.clone(), None)?;
        self.add_constraint(&root_key, root_constraint.clone());
        let mut queue: VecDeque<NodeKey> = VecDeque::from([root_key]);
        while let Some(key) = queue.pop_front() {
            if self.nodes.contains_key(&key) {
                continue;
            }
            let chosen = match self.choose(&key)? {
                Some(c) => c,
                None => continue,
            };
            let deps = self.expand(&key, &chosen)?;
            self.nodes.insert(key, chosen);
            for d in deps {
                if !self.nodes.contains_key(&d) {
                    queue.push_back(d);
                }
            }
        }
        if !self.newly_rejected.is_empty() {
            return Ok(PassOutcome::Restart(self.newly_rejected, self.gathered));
        }
        // `^dep` clauses of the request apply to that package in the root's context and on the host.
        for dep in &self.req.spec.deps {
            let dn = dep.name().unwrap_or_default();
            let c = Constraint {
                version: dep.version_req(),
                variants: dep
                    .variants
                    .iter()
                    .map(|c| (c.name.value.clone(), c.setting.clone()))
                    .collect(),
                origin: format!("`^{dep}` in the request `{}`", self.req.name).into(),
                span: None,
            };
            let keys: Vec<NodeKey> = self
                .nodes
                .keys()
                .filter(|k| {
                    k.package == dn && (k.context == self.root_ctx || k.context == Context::Host)
                })
                .cloned()
                .collect();
            for k in keys {
                self.add_constraint(&k, c.clone());
            }
        }
        Ok(PassOutcome::Done(Pass0 {
            gathered: self.gathered,
            nodes: self.nodes,
            compiled: self.compiled,
            edges: self.edges,
            provider_checks: self.provider_checks,
        }))
    }

    fn add_constraint(&mut self, key: &NodeKey, c: Constraint) {
        // No clone of the key when it is already there (the common case).
        if let Some(list) = self.gathered.get_mut(key) {
            if let Err(at) = list.binary_search(&c) {
                list.insert(at, c);
            }
        } else {
            self.gathered.insert(key.clone(), vec![c]);
        }
    }

    /// The key of `package` in `ctx`: on the host when its recipe allows it and the host has it.
    fn key_for(
        &mut self,
        package: &str,
        ctx: &Context,
        via: Option<(&str, Span)>,
    ) -> Result<NodeKey, Box<Diag>> {
        let set = self.r.set;
        let r = self.r.recipe(package);
        let from_source = self
            .req
            .settings
            .from_source
            .iter()
            .any(|p| p.value == package);
        if let Some(decl) = &r.host {
            if !from_source && !self.rejected.contains(package) {
                if self.on_host.contains(package) {
                    return Ok(NodeKey {
                        package: package.to_owned(),
                        context: Context::Host,
                    });
                }
                match self.r.host.probe(package, decl) {
                    Ok(_) => {
                        self.on_host.insert(package.to_owned());
                        return Ok(NodeKey {
                            package: package.to_owned(),
                            context: Context::Host,
                        });
                    }
                    Err(e) => {
                        if r.versions.is_empty() {
                            let mut d = Diag::error(
                                "resolve::not-on-host",
                                format!(
                                    "`{package}` is needed but cannot be taken from the host: {e}"
                                ),
                            );
                            if let Some((who, span)) = via {
                                d = d.label(&set.sources, span, format!("needed by `{who}`"));
                            }
                            let d = d.help(format!(
                                "install `{}` on this machine (e.g. with apt-get), or add versions to `{package}`'s recipe so forge can build it",
                                decl.executables[0].value
                            ));
                            return Err(Box::new(d));
                        }
                        if let HostError::NoVersion { .. } = e {
                            // A tool that is there but unreadable is worth a note; building is the fallback.
                        }
                    }
                }
            } else if r.versions.is_empty() {
                let d = Diag::error(
                    "resolve::cannot-build",
                    format!(
                        "`{package}` is to be built from source, but its recipe has no versions"
                    ),
                )
                .label(&set.sources, r.name.span, "host-only package")
                .help("remove it from `from-source`, or add versions and a `build` to its recipe");
                return Err(Box::new(d));
            }
        }
        Ok(NodeKey {
            package: package.to_owned(),
            context: ctx.clone(),
        })
    }

    /// Constraints on `key`: those the previous pass gathered, plus those this pass has gathered
    /// so far (which speeds up convergence; at the fixpoint both are the same set).
    fn constraint_list(&self, key: &NodeKey) -> Vec<&Constraint> {
        let known = self.known.get(key).map_or(&[][..], Vec::as_slice);
        let gathered = self.gathered.get(key).map_or(&[][..], Vec::as_slice);
        // Merge two sorted lists without repetitions.
        let mut all: Vec<&Constraint> = Vec::with_capacity(known.len() + gathered.len());
        let (mut a, mut b) = (known.iter().peekable(), gathered.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(y) {
                    std::cmp::Ordering::Less => a.next(),
                    std::cmp::Ordering::Greater => b.next(),
                    std::cmp::Ordering::Equal => {
                        b.next();
                        a.next()
                    }
                },
                (Some(_), None) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some(c) => all.push(c),
                None => break,
            }
        }
        all
    }

    fn describe(cs: &[&Constraint]) -> String {
        cs.iter()
            .map(|c| {
                let mut s = String::new();
                if !c.version.is_any() {
                    s.push_str(&format!("@{}", c.version));
                }
                for (n, v) in &c.variants {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&match v {
                        VariantSetting::Bool(true) => format!("+{n}"),
                        VariantSetting::Bool(false) => format!("~{n}"),
                        VariantSetting::Values(vs) => format!("{n}={}", vs.join(",")),
                    });
                }
                if s.is_empty() {
                    s.push_str("any version");
                }
                format!("`{s}` from {}", c.origin)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn choose(&mut self, key: &NodeKey) -> Result<Option<Chosen>, Box<Diag>> {
        let set = self.r.set;
        let r = self.r.recipe(&key.package);
        let cs = self.constraint_list(key);
        let defaults: BTreeMap<String, VariantValue> = r
            .variants
            .iter()
            .map(|v| (v.name.value.clone(), v.default_value()))
            .collect();
        if key.context == Context::Host {
            let decl = r
                .host
                .as_ref()
                .expect("host keys only for packages with a host line");
            let tool: HostTool = self
                .r
                .host
                .probe(&key.package, decl)
                .expect("probed when the key was made");
            if let Some(bad) = cs.iter().find(|c| !c.version.matches(&tool.version)) {
                if !r.versions.is_empty() {
                    // Fall back to building it; the next pass starts over without the host tool.
                    self.newly_rejected.insert(key.package.clone());
                    return Ok(None);
                }
                let mut d = Diag::error(
                    "resolve::host-version",
                    format!(
                        "the host's `{}` is version {}, but `@{}` is required by {}",
                        key.package, tool.version, bad.version, bad.origin
                    ),
                );
                if let Some(s) = bad.span() {
                    d = d.label(&set.sources, s, "required here");
                }
                let d = d.help(format!(
                    "install a matching `{}` (found `{}`), or add buildable versions to its recipe",
                    decl.executables[0].value,
                    tool.executables[0].1.display()
                ));
                return Err(Box::new(d));
            }
            for c in &cs {
                for (n, setting) in &c.variants {
                    let ok = defaults
                        .get(n)
                        .is_some_and(|v| forge_recipe::model::setting_matches(setting, v));
                    if !ok {
                        let d = Diag::error(
                            "resolve::host-variant",
                            format!("`{}` is taken from the host, which cannot honour `{n}={setting}` asked by {}", key.package, c.origin),
                        )
                        .help(format!("add `from-source \"{}\"` to the target to build it with that variant", key.package));
                        return Err(Box::new(d));
                    }
                }
            }
            return Ok(Some(Chosen {
                version: tool.version.clone(),
                variants: defaults,
                origin: Origin::Host(tool),
            }));
        }
        // Version.
        let version = if r.runtime_for.is_some() {
            match &key.context {
                Context::Toolchain {
                    compiler_version, ..
                } => compiler_version.clone(),
                Context::Host => unreachable!("runtimes are never host keys"),
            }
        } else {
            let explicit_deprecated = |v: &Version| {
                cs.iter().any(|c| {
                    c.version.ranges().iter().any(
                        |rg| matches!(rg, forge_recipe::version::VersionRange::Exact(x) if x == v),
                    )
                })
            };
            let best = r
                .versions
                .iter()
                .filter(|v| cs.iter().all(|c| c.version.matches(&v.version.value)))
                .filter(|v| !v.deprecated || explicit_deprecated(&v.version.value))
                .map(|v| &v.version.value)
                .max();
            match best {
                Some(v) => v.clone(),
                None => {
                    let mut d = Diag::error(
                        "resolve::no-version",
                        format!(
                            "no version of `{}` satisfies every constraint: {}",
                            key.package,
                            Self::describe(&cs)
                        ),
                    );
                    if let Some(s) = cs.iter().find_map(|c| c.span()) {
                        d = d.label(&set.sources, s, "one of the constraints");
                    }
                    let mut vs: Vec<&Version> =
                        r.versions.iter().map(|v| &v.version.value).collect();
                    vs.sort();
                    let d = d.help(format!(
                        "versions of `{}`: {}",
                        key.package,
                        vs.iter()
                            .rev()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    return Err(Box::new(d));
                }
            }
        };
        // Variants.
        let mut variants = defaults;
        let mut set_by: BTreeMap<String, &Constraint> = BTreeMap::new();
        for c in &cs {
            for (n, setting) in &c.variants {
                let Some(decl) = r.variant(n) else {
                    let d = Diag::error(
                        "resolve::unknown-variant",
                        format!(
                            "{} asks for variant `{n}` of `{}`, which has none by that name",
                            c.origin, key.package
                        ),
                    );
                    return Err(Box::new(d.help(format!(
                            "variants of `{}`: {}",
                            key.package,
                            r.variants
                                .iter()
                                .map(|v| v.name.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))));
                };
                let new = match (&decl.kind, setting) {
                    (VariantKind::Bool { .. }, VariantSetting::Bool(b)) => VariantValue::Bool(*b),
                    (VariantKind::Single { .. }, VariantSetting::Values(v)) if v.len() == 1 => {
                        VariantValue::Single(v[0].clone())
                    }
                    (VariantKind::Multi { .. }, VariantSetting::Values(v)) => {
                        let mut all: BTreeSet<String> = v.iter().cloned().collect();
                        if set_by.contains_key(n)
                            && let Some(VariantValue::Multi(prev)) = variants.get(n)
                        {
                            all.extend(prev.iter().cloned());
                        }
                        VariantValue::Multi(all.into_iter().collect())
                    }
                    _ => {
                        let d = Diag::error(
                            "resolve::bad-variant-value",
                            format!(
                                "{} sets `{n}` of `{}` to `{setting}`, which it cannot take",
                                c.origin, key.package
                            ),
                        );
                        return Err(Box::new(
                            d.help("see the variant's declaration in the recipe"),
                        ));
                    }
                };
                if let Some(prev) = set_by.get(n) {
                    let same = variants.get(n) == Some(&new);
                    if !same && !matches!(new, VariantValue::Multi(_)) {
                        let mut d = Diag::error(
                            "resolve::variant-conflict",
                            format!(
                                "`{}` is asked for `{n}={}` by {} and `{n}={}` by {}",
                                key.package, variants[n], prev.origin, new, c.origin
                            ),
                        );
                        if let Some(s) = c.span() {
                            d = d.label(&set.sources, s, "one of the two");
                        }
                        return Err(Box::new(d.help(
                            "make the two requirements agree, or make one of them conditional",
                        )));
                    }
                }
                variants.insert(n.clone(), new);
                set_by.insert(n.clone(), c);
            }
        }
        Ok(Some(Chosen {
            version,
            variants,
            origin: Origin::Build,
        }))
    }

    /// Adds the node's dependency edges and the constraints they impose; returns the keys reached.
    fn expand(&mut self, key: &NodeKey, chosen: &Chosen) -> Result<Vec<NodeKey>, Box<Diag>> {
        if !matches!(chosen.origin, Origin::Build) {
            return Ok(Vec::new());
        }
        let set = self.r.set;
        let r = self.r.recipe(&key.package);
        let tc_decl = self.r.toolchain_decl(&key.context);
        let compiler_version = match &key.context {
            Context::Toolchain {
                compiler_version, ..
            } => Some(compiler_version),
            Context::Host => None,
        };
        let facts = Facts {
            version: &chosen.version,
            variants: &chosen.variants,
            toolchain: match (&key.context, compiler_version) {
                (Context::Toolchain { name, .. }, Some(v)) => Some((name.as_str(), v)),
                _ => None,
            },
            arch: Some(&self.arch.name.value),
        };
        let origin: Rc<str> = format!("`{}@{}`", key.package, chosen.version).into();
        let mut reached = Vec::new();
        // This node's edges, kept aside and stored once at the end.
        let mut out: BTreeMap<NodeKey, Edge> = BTreeMap::new();
        for d in &r.depends {
            if d.when.as_ref().is_some_and(|w| !w.holds_for(&facts)) {
                continue;
            }
            let name = d.spec.name();
            let (target, virtual_name) = if set.packages.contains_key(name) {
                (name.to_owned(), None)
            } else {
                (self.provider(name, key, d.span)?, Some(name.to_owned()))
            };
            let dctx = match &d.spec.spec.toolchain {
                Some(tc) => self
                    .r
                    .toolchain_context(
                        self.req,
                        &tc.name.value,
                        tc.version.as_ref().map(|v| &v.value),
                        None,
                    )
                    .map_err(|e| Box::new(e.label(&set.sources, d.span, "in this dependency")))?,
                None => key.context.clone(),
            };
            let dkey = self.key_for(&target, &dctx, Some((&key.package, d.span)))?;
            let c = Constraint {
                version: if virtual_name.is_some() {
                    VersionReq::any()
                } else {
                    d.spec.spec.version_req()
                },
                variants: if virtual_name.is_some() {
                    Vec::new()
                } else {
                    d.spec
                        .spec
                        .variants
                        .iter()
                        .map(|c| (c.name.value.clone(), c.setting.clone()))
                        .collect()
                },
                origin: origin.clone(),
                span: Some((d.span.file, d.span.offset, d.span.len)),
            };
            self.add_constraint(&dkey, c);
            if let Some(v) = &virtual_name {
                self.provider_checks.push((dkey.clone(), v.clone()));
            }
            let edge = out.entry(dkey.clone()).or_insert(Edge {
                types: forge_recipe::DepTypes::NONE,
                virtuals: Vec::new(),
                role: EdgeRole::Declared,
            });
            edge.types = edge.types.union(d.types);
            if let Some(v) = virtual_name
                && !edge.virtuals.contains(&v)
            {
                edge.virtuals.push(v);
                edge.virtuals.sort();
            }
            reached.push(dkey);
        }
        if r.is_compiled() {
            let Some(tc) = tc_decl else {
                unreachable!("compiled nodes always have a toolchain context");
            };
            let compiler_version = compiler_version.expect("toolchain context").clone();
            let compiler_recipe = self.r.recipe(&tc.compiler.value);
            let flags = self
                .arch
                .flags_for(&compiler_recipe.name.value, &compiler_version)
                .ok_or_else(|| {
                    Box::new(
                        Diag::error(
                            "resolve::no-arch-flags",
                            format!(
                                "the target table has no `{}` flags for `{}@{compiler_version}`",
                                self.arch.name.value, compiler_recipe.name.value
                            ),
                        )
                        .label(&set.sources, self.arch.name.span, "this architecture")
                        .help(format!(
                            "add `flags compiler=\"{}\" versions=\"…\" …` to `arch \"{}\"`",
                            compiler_recipe.name.value, self.arch.name.value
                        )),
                    )
                })?;
            let compiler_key = if tc.host {
                NodeKey {
                    package: tc.compiler.value.clone(),
                    context: Context::Host,
                }
            } else {
                let boot = tc
                    .bootstrap
                    .as_ref()
                    .expect("validated: built toolchains have a bootstrap");
                let bctx = match self.bootstrap.get(&boot.value) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self
                            .r
                            .toolchain_context(self.req, &boot.value, None, None)?;
                        self.bootstrap.insert(boot.value.clone(), c.clone());
                        c
                    }
                };
                // A built toolchain's compiler is built, never the host's own, even when the
                // host happens to have the same version.
                let ck = NodeKey {
                    package: tc.compiler.value.clone(),
                    context: bctx,
                };
                self.add_constraint(
                    &ck,
                    Constraint {
                        version: VersionReq::exact(compiler_version.clone()),
                        variants: Vec::new(),
                        origin: format!("toolchain `{}`", tc.name.value).into(),
                        span: Some((tc.span.file, tc.span.offset, tc.span.len)),
                    },
                );
                ck
            };
            if compiler_key == *key {
                let d = Diag::error(
                    "resolve::dependency-cycle",
                    format!("`{}` would be compiled by itself", key.package),
                )
                .help("a compiler must be built by its toolchain's bootstrap toolchain");
                return Err(Box::new(d));
            }
            out.insert(
                compiler_key.clone(),
                Edge {
                    types: forge_recipe::DepTypes::NONE.with(forge_recipe::DepType::Build),
                    virtuals: r.languages.iter().map(|l| l.as_str().to_owned()).collect(),
                    role: EdgeRole::Compiler,
                },
            );
            reached.push(compiler_key);
            if let (Some(rt), None) = (&tc.runtime, &r.runtime_for) {
                let rk = NodeKey {
                    package: rt.value.clone(),
                    context: key.context.clone(),
                };
                if !self.gathered.contains_key(&rk) {
                    self.gathered.insert(rk.clone(), Vec::new());
                }
                out.insert(
                    rk.clone(),
                    Edge {
                        types: forge_recipe::DepTypes::NONE.with(forge_recipe::DepType::Link),
                        virtuals: Vec::new(),
                        role: EdgeRole::Runtime,
                    },
                );
                reached.push(rk);
            }
            self.compiled.insert(key.clone(), flags);
        }
        if !out.is_empty() {
            self.edges.insert(key.clone(), out);
        }
        Ok(reached)
    }

    fn provider(&self, virt: &str, key: &NodeKey, span: Span) -> Result<String, Box<Diag>> {
        let set = self.r.set;
        let candidates: &[String] = set.providers.get(virt).map_or(&[], Vec::as_slice);
        // A `^pkg` clause of the request that names a provider picks it: the spec is more
        // specific than a `provider` setting, which usually comes from `defaults`.
        if let Some(p) = self
            .req
            .spec
            .deps
            .iter()
            .filter_map(|d| d.name())
            .find(|n| candidates.iter().any(|c| c == n))
        {
            return Ok(p.to_owned());
        }
        if let Some(p) = self.req.settings.providers.get(virt) {
            return Ok(p.value.clone());
        }
        match candidates {
            [one] => Ok(one.clone()),
            [] => Err(Box::new(
                Diag::error("resolve::no-provider", format!("nothing provides `{virt}`, needed by `{}`", key.package))
                    .label(&set.sources, span, "needed here")
                    .help(format!("add a recipe with `provides \"{virt}\"`")),
            )),
            many => Err(Box::new(
                Diag::error("resolve::ambiguous-provider", format!("`{virt}` (needed by `{}`) has several providers: {}", key.package, many.join(", ")))
                    .label(&set.sources, span, "needed here")
                    .help(format!("choose one with `provider \"{virt}\" \"{}\"` in `defaults` or in the target, or `^{}` in the spec", many[0], many[0])),
            )),
        }
    }
}
