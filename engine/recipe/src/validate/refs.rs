//! What a spec or a condition names besides variants: the toolchain and the target
//! architecture; and conditions as a whole (variants, toolchain, architecture, version).

use super::{Check, versions_list};
use crate::diag::Span;
use crate::model::*;
use crate::spec::Spec;

impl Check<'_> {
    pub(super) fn check_toolchain_and_target(&mut self, spec: &Spec, lit: &LitSpan) {
        if let Some(tc) = &spec.toolchain
            && !self.set.toolchains.contains_key(&tc.name.value)
            && !self.set.unloaded.toolchain(&tc.name.value)
        {
            let help = Self::suggest(
                &tc.name.value,
                self.set.toolchains.keys().map(String::as_str),
                || {
                    format!(
                        "toolchains: {}",
                        self.set
                            .toolchains
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            );
            self.err(
                "recipe::unknown-toolchain",
                format!("unknown toolchain `{}`", tc.name.value),
                lit.at(tc.name.span.clone()),
                "unknown toolchain",
                help,
            );
        }
        if let Some(t) = &spec.target {
            self.check_arch(&t.value, lit.at(t.span.clone()));
        }
    }

    pub(super) fn check_arch(&mut self, name: &str, span: Span) {
        if !self.set.arches.contains_key(name) && !self.set.unloaded.arch() {
            let help = Self::suggest(name, self.set.arches.keys().map(String::as_str), || {
                format!(
                    "architectures in the target table: {}",
                    self.set
                        .arches
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            self.err(
                "recipe::unknown-arch",
                format!("unknown target architecture `{name}`"),
                span,
                "not in the target table",
                help,
            );
        }
    }

    pub(super) fn check_condition(&mut self, recipe: &Recipe, cond: &Condition, what: &str) {
        self.check_variants(&cond.spec, &cond.lit, recipe, what);
        self.check_toolchain_and_target(&cond.spec, &cond.lit);
        if let Some(v) = &cond.spec.version
            && !recipe.versions.is_empty()
            && recipe.runtime_for.is_none()
            && !recipe.incomplete.contains("version")
            && !recipe
                .versions
                .iter()
                .any(|d| v.value.matches(&d.version.value))
        {
            self.warn(
                "recipe::condition-matches-no-version",
                format!(
                    "{what}: `@{}` matches no version of `{}`",
                    v.value, recipe.name.value
                ),
                cond.lit.at(v.span.clone()),
                "never true",
                format!("versions: {}", versions_list(recipe)),
            );
        }
    }
}
