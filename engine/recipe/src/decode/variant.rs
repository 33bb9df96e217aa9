//! `variant`: a build option of a package, on/off, single- or multi-valued, with its default.

use std::collections::BTreeSet;

use kdl::{KdlNode, KdlValue};

use super::cx::{Args, Cx};
use crate::diag::{Span, did_you_mean};
use crate::model::*;

/// A `values` line: the allowed values and the line's span.
type Values = Option<(Vec<Spanned<String>>, Span)>;

/// What the `default` of a variant is checked against.
struct Declared<'v> {
    name: &'v Spanned<String>,
    values: &'v Values,
    multi: bool,
    /// The span of the `default=` value.
    default_span: Span,
}

pub(super) fn decode_variant(cx: &mut Cx<'_>, node: &KdlNode) -> Option<VariantDecl> {
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the variant name"),
        &["default", "multi", "description"],
    )?;
    let name = cx.string(args[0], "the variant name")?;
    if !valid_variant_name(&name.value) {
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
    let values = decode_values(cx, node);
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
    let declared = Declared {
        name: &name,
        values: &values,
        multi,
        default_span,
    };
    let kind = match default.value() {
        KdlValue::Bool(b) => bool_kind(cx, &declared, *b)?,
        KdlValue::String(s) => valued_kind(cx, &declared, s)?,
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

pub(super) fn valid_variant_name(n: &str) -> bool {
    n.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n != "target"
}

/// The last well-formed `values` line of the variant's block.
fn decode_values(cx: &mut Cx<'_>, node: &KdlNode) -> Values {
    let mut values = None;
    for child in cx.children(node, &["values"]) {
        cx.no_children(child);
        if let Some((args, _)) = cx.entries(child, Args::AtLeast(1, "the allowed values"), &[]) {
            let vs = cx.names(&args, "a variant value");
            values = Some((vs, cx.span(child.span())));
        }
    }
    values
}

/// An on/off variant: no `values`, not `multi`.
fn bool_kind(cx: &mut Cx<'_>, v: &Declared<'_>, default: bool) -> Option<VariantKind> {
    if let Some((_, span)) = v.values {
        cx.err(
            "recipe::conflicting-defaults",
            format!("on/off variant `{}` cannot list values", v.name.value),
            *span,
            "values of a boolean variant",
            "remove `values`, or give a string default to make it a multi-choice variant",
        );
        return None;
    }
    if v.multi {
        cx.err(
            "recipe::conflicting-defaults",
            format!(
                "variant `{}` has a boolean default but `multi=#true`",
                v.name.value
            ),
            v.default_span,
            "boolean default",
            "a multi-valued variant takes a string default such as `default=\"slurm,tm\"`",
        );
        return None;
    }
    Some(VariantKind::Bool { default })
}

/// A variant with a string default: single-valued, or multi-valued with a `,`-separated default.
fn valued_kind(cx: &mut Cx<'_>, v: &Declared<'_>, default: &str) -> Option<VariantKind> {
    let allowed: Vec<String> = v
        .values
        .as_ref()
        .map(|(vs, _)| vs.iter().map(|v| v.value.clone()).collect())
        .unwrap_or_default();
    let defaults: Vec<String> = if v.multi {
        default
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    } else {
        vec![default.to_owned()]
    };
    if v.multi && allowed.is_empty() {
        cx.err(
            "recipe::missing-values",
            format!(
                "multi-valued variant `{}` must list its values",
                v.name.value
            ),
            v.name.span,
            "no `values`",
            "add a block: `{ values \"a\" \"b\" }`",
        );
        return None;
    }
    if !v.multi && default.contains(',') && !allowed.is_empty() {
        cx.err(
            "recipe::conflicting-defaults",
            format!(
                "single-valued variant `{}` has several defaults",
                v.name.value
            ),
            v.default_span,
            "several values",
            "pick one default, or add `multi=#true`",
        );
        return None;
    }
    check_defaults_allowed(cx, v, &defaults, &allowed)?;
    if let Some((vs, _)) = v.values {
        report_repeated_values(cx, vs);
    }
    Some(if v.multi {
        VariantKind::Multi {
            values: allowed,
            default: defaults,
        }
    } else {
        VariantKind::Single {
            values: allowed,
            default: default.to_owned(),
        }
    })
}

/// Every default is one of the listed values (when values are listed).
fn check_defaults_allowed(
    cx: &mut Cx<'_>,
    v: &Declared<'_>,
    defaults: &[String],
    allowed: &[String],
) -> Option<()> {
    for d in defaults {
        if !allowed.is_empty() && !allowed.contains(d) {
            let help = match did_you_mean(d, allowed.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("allowed values: {}", allowed.join(", ")),
            };
            cx.err(
                "recipe::conflicting-defaults",
                format!(
                    "default `{d}` of variant `{}` is not one of its values",
                    v.name.value
                ),
                v.default_span,
                "not an allowed value",
                help,
            );
            return None;
        }
    }
    Some(())
}

fn report_repeated_values(cx: &mut Cx<'_>, values: &[Spanned<String>]) {
    let mut seen = BTreeSet::new();
    for v in values {
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
