//! Variants: the variant clauses of specs and conditions against the package's declarations,
//! the package's defaults against its own conflicts, and the Spack variant mapping.

use std::collections::{BTreeMap, BTreeSet};

use super::Check;
use crate::diag::{Diag, Span};
use crate::model::*;
use crate::spec::{Spec, VariantClause, VariantSetting};

impl Check<'_> {
    /// Checks the variant clauses of `spec` against `recipe`'s variants.
    pub(super) fn check_variants(
        &mut self,
        spec: &Spec,
        lit: &LitSpan,
        recipe: &Recipe,
        context: &str,
    ) {
        for clause in &spec.variants {
            let span = lit.at(clause.span.clone());
            match recipe.variant(&clause.name.value) {
                Some(decl) => self.check_variant_setting(decl, clause, span, recipe, context),
                None if recipe.incomplete.contains("variant") => {}
                None => self.unknown_variant(&clause.name.value, span, recipe, context),
            }
        }
    }

    fn unknown_variant(&mut self, name: &str, span: Span, recipe: &Recipe, context: &str) {
        let help = Self::suggest(
            name,
            recipe.variants.iter().map(|v| v.name.value.as_str()),
            || {
                if recipe.variants.is_empty() {
                    format!("`{}` has no variants", recipe.name.value)
                } else {
                    format!(
                        "variants of `{}`: {}",
                        recipe.name.value,
                        recipe
                            .variants
                            .iter()
                            .map(|v| v.name.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            },
        );
        self.err(
            "recipe::unknown-variant",
            format!("{context}: `{}` has no variant `{name}`", recipe.name.value),
            span,
            "unknown variant",
            help,
        );
    }

    /// A clause setting a declared variant: on/off for on/off variants, allowed values otherwise.
    fn check_variant_setting(
        &mut self,
        decl: &VariantDecl,
        clause: &VariantClause,
        span: Span,
        recipe: &Recipe,
        context: &str,
    ) {
        let name = &clause.name.value;
        match (&decl.kind, &clause.setting) {
            (VariantKind::Bool { .. }, VariantSetting::Bool(_)) => {}
            (VariantKind::Bool { .. }, VariantSetting::Values(_)) => self.err(
                "recipe::bad-variant-value",
                format!(
                    "{context}: `{name}` is an on/off variant of `{}`",
                    recipe.name.value
                ),
                span,
                "given a value",
                format!("write `+{name}` or `~{name}`"),
            ),
            (_, VariantSetting::Bool(_)) => self.err(
                "recipe::bad-variant-value",
                format!(
                    "{context}: `{name}` of `{}` takes a value, not on/off",
                    recipe.name.value
                ),
                span,
                "used as on/off",
                format!("write `{name}=VALUE`"),
            ),
            (
                VariantKind::Single { values, .. } | VariantKind::Multi { values, .. },
                VariantSetting::Values(given),
            ) => {
                if matches!(decl.kind, VariantKind::Single { .. }) && given.len() > 1 {
                    self.err(
                        "recipe::bad-variant-value",
                        format!(
                            "{context}: `{name}` of `{}` takes one value",
                            recipe.name.value
                        ),
                        span,
                        "several values",
                        "pick one value",
                    );
                    return;
                }
                for g in given {
                    if !values.is_empty() && !values.contains(g) {
                        let help = Self::suggest(g, values.iter().map(String::as_str), || {
                            format!("allowed values: {}", values.join(", "))
                        });
                        self.err(
                            "recipe::bad-variant-value",
                            format!(
                                "{context}: `{g}` is not a value of variant `{name}` of `{}`",
                                recipe.name.value
                            ),
                            span,
                            "not allowed",
                            help,
                        );
                    }
                }
            }
        }
    }

    /// A conflict that holds for the package's defaults makes the package unusable as written.
    pub(super) fn conflicting_defaults(&mut self, r: &Recipe) {
        let Some(newest) = r
            .versions
            .iter()
            .filter(|v| !v.deprecated)
            .map(|v| &v.version.value)
            .max()
        else {
            return;
        };
        let defaults: BTreeMap<String, VariantValue> = r
            .variants
            .iter()
            .map(|v| (v.name.value.clone(), v.default_value()))
            .collect();
        let facts = Facts {
            version: newest,
            variants: &defaults,
            toolchain: None,
            arch: None,
        };
        for c in &r.conflicts {
            let env_free = |s: &Spec| s.toolchain.is_none() && s.target.is_none();
            if !env_free(&c.cond.spec) || c.when.as_ref().is_some_and(|w| !env_free(&w.spec)) {
                continue;
            }
            if c.cond.spec.variants.is_empty()
                && c.when.as_ref().is_none_or(|w| w.spec.variants.is_empty())
            {
                continue;
            }
            let holds =
                c.cond.holds_for(&facts) && c.when.as_ref().is_none_or(|w| w.holds_for(&facts));
            if holds {
                let first_default = c
                    .cond
                    .spec
                    .variants
                    .first()
                    .and_then(|cl| r.variant(&cl.name.value))
                    .map_or(r.name.span, |v| v.default_span);
                let why = c
                    .message
                    .clone()
                    .unwrap_or_else(|| "the recipe declares this combination as a conflict".into());
                let d = Diag::error(
                    "recipe::conflicting-defaults",
                    format!("the defaults of `{}` conflict with its own `conflicts \"{}\"`", r.name.value, c.cond.spec),
                )
                .label(&self.set.sources, c.span, format!("holds for the defaults of {}@{newest}: {why}", r.name.value))
                .label(&self.set.sources, first_default, "default set here")
                .help("change a default so that the defaults build, or narrow the conflict with `when=`");
                self.diags.push(d);
            }
        }
    }

    /// The `spack` block: the forge variants it maps exist; its version template's placeholders.
    pub(super) fn spack_mapping(&mut self, r: &Recipe) {
        for (forge_name, spack_name) in &r.spack.variants {
            if r.variant(forge_name).is_none() && !r.incomplete.contains("variant") {
                self.err(
                    "recipe::unknown-variant",
                    format!(
                        "the Spack mapping names variant `{forge_name}`, which `{}` does not have",
                        r.name.value
                    ),
                    spack_name.span,
                    "unknown forge variant",
                    "the first argument of `variant` inside `spack` is the forge variant's name",
                );
            }
        }
        for (forge_name, span) in &r.spack.omit {
            if r.variant(forge_name).is_none() && !r.incomplete.contains("variant") {
                self.err(
                    "recipe::unknown-variant",
                    format!(
                        "the Spack mapping omits variant `{forge_name}`, which `{}` does not have",
                        r.name.value
                    ),
                    *span,
                    "unknown forge variant",
                    "`omit` inside `spack` names forge variants that Spack's recipe lacks",
                );
            }
        }
        for f in &r.spack.fixed {
            if let Some(w) = &f.when {
                self.check_condition(r, w, "in `when`");
            }
        }
        for SpackFixed {
            name: spack_name,
            value,
            ..
        } in &r.spack.fixed
        {
            let mapped = r
                .variants
                .iter()
                .filter(|v| !r.spack.omit.contains_key(&v.name.value))
                .any(|v| {
                    r.spack
                        .variants
                        .get(&v.name.value)
                        .map_or(&v.name.value, |s| &s.value)
                        == spack_name
                });
            if mapped {
                self.err(
                    "recipe::conflicting-defaults",
                    format!(
                        "the Spack variant `{spack_name}` is both set to a fixed value and taken from a forge variant"
                    ),
                    value.span,
                    "set here",
                    "`set` is for Spack variants forge does not model; map or omit the forge variant instead",
                );
            }
        }
        if let Some(t) = &r.spack.version {
            self.check_template(r, t, &BTreeSet::new(), false);
        }
    }
}
