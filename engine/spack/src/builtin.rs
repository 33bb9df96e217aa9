//! What Spack's `builtin` recipes declare, for the release of spack-packages that Spack v1.0.0
//! pins (`releases/v2025.07`): per package, its known versions, its variants (default, allowed
//! values, the condition each exists under) and its dependencies. Facts read once from the
//! recipes by `tests/spack/vendor-metadata.sh` into `data/builtin-v2025.07.json`; no recipe code.
//!
//! The export uses them to describe host tools as `spack external find` would (an external
//! carries every variant of its recipe at the default, as in the specs Spack writes), and the
//! tests check every exported `builtin` spec against them: a spec Spack's recipe cannot account
//! for is not reused by Spack's solver.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::spec::VariantValue;

/// The packages of one spack-packages release, by name.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct BuiltinRepo {
    packages: BTreeMap<String, BuiltinPackage>,
}

/// One package of the builtin repository.
#[derive(Debug, Deserialize)]
pub struct BuiltinPackage {
    /// Versions its recipe declares, newest first.
    pub versions: Vec<String>,
    /// Its variant declarations, in the recipe's order (a later declaration of a name wins
    /// where both conditions hold, as in Spack).
    pub variants: Vec<BuiltinVariant>,
    /// Its dependency declarations.
    pub depends: Vec<BuiltinDep>,
    /// The virtual packages it provides.
    #[serde(default)]
    pub provides: Vec<String>,
}

/// A variant declaration.
#[derive(Debug, Deserialize)]
pub struct BuiltinVariant {
    /// Its name.
    pub name: String,
    /// Its default: a boolean, or a string (comma-separated for multi-valued variants).
    pub default: serde_json::Value,
    /// Whether it takes several values.
    pub multi: bool,
    /// The allowed values; empty when any value is allowed.
    pub values: Vec<String>,
    /// The condition it exists under (`""`: always).
    pub when: String,
}

/// A dependency declaration.
#[derive(Debug, Deserialize)]
pub struct BuiltinDep {
    /// The package or virtual depended on.
    pub name: String,
    /// Its dependency types (`build`, `link`, `run`, `test`).
    pub types: Vec<String>,
    /// The condition it holds under.
    pub when: String,
}

/// The release forge's exports target.
pub fn builtin() -> &'static BuiltinRepo {
    static REPO: OnceLock<BuiltinRepo> = OnceLock::new();
    REPO.get_or_init(|| {
        serde_json::from_str(include_str!("../data/builtin-v2025.07.json"))
            .expect("the vendored builtin metadata is valid JSON of the expected shape")
    })
}

impl BuiltinRepo {
    /// The package named `name`.
    pub fn package(&self, name: &str) -> Option<&BuiltinPackage> {
        self.packages.get(name)
    }

    /// The packages providing virtual `name`.
    pub fn providers(&self, name: &str) -> impl Iterator<Item = &str> {
        self.packages
            .iter()
            .filter(move |(_, p)| p.provides.iter().any(|v| v == name))
            .map(|(n, _)| n.as_str())
    }
}

impl BuiltinVariant {
    /// The default as a spec holds it.
    pub fn default_value(&self) -> VariantValue {
        match &self.default {
            serde_json::Value::Bool(b) => VariantValue::Bool(*b),
            serde_json::Value::String(s) if self.multi => {
                let mut v: Vec<String> = s
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect();
                v.sort();
                v.dedup();
                VariantValue::Multi(v)
            }
            serde_json::Value::String(s) => VariantValue::Single(s.clone()),
            other => VariantValue::Single(other.to_string()),
        }
    }

    /// Whether `value` is one the declaration allows.
    pub fn allows(&self, value: &VariantValue) -> bool {
        let ok = |s: &str| self.values.is_empty() || self.values.iter().any(|v| v == s);
        match value {
            VariantValue::Bool(b) => {
                self.default.is_boolean() || ok(if *b { "True" } else { "False" })
            }
            VariantValue::Single(s) => !self.multi && !self.default.is_boolean() && ok(s),
            VariantValue::Multi(m) => self.multi && m.iter().all(|s| ok(s)),
        }
    }
}

