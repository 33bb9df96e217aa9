//! `variant`: a build option of a package, on/off, single- or multi-valued, with its default.

use kdl::{KdlNode, KdlValue};

use super::cx::{Args, Cx};
use crate::diag::{Span, did_you_mean};
use crate::model::*;

pub(super) fn decode_variant(cx: &mut Cx<'_>, node: &KdlNode) -> Option<VariantDecl> {
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the variant name"),
        &["default", "multi", "description"],
    )?;
    let name = cx.string(args[0], "the variant name")?;
    if !name
        .value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || !name.value.starts_with(|c: char| c.is_ascii_alphabetic())
        || name.value == "target"
    {
        cx.err(
            "recipe::bad-name",
            format!("`{}` is not a valid variant name", name.value),
            name.span,
            "invalid name",
            "variant names start with a letter and use letters, digits, `_` and `-`; `target` is reserved",
        );
        return None;
    }
    let description = match props.get("description") {
        Some(e) => Some(cx.string(e, "`description`")?.value),
        None => None,
    };
    let multi = match props.get("multi") {
        Some(e) => cx.boolean(e, "`multi`")?,
        None => false,
    };
    let mut values: Option<(Vec<Spanned<String>>, Span)> = None;
    for child in cx.children(node, &["values"]) {
        cx.no_children(child);
        if let Some((args, _)) = cx.entries(child, Args::AtLeast(1, "the allowed values"), &[]) {
            let vs = cx.names(&args, "a variant value");
            values = Some((vs, cx.span(child.span())));
        }
    }
    let Some(default) = props.get("default") else {
        cx.err(
            "recipe::missing-default",
            format!("variant `{}` has no default", name.value),
            name.span,
            "no `default`",
            "give one: `default=#true` for an on/off variant, `default=\"value\"` otherwise",
        );
        return None;
    };
    let default_span = cx.value_span(default);
    let kind =
        match default.value() {
            KdlValue::Bool(b) => {
                if let Some((_, span)) = &values {
                    cx.err(
                    "recipe::conflicting-defaults",
                    format!("on/off variant `{}` cannot list values", name.value),
                    *span,
                    "values of a boolean variant",
                    "remove `values`, or give a string default to make it a multi-choice variant",
                );
                    return None;
                }
                if multi {
                    cx.err(
                    "recipe::conflicting-defaults",
                    format!("variant `{}` has a boolean default but `multi=#true`", name.value),
                    default_span,
                    "boolean default",
                    "a multi-valued variant takes a string default such as `default=\"slurm,tm\"`",
                );
                    return None;
                }
                VariantKind::Bool { default: *b }
            }
            KdlValue::String(s) => {
                let allowed: Vec<String> = values
                    .as_ref()
                    .map(|(vs, _)| vs.iter().map(|v| v.value.clone()).collect())
                    .unwrap_or_default();
                let defaults: Vec<String> = if multi {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect()
                } else {
                    vec![s.clone()]
                };
                if multi && allowed.is_empty() {
                    cx.err(
                        "recipe::missing-values",
                        format!("multi-valued variant `{}` must list its values", name.value),
                        name.span,
                        "no `values`",
                        "add a block: `{ values \"a\" \"b\" }`",
                    );
                    return None;
                }
                if !multi && s.contains(',') && !allowed.is_empty() {
                    cx.err(
                        "recipe::conflicting-defaults",
                        format!(
                            "single-valued variant `{}` has several defaults",
                            name.value
                        ),
                        default_span,
                        "several values",
                        "pick one default, or add `multi=#true`",
                    );
                    return None;
                }
                for d in &defaults {
                    if !allowed.is_empty() && !allowed.contains(d) {
                        let help = match did_you_mean(d, allowed.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("allowed values: {}", allowed.join(", ")),
                        };
                        cx.err(
                            "recipe::conflicting-defaults",
                            format!(
                                "default `{d}` of variant `{}` is not one of its values",
                                name.value
                            ),
                            default_span,
                            "not an allowed value",
                            help,
                        );
                        return None;
                    }
                }
                if let Some((vs, _)) = &values {
                    let mut seen = std::collections::BTreeSet::new();
                    for v in vs {
                        if !seen.insert(&v.value) {
                            cx.err(
                                "recipe::duplicate-value",
                                format!("value `{}` is listed twice", v.value),
                                v.span,
                                "repeated",
                                "remove the repetition",
                            );
                        }
                    }
                }
                if multi {
                    VariantKind::Multi {
                        values: allowed,
                        default: defaults,
                    }
                } else {
                    VariantKind::Single {
                        values: allowed,
                        default: s.clone(),
                    }
                }
            }
            other => {
                let found = Cx::kind_name(other);
                cx.err(
                    "recipe::wrong-type",
                    format!(
                        "default of variant `{}` must be a boolean or a string, found {found}",
                        name.value
                    ),
                    default_span,
                    "wrong type",
                    "write `default=#true`, `default=#false` or `default=\"value\"`",
                );
                return None;
            }
        };
    Some(VariantDecl {
        name,
        kind,
        default_span,
        description,
    })
}
