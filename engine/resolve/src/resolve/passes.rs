//! One pass over the graph: from the root, choose each node from the constraints gathered so far,
//! expand it, and gather the constraints its edges impose; and the keys (host or toolchain
//! context) nodes get.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use forge_recipe::{ArchDecl, ArchFlags, Diag, Span};

use super::{Chosen, Constraint, Known, Request, Resolver};
use crate::graph::{Context, Edge, NodeKey};
use crate::host::HostError;

/// The state of one pass: what it reads (the previous pass's constraints, the rejected host
/// packages) and what it builds (choices, edges, constraints gathered for the next pass).
pub(super) struct Pass<'r, 'a> {
    pub(super) r: &'r Resolver<'a>,
    pub(super) req: &'r Request,
    pub(super) arch: &'a ArchDecl,
    pub(super) root_ctx: Context,
    pub(super) known: &'r Known,
    pub(super) rejected: &'r BTreeSet<String>,
    pub(super) gathered: Known,
    pub(super) nodes: BTreeMap<NodeKey, Chosen>,
    /// Compiled nodes and the target flags of their compiler; their [`crate::graph::ToolchainUse`] is built
    /// once, for the final graph.
    pub(super) compiled: BTreeMap<NodeKey, &'a ArchFlags>,
    pub(super) edges: BTreeMap<NodeKey, BTreeMap<NodeKey, Edge>>,
    pub(super) provider_checks: Vec<(NodeKey, String)>,
    pub(super) newly_rejected: BTreeSet<String>,
    /// Host packages found on the host during this pass.
    pub(super) on_host: BTreeSet<String>,
    /// Contexts of bootstrap toolchains, by toolchain name.
    pub(super) bootstrap: BTreeMap<String, Context>,
}

/// How a pass ended: with a graph, or by rejecting host packages, which starts over.
pub(super) enum PassOutcome<'a> {
    Done(Pass0<'a>),
    Restart(BTreeSet<String>, Known),
}

/// What a completed pass leaves: its choices, edges and gathered constraints.
pub(super) struct Pass0<'a> {
    pub(super) gathered: Known,
    pub(super) nodes: BTreeMap<NodeKey, Chosen>,
    pub(super) compiled: BTreeMap<NodeKey, &'a ArchFlags>,
    pub(super) edges: BTreeMap<NodeKey, BTreeMap<NodeKey, Edge>>,
    pub(super) provider_checks: Vec<(NodeKey, String)>,
}

impl<'r, 'a> Pass<'r, 'a> {
    pub(super) fn new(
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

    pub(super) fn run(
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
            self.apply_request(&key);
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
        Ok(PassOutcome::Done(Pass0 {
            gathered: self.gathered,
            nodes: self.nodes,
            compiled: self.compiled,
            edges: self.edges,
            provider_checks: self.provider_checks,
        }))
    }

    /// The request's own constraints on `key`, added before it is first chosen so that even the
    /// first pass honours them: `^dep` clauses apply to that package in the root's context and
    /// on the host, `require` settings in every context.
    fn apply_request(&mut self, key: &NodeKey) {
        let req = self.req;
        let as_constraint = |spec: &forge_recipe::Spec, origin: String| Constraint {
            version: spec.version_req(),
            variants: spec
                .variants
                .iter()
                .map(|c| (c.name.value.clone(), c.setting.clone()))
                .collect(),
            origin: origin.into(),
            span: None,
        };
        if key.context == self.root_ctx || key.context == Context::Host {
            for dep in &req.spec.deps {
                if dep.name().unwrap_or_default() == key.package {
                    let c = as_constraint(dep, format!("`^{dep}` in the request `{}`", req.name));
                    self.add_constraint(key, c);
                }
            }
        }
        for r in &req.settings.require {
            if r.name() == key.package {
                let spec = &r.spec;
                let c = as_constraint(spec, format!("`require \"{spec}\"` of `{}`", req.name));
                self.add_constraint(key, c);
            }
        }
    }

    pub(super) fn add_constraint(&mut self, key: &NodeKey, c: Constraint) {
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
    pub(super) fn key_for(
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
    pub(super) fn constraint_list(&self, key: &NodeKey) -> Vec<&Constraint> {
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
}
