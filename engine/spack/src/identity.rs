//! How a forge package appears in Spack: name, version, namespace and variants, from the
//! `spack { … }` declaration of its recipe.

use std::collections::BTreeMap;
use std::path::PathBuf;

use forge_recipe::{BuildSystem, Recipe, Var, Version};

use crate::graph::Node;
use crate::spec::{Arch, VariantValue};

/// A package's identity in Spack.
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
    pub fn from_recipe(
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
            let name = recipe
                .spack
                .variants
                .get(k)
                .map_or(k.clone(), |s| s.value.clone());
            out.insert(name, v.clone());
        }
        let build_system = match (&recipe.build, namespace.as_str()) {
            (Some(b), "builtin") => spack_build_system(b.system.value),
            _ => "generic",
        };
        out.insert(
            "build_system".into(),
            VariantValue::Single(build_system.into()),
        );
        Self {
            name: recipe.spack_name().to_string(),
            version: version_text,
            namespace,
            variants: out,
        }
    }

    /// A built node with this identity.
    pub fn built_node(&self, arch: Arch, prefix: impl Into<PathBuf>) -> Node {
        let mut n = Node::built(&self.name, &self.version, arch, prefix).namespace(&self.namespace);
        n.variants = self.variants.clone();
        n
    }
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
        let id = SpackIdentity::from_recipe(&r, &v, &variants);
        assert_eq!(id.name, "slurm");
        assert_eq!(id.version, "25-11-2-1");
        assert_eq!(id.namespace, "builtin");
        let names: Vec<&str> = id.variants.keys().map(String::as_str).collect();
        assert_eq!(names, ["build_system", "nvml", "pmix"]);
        assert_eq!(
            id.variants["build_system"],
            VariantValue::Single("autotools".into())
        );

        let plain = recipe(
            r#"
package "hello" {
    url "https://example.invalid/hello-{version}.tar.gz"
    version "1.0" sha256="0000000000000000000000000000000000000000000000000000000000000000"
    build "make"
}
"#,
        );
        let id =
            SpackIdentity::from_recipe(&plain, &Version::parse("1.0").unwrap(), &BTreeMap::new());
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
