//! Checks that need the whole recipe set: references between packages, toolchains and targets,
//! version constraints against declared versions, placeholders against variants and
//! dependencies, files beside recipes, defaults against conflicts, and dependency cycles.
//!
//! One checker per section, each an `impl` block on the shared `Check` context: `versions`,
//! `variants`, `refs` (what a spec or condition names), `depends` (dependencies, provides,
//! conflicts, cycles), `files` (local sources and patches), `placeholders` (URL and build
//! templates, build conditions), `toolchains` and `targets`.

mod depends;
mod files;
mod placeholders;
mod refs;
mod targets;
mod toolchains;
mod variants;
mod versions;

use crate::diag::{Diag, Diagnostics, Span, did_you_mean};
use crate::model::*;
use crate::set::RecipeSet;
use crate::version::Version;

/// What every checker shares: the set under check and where diagnostics go.
struct Check<'a> {
    set: &'a RecipeSet,
    diags: &'a mut Diagnostics,
}

impl Check<'_> {
    /// Reports an error with one label.
    fn err(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diag::error(code, msg)
            .label(&self.set.sources, span, label)
            .help(help);
        self.diags.push(d);
    }

    /// Reports a warning with one label.
    fn warn(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diag::warning(code, msg)
            .label(&self.set.sources, span, label)
            .help(help);
        self.diags.push(d);
    }

    /// Whether a reference to a package (or virtual) that does not exist repeats a mistake
    /// already reported: its recipe, or the `provides` line naming it, failed to load.
    fn missing_is_explained(&self, name: &str) -> bool {
        self.set.unloaded.package(name)
    }

    fn suggest<'b>(
        word: &str,
        candidates: impl IntoIterator<Item = &'b str>,
        otherwise: impl FnOnce() -> String,
    ) -> String {
        match did_you_mean(word, candidates) {
            Some(s) => format!("did you mean `{s}`?"),
            None => otherwise(),
        }
    }

    /// Every check of one package, section by section, in this order.
    fn recipe(&mut self, r: &Recipe) {
        self.versions(r);
        self.url_templates(r);
        self.depends(r);
        self.provides(r);
        self.conflicts(r);
        self.patches(r);
        self.build(r);
        self.spack_mapping(r);
        self.runtime_for(r);
        self.conflicting_defaults(r);
    }
}

fn versions_list(r: &Recipe) -> String {
    if r.versions.is_empty() {
        return "none (taken from the host)".to_owned();
    }
    let mut vs: Vec<&Version> = r.versions.iter().map(|v| &v.version.value).collect();
    vs.sort();
    vs.iter()
        .rev()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// sha256 of a byte string (for patch checksums).
pub fn sha256_of(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Runs every cross-file check.
pub(crate) fn validate(set: &RecipeSet, diags: &mut Diagnostics) {
    let mut v = Check { set, diags };
    for r in set.packages.values() {
        v.recipe(r);
    }
    v.cycles();
    v.toolchains();
    v.targets();
}