impl BuiltinPackage {
    /// The variant declarations in force for a node at `version` with `values`, by name (the
    /// last declaration whose condition holds).
    pub fn variants_for(
        &self,
        version: &str,
        values: &BTreeMap<String, VariantValue>,
    ) -> BTreeMap<&str, &BuiltinVariant> {
        let mut out = BTreeMap::new();
        for v in &self.variants {
            if condition_holds(&v.when, version, values) {
                out.insert(v.name.as_str(), v);
            }
        }
        out
    }

    /// Every variant at its default for `version`, as Spack fills in an external it found:
    /// variants whose condition names other variants are settled over a few rounds.
    pub fn defaults(&self, version: &str) -> BTreeMap<String, VariantValue> {
        let mut values = BTreeMap::new();
        for _ in 0..3 {
            let next: BTreeMap<String, VariantValue> = self
                .variants_for(version, &values)
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.default_value()))
                .collect();
            if next == values {
                break;
            }
            values = next;
        }
        values
    }

    /// Whether the recipe declares a dependency on `name` (itself, or a virtual it provides,
    /// as listed in `provides`) that can hold on Linux.
    pub fn declares_dependency(&self, name: &str, provides: &[String]) -> bool {
        self.depends
            .iter()
            .any(|d| (d.name == name || provides.contains(&d.name)) && !foreign_platform(&d.when))
    }

    /// Whether the recipe knows `version`.
    pub fn knows_version(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

/// Whether a condition names another platform (`arch=darwin-None-None`).
fn foreign_platform(when: &str) -> bool {
    when.split_whitespace().any(|t| {
        t.strip_prefix("arch=")
            .or_else(|| t.strip_prefix("platform="))
            .is_some_and(|a| !a.starts_with("linux") && !a.starts_with("None"))
    })
}

/// Whether Spack's condition `when` holds for a Linux node at `version` with `values`: version
/// ranges (`@1.2:`, `@:4`, `@2.0.0:2.9.3`, `@master`), `+v`/`~v`, `v=value` (for a multi-valued
/// variant: among its values) and `arch=`/`platform=`. A condition on a dependency
/// (`^cmake@3.9:`) is taken to hold: what an export describes was built.
pub fn condition_holds(when: &str, version: &str, values: &BTreeMap<String, VariantValue>) -> bool {
    let mut rest = when.trim();
    while !rest.is_empty() {
        // A dependency's constraints run to the end: `^cmake@3.9:` (or up to the next `^`).
        if let Some(dep) = rest.strip_prefix('^') {
            rest = dep.find('^').map_or("", |i| &dep[i..]);
            continue;
        }
        let end = rest[1..]
            .find([' ', '+', '~', '@', '^'])
            .map_or(rest.len(), |i| i + 1);
        let (token, tail) = rest.split_at(end);
        rest = tail.trim_start();
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        let holds = if let Some(range) = token.strip_prefix('@') {
            version_in(version, range)
        } else if let Some(v) = token.strip_prefix('+') {
            values.get(v) == Some(&VariantValue::Bool(true))
        } else if let Some(v) = token.strip_prefix('~') {
            values.get(v) == Some(&VariantValue::Bool(false))
        } else if let Some((k, want)) = token.split_once('=') {
            match k {
                "arch" | "platform" => !foreign_platform(token),
                "target" | "os" => true,
                _ => match values.get(k) {
                    Some(VariantValue::Single(s)) => want.split(',').any(|w| w == s),
                    Some(VariantValue::Multi(m)) => {
                        want.split(',').all(|w| m.iter().any(|x| x == w))
                    }
                    Some(VariantValue::Bool(b)) => want == if *b { "True" } else { "False" },
                    None => false,
                },
            }
        } else {
            // A bare name (a compiler such as `%gcc` was dropped by the vendoring): holds.
            true
        };
        if !holds {
            return false;
        }
    }
    true
}

/// Version components: numbers compare as numbers, words as text after numbers (Spack orders
/// `develop`/`master` above numbers, which no export carries).
fn components(v: &str) -> Vec<Result<u64, &str>> {
    v.split(['.', '-', '_'])
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<u64>().map_err(|_| c))
        .collect()
}

