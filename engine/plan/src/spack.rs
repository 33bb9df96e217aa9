//! How the nodes of a plan appear in Spack: each node's name, version, namespace and variants
//! under Spack's spelling, and what a stub recipe declares about each package — read from the
//! recipes' `spack { … }` declarations when planning, so an export needs the plan alone.

use std::collections::BTreeMap;

use forge_recipe::{BuildSystem, Facts, Recipe, Var, VariantKind, VariantValue, Version};

/// A node's identity in Spack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpackIdentity {
    /// Spack package name.
    pub name: String,
    /// Version as Spack's recipe spells it.
    pub version: String,
    /// Namespace (`forge` unless the recipe says `builtin`).
    pub namespace: String,
    /// Variant values under Spack's names, with `build_system`.
    pub variants: BTreeMap<String, VariantValue>,
}

/// Spack's `build_system` value for a forge build system, as Spack's own recipes declare it.
pub fn spack_build_system(system: BuildSystem) -> &'static str {
    match system {
        BuildSystem::Autotools => "autotools",
        BuildSystem::Cmake => "cmake",
        BuildSystem::Meson => "meson",
        BuildSystem::Make => "makefile",
        BuildSystem::Custom => "generic",
    }
}

impl SpackIdentity {
    /// The identity of `recipe` at `version` with the chosen `variants` (forge names). The
    /// version goes through the recipe's `spack version` template (`{version.dashed}-1`);
    /// variants through its variant map. `build_system` is `generic` in forge's own namespaces
    /// (their stub recipes derive from Spack's `Package`) and follows the recipe's build system
    /// in `builtin`, as Spack's recipe would.
    pub fn of(
        recipe: &Recipe,
        version: &Version,
        variants: &BTreeMap<String, VariantValue>,
    ) -> Self {
        let namespace = recipe.spack_namespace().to_string();
        let version_text = match &recipe.spack.version {
            Some(t) => t
                .value
                .render(|v| -> Result<Option<String>, ()> {
                    Ok(match v {
                        Var::Version(None) => Some(version.as_str().to_string()),
                        Var::Version(Some(form)) => version.derived(form),
                        Var::Name => Some(recipe.spack_name().to_string()),
                        _ => None,
                    })
                })
                .unwrap_or_else(|()| version.as_str().to_string()),
            None => version.as_str().to_string(),
        };
        let mut out = BTreeMap::new();
        for (k, v) in variants {
            if !recipe.spack.omit.contains_key(k) {
                out.insert(spack_variant_name(recipe, k), v.clone());
            }
        }
        let build_system = match (&recipe.build, namespace.as_str()) {
            (Some(b), "builtin") => spack_build_system(b.system.value),
            _ => "generic",
        };
        out.insert(
            "build_system".into(),
            VariantValue::Single(build_system.into()),
        );
        // What Spack's CMake build system declares for every CMake recipe, as forge's CMake
        // builds have it: the build type, Makefiles unless Ninja is asked for, no IPO.
        if let (Some(b), "builtin") = (&recipe.build, namespace.as_str())
            && b.system.value == BuildSystem::Cmake
        {
            let build_type = b
                .build_type
                .as_ref()
                .map_or("Release", |t| t.value.as_str());
            let ninja = b
                .generator
                .as_ref()
                .is_some_and(|g| g.value.to_ascii_lowercase().contains("ninja"));
            out.insert("build_type".into(), VariantValue::Single(build_type.into()));
            out.insert(
                "generator".into(),
                VariantValue::Single(if ninja { "ninja" } else { "make" }.into()),
            );
            out.insert("ipo".into(), VariantValue::Bool(false));
        }
        // Fixed values last: `set "build_system" …` names the one Spack's recipe allows.
        let facts = Facts {
            version,
            variants,
            toolchain: None,
            arch: None,
        };
        for f in &recipe.spack.fixed {
            if f.when.as_ref().is_none_or(|w| w.holds_for(&facts)) {
                out.insert(f.name.clone(), f.value.value.clone());
            }
        }
        Self {
            name: recipe.spack_name().to_string(),
            version: version_text,
            namespace,
            variants: out,
        }
    }
}

/// What a stub recipe says about a package beyond what the cached specs show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageMeta {
    /// One line about it.
    pub description: Option<String>,
    /// Project page.
    pub homepage: Option<String>,
    /// Variants by Spack name.
    pub variants: BTreeMap<String, VariantMeta>,
}

