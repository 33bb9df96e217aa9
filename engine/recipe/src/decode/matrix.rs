//! `matrix`: a name template, a spec template and axes, decoded into an unexpanded
//! [`MatrixDecl`]; turning its rows into targets is evaluation (`crate::eval::matrix`).

use kdl::KdlNode;

use super::cx::{Args, Cx};
use super::target::decode_settings;
use crate::diag::{Span, did_you_mean};
use crate::model::*;

/// Children of `matrix` besides the shared target settings.
const MATRIX_CHILDREN: &[&str] = &["axis", "spec", "description", "exclude", "also"];

/// A `matrix` as written: templates and axes, not yet expanded into targets.
#[derive(Debug)]
pub(crate) struct MatrixDecl {
    /// The name template (`"slurm-{series}-gcc{gcc.major}"`).
    pub(crate) name: Spanned<String>,
    /// The name template's literal, for spans inside it.
    pub(crate) name_lit: LitSpan,
    /// The spec template (`"slurm@{series} %gcc@{gcc}"`).
    pub(crate) spec: Spanned<String>,
    /// The spec template's literal.
    pub(crate) spec_lit: LitSpan,
    /// The description template, if any.
    pub(crate) description: Option<String>,
    /// The axes in file order; the first varies slowest.
    pub(crate) axes: Vec<Axis>,
    /// `exclude` lines: a row matching every cell of one of them is left out.
    pub(crate) excludes: Vec<Vec<ExcludeCell>>,
    /// `also` lines: a further target per row, with a suffix and added spec clauses.
    pub(crate) also: Vec<Also>,
    /// Settings shared by every row.
    pub(crate) settings: TargetSettings,
    /// The whole `matrix` node.
    pub(crate) span: Span,
}

/// `axis "gcc" "13.4.0" "14.2.0"`.
#[derive(Debug)]
pub(crate) struct Axis {
    pub(crate) name: Spanned<String>,
    pub(crate) values: Vec<Spanned<String>>,
}

/// One `axis=value` of an `exclude` line.
#[derive(Debug)]
pub(crate) struct ExcludeCell {
    pub(crate) axis: String,
    pub(crate) value: String,
    /// The property's key, where an unknown axis is reported.
    pub(crate) key_span: Span,
}

/// `also "-gpu" spec="+nvml"`.
#[derive(Debug)]
pub(crate) struct Also {
    pub(crate) suffix: String,
    /// Clauses appended to the row's spec.
    pub(crate) spec: String,
    /// The `spec=` literal.
    pub(crate) lit: LitSpan,
}

/// What the children of a `matrix` node gave, before the required parts are checked.
#[derive(Default)]
struct Parts {
    axes: Vec<Axis>,
    spec: Option<(Spanned<String>, LitSpan)>,
    description: Option<String>,
    excludes: Vec<Vec<ExcludeCell>>,
    also: Vec<Also>,
}

pub(super) fn decode_matrix(cx: &mut Cx<'_>, node: &KdlNode) -> Option<MatrixDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the name template"), &[])?;
    let name = cx.string(args[0], "the name template")?;
    let name_lit = cx.lit(args[0]);
    let settings = decode_settings(cx, node, MATRIX_CHILDREN);
    let span = cx.span(node.span());
    let mut parts = Parts::default();
    if let Some(doc) = node.children() {
        for c in doc.nodes() {
            decode_child(cx, c, &mut parts);
        }
    }
    let Some((spec, spec_lit)) = parts.spec else {
        cx.err(
            "recipe::missing-spec",
            format!("matrix `{}` has no `spec`", name.value),
            name.span,
            "no spec template",
            "add `spec \"slurm@{series} %gcc@{gcc}\"`",
        );
        return None;
    };
    if parts.axes.is_empty() {
        cx.err(
            "recipe::missing-axis",
            format!("matrix `{}` has no `axis`", name.value),
            name.span,
            "nothing to expand",
            "add `axis \"gcc\" \"13.4.0\" \"14.2.0\"`",
        );
        return None;
    }
    check_exclude_axes(cx, &parts.axes, &parts.excludes);
    Some(MatrixDecl {
        name,
        name_lit,
        spec,
        spec_lit,
        description: parts.description,
        axes: parts.axes,
        excludes: parts.excludes,
        also: parts.also,
        settings,
        span,
    })
}

