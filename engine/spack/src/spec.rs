//! Spack's concrete spec nodes (spec file format v5) and their DAG hashes.
//!
//! This module owns the byte-exact JSON form of one node: the keys in the order Spack writes
//! them, the value types, and the hash that Spack computes from that JSON (SHA-1 of the compact,
//! insertion-ordered, ASCII-escaped text without the node's own `hash` key, base32, lower case).
//! It knows nothing about prefixes, tarballs or caches.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::base32;

/// The spec file format this crate writes (`"_meta": {"version": 5}`).
pub const SPEC_FORMAT_VERSION: u64 = 5;

/// A dependency type, as in Spack (`build`, `link`, `run`, `test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct DepTypes(u8);

impl DepTypes {
    /// No type.
    pub const NONE: Self = Self(0);
    /// Needed to build.
    pub const BUILD: Self = Self(1);
    /// Linked: found through RPATH at run time.
    pub const LINK: Self = Self(2);
    /// Needed at run time.
    pub const RUN: Self = Self(4);
    /// Needed to run the tests.
    pub const TEST: Self = Self(8);
    /// `build` + `link`, Spack's default for `depends_on`.
    pub const BUILD_LINK: Self = Self(3);
    /// `link` + `run`: what a binary needs on the consumer's machine.
    pub const RUNTIME: Self = Self(6);

    const NAMES: [(Self, &'static str); 4] = [
        (Self::BUILD, "build"),
        (Self::LINK, "link"),
        (Self::RUN, "run"),
        (Self::TEST, "test"),
    ];

    /// Whether any type of `other` is in `self`.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether every type of `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, in Spack's order (`build, link, run, test`).
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Parses one name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| *t)
    }
}

impl std::ops::BitOr for DepTypes {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for DepTypes {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl From<forge_plan::DepTypes> for DepTypes {
    fn from(t: forge_plan::DepTypes) -> Self {
        t.iter()
            .map(|t| match t {
                forge_plan::DepType::Build => Self::BUILD,
                forge_plan::DepType::Link => Self::LINK,
                forge_plan::DepType::Run => Self::RUN,
                forge_plan::DepType::Test => Self::TEST,
            })
            .fold(Self::NONE, |a, b| a | b)
    }
}

impl fmt::Display for DepTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// A variant value as Spack serializes it.
pub use forge_plan::VariantValue;

/// The target of a node's `arch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A generic microarchitecture (`x86_64_v3`), written as a plain string. This is what forge
    /// exports: any host at that level can reuse it.
    Generic(String),
    /// A specific microarchitecture, written as archspec's object (`name`, `vendor`, `features`,
    /// `generation`, `parents`, `cpupart`), taken verbatim. Only for reproducing Spack's own
    /// files.
    Microarch(Value),
}

impl Target {
    /// The microarchitecture's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Generic(n) => n,
            Self::Microarch(v) => v.get("name").and_then(Value::as_str).unwrap_or_default(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Generic(n) => Value::String(n.clone()),
            Self::Microarch(v) => v.clone(),
        }
    }
}

/// `arch`: platform, operating system and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    /// `linux`.
    pub platform: String,
    /// Spack's OS name (`debian12`, `rhel8`, `ubuntu22.04`).
    pub platform_os: String,
    /// The target.
    pub target: Target,
}

impl Arch {
    /// A Linux arch with a generic target such as `x86_64_v3`.
    pub fn linux(platform_os: impl Into<String>, generic_target: impl Into<String>) -> Self {
        Self {
            platform: "linux".into(),
            platform_os: platform_os.into(),
            target: Target::Generic(generic_target.into()),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "platform": self.platform,
            "platform_os": self.platform_os,
            "target": self.target.to_json(),
        })
    }
}

/// The six compiler-flag lists every node carries (`cflags` … `ldlibs`), usually empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompilerFlags {
    /// `cflags`.
    pub cflags: Vec<String>,
    /// `cppflags`.
    pub cppflags: Vec<String>,
    /// `cxxflags`.
    pub cxxflags: Vec<String>,
    /// `fflags`.
    pub fflags: Vec<String>,
    /// `ldflags`.
    pub ldflags: Vec<String>,
    /// `ldlibs`.
    pub ldlibs: Vec<String>,
}

