//! Matrix expansion: the rows of a [`MatrixDecl`] (the product of its axes, less the excluded
//! ones) become targets, their names and specs filled from the templates.

use crate::decode::{Also, Axis, ExcludeCell, MatrixDecl};
use crate::diag::{Diag, Diagnostics, Sources, Span, did_you_mean};
use crate::model::*;
use crate::spec::Spec;
use crate::version::Version;

/// One row: a value for every axis, in axis order.
type Row<'m> = Vec<(&'m str, &'m str)>;

const PLACEHOLDER_HELP: &str =
    "placeholders are axis names, optionally with a version form: `{gcc.major}`";

/// The targets of every row, in row order, each row's `also` targets after its own. A template
/// that cannot be filled is reported once and ends the expansion.
pub(crate) fn expand(
    m: &MatrixDecl,
    sources: &Sources,
    diags: &mut Diagnostics,
) -> Vec<TargetDecl> {
    let mut out = Vec::new();
    for row in rows(&m.axes) {
        if excluded(&row, &m.excludes) {
            continue;
        }
        let Some((name, spec_text)) = fill_templates(m, &row, sources, diags) else {
            return out;
        };
        let description = m.description.as_ref().and_then(|d| fill_axes(d, &row).ok());
        for (tname, text, lit) in row_targets(&m.also, m.spec_lit, name, spec_text) {
            match Spec::parse(&text, true) {
                Ok(spec) => out.push(target(m, tname, spec, lit, description.clone())),
                Err(err) => {
                    let d = Diag::error(
                        "recipe::bad-spec",
                        format!(
                            "matrix row `{tname}` gives an invalid spec `{text}`: {}",
                            err.message
                        ),
                    )
                    .label(sources, lit.span, "this template")
                    .help(err.help.unwrap_or_else(|| "check the spec template".into()));
                    diags.push(d);
                }
            }
        }
    }
    out
}

/// The Cartesian product of the axes, first axis outermost, so the order follows the file.
fn rows(axes: &[Axis]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = vec![Vec::new()];
    for axis in axes {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                axis.values.iter().map(move |v| {
                    let mut r = row.clone();
                    r.push((axis.name.value.as_str(), v.value.as_str()));
                    r
                })
            })
            .collect();
    }
    rows
}

/// Whether every cell of some `exclude` line matches the row.
fn excluded(row: &Row<'_>, excludes: &[Vec<ExcludeCell>]) -> bool {
    excludes.iter().any(|ex| {
        ex.iter().all(|cell| {
            row.iter()
                .any(|(a, val)| *a == cell.axis && *val == cell.value)
        })
    })
}

/// The row's name and spec, or `None` once the template at fault is reported.
fn fill_templates(
    m: &MatrixDecl,
    row: &Row<'_>,
    sources: &Sources,
    diags: &mut Diagnostics,
) -> Option<(String, String)> {
    let mut fill = |template: &str, lit: LitSpan, what: &str| match fill_axes(template, row) {
        Ok(s) => Some(s),
        Err((e, range)) => {
            bad_template(
                sources,
                diags,
                format!("in the matrix {what}: {e}"),
                lit.at(range),
            );
            None
        }
    };
    let name = fill(&m.name.value, m.name_lit, "name")?;
    let spec = fill(&m.spec.value, m.spec_lit, "spec")?;
    Some((name, spec))
}

fn bad_template(sources: &Sources, diags: &mut Diagnostics, msg: String, span: Span) {
    let d = Diag::error("recipe::bad-template", msg)
        .label(sources, span, "here")
        .help(PLACEHOLDER_HELP);
    diags.push(d);
}

/// The row's own target and one per `also` line: name, spec text, and the literal a bad spec is
/// reported at (the spec template for the row's own, the `spec=` of an `also`).
fn row_targets(
    also: &[Also],
    spec_lit: LitSpan,
    name: String,
    spec_text: String,
) -> Vec<(String, String, LitSpan)> {
    let own = LitSpan {
        span: spec_lit.span,
        content_offset: None,
    };
    let mut targets = vec![(name.clone(), spec_text.clone(), own)];
    for a in also {
        targets.push((
            format!("{name}{}", a.suffix),
            format!("{spec_text} {}", a.spec),
            a.lit,
        ));
    }
    targets
}

/// A target of the matrix. Its spec was built from a template, so spans inside it point at the
/// whole literal.
fn target(
    m: &MatrixDecl,
    name: String,
    spec: Spec,
    lit: LitSpan,
    description: Option<String>,
) -> TargetDecl {
    TargetDecl {
        name: Spanned::new(name, m.name.span),
        spec: SpecLit {
            spec,
            lit: LitSpan {
                content_offset: None,
                ..lit
            },
        },
        extra_roots: Vec::new(),
        settings: m.settings.clone(),
        description,
        matrix: Some(m.name.value.clone()),
        span: m.span,
    }
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
