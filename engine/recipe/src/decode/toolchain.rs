//! `toolchain` and `arch` (the toolchains and the target-architecture table), and a package's
//! `host` line: how a compiler or tool is found on the machine.

use kdl::KdlNode;

use super::cx::{Args, Cx};
use crate::model::*;
use crate::version::VersionReq;

pub(super) fn decode_host(cx: &mut Cx<'_>, node: &KdlNode) -> Option<HostDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::AtLeast(1, "executables"),
        &["version-arg", "version-regex", "prefix-arg"],
    )?;
    let executables = cx.names(&args, "an executable");
    for e in &executables {
        if e.value.contains('/') || e.value.is_empty() {
            cx.err(
                "recipe::bad-name",
                format!("`{}` is not an executable name", e.value),
                e.span,
                "a path",
                "give the program's name; forge finds it on `PATH`",
            );
            return None;
        }
    }
    let version_arg = match props.get("version-arg") {
        Some(e) => cx.string(e, "`version-arg`")?.value,
        None => "--version".to_owned(),
    };
    let version_regex = match props.get("version-regex") {
        Some(e) => {
            let s = cx.string(e, "`version-regex`")?;
            match regex::Regex::new(&s.value) {
                Ok(re) if re.captures_len() >= 2 => s,
                Ok(_) => {
                    cx.err(
                        "recipe::bad-regex",
                        "`version-regex` needs a capture group for the version",
                        s.span,
                        "no group",
                        "wrap the version part in parentheses, as in `version ([0-9.]+)`",
                    );
                    return None;
                }
                Err(err) => {
                    cx.err(
                        "recipe::bad-regex",
                        format!("invalid regular expression: {err}"),
                        s.span,
                        "here",
                        "see the `regex` crate's syntax",
                    );
                    return None;
                }
            }
        }
        None => Spanned::new(DEFAULT_VERSION_REGEX.to_owned(), cx.span(node.span())),
    };
    let prefix_arg = match props.get("prefix-arg") {
        Some(e) => Some(cx.string(e, "`prefix-arg`")?.value),
        None => None,
    };
    Some(HostDecl {
        executables,
        version_arg,
        version_regex,
        prefix_arg,
        span: cx.span(node.span()),
    })
}

/// The version pattern used when a `host` block gives none: the first dotted number.
pub const DEFAULT_VERSION_REGEX: &str = r"([0-9]+(?:\.[0-9]+)+)";

pub(super) fn decode_toolchain(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ToolchainDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the toolchain name"), &[])?;
    let name = cx.string(args[0], "the toolchain name")?;
    let ToolchainLines {
        compiler,
        host,
        runtime,
        bootstrap,
        description,
    } = toolchain_lines(cx, node);
    let span = cx.span(node.span());
    let compiler_written = node
        .children()
        .is_some_and(|d| d.nodes().iter().any(|n| n.name().value() == "compiler"));
    let Some(compiler) = compiler else {
        cx.dropped.push(("toolchain", name.value.clone()));
        if compiler_written {
            // The `compiler` line itself was malformed, and that was reported.
            return None;
        }
        cx.err(
            "recipe::missing-compiler",
            format!("toolchain `{}` names no compiler", name.value),
            name.span,
            "no `compiler`",
            "add `compiler \"gcc\"` (built by forge) or `compiler \"gcc\" host=#true` (the machine's own)",
        );
        return None;
    };
    if host && bootstrap.is_some() {
        cx.err(
            "recipe::conflicting-properties",
            format!(
                "toolchain `{}` uses the host compiler, so it has nothing to bootstrap",
                name.value
            ),
            bootstrap.as_ref().map_or(span, |b| b.span),
            "not needed",
            "remove `bootstrap`",
        );
    }
    if !host && bootstrap.is_none() {
        cx.dropped.push(("toolchain", name.value.clone()));
        cx.err(
            "recipe::missing-bootstrap",
            format!(
                "toolchain `{}` builds its compiler but does not say with what",
                name.value
            ),
            name.span,
            "no `bootstrap`",
            "add `bootstrap \"host-gcc\"`: the toolchain that compiles this compiler",
        );
        return None;
    }
    Some(ToolchainDecl {
        name,
        compiler,
        host,
        runtime,
        bootstrap,
        description,
        span,
    })
}

/// The lines of a `toolchain` block, the last of each kind winning.
#[derive(Default)]
struct ToolchainLines {
    compiler: Option<Spanned<String>>,
    host: bool,
    runtime: Option<Spanned<String>>,
    bootstrap: Option<Spanned<String>>,
    description: Option<String>,
}

fn toolchain_lines(cx: &mut Cx<'_>, node: &KdlNode) -> ToolchainLines {
    let mut t = ToolchainLines::default();
    for c in cx.children(node, &["compiler", "runtime", "bootstrap", "description"]) {
        cx.no_children(c);
        match c.name().value() {
            "compiler" => {
                let Some((args, props)) =
                    cx.entries(c, Args::Exactly(1, "the compiler package"), &["host"])
                else {
                    continue;
                };
                t.compiler = cx.string(args[0], "the compiler package");
                if let Some(e) = props.get("host") {
                    t.host = cx.boolean(e, "`host`").unwrap_or(false);
                }
            }
            "runtime" => t.runtime = cx.single_string(c, "the runtime package"),
            "bootstrap" => t.bootstrap = cx.single_string(c, "a toolchain name"),
            _ => t.description = cx.single_string(c, "a description").map(|s| s.value),
        }
    }
    t
}

pub(super) fn decode_arch(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ArchDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the architecture name"), &[])?;
    let name = cx.string(args[0], "the architecture name")?;
    let mut spack_name = None;
    let mut flags = Vec::new();
    for c in cx.children(node, &["spack", "flags"]) {
        cx.no_children(c);
        if c.name().value() == "spack" {
            spack_name = cx.single_string(c, "the archspec name").map(|s| s.value);
            continue;
        }
        let Some((args, props)) = cx.entries(
            c,
            Args::AtLeast(1, "compiler flags"),
            &["compiler", "versions"],
        ) else {
            continue;
        };
        let Some(compiler) = props
            .get("compiler")
            .and_then(|e| cx.string(e, "`compiler`"))
        else {
            let s = cx.span(c.span());
            cx.err(
                "recipe::missing-property",
                "`flags` needs `compiler=`",
                s,
                "which compiler?",
                "write `flags compiler=\"gcc\" versions=\"11:\" \"-march=x86-64-v3\"`",
            );
            continue;
        };
        let versions = match props.get("versions") {
            Some(e) => {
                let Some(s) = cx.string(e, "`versions`") else {
                    continue;
                };
                match VersionReq::parse(&s.value) {
                    Ok(v) => v,
                    Err(err) => {
                        cx.err(
                            "recipe::bad-version",
                            format!("invalid version range: {err}"),
                            s.span,
                            "here",
                            "write a range such as `11:` or `4.8:10`",
                        );
                        continue;
                    }
                }
            }
            None => VersionReq::any(),
        };
        let fl = cx.names(&args, "a flag");
        flags.push(ArchFlags {
            compiler: compiler.value,
            versions,
            flags: fl.into_iter().map(|f| f.value).collect(),
            span: cx.span(c.span()),
        });
    }
    let span = cx.span(node.span());
    Some(ArchDecl {
        spack_name: spack_name.unwrap_or_else(|| name.value.replace('-', "_")),
        name,
        flags,
        span,
    })
}