fn cmp_components(a: &[Result<u64, &str>], b: &[Result<u64, &str>]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(x), Err(y)) => x.cmp(y),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether `version` lies in Spack's range `range` (`a:b`, `a:`, `:b`, `a`): a bound matches
/// every version it is a prefix of (`@:4` includes 4.2).
pub fn version_in(version: &str, range: &str) -> bool {
    let v = components(version);
    let prefix_of =
        |bound: &[Result<u64, &str>]| v.len() >= bound.len() && v[..bound.len()] == *bound;
    range.split(',').any(|r| match r.split_once(':') {
        None => prefix_of(&components(r.trim_start_matches('='))),
        Some((lo, hi)) => {
            let (lo, hi) = (components(lo), components(hi));
            (lo.is_empty() || cmp_components(&v, &lo) != std::cmp::Ordering::Less)
                && (hi.is_empty()
                    || cmp_components(&v, &hi) != std::cmp::Ordering::Greater
                    || prefix_of(&hi))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges_follow_spack() {
        assert!(version_in("4.2.1", ":4"));
        assert!(!version_in("5.0", ":4"));
        assert!(version_in("1.11.0", "1.11.0:"));
        assert!(!version_in("1.10.9", "1.11.0:"));
        assert!(version_in("2.9.3.1", "2.0.0:2.9.3"));
        assert!(!version_in("2.9.4", "2.0.0:2.9.3"));
        assert!(version_in("22-05-8-1", "22.05"));
        assert!(!version_in("23-02-7-1", "22.05"));
        assert!(!version_in("3.0.20", "master"));
    }

    #[test]
    fn conditions_read_versions_variants_and_platforms() {
        let values: BTreeMap<String, VariantValue> = [
            (
                "build_system".to_owned(),
                VariantValue::Single("cmake".into()),
            ),
            ("restd".to_owned(), VariantValue::Bool(true)),
            (
                "schedulers".to_owned(),
                VariantValue::Multi(vec!["slurm".into()]),
            ),
        ]
        .into();
        assert!(condition_holds("", "1.0", &values));
        assert!(condition_holds(
            "build_system=cmake ^cmake@3.9:",
            "1.0",
            &values
        ));
        assert!(!condition_holds("build_system=meson", "1.0", &values));
        assert!(condition_holds("+restd", "1.0", &values));
        assert!(!condition_holds("~restd", "1.0", &values));
        assert!(condition_holds("@1.5.5:4 schedulers=slurm", "2.0", &values));
        assert!(!condition_holds(
            "@1.5.5:4 schedulers=slurm",
            "5.0",
            &values
        ));
        assert!(condition_holds("arch=linux-None-None", "1.0", &values));
        assert!(!condition_holds("arch=windows-None-None", "1.0", &values));
        assert!(!condition_holds(
            "@:3.12 arch=darwin-None-None",
            "3.11",
            &values
        ));
        assert!(condition_holds("@1.65.0:+context", "1.80", &{
            let mut v = values.clone();
            v.insert("context".into(), VariantValue::Bool(true));
            v
        }));
    }

    #[test]
    fn defaults_are_those_of_the_vendored_recipes() {
        let repo = builtin();
        let gcc = repo.package("gcc").expect("gcc is vendored");
        let d = gcc.defaults("12.2.0");
        assert_eq!(d["bootstrap"], VariantValue::Bool(true));
        assert_eq!(
            d["build_type"],
            VariantValue::Single("RelWithDebInfo".into())
        );
        assert_eq!(d["build_system"], VariantValue::Single("autotools".into()));
        // Conditional on the build system chosen by default.
        let json_c = repo.package("json-c").unwrap().defaults("0.16");
        assert_eq!(json_c["build_system"], VariantValue::Single("cmake".into()));
        assert_eq!(json_c["build_type"], VariantValue::Single("Release".into()));
        let munge = repo.package("munge").unwrap();
        assert!(munge.declares_dependency("openssl", &[]));
        assert!(!munge.declares_dependency("zlib", &[]));
        assert!(repo.providers("zlib-api").any(|p| p == "zlib"));
    }
}