/// One child of `matrix`; the settings children were decoded already, and unknown ones reported.
fn decode_child(cx: &mut Cx<'_>, c: &KdlNode, parts: &mut Parts) {
    match c.name().value() {
        "axis" => parts.axes.extend(decode_axis(cx, c)),
        "spec" => {
            cx.no_children(c);
            let Some((args, _)) = cx.entries(c, Args::Exactly(1, "the spec template"), &[]) else {
                return;
            };
            let lit = cx.lit(args[0]);
            parts.spec = cx.string(args[0], "the spec template").map(|s| (s, lit));
        }
        "description" => parts.description = cx.single_string(c, "a description").map(|s| s.value),
        "exclude" => parts.excludes.extend(decode_exclude(cx, c)),
        "also" => parts.also.extend(decode_also(cx, c)),
        _ => {}
    }
}

fn decode_axis(cx: &mut Cx<'_>, c: &KdlNode) -> Option<Axis> {
    cx.no_children(c);
    let (args, _) = cx.entries(c, Args::AtLeast(2, "the axis name and its values"), &[])?;
    let name = cx.string(args[0], "the axis name")?;
    let values = cx.names(&args[1..], "an axis value");
    Some(Axis { name, values })
}

/// An `exclude` line: any property is an axis name (checked against the axes afterwards).
fn decode_exclude(cx: &mut Cx<'_>, c: &KdlNode) -> Option<Vec<ExcludeCell>> {
    cx.no_children(c);
    let keys: Vec<String> = c
        .entries()
        .iter()
        .filter_map(|e| e.name().map(|n| n.value().to_owned()))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (_, props) = cx.entries(c, Args::None, &key_refs)?;
    let mut row = Vec::new();
    for (k, e) in &props.entries {
        let key_span = e.name().map_or(cx.span(c.span()), |n| cx.span(n.span()));
        if let Some(v) = cx.string(e, "an axis value") {
            row.push(ExcludeCell {
                axis: (*k).to_owned(),
                value: v.value,
                key_span,
            });
        }
    }
    Some(row)
}

fn decode_also(cx: &mut Cx<'_>, c: &KdlNode) -> Option<Also> {
    cx.no_children(c);
    let (args, props) = cx.entries(c, Args::Exactly(1, "the name suffix"), &["spec"])?;
    let suffix = cx.string(args[0], "the name suffix")?;
    let Some(e) = props.get("spec") else {
        cx.err(
            "recipe::missing-property",
            "`also` needs `spec=` with the clauses to add",
            suffix.span,
            "what changes?",
            "write `also \"-gpu\" spec=\"+nvml +rsmi\"`",
        );
        return None;
    };
    let lit = cx.lit(e);
    let spec = cx.string(e, "`spec`")?;
    Some(Also {
        suffix: suffix.value,
        spec: spec.value,
        lit,
    })
}

/// Every axis an `exclude` line names must be one of the matrix's.
fn check_exclude_axes(cx: &mut Cx<'_>, axes: &[Axis], excludes: &[Vec<ExcludeCell>]) {
    let names = || axes.iter().map(|a| a.name.value.as_str());
    for cell in excludes.iter().flatten() {
        if names().any(|a| a == cell.axis) {
            continue;
        }
        let help = match did_you_mean(&cell.axis, names()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("axes: {}", names().collect::<Vec<_>>().join(", ")),
        };
        cx.err(
            "recipe::unknown-axis",
            format!("`exclude` names no axis `{}`", cell.axis),
            cell.key_span,
            "unknown axis",
            help,
        );
    }
}
