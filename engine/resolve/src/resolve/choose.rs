//! Choosing a node: the host's tool as found, or the newest version every constraint allows and
//! the variants the constraints set over the defaults.

use std::collections::{BTreeMap, BTreeSet};

use forge_recipe::spec::VariantSetting;
use forge_recipe::{Diag, Recipe, VariantDecl, VariantKind, VariantValue, Version};

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
        let r = self.r.recipe(&key.package);
        let cs = self.constraint_list(key);
        let defaults: BTreeMap<String, VariantValue> = r
            .variants
            .iter()
            .map(|v| (v.name.value.clone(), v.default_value()))
            .collect();
        if key.context == Context::Host {
            let chosen = self.choose_host(key, r, &cs, defaults)?;
            if chosen.is_none() {
                // Fall back to building it; the next pass starts over without the host tool.
                self.newly_rejected.insert(key.package.clone());
            }
            return Ok(chosen);
        }
        let version = self.choose_version(key, r, &cs)?;
        let variants = self.choose_variants(key, r, &cs, defaults)?;
        Ok(Some(Chosen {
            version,
            variants,
            origin: Origin::Build,
        }))
    }

    /// The host's tool, with the default variants: `None` when its version misses a constraint
    /// and the recipe can build the package instead.
    fn choose_host(
        &self,
        key: &NodeKey,
        r: &Recipe,
        cs: &[&Constraint],
        defaults: BTreeMap<String, VariantValue>,
    ) -> Result<Option<Chosen>, Box<Diag>> {
        let set = self.r.set;
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
        for c in cs {
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
        Ok(Some(Chosen {
            version: tool.version.clone(),
            variants: defaults,
            origin: Origin::Host(tool),
        }))
    }

    /// A runtime takes its compiler's version; anything else the newest version every constraint
    /// allows — a preferred one if any is allowed — deprecated ones only when asked for exactly.
    fn choose_version(
        &self,
        key: &NodeKey,
        r: &Recipe,
        cs: &[&Constraint],
    ) -> Result<Version, Box<Diag>> {
        if r.runtime_for.is_some() {
            return Ok(match &key.context {
                Context::Toolchain {
                    compiler_version, ..
                } => compiler_version.clone(),
                Context::Host => unreachable!("runtimes are never host keys"),
            });
        }
        let explicit_deprecated = |v: &Version| {
            cs.iter().any(|c| {
                c.version
                    .ranges()
                    .iter()
                    .any(|rg| matches!(rg, forge_recipe::version::VersionRange::Exact(x) if x == v))
            })
        };
        let best = r
            .versions
            .iter()
            .filter(|v| cs.iter().all(|c| c.version.matches(&v.version.value)))
            .filter(|v| !v.deprecated || explicit_deprecated(&v.version.value))
            .max_by(|a, b| (a.preferred, &a.version.value).cmp(&(b.preferred, &b.version.value)))
            .map(|v| &v.version.value);
        match best {
            Some(v) => Ok(v.clone()),
            None => Err(self.no_version(key, r, cs)),
        }
    }

    fn no_version(&self, key: &NodeKey, r: &Recipe, cs: &[&Constraint]) -> Box<Diag> {
        let mut d = Diag::error(
            "resolve::no-version",
            format!(
                "no version of `{}` satisfies every constraint: {}",
                key.package,
                Self::describe(cs)
            ),
        );
        if let Some(s) = cs.iter().find_map(|c| c.span()) {
            d = d.label(&self.r.set.sources, s, "one of the constraints");
        }
        let mut vs: Vec<&Version> = r.versions.iter().map(|v| &v.version.value).collect();
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
        Box::new(d)
    }

    /// The defaults, overridden by each constraint's variant settings in order; multi-valued
    /// settings add up, other settings of one variant must agree.
    fn choose_variants(
        &self,
        key: &NodeKey,
        r: &Recipe,
        cs: &[&Constraint],
        defaults: BTreeMap<String, VariantValue>,
    ) -> Result<BTreeMap<String, VariantValue>, Box<Diag>> {
        let mut variants = defaults;
        let mut set_by: BTreeMap<String, &Constraint> = BTreeMap::new();
        for c in cs {
            for (n, setting) in &c.variants {
                let Some(decl) = r.variant(n) else {
                    return Err(unknown_variant(key, r, c, n));
                };
                let previous = if set_by.contains_key(n) {
                    variants.get(n)
                } else {
                    None
                };
                let Some(new) = setting_value(decl, setting, previous) else {
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
                };
                if let Some(prev) = set_by.get(n) {
                    let same = variants.get(n) == Some(&new);
                    if !same && !matches!(new, VariantValue::Multi(_)) {
                        return Err(self.variant_conflict(key, n, &variants[n], prev, &new, c));
                    }
                }
                variants.insert(n.clone(), new);
                set_by.insert(n.clone(), c);
            }
        }
        Ok(variants)
    }

    /// Two constraints set one variant to different values.
    fn variant_conflict(
        &self,
        key: &NodeKey,
        n: &str,
        old: &VariantValue,
        prev: &Constraint,
        new: &VariantValue,
        c: &Constraint,
    ) -> Box<Diag> {
        let mut d = Diag::error(
            "resolve::variant-conflict",
            format!(
                "`{}` is asked for `{n}={}` by {} and `{n}={}` by {}",
                key.package, old, prev.origin, new, c.origin
            ),
        );
        if let Some(s) = c.span() {
            d = d.label(&self.r.set.sources, s, "one of the two");
        }
        Box::new(d.help("make the two requirements agree, or make one of them conditional"))
    }
}

/// The value `setting` gives a variant declared as `decl`, added to the `previous` setting of a
/// multi-valued variant; `None` when the variant cannot take it.
fn setting_value(
    decl: &VariantDecl,
    setting: &VariantSetting,
    previous: Option<&VariantValue>,
) -> Option<VariantValue> {
    Some(match (&decl.kind, setting) {
        (VariantKind::Bool { .. }, VariantSetting::Bool(b)) => VariantValue::Bool(*b),
        (VariantKind::Single { .. }, VariantSetting::Values(v)) if v.len() == 1 => {
            VariantValue::Single(v[0].clone())
        }
        (VariantKind::Multi { .. }, VariantSetting::Values(v)) => {
            let mut all: BTreeSet<String> = v.iter().cloned().collect();
            if let Some(VariantValue::Multi(prev)) = previous {
                all.extend(prev.iter().cloned());
            }
            VariantValue::Multi(all.into_iter().collect())
        }
        _ => return None,
    })
}

fn unknown_variant(key: &NodeKey, r: &Recipe, c: &Constraint, n: &str) -> Box<Diag> {
    let d = Diag::error(
        "resolve::unknown-variant",
        format!(
            "{} asks for variant `{n}` of `{}`, which has none by that name",
            c.origin, key.package
        ),
    );
    Box::new(d.help(format!(
        "variants of `{}`: {}",
        key.package,
        r.variants
            .iter()
            .map(|v| v.name.value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
