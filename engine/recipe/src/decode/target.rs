//! `target`, `matrix` and `defaults`: named realizations, the matrices that stand for many of
//! them, and the settings (architecture, toolchain, providers) they share.

use kdl::KdlNode;

use super::cx::{Args, Cx};
use crate::diag::{Span, did_you_mean};
use crate::model::*;
use crate::spec::Spec;
use crate::version::Version;

const SETTINGS_CHILDREN: &[&str] = &["arch", "toolchain", "provider", "from-source"];

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

/// Fills `{axis}` and `{axis.FORM}` in a matrix template. An error comes with the byte range of
/// the placeholder at fault.
fn fill_axes(
    template: &str,
    row: &[(&str, &str)],
) -> Result<String, (String, std::ops::Range<usize>)> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let at = template.len() - rest.len() + start;
        let Some(len) = rest[start..].find('}') else {
            return Err(("unclosed `{`".to_owned(), at..template.len()));
        };
        let range = at..at + len + 1;
        let key = &rest[start + 1..start + len];
        let (axis, form) = match key.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (key, None),
        };
        let Some((_, value)) = row.iter().find(|(a, _)| *a == axis) else {
            return Err((format!("`{{{key}}}` names no axis"), range));
        };
        match form {
            None => out.push_str(value),
            Some(form) => {
                let v = Version::parse(value).map_err(|e| {
                    (
                        format!("axis value `{value}` is not a version: {e}"),
                        range.clone(),
                    )
                })?;
                let d = v.derived(form).ok_or_else(|| {
                    let help = match did_you_mean(form, Version::DERIVED_FORMS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("forms are {}", Version::DERIVED_FORMS.join(", ")),
                    };
                    (
                        format!("`{form}` is not a version form of `{value}`; {help}"),
                        range.clone(),
                    )
                })?;
                out.push_str(&d);
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn decode_matrix(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<TargetDecl> {
    let Some((args, _)) = cx.entries(node, Args::Exactly(1, "the name template"), &[]) else {
        return Vec::new();
    };
    let Some(name_tpl) = cx.string(args[0], "the name template") else {
        return Vec::new();
    };
    let name_lit = cx.lit(args[0]);
    let settings = decode_settings(
        cx,
        node,
        &["axis", "spec", "description", "exclude", "also"],
    );
    let span = cx.span(node.span());
    let mut axes: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
    let mut spec: Option<(Spanned<String>, LitSpan)> = None;
    let mut description = None;
    // Each `exclude` row: (axis, value, span of the axis name).
    let mut excludes: Vec<Vec<(String, String, Span)>> = Vec::new();
    let mut also: Vec<(String, String, LitSpan)> = Vec::new();
    if let Some(doc) = node.children() {
        for c in doc.nodes() {
            match c.name().value() {
                "axis" => {
                    cx.no_children(c);
                    let Some((args, _)) =
                        cx.entries(c, Args::AtLeast(2, "the axis name and its values"), &[])
                    else {
                        continue;
                    };
                    let Some(n) = cx.string(args[0], "the axis name") else {
                        continue;
                    };
                    let vals = cx.names(&args[1..], "an axis value");
                    axes.push((n, vals));
                }
                "spec" => {
                    cx.no_children(c);
                    let Some((args, _)) = cx.entries(c, Args::Exactly(1, "the spec template"), &[])
                    else {
                        continue;
                    };
                    let lit = cx.lit(args[0]);
                    spec = cx.string(args[0], "the spec template").map(|s| (s, lit));
                }
                "description" => {
                    description = cx.single_string(c, "a description").map(|s| s.value)
                }
                "exclude" => {
                    cx.no_children(c);
                    let keys: Vec<String> = c
                        .entries()
                        .iter()
                        .filter_map(|e| e.name().map(|n| n.value().to_owned()))
                        .collect();
                    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let Some((_, props)) = cx.entries(c, Args::None, &key_refs) else {
                        continue;
                    };
                    let mut row = Vec::new();
                    for (k, e) in &props.entries {
                        let key_span = e.name().map_or(cx.span(c.span()), |n| cx.span(n.span()));
                        if let Some(v) = cx.string(e, "an axis value") {
                            row.push(((*k).to_owned(), v.value, key_span));
                        }
                    }
                    excludes.push(row);
                }
                "also" => {
                    cx.no_children(c);
                    let Some((args, props)) =
                        cx.entries(c, Args::Exactly(1, "the name suffix"), &["spec"])
                    else {
                        continue;
                    };
                    let Some(suffix) = cx.string(args[0], "the name suffix") else {
                        continue;
                    };
                    let Some(e) = props.get("spec") else {
                        cx.err(
                            "recipe::missing-property",
                            "`also` needs `spec=` with the clauses to add",
                            suffix.span,
                            "what changes?",
                            "write `also \"-gpu\" spec=\"+nvml +rsmi\"`",
                        );
                        continue;
                    };
                    let lit = cx.lit(e);
                    if let Some(s) = cx.string(e, "`spec`") {
                        also.push((suffix.value, s.value, lit));
                    }
                }
                _ => {}
            }
        }
    }
    let Some((spec_tpl, spec_lit)) = spec else {
        cx.err(
            "recipe::missing-spec",
            format!("matrix `{}` has no `spec`", name_tpl.value),
            name_tpl.span,
            "no spec template",
            "add `spec \"slurm@{series} %gcc@{gcc}\"`",
        );
        return Vec::new();
    };
    if axes.is_empty() {
        cx.err(
            "recipe::missing-axis",
            format!("matrix `{}` has no `axis`", name_tpl.value),
            name_tpl.span,
            "nothing to expand",
            "add `axis \"gcc\" \"13.4.0\" \"14.2.0\"`",
        );
        return Vec::new();
    }
    for row in &excludes {
        for (k, _, key_span) in row {
            if !axes.iter().any(|(a, _)| &a.value == k) {
                let help = match did_you_mean(k, axes.iter().map(|(a, _)| a.value.as_str())) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "axes: {}",
                        axes.iter()
                            .map(|(a, _)| a.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                cx.err(
                    "recipe::unknown-axis",
                    format!("`exclude` names no axis `{k}`"),
                    *key_span,
                    "unknown axis",
                    help,
                );
            }
        }
    }
    // Cartesian product, first axis outermost, so the order follows the file.
    let mut rows: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for (axis, values) in &axes {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                values.iter().map(move |v| {
                    let mut r = row.clone();
                    r.push((axis.value.as_str(), v.value.as_str()));
                    r
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for row in rows {
        let excluded = excludes.iter().any(|ex| {
            ex.iter()
                .all(|(k, v, _)| row.iter().any(|(a, val)| a == k && val == v))
        });
        if excluded {
            continue;
        }
        let name = match fill_axes(&name_tpl.value, &row) {
            Ok(n) => n,
            Err((e, range)) => {
                cx.err(
                    "recipe::bad-template",
                    format!("in the matrix name: {e}"),
                    name_lit.at(range),
                    "here",
                    "placeholders are axis names, optionally with a version form: `{gcc.major}`",
                );
                return out;
            }
        };
        let spec_text = match fill_axes(&spec_tpl.value, &row) {
            Ok(s) => s,
            Err((e, range)) => {
                cx.err(
                    "recipe::bad-template",
                    format!("in the matrix spec: {e}"),
                    spec_lit.at(range),
                    "here",
                    "placeholders are axis names, optionally with a version form: `{gcc.major}`",
                );
                return out;
            }
        };
        let description = description.as_ref().and_then(|d| fill_axes(d, &row).ok());
        let mut variants = vec![(
            name.clone(),
            spec_text.clone(),
            LitSpan {
                span: spec_lit.span,
                content_offset: None,
            },
        )];
        for (suffix, extra, lit) in &also {
            variants.push((
                format!("{name}{suffix}"),
                format!("{spec_text} {extra}"),
                *lit,
            ));
        }
        for (tname, text, lit) in variants {
            match Spec::parse(&text, true) {
                Ok(spec) => out.push(TargetDecl {
                    name: Spanned::new(tname, name_tpl.span),
                    spec: SpecLit {
                        spec,
                        lit: LitSpan {
                            content_offset: None,
                            ..lit
                        },
                    },
                    extra_roots: Vec::new(),
                    settings: settings.clone(),
                    description: description.clone(),
                    matrix: Some(name_tpl.value.clone()),
                    span,
                }),
                Err(err) => {
                    cx.err(
                        "recipe::bad-spec",
                        format!(
                            "matrix row `{tname}` gives an invalid spec `{text}`: {}",
                            err.message
                        ),
                        lit.span,
                        "this template",
                        err.help.unwrap_or_else(|| "check the spec template".into()),
                    );
                }
            }
        }
    }
    out
}
