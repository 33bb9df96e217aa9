//! Targets and `defaults`: settings name existing architectures, toolchains, providers and
//! packages; root specs name existing packages, variants and versions.

use super::{Check, versions_list};
use crate::model::*;

impl Check<'_> {
    pub(super) fn settings(&mut self, who: &str, s: &TargetSettings) {
        if let Some(a) = &s.arch {
            self.check_arch(&a.value, a.span);
        }
        if let Some(t) = &s.toolchain
            && !self.set.toolchains.contains_key(&t.value)
            && !self.set.unloaded.toolchain(&t.value)
        {
            let help = Self::suggest(
                &t.value,
                self.set.toolchains.keys().map(String::as_str),
                || "name a toolchain defined in `toolchains/`".into(),
            );
            self.err(
                "recipe::unknown-toolchain",
                format!("unknown toolchain `{}`", t.value),
                t.span,
                "unknown toolchain",
                help,
            );
        }
        for (virt, p) in &s.providers {
            match self.set.providers.get(virt) {
                None if self.missing_is_explained(virt) => {}
                None => self.err(
                    "recipe::unknown-virtual",
                    format!("no package provides `{virt}`"),
                    p.span,
                    format!("chosen to provide `{virt}`, which nothing provides"),
                    "a virtual exists once some recipe says `provides \"…\"`",
                ),
                Some(list) if !list.contains(&p.value) && !self.missing_is_explained(&p.value) => {
                    let help = Self::suggest(&p.value, list.iter().map(String::as_str), || {
                        format!("providers of `{virt}`: {}", list.join(", "))
                    });
                    self.err(
                        "recipe::bad-provider",
                        format!("`{}` does not provide `{virt}`", p.value),
                        p.span,
                        "not a provider",
                        help,
                    );
                }
                Some(_) => {}
            }
        }
        for r in &s.require {
            self.check_target_spec(who, r);
        }
        for p in &s.from_source {
            if !self.set.packages.contains_key(&p.value) && !self.missing_is_explained(&p.value) {
                let help = Self::suggest(
                    &p.value,
                    self.set.packages.keys().map(String::as_str),
                    || "name a package with a recipe".into(),
                );
                self.err(
                    "recipe::unknown-package",
                    format!("`from-source` names `{}`, which does not exist", p.value),
                    p.span,
                    "no such package",
                    help,
                );
            }
        }
    }

    pub(super) fn targets(&mut self) {
        let set = self.set;
        self.settings("defaults", &set.defaults);
        for t in &set.targets {
            // Matrix rows share the matrix's settings: check them once, on the first row.
            if t.matrix.is_none()
                || set
                    .targets
                    .iter()
                    .find(|x| x.matrix == t.matrix)
                    .is_some_and(|x| std::ptr::eq(x, t))
            {
                self.settings(&t.name.value, &t.settings);
            }
            self.check_target_spec(&t.name.value, &t.spec);
            for extra in &t.extra_roots {
                self.check_target_spec(&t.name.value, extra);
            }
        }
    }

    /// A target's root spec (or a further root): its package, variants, version, toolchain and
    /// the packages it constrains exist.
    pub(super) fn check_target_spec(&mut self, target: &str, lit: &SpecLit) {
        let set = self.set;
        let spec = &lit.spec;
        let name = spec.name().unwrap_or_default();
        let name_span = lit
            .lit
            .at(spec.name.as_ref().map_or(0..0, |n| n.span.clone()));
        match set.packages.get(name) {
            None if self.missing_is_explained(name) => {}
            None => {
                let help = Self::suggest(name, set.packages.keys().map(String::as_str), || {
                    "add its recipe under `recipes/`".into()
                });
                self.err(
                    "recipe::unknown-package",
                    format!(
                        "target `{}` names package `{name}`, which does not exist",
                        target
                    ),
                    name_span,
                    "no such package",
                    help,
                );
            }
            Some(r) => {
                self.check_variants(spec, &lit.lit, r, &format!("in target `{}`", target));
                if let Some(v) = &spec.version
                    && r.host.is_none()
                    && !r.incomplete.contains("version")
                    && !r.versions.iter().any(|x| v.value.matches(&x.version.value))
                {
                    self.err(
                        "recipe::no-matching-version",
                        format!(
                            "target `{}`: `{name}@{}` matches no version",
                            target, v.value
                        ),
                        lit.lit.at(v.span.clone()),
                        "no such version",
                        format!("versions of `{name}`: {}", versions_list(r)),
                    );
                }
            }
        }
        self.check_toolchain_and_target(spec, &lit.lit);
        for dep in &spec.deps {
            let dn = dep.name().unwrap_or_default();
            match set.packages.get(dn) {
                Some(r) => {
                    self.check_variants(dep, &lit.lit, r, &format!("in target `{}`", target))
                }
                None if self.missing_is_explained(dn) => {}
                None => {
                    let help = Self::suggest(dn, set.packages.keys().map(String::as_str), || {
                        "add its recipe under `recipes/`".into()
                    });
                    self.err(
                        "recipe::unknown-package",
                        format!(
                            "target `{}` constrains `{dn}`, which does not exist",
                            target
                        ),
                        lit.lit.at(dep.span.clone()),
                        "no such package",
                        help,
                    );
                }
            }
        }
    }
}