/// What makes a node an external: where it lives on the consumer's machine.
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// Its prefix (`/usr`).
    pub path: String,
    /// An environment module, if any.
    pub module: Option<String>,
    /// `extra_attributes`, e.g. `{"compilers": {"c": "/usr/bin/gcc", …}}`, written as given.
    pub extra_attributes: Map<String, Value>,
}

/// One dependency edge as written in the dependent's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEdge {
    /// The dependency's name.
    pub name: String,
    /// The dependency's DAG hash.
    pub hash: String,
    /// The edge's types.
    pub deptypes: DepTypes,
    /// Virtuals the dependency provides through this edge (`c`, `cxx`, `libc`, `mpi`), sorted.
    pub virtuals: Vec<String>,
    /// A `%` edge (`"direct": true`); forge never writes one.
    pub direct: bool,
}

/// One concrete node of a spec, everything but its own hash.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecNode {
    /// Package name.
    pub name: String,
    /// Concrete version, as Spack writes it.
    pub version: String,
    /// Platform, OS, target.
    pub arch: Arch,
    /// Package repository namespace (`builtin`, `forge`).
    pub namespace: String,
    /// Variant values, by name.
    pub variants: BTreeMap<String, VariantValue>,
    /// Compiler flags.
    pub flags: CompilerFlags,
    /// For externals: where the package is.
    pub external: Option<External>,
    /// Applied patches (sha256), in order of application.
    pub patches: Vec<String>,
    /// Spack's `package_hash` (56 base32 characters with padding; not checked by Spack).
    pub package_hash: String,
    /// Dependencies; written sorted by name then hash.
    pub dependencies: Vec<DepEdge>,
}

fn variant_json(v: &VariantValue) -> Value {
    match v {
        VariantValue::Bool(b) => Value::Bool(*b),
        VariantValue::Single(s) => Value::String(s.clone()),
        VariantValue::Multi(vs) => {
            let mut vs = vs.clone();
            vs.sort();
            vs.dedup();
            Value::Array(vs.into_iter().map(Value::String).collect())
        }
    }
}

impl SpecNode {
    /// The node's JSON object in Spack's key order, without `hash`.
    pub fn to_json_unhashed(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("version".into(), json!(self.version));
        m.insert("arch".into(), self.arch.to_json());
        m.insert("namespace".into(), json!(self.namespace));

        let mut params = Map::new();
        let mut variants = self.variants.clone();
        if !self.patches.is_empty() {
            variants.insert("patches".into(), VariantValue::Multi(self.patches.clone()));
        }
        for (k, v) in &variants {
            params.insert(k.clone(), variant_json(v));
        }
        let f = &self.flags;
        for (k, v) in [
            ("cflags", &f.cflags),
            ("cppflags", &f.cppflags),
            ("cxxflags", &f.cxxflags),
            ("fflags", &f.fflags),
            ("ldflags", &f.ldflags),
            ("ldlibs", &f.ldlibs),
        ] {
            params.insert(k.into(), json!(v));
        }
        m.insert("parameters".into(), Value::Object(params));

        if let Some(ext) = &self.external {
            m.insert(
                "external".into(),
                json!({
                    "path": ext.path,
                    "module": ext.module,
                    "extra_attributes": Value::Object(ext.extra_attributes.clone()),
                }),
            );
        }
        if !self.patches.is_empty() {
            m.insert("patches".into(), json!(self.patches));
        }
        m.insert("package_hash".into(), json!(self.package_hash));

        if !self.dependencies.is_empty() {
            let mut deps = self.dependencies.clone();
            deps.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
            let deps: Vec<Value> = deps
                .iter()
                .map(|d| {
                    let mut p = Map::new();
                    p.insert("deptypes".into(), json!(d.deptypes.names()));
                    let mut virtuals = d.virtuals.clone();
                    virtuals.sort();
                    virtuals.dedup();
                    p.insert("virtuals".into(), json!(virtuals));
                    if d.direct {
                        p.insert("direct".into(), Value::Bool(true));
                    }
                    json!({"name": d.name, "hash": d.hash, "parameters": Value::Object(p)})
                })
                .collect();
            m.insert("dependencies".into(), Value::Array(deps));
        }
        m.insert(
            "annotations".into(),
            json!({"original_specfile_version": SPEC_FORMAT_VERSION}),
        );
        m
    }

