//! `target` and `defaults`: named realizations and the settings (architecture, toolchain,
//! providers, packages built from source, requirements) they share with each other and with
//! matrices.

use kdl::KdlNode;

use super::cx::{Args, Cx};
use crate::model::*;

const SETTINGS_CHILDREN: &[&str] = &["arch", "toolchain", "provider", "from-source", "require"];

pub(super) fn decode_settings(cx: &mut Cx<'_>, node: &KdlNode, extra: &[&str]) -> TargetSettings {
    let mut s = TargetSettings::default();
    let known: Vec<&str> = SETTINGS_CHILDREN.iter().chain(extra).copied().collect();
    for c in cx.children(node, &known) {
        let kind = c.name().value();
        if !SETTINGS_CHILDREN.contains(&kind) {
            continue;
        }
        match kind {
            "arch" => s.arch = cx.single_string(c, "an architecture"),
            "toolchain" => s.toolchain = cx.single_string(c, "a toolchain name"),
            "provider" => {
                cx.no_children(c);
                let Some((args, _)) = cx.entries(
                    c,
                    Args::Exactly(2, "the virtual and the package providing it"),
                    &[],
                ) else {
                    continue;
                };
                if let (Some(v), Some(p)) = (
                    cx.string(args[0], "the virtual"),
                    cx.string(args[1], "the provider"),
                ) {
                    s.providers.insert(v.value, p);
                }
            }
            "require" => {
                cx.no_children(c);
                let Some((args, _)) = cx.entries(c, Args::AtLeast(1, "specs"), &[]) else {
                    continue;
                };
                s.require
                    .extend(args.iter().filter_map(|a| cx.spec_lit(a, "a spec")));
            }
            _ => {
                cx.no_children(c);
                let Some((args, _)) = cx.entries(c, Args::AtLeast(1, "package names"), &[]) else {
                    continue;
                };
                s.from_source.extend(cx.names(&args, "a package name"));
            }
        }
    }
    s
}

pub(super) fn decode_target(cx: &mut Cx<'_>, node: &KdlNode) -> Option<TargetDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the target name"), &[])?;
    let name = cx.string(args[0], "the target name")?;
    let settings = decode_settings(cx, node, &["spec", "extra-root", "description"]);
    let mut spec = None;
    let mut extra_roots = Vec::new();
    let mut description = None;
    if let Some(doc) = node.children() {
        for c in doc.nodes() {
            match c.name().value() {
                "spec" => {
                    cx.no_children(c);
                    if let Some((args, _)) = cx.entries(c, Args::Exactly(1, "the root spec"), &[]) {
                        spec = cx.spec_lit(args[0], "the root spec");
                    }
                }
                "extra-root" => {
                    cx.no_children(c);
                    if let Some((args, _)) =
                        cx.entries(c, Args::Exactly(1, "a further root spec"), &[])
                        && let Some(s) = cx.spec_lit(args[0], "a further root spec")
                    {
                        extra_roots.push(s);
                    }
                }
                "description" => {
                    description = cx.single_string(c, "a description").map(|s| s.value)
                }
                _ => {}
            }
        }
    }
    let span = cx.span(node.span());
    let Some(spec) = spec else {
        if !cx.diags.has_errors() || node.children().is_none_or(|d| d.get("spec").is_none()) {
            cx.err(
                "recipe::missing-spec",
                format!("target `{}` has no `spec`", name.value),
                name.span,
                "no root spec",
                "add `spec \"slurm@25.11 +pmix\"` inside its block",
            );
        }
        return None;
    };
    Some(TargetDecl {
        name,
        spec,
        extra_roots,
        settings,
        description,
        matrix: None,
        span,
    })
}
