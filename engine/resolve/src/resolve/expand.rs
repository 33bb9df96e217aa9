//! Expanding a chosen node: the dependencies its conditions switch on (with providers chosen for
//! virtuals), its compiler and runtime, and the constraints each edge imposes.

use std::collections::BTreeMap;
use std::rc::Rc;

use forge_recipe::{
    ArchFlags, DependDecl, Diag, Facts, Recipe, Span, ToolchainDecl, Version, VersionReq,
};

use super::passes::Pass;
use super::{Chosen, Constraint};
use crate::graph::{Context, Edge, EdgeRole, NodeKey, Origin};

impl<'a> Pass<'_, 'a> {
    /// Adds the node's dependency edges and the constraints they impose; returns the keys reached.
    pub(super) fn expand(
        &mut self,
        key: &NodeKey,
        chosen: &Chosen,
    ) -> Result<Vec<NodeKey>, Box<Diag>> {
        if !matches!(chosen.origin, Origin::Build) {
            return Ok(Vec::new());
        }
        let r = self.r.recipe(&key.package);
        let facts = Facts {
            version: &chosen.version,
            variants: &chosen.variants,
            toolchain: match &key.context {
                Context::Toolchain {
                    name,
                    compiler_version,
                } => Some((name.as_str(), compiler_version)),
                Context::Host => None,
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
            reached.push(self.expand_dependency(key, d, &origin, &mut out)?);
        }
        if r.is_compiled() {
            self.expand_toolchain(key, r, &mut out, &mut reached)?;
        }
        if !out.is_empty() {
            self.edges.insert(key.clone(), out);
        }
        Ok(reached)
    }

    /// One `depends` line that holds: the node it reaches (through a provider for a virtual),
    /// the constraint it puts there, and its edge in `out`.
    fn expand_dependency(
        &mut self,
        key: &NodeKey,
        d: &DependDecl,
        origin: &Rc<str>,
        out: &mut BTreeMap<NodeKey, Edge>,
    ) -> Result<NodeKey, Box<Diag>> {
        let set = self.r.set;
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
        self.add_constraint(
            &dkey,
            dependency_constraint(d, virtual_name.is_some(), origin),
        );
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
        Ok(dkey)
    }

    /// A compiled node's compiler edge and, unless it is itself a runtime, its toolchain's
    /// runtime edge; remembers the node's target flags.
    fn expand_toolchain(
        &mut self,
        key: &NodeKey,
        r: &Recipe,
        out: &mut BTreeMap<NodeKey, Edge>,
        reached: &mut Vec<NodeKey>,
    ) -> Result<(), Box<Diag>> {
        let (
            Some(tc),
            Context::Toolchain {
                compiler_version, ..
            },
        ) = (self.r.toolchain_decl(&key.context), &key.context)
        else {
            unreachable!("compiled nodes always have a toolchain context");
        };
        let flags = self.arch_flags(tc, compiler_version)?;
        let compiler_key = self.compiler_key(tc, compiler_version)?;
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
        Ok(())
    }

    /// The target table's flags for the toolchain's compiler at `compiler_version`.
    fn arch_flags(
        &self,
        tc: &ToolchainDecl,
        compiler_version: &Version,
    ) -> Result<&'a ArchFlags, Box<Diag>> {
        let set = self.r.set;
        let compiler_recipe = self.r.recipe(&tc.compiler.value);
        self.arch
            .flags_for(&compiler_recipe.name.value, compiler_version)
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
            })
    }

    /// The compiler's node: the host's for a host toolchain, else built in the bootstrap
    /// toolchain's context at exactly the toolchain's compiler version.
    fn compiler_key(
        &mut self,
        tc: &ToolchainDecl,
        compiler_version: &Version,
    ) -> Result<NodeKey, Box<Diag>> {
        if tc.host {
            return Ok(NodeKey {
                package: tc.compiler.value.clone(),
                context: Context::Host,
            });
        }
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
        Ok(ck)
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

/// The constraint a dependency puts on the node it reaches: its version and variants, or none
/// when it reaches a provider of a virtual.
fn dependency_constraint(d: &DependDecl, is_virtual: bool, origin: &Rc<str>) -> Constraint {
    Constraint {
        version: if is_virtual {
            VersionReq::any()
        } else {
            d.spec.spec.version_req()
        },
        variants: if is_virtual {
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
    }
}
