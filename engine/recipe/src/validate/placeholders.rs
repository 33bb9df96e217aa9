//! `{placeholder}`s of URL and build templates against the package's variants and
//! dependencies, and the `when` conditions of build lines.

use std::collections::BTreeSet;

use super::Check;
use crate::diag::Span;
use crate::model::*;
use crate::template::{Template, Var};
use crate::version::Version;

impl Check<'_> {
    /// Whether `{dep:…}` placeholders of `r` cannot be checked: one of its `depends` lines
    /// failed to decode or names a package that does not exist, both reported already.
    pub(super) fn deps_uncertain(&self, r: &Recipe) -> bool {
        r.incomplete.contains("depends")
            || r.depends.iter().any(|d| {
                !self.set.packages.contains_key(d.spec.name())
                    && !self.set.providers.contains_key(d.spec.name())
            })
    }

    /// The file span of `range`, a byte range of a template's text: exact when the template was
    /// written as a plain quoted string, else the whole literal.
    pub(super) fn template_span(
        &self,
        t: &Spanned<Template>,
        range: std::ops::Range<usize>,
    ) -> Span {
        let file = self.set.sources.get(t.span.file);
        let raw = file
            .text
            .get(t.span.offset..t.span.offset + t.span.len)
            .unwrap_or_default();
        let plain = raw.len() >= 2
            && raw.starts_with('"')
            && raw.ends_with('"')
            && raw.get(1..raw.len() - 1) == Some(t.value.as_str());
        if plain {
            t.span.slice(range.start + 1..range.end + 1)
        } else {
            t.span
        }
    }

    pub(super) fn check_template(
        &mut self,
        recipe: &Recipe,
        t: &Spanned<Template>,
        deps: &BTreeSet<&str>,
        build: bool,
    ) {
        for (var, range) in t.value.vars() {
            let problem = match var {
                Var::Version(Some(form)) if !Version::DERIVED_FORMS.contains(&form.as_str()) => {
                    Some((
                        format!("unknown version form `{form}`"),
                        Self::suggest(form, Version::DERIVED_FORMS.iter().copied(), || {
                            format!("forms: {}", Version::DERIVED_FORMS.join(", "))
                        }),
                    ))
                }
                Var::Variant(n)
                    if recipe.variant(n).is_none() && !recipe.incomplete.contains("variant") =>
                {
                    Some((
                        format!(
                            "`{{variant:{n}}}` names no variant of `{}`",
                            recipe.name.value
                        ),
                        Self::suggest(
                            n,
                            recipe.variants.iter().map(|v| v.name.value.as_str()),
                            || "declare it with `variant`".to_owned(),
                        ),
                    ))
                }
                Var::Dep(n)
                    if build && !deps.contains(n.as_str()) && !self.deps_uncertain(recipe) =>
                {
                    Some((
                        format!(
                            "`{{dep:{n}}}` names no dependency of `{}`",
                            recipe.name.value
                        ),
                        Self::suggest(n, deps.iter().copied(), || format!("add `depends \"{n}\"`")),
                    ))
                }
                Var::Out | Var::Src | Var::Jobs | Var::Dep(_) | Var::Variant(_) if !build => {
                    Some((
                        format!("`{var}` cannot be used in a URL"),
                        "URLs may use `{version}`, `{version.FORM}` and `{name}`".to_owned(),
                    ))
                }
                _ => None,
            };
            if let Some((msg, help)) = problem {
                let span = self.template_span(t, range.clone());
                self.err(
                    "recipe::bad-placeholder",
                    msg,
                    span,
                    "this placeholder",
                    help,
                );
            }
        }
    }

    /// The package URL, mirrors and per-version URLs may use only version and name placeholders.
    pub(super) fn url_templates(&mut self, r: &Recipe) {
        if let Some(u) = &r.url {
            self.check_template(r, u, &BTreeSet::new(), false);
        }
        for m in &r.mirrors {
            self.check_template(r, m, &BTreeSet::new(), false);
        }
        for v in &r.versions {
            if let SourceDecl::Remote { url: Some(u), .. } = &v.source {
                self.check_template(r, u, &BTreeSet::new(), false);
            }
        }
    }

    /// Conditions and placeholders of the `build` block; `{dep:…}` may name dependencies,
    /// virtuals the package provides, and the compiler a runtime belongs to.
    pub(super) fn build(&mut self, r: &Recipe) {
        let Some(b) = &r.build else {
            return;
        };
        let mut ctx_deps = dep_names(r);
        if let Some(rt) = &r.runtime_for {
            ctx_deps.insert(rt.value.as_str());
        }
        for a in &b.args {
            if let Some(w) = &a.when {
                self.check_condition(r, w, "in `when`");
            }
            for v in &a.values {
                self.check_template(r, v, &ctx_deps, true);
            }
        }
        for e in &b.env {
            if let Some(w) = &e.when {
                self.check_condition(r, w, "in `when`");
            }
            self.check_template(r, &e.value, &ctx_deps, true);
        }
        for p in &b.phases {
            if let Some(w) = &p.when {
                self.check_condition(r, w, "in `when`");
            }
            for c in &p.commands {
                match c {
                    CommandDecl::Run(argv) => {
                        for a in argv {
                            self.check_template(r, a, &ctx_deps, true);
                        }
                    }
                    CommandDecl::Sh(_) => {}
                }
            }
        }
        if let Some(Some(w)) = &b.autoreconf {
            self.check_condition(r, w, "in `when`");
        }
    }
}

/// The names `{dep:…}` may use: dependencies and, since dependents reach a virtual through its
/// name too, the virtuals the package provides.
fn dep_names(r: &Recipe) -> BTreeSet<&str> {
    r.depends
        .iter()
        .map(|d| d.spec.name())
        .chain(r.provides.iter().map(|p| p.spec.name()))
        .collect()
}