    /// The node's DAG hash.
    pub fn dag_hash(&self) -> String {
        hash_unhashed_node(&self.to_json_unhashed())
    }

    /// The node's JSON object with its `hash` last.
    pub fn to_json(&self) -> Value {
        let mut m = self.to_json_unhashed();
        let h = hash_unhashed_node(&m);
        m.insert("hash".into(), Value::String(h));
        Value::Object(m)
    }
}

fn hash_unhashed_node(node: &Map<String, Value>) -> String {
    let text = forge_core::json::python_compact(&Value::Object(node.clone()));
    base32::encode(&Sha1::digest(text.as_bytes()))
}

/// Recomputes the DAG hash of a node object as read from a spec file (its `hash` key, if any, is
/// ignored; every other key is hashed in the order it appears).
pub fn dag_hash_of_json(node: &Map<String, Value>) -> String {
    let mut m = node.clone();
    m.shift_remove("hash");
    hash_unhashed_node(&m)
}

/// A `package_hash` value: base32 (with padding) of the SHA-256 of `data`, in the form Spack
/// writes.
pub fn package_hash_of(data: &[u8]) -> String {
    base32::encode_padded(&Sha256::digest(data))
}

/// The spec document for a list of nodes (root first): `{"spec": {"_meta": …, "nodes": […]}}`.
pub fn spec_document(nodes: Vec<Value>) -> Value {
    json!({"spec": {"_meta": {"version": SPEC_FORMAT_VERSION}, "nodes": nodes}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glibc() -> SpecNode {
        SpecNode {
            name: "glibc".into(),
            version: "2.36".into(),
            arch: Arch::linux("debian12", "x86_64"),
            namespace: "builtin".into(),
            variants: [(
                "build_system".to_string(),
                VariantValue::Single("autotools".into()),
            )]
            .into(),
            flags: CompilerFlags::default(),
            external: Some(External {
                path: "/usr".into(),
                module: None,
                extra_attributes: Map::new(),
            }),
            patches: vec![],
            package_hash: "forgeexportnopackagehashforgeexportnopackagehash====".into(),
            dependencies: vec![],
        }
    }

    #[test]
    fn reproduces_the_independent_writers_glibc_node() {
        // The glibc node of spack-v1.0-examples/synthetic/spec-blob.forge-demo.json, which real
        // Spack v1.0 accepted.
        let want = r#"{"name":"glibc","version":"2.36","arch":{"platform":"linux","platform_os":"debian12","target":"x86_64"},"namespace":"builtin","parameters":{"build_system":"autotools","cflags":[],"cppflags":[],"cxxflags":[],"fflags":[],"ldflags":[],"ldlibs":[]},"external":{"path":"/usr","module":null,"extra_attributes":{}},"package_hash":"forgeexportnopackagehashforgeexportnopackagehash====","annotations":{"original_specfile_version":5},"hash":"hd4jpbybdrkblcgvostnfq5m3lyng4dw"}"#;
        assert_eq!(forge_core::json::python_compact(&glibc().to_json()), want);
    }

    #[test]
    fn deptypes_names_follow_spack_order() {
        assert_eq!(
            (DepTypes::RUN | DepTypes::BUILD).names(),
            ["build", "run"].to_vec()
        );
        assert!(DepTypes::RUNTIME.intersects(DepTypes::LINK));
        assert!(!DepTypes::BUILD.intersects(DepTypes::RUNTIME));
    }

    #[test]
    fn patches_appear_as_variant_and_list() {
        let mut n = glibc();
        n.patches = vec!["bb".into(), "aa".into()];
        let j = n.to_json();
        assert_eq!(j["parameters"]["patches"], json!(["aa", "bb"]));
        assert_eq!(j["patches"], json!(["bb", "aa"]));
        let keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "name",
                "version",
                "arch",
                "namespace",
                "parameters",
                "external",
                "patches",
                "package_hash",
                "annotations",
                "hash"
            ]
        );
    }
}
