//! Choosing a node: the host's tool as found, or the newest version every constraint allows and
//! the variants the constraints set over the defaults.

use std::collections::{BTreeMap, BTreeSet};

use forge_recipe::spec::VariantSetting;
use forge_recipe::{Diag, VariantKind, VariantValue, Version};

use super::passes::Pass;
use super::{Chosen, Constraint};
use crate::graph::{Context, NodeKey, Origin};
use crate::host::HostTool;

impl Pass<'_, '_> {
    fn describe(cs: &[&Constraint]) -> String {
        cs.iter()
            .map(|c| {
                let mut s = String::new();
                if !c.version.is_any() {
                    s.push_str(&format!("@{}", c.version));
                }
                for (n, v) in &c.variants {
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&match v {
                        VariantSetting::Bool(true) => format!("+{n}"),
                        VariantSetting::Bool(false) => format!("~{n}"),
                        VariantSetting::Values(vs) => format!("{n}={}", vs.join(",")),
                    });
                }
                if s.is_empty() {
                    s.push_str("any version");
                }
                format!("`{s}` from {}", c.origin)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn choose(&mut self, key: &NodeKey) -> Result<Option<Chosen>, Box<Diag>> {
        let set = self.r.set;
        let r = self.r.recipe(&key.package);
        let cs = self.constraint_list(key);
        let defaults: BTreeMap<String, VariantValue> = r
            .variants
            .iter()
            .map(|v| (v.name.value.clone(), v.default_value()))
            .collect();
        if key.context == Context::Host {
            let decl = r
                .host
                .as_ref()
                .expect("host keys only for packages with a host line");
            let tool: HostTool = self
                .r
                .host
                .probe(&key.package, decl)
                .expect("probed when the key was made");
            if let Some(bad) = cs.iter().find(|c| !c.version.matches(&tool.version)) {
                if !r.versions.is_empty() {
                    // Fall back to building it; the next pass starts over without the host tool.
                    self.newly_rejected.insert(key.package.clone());
                    return Ok(None);
                }
                let mut d = Diag::error(
                    "resolve::host-version",
                    format!(
                        "the host's `{}` is version {}, but `@{}` is required by {}",
                        key.package, tool.version, bad.version, bad.origin
                    ),
                );
                if let Some(s) = bad.span() {
                    d = d.label(&set.sources, s, "required here");
                }
                let d = d.help(format!(
                    "install a matching `{}` (found `{}`), or add buildable versions to its recipe",
                    decl.executables[0].value,
                    tool.executables[0].1.display()
                ));
                return Err(Box::new(d));
            }
            for c in &cs {
                for (n, setting) in &c.variants {
                    let ok = defaults
                        .get(n)
                        .is_some_and(|v| forge_recipe::model::setting_matches(setting, v));
                    if !ok {
                        let d = Diag::error(
                            "resolve::host-variant",
                            format!("`{}` is taken from the host, which cannot honour `{n}={setting}` asked by {}", key.package, c.origin),
                        )
                        .help(format!("add `from-source \"{}\"` to the target to build it with that variant", key.package));
                        return Err(Box::new(d));
                    }
                }
            }
            return Ok(Some(Chosen {
                version: tool.version.clone(),
                variants: defaults,
                origin: Origin::Host(tool),
            }));
        }
        // Version.
        let version = if r.runtime_for.is_some() {
            match &key.context {
                Context::Toolchain {
                    compiler_version, ..
                } => compiler_version.clone(),
                Context::Host => unreachable!("runtimes are never host keys"),
            }
        } else {
            let explicit_deprecated = |v: &Version| {
                cs.iter().any(|c| {
                    c.version.ranges().iter().any(
                        |rg| matches!(rg, forge_recipe::version::VersionRange::Exact(x) if x == v),
                    )
                })
            };
            let best = r
                .versions
                .iter()
                .filter(|v| cs.iter().all(|c| c.version.matches(&v.version.value)))
                .filter(|v| !v.deprecated || explicit_deprecated(&v.version.value))
                .map(|v| &v.version.value)
                .max();
            match best {
                Some(v) => v.clone(),
                None => {
                    let mut d = Diag::error(
                        "resolve::no-version",
                        format!(
                            "no version of `{}` satisfies every constraint: {}",
                            key.package,
                            Self::describe(&cs)
                        ),
                    );
                    if let Some(s) = cs.iter().find_map(|c| c.span()) {
                        d = d.label(&set.sources, s, "one of the constraints");
                    }
                    let mut vs: Vec<&Version> =
                        r.versions.iter().map(|v| &v.version.value).collect();
                    vs.sort();
                    let d = d.help(format!(
                        "versions of `{}`: {}",
                        key.package,
                        vs.iter()
                            .rev()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    return Err(Box::new(d));
                }
            }
        };
        // Variants.
        let mut variants = defaults;
        let mut set_by: BTreeMap<String, &Constraint> = BTreeMap::new();
        for c in &cs {
            for (n, setting) in &c.variants {
                let Some(decl) = r.variant(n) else {
                    let d = Diag::error(
                        "resolve::unknown-variant",
                        format!(
                            "{} asks for variant `{n}` of `{}`, which has none by that name",
                            c.origin, key.package
                        ),
                    );
                    return Err(Box::new(d.help(format!(
                            "variants of `{}`: {}",
                            key.package,
                            r.variants
                                .iter()
                                .map(|v| v.name.value.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))));
                };
                let new = match (&decl.kind, setting) {
                    (VariantKind::Bool { .. }, VariantSetting::Bool(b)) => VariantValue::Bool(*b),
                    (VariantKind::Single { .. }, VariantSetting::Values(v)) if v.len() == 1 => {
                        VariantValue::Single(v[0].clone())
                    }
                    (VariantKind::Multi { .. }, VariantSetting::Values(v)) => {
                        let mut all: BTreeSet<String> = v.iter().cloned().collect();
                        if set_by.contains_key(n)
                            && let Some(VariantValue::Multi(prev)) = variants.get(n)
                        {
                            all.extend(prev.iter().cloned());
                        }
                        VariantValue::Multi(all.into_iter().collect())
                    }
                    _ => {
                        let d = Diag::error(
                            "resolve::bad-variant-value",
                            format!(
                                "{} sets `{n}` of `{}` to `{setting}`, which it cannot take",
                                c.origin, key.package
                            ),
                        );
                        return Err(Box::new(
                            d.help("see the variant's declaration in the recipe"),
                        ));
                    }
                };
                if let Some(prev) = set_by.get(n) {
                    let same = variants.get(n) == Some(&new);
                    if !same && !matches!(new, VariantValue::Multi(_)) {
                        let mut d = Diag::error(
                            "resolve::variant-conflict",
                            format!(
                                "`{}` is asked for `{n}={}` by {} and `{n}={}` by {}",
                                key.package, variants[n], prev.origin, new, c.origin
                            ),
                        );
                        if let Some(s) = c.span() {
                            d = d.label(&set.sources, s, "one of the two");
                        }
                        return Err(Box::new(d.help(
                            "make the two requirements agree, or make one of them conditional",
                        )));
                    }
                }
                variants.insert(n.clone(), new);
                set_by.insert(n.clone(), c);
            }
        }
        Ok(Some(Chosen {
            version,
            variants,
            origin: Origin::Build,
        }))
    }
}