/// A variant's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantMeta {
    /// Its default.
    pub default: VariantValue,
    /// Allowed values of a single- or multi-valued variant; empty means any value.
    pub values: Vec<String>,
    /// What it does.
    pub description: Option<String>,
}

impl PackageMeta {
    /// The metadata of a forge recipe, with its variants under their Spack names.
    pub fn of(recipe: &Recipe) -> Self {
        let mut variants = BTreeMap::new();
        for v in recipe
            .variants
            .iter()
            .filter(|v| !recipe.spack.omit.contains_key(&v.name.value))
        {
            let values = match &v.kind {
                VariantKind::Bool { .. } => Vec::new(),
                VariantKind::Single { values, .. } | VariantKind::Multi { values, .. } => {
                    values.clone()
                }
            };
            variants.insert(
                spack_variant_name(recipe, &v.name.value),
                VariantMeta {
                    default: v.default_value(),
                    values,
                    description: v.description.clone(),
                },
            );
        }
        // A fixed variant allows the values its `set` lines give (the first is the default).
        for f in &recipe.spack.fixed {
            if f.name == "build_system" {
                continue;
            }
            let values = match &f.value.value {
                VariantValue::Bool(_) => Vec::new(),
                VariantValue::Single(s) => vec![s.clone()],
                VariantValue::Multi(m) => m.clone(),
            };
            let meta = variants
                .entry(f.name.clone())
                .or_insert_with(|| VariantMeta {
                    default: f.value.value.clone(),
                    values: Vec::new(),
                    description: Some("fixed by forge's recipe: the value its builds have".into()),
                });
            for v in values {
                if !meta.values.contains(&v) {
                    meta.values.push(v);
                }
            }
        }
        Self {
            description: recipe.meta.description.clone(),
            homepage: recipe.meta.homepage.clone(),
            variants,
        }
    }
}

fn spack_variant_name(recipe: &Recipe, forge_name: &str) -> String {
    recipe
        .spack
        .variants
        .get(forge_name)
        .map_or_else(|| forge_name.to_owned(), |s| s.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(kdl: &str) -> Recipe {
        let loaded = forge_recipe::RecipeSet::load_texts(
            std::path::Path::new("/r"),
            vec![("p.kdl".into(), "/r/recipes/p.kdl".into(), kdl.into())],
            forge_recipe::Diagnostics::default(),
        );
        loaded
            .set
            .packages
            .values()
            .next()
            .expect("one recipe")
            .clone()
    }

    #[test]
    fn maps_name_version_and_variants() {
        let r = recipe(
            r#"
package "slurm" {
    url "https://example.invalid/slurm-{version}.tar.bz2"
    version "25.11.2" sha256="0000000000000000000000000000000000000000000000000000000000000000"
    variant "pmix" default=#true
    variant "nvidia" default=#false
    build "autotools"
    spack namespace="builtin" {
        variant "nvidia" "nvml"
        version "{version.dashed}-1"
    }
}
"#,
        );
        let v = Version::parse("25.11.2").unwrap();
        let variants: BTreeMap<String, VariantValue> = [
            ("pmix".to_string(), VariantValue::Bool(true)),
            ("nvidia".to_string(), VariantValue::Bool(false)),
        ]
        .into();
        let id = SpackIdentity::of(&r, &v, &variants);
        assert_eq!(id.name, "slurm");
        assert_eq!(id.version, "25-11-2-1");
        assert_eq!(id.namespace, "builtin");
        let names: Vec<&str> = id.variants.keys().map(String::as_str).collect();
        assert_eq!(names, ["build_system", "nvml", "pmix"]);
        assert_eq!(
            id.variants["build_system"],
            VariantValue::Single("autotools".into())
        );
        let meta = PackageMeta::of(&r);
        let names: Vec<&str> = meta.variants.keys().map(String::as_str).collect();
        assert_eq!(names, ["nvml", "pmix"]);

        let plain = recipe(
            r#"
package "hello" {
    url "https://example.invalid/hello-{version}.tar.gz"
    version "1.0" sha256="0000000000000000000000000000000000000000000000000000000000000000"
    build "make"
}
"#,
        );
        let id = SpackIdentity::of(&plain, &Version::parse("1.0").unwrap(), &BTreeMap::new());
        assert_eq!(
            (id.name.as_str(), id.version.as_str(), id.namespace.as_str()),
            ("hello", "1.0", "forge")
        );
        assert_eq!(
            id.variants["build_system"],
            VariantValue::Single("generic".into())
        );
    }
}
