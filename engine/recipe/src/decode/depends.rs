//! `depends`, `provides`, `conflicts` and `patch`: a package's relations to other packages and
//! to its own configurations, each optionally conditional (`when=`).

use kdl::{KdlEntry, KdlNode, KdlValue};

use super::cx::{Args, Cx};
use crate::diag::did_you_mean;
use crate::model::*;

fn parse_types(cx: &mut Cx<'_>, e: &KdlEntry) -> Option<DepTypes> {
    let s = cx.string(e, "`type`")?;
    let lit = cx.lit(e);
    let mut types = DepTypes::NONE;
    let mut offset = 0;
    for part in s.value.split(',') {
        let t = match part.trim() {
            "build" => DepType::Build,
            "link" => DepType::Link,
            "run" => DepType::Run,
            "test" => DepType::Test,
            other => {
                let span = lit.at(offset..offset + part.len());
                let help = match did_you_mean(other, ["build", "link", "run", "test"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "dependency types are `build`, `link`, `run` and `test`, joined by `,`"
                        .to_owned(),
                };
                cx.err(
                    "recipe::bad-dep-type",
                    format!("unknown dependency type `{other}`"),
                    span,
                    "unknown type",
                    help,
                );
                return None;
            }
        };
        types = types.with(t);
        offset += part.len() + 1;
    }
    Some(types)
}

pub(super) fn decode_depends(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<DependDecl> {
    cx.no_children(node);
    let Some((args, props)) = cx.entries(
        node,
        Args::AtLeast(1, "dependency specs"),
        &["type", "when"],
    ) else {
        return Vec::new();
    };
    let types = match props.get("type") {
        Some(e) => match parse_types(cx, e) {
            Some(t) => t,
            None => return Vec::new(),
        },
        None => DepTypes::BUILD_LINK,
    };
    let Ok(when) = cx.when(&props) else {
        return Vec::new();
    };
    let span = cx.span(node.span());
    args.iter()
        .filter_map(|a| cx.spec_lit(a, "a dependency"))
        .map(|spec| DependDecl {
            spec,
            types,
            when: when.clone(),
            span,
        })
        .collect()
}

pub(super) fn decode_provides(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<ProvideDecl> {
    cx.no_children(node);
    let Some((args, props)) =
        cx.entries(node, Args::AtLeast(1, "virtual package names"), &["when"])
    else {
        return Vec::new();
    };
    let Ok(when) = cx.when(&props) else {
        return Vec::new();
    };
    let span = cx.span(node.span());
    let mut specs = Vec::new();
    for a in &args {
        match cx.spec_lit(a, "a virtual package") {
            Some(spec) => specs.push(spec),
            // Dependents of the virtual this line meant must not be told it does not exist.
            None => {
                if let KdlValue::String(text) = a.value() {
                    let name: String = text
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        cx.dropped.push(("virtual", name));
                    }
                }
            }
        }
    }
    specs
        .into_iter()
        .filter_map(|spec| {
            if !spec.spec.variants.is_empty()
                || spec.spec.toolchain.is_some()
                || !spec.spec.deps.is_empty()
            {
                cx.dropped.push(("virtual", spec.name().to_owned()));
                let s = spec.lit.span;
                cx.err(
                    "recipe::bad-spec",
                    "`provides` takes a virtual name and optionally its version",
                    s,
                    "too much here",
                    "write it as `provides \"mpi@3.1\"`",
                );
                return None;
            }
            Some(ProvideDecl {
                spec,
                when: when.clone(),
                span,
            })
        })
        .collect()
}

pub(super) fn decode_conflict(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ConflictDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the conflicting configuration"),
        &["when", "message"],
    )?;
    let cond = cx.condition(args[0])?;
    let when = cx.when(&props).ok()?;
    let message = match props.get("message") {
        Some(e) => Some(cx.string(e, "`message`")?.value),
        None => None,
    };
    Some(ConflictDecl {
        cond,
        when,
        message,
        span: cx.span(node.span()),
    })
}

pub(super) fn decode_patch(cx: &mut Cx<'_>, node: &KdlNode) -> Option<PatchDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the patch file"),
        &["sha256", "level", "when"],
    )?;
    let file = cx.string(args[0], "the patch file")?;
    let Some(sha) = props.get("sha256") else {
        cx.err(
            "recipe::missing-sha256",
            format!("patch `{}` has no `sha256`", file.value),
            file.span,
            "no checksum",
            "add `sha256=\"…\"`; compute it with `sha256sum` on the patch file",
        );
        return None;
    };
    let sha256 = cx.sha256(sha)?;
    let level = match props.get("level") {
        Some(e) => u32::try_from(cx.integer(e, "`level`", 10)?).ok()?,
        None => 1,
    };
    let when = cx.when(&props).ok()?;
    Some(PatchDecl {
        file,
        sha256,
        level,
        when,
        span: cx.span(node.span()),
    })
}
