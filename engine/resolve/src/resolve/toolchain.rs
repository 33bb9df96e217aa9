//! Toolchains: the context a `%toolchain@version` clause selects (finding a host compiler's
//! version, or choosing a built compiler's), and the toolchain use of a compiled node.

use forge_recipe::{ArchDecl, ArchFlags, Diag, ToolchainDecl, VersionReq};

use super::{Request, Resolver};
use crate::graph::{Context, NodeKey, ToolchainUse};

impl<'a> Resolver<'a> {
    /// The toolchain a `%name@version` clause (or the default) selects, as a context.
    pub(super) fn toolchain_context(
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
