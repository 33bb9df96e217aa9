//! Toolchains: the context a `%toolchain@version` clause selects (finding a host compiler's
//! version, or choosing a built compiler's), and the toolchain use of a compiled node.

use std::ops::Range;

use forge_recipe::{ArchDecl, ArchFlags, Diag, Recipe, ToolchainDecl, Version, VersionReq};

use super::{Request, Resolver};
use crate::graph::{Context, NodeKey, ToolchainUse};

/// A `%name@version` clause being turned into a context, and where to point if it fails.
struct Clause<'c> {
    req: &'c Request,
    name: &'c str,
    version: Option<&'c VersionReq>,
    span: Option<&'c Range<usize>>,
}

impl<'a> Resolver<'a> {
    /// The toolchain a `%name@version` clause (or the default) selects, as a context.
    pub(super) fn toolchain_context(
        &self,
        req: &Request,
        name: &str,
        version: Option<&VersionReq>,
        span: Option<&Range<usize>>,
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
        let clause = Clause {
            req,
            name,
            version,
            span,
        };
        let compiler = self.recipe(&tc.compiler.value);
        let compiler_version = if tc.host {
            self.host_compiler_version(&clause, tc, compiler)?
        } else {
            self.built_compiler_version(&clause, compiler)?
        };
        Ok(Context::Toolchain {
            name: name.to_owned(),
            compiler_version,
        })
    }

    /// The toolchain of a request that names none: the settings', else the one host toolchain.
    pub(super) fn root_toolchain(&self, req: &Request) -> Result<Context, Box<Diag>> {
        if let Some(tc) = &req.spec.toolchain {
            return self.toolchain_context(
                req,
                &tc.name.value,
                tc.version.as_ref().map(|v| &v.value),
                Some(&tc.span),
            );
        }
        let name = match &req.settings.toolchain {
            Some(t) => t.value.clone(),
            None => {
                let hosts: Vec<&String> = self
                    .set
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
        self.toolchain_context(req, &name, None, None)
    }

    /// The version of the host's compiler, which must match the clause's.
    fn host_compiler_version(
        &self,
        c: &Clause<'_>,
        tc: &ToolchainDecl,
        compiler: &Recipe,
    ) -> Result<Version, Box<Diag>> {
        let name = c.name;
        let decl = compiler
            .host
            .as_ref()
            .expect("validated: host toolchains have a host line");
        let tool = self.host.probe(&compiler.name.value, decl).map_err(|e| {
            Box::new(
                Diag::error(
                    "resolve::host-compiler",
                    format!(
                        "toolchain `{name}` needs the host's `{}`: {e}",
                        compiler.name.value
                    ),
                )
                .label(&self.set.sources, tc.compiler.span, "host compiler")
                .help(format!(
                    "install `{}` on this machine, or pick a toolchain that builds its compiler",
                    compiler.name.value
                )),
            )
        })?;
        if let Some(req_v) = c.version
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
                c.req,
                d,
                c.span,
                "version not on the host",
            )));
        }
        Ok(tool.version)
    }

    /// The newest version of a built compiler that matches the clause (deprecated ones only
    /// when a version is asked for).
    fn built_compiler_version(
        &self,
        c: &Clause<'_>,
        compiler: &Recipe,
    ) -> Result<Version, Box<Diag>> {
        let name = c.name;
        let req_v = c.version.cloned().unwrap_or_default();
        let best = compiler
            .versions
            .iter()
            .filter(|v| req_v.matches(&v.version.value) && (!v.deprecated || !req_v.is_any()))
            .max_by(|a, b| (a.preferred, &a.version.value).cmp(&(b.preferred, &b.version.value)))
            .map(|v| &v.version.value);
        if let Some(v) = best {
            return Ok(v.clone());
        }
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
        Err(Box::new(self.diag_for(
            c.req,
            d,
            c.span,
            "no such compiler version",
        )))
    }

    pub(super) fn toolchain_decl(&self, ctx: &Context) -> Option<&'a ToolchainDecl> {
        match ctx {
            Context::Host => None,
            Context::Toolchain { name, .. } => self.set.toolchains.get(name),
        }
    }

    /// The toolchain of a compiled node.
    pub(super) fn toolchain_use(
        &self,
        key: &NodeKey,
        flags: &ArchFlags,
        arch: &ArchDecl,
    ) -> ToolchainUse {
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
}
