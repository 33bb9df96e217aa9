//! Turning a target or a spec into a concrete [`Graph`].
//!
//! Resolution is a deterministic fixpoint rather than a SAT search. Each pass walks the graph from
//! the root and chooses every node from the constraints that the *previous* pass gathered for it
//! (newest matching version; variants from constraints, else defaults), gathering fresh
//! constraints from the dependencies that the choices switch on. When a pass gathers exactly the
//! constraints it started from, every choice is consistent with every constraint in the graph,
//! and the graph is the answer. Constraints are kept in ordered maps and each choice is a pure
//! function of them, so the result never depends on file order or hash order.
//!
//! By concern: `request` (what to resolve, and checking it), `toolchain` (contexts and
//! toolchain uses), `passes` (one pass over the graph and the keys it reaches), `choose`
//! (a node's version and variants), `expand` (its edges and the constraints they impose) and
//! `finish` (checks on the final choices, and the graph in dependency order).

mod choose;
mod expand;
mod finish;
mod passes;
mod request;
mod toolchain;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use forge_recipe::spec::VariantSetting;
use forge_recipe::{ArchDecl, Diag, Recipe, RecipeSet, Span, VariantValue, Version, VersionReq};

use crate::graph::{Context, Graph, NodeKey, Origin};
use crate::host::HostProbe;
use passes::{Pass, Pass0, PassOutcome};
pub use request::{Request, SpecOrigin};

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
        let root_name = req.spec.name().unwrap_or_default();
        if !self.set.packages.contains_key(root_name) {
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
        let arch = self.root_arch(req)?;
        let root_ctx = self.root_toolchain(req)?;
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
        self.check_request(req, root_name)?;
        self.fixpoint(req, arch, &root_ctx, root_name, &root_constraint)
    }

    /// The target architecture: the spec's `target=`, else the settings'.
    fn root_arch(&self, req: &Request) -> Result<&'a ArchDecl, Box<Diag>> {
        let set = self.set;
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
        Ok(arch)
    }

    /// Passes until one gathers the constraints it started from (or provably would), starting
    /// over whenever host packages are rejected; an error if the passes cycle or never settle.
    fn fixpoint(
        &self,
        req: &Request,
        arch: &'a ArchDecl,
        root_ctx: &Context,
        root_name: &str,
        root_constraint: &Constraint,
    ) -> Result<Graph, Box<Diag>> {
        let mut rejected: BTreeSet<String> = BTreeSet::new();
        // Packages whose rejection was undone once: a second rejection is final, so the passes
        // cannot take a tool and give it back forever.
        let mut retried: BTreeSet<String> = BTreeSet::new();
        let mut known: Known = BTreeMap::new();
        let mut history: Vec<Known> = Vec::new();
        for _ in 0..MAX_PASSES {
            let pass = Pass::new(self, req, arch, root_ctx, &known, &rejected);
            match pass.run(root_name, root_constraint)? {
                PassOutcome::Restart(newly, gathered) => {
                    rejected.extend(newly);
                    known = gathered;
                    history.clear();
                }
                PassOutcome::Done(p) => {
                    if p.gathered == known || self.settled(req, arch, root_ctx, &rejected, &p) {
                        let stale = self.stale_rejections(&rejected, &retried, &p.gathered);
                        if stale.is_empty() {
                            return self.finish(req, arch, p);
                        }
                        for s in stale {
                            rejected.remove(&s);
                            retried.insert(s);
                        }
                        known = p.gathered;
                        history.clear();
                        continue;
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

    /// Rejected host packages that the settled graph no longer needs to build: every constraint
    /// it gathered on them is one the host's tool meets. A rejection comes from the constraints
    /// of an earlier pass, which can hold a conditional dependency of a choice later revised
    /// (`depends "automake@:1.16.3" when="@:1.15"` while a package sat at its preferred 1.15,
    /// before the spec's `@=1.17.2-deb` reached it).
    fn stale_rejections(
        &self,
        rejected: &BTreeSet<String>,
        retried: &BTreeSet<String>,
        gathered: &Known,
    ) -> Vec<String> {
        rejected
            .iter()
            .filter(|pkg| !retried.contains(*pkg))
            .filter(|pkg| {
                let Some(decl) = &self.recipe(pkg).host else {
                    return false;
                };
                let Ok(tool) = self.host.probe(pkg, decl) else {
                    return false;
                };
                let mut keys = gathered
                    .iter()
                    .filter(|(k, _)| k.package == **pkg)
                    .peekable();
                // Not in the graph any more: nothing to gain from another pass.
                keys.peek().is_some()
                    && keys
                        .flat_map(|(_, cs)| cs)
                        .all(|c| c.variants.is_empty() && c.version.matches(&tool.version))
            })
            .cloned()
            .collect()
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
}
