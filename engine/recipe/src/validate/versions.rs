//! Versions: none declared twice, each downloadable from somewhere, at most one preferred, and a
//! package with versions has a `build` (and one without has a `host` line or is a runtime).

use std::collections::BTreeMap;

use super::Check;
use crate::diag::{Diag, Span};
use crate::model::*;
use crate::version::Version;

impl Check<'_> {
    pub(super) fn versions(&mut self, r: &Recipe) {
        let mut seen: BTreeMap<&Version, Span> = BTreeMap::new();
        for v in &r.versions {
            if let Some(prev) = seen.get(&v.version.value) {
                self.duplicate_version(r, v, *prev);
            } else {
                seen.insert(&v.version.value, v.version.span);
            }
            self.version_source(r, v);
        }
        let preferred: Vec<&VersionDecl> = r.versions.iter().filter(|v| v.preferred).collect();
        if let [first, second, ..] = preferred.as_slice() {
            self.err(
                "recipe::several-preferred",
                format!(
                    "`{}` prefers both {} and {}",
                    r.name.value, first.version.value, second.version.value
                ),
                second.span,
                "a second preferred version",
                "mark one version `preferred=#true`: the one a target gets unless it asks for another",
            );
        }
        if r.versions.is_empty()
            && r.host.is_none()
            && r.runtime_for.is_none()
            && !["version", "host", "runtime-for"]
                .iter()
                .any(|k| r.incomplete.contains(k))
        {
            self.err(
                "recipe::no-versions",
                format!("package `{}` has no versions", r.name.value),
                r.name.span,
                "nothing to build",
                "add `version \"1.0\" sha256=\"…\"`, or a `host` line if it is taken from the machine",
            );
        }
        if !r.versions.is_empty() && r.build.is_none() && !r.incomplete.contains("build") {
            self.err(
                "recipe::missing-build",
                format!("package `{}` has versions but no `build`", r.name.value),
                r.name.span,
                "how is it built?",
                "add `build \"autotools\"` (or cmake, meson, make, custom)",
            );
        }
    }

    /// `v` repeats the version first declared at `prev` (perhaps spelt differently).
    fn duplicate_version(&mut self, r: &Recipe, v: &VersionDecl, prev: Span) {
        let set = self.set;
        let first = set.sources.get(prev.file);
        let first = first
            .text
            .get(prev.offset..prev.offset + prev.len)
            .unwrap_or_default()
            .trim_matches('"');
        let also = if first == v.version.value.as_str() {
            String::new()
        } else {
            format!(" (as `{first}`; separators do not count)")
        };
        let d = Diag::error(
            "recipe::duplicate-version",
            format!(
                "version `{}` of `{}` is declared twice{also}",
                v.version.value, r.name.value
            ),
        )
        .label(&set.sources, v.version.span, "declared again here")
        .label(&set.sources, prev, "first declared here")
        .help("remove one; if the two have different sources, give them different version names");
        self.diags.push(d);
    }

    /// A downloaded version needs a URL (its own or the package's); a local one, its files.
    fn version_source(&mut self, r: &Recipe, v: &VersionDecl) {
        match &v.source {
            SourceDecl::Remote { url, .. } => {
                if url.is_none() && r.url.is_none() && !r.incomplete.contains("url") {
                    self.err(
                        "recipe::missing-url",
                        format!("version `{}` of `{}` has no URL", v.version.value, r.name.value),
                        v.span,
                        "where from?",
                        "add `url=\"…\"` to the version, or a package-level `url \"…/{name}-{version}.tar.gz\"`",
                    );
                }
            }
            SourceDecl::Mirrored { .. } => {}
            SourceDecl::Local { path } => self.local_source(r, path),
        }
    }
}
