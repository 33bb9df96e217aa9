//! The Spack package repository shipped in a cache, and its README.
//!
//! Spack reuses a cached binary only if a recipe exists for it in the namespace its spec names,
//! and that recipe declares a `depends_on` for each non-external link/run dependency. Packages in
//! Spack's `builtin` namespace use Spack's own recipes; every other namespace (forge's default is
//! `forge`) gets binary-only stub recipes, generated here from the cache's index, so the repository
//! always describes everything the cache holds:
//!
//! ```text
//! <cache>/spack-repo/spack_repo/<ns>/repo.yaml            repo: {namespace: <ns>, api: v2.2}
//! <cache>/spack-repo/spack_repo/<ns>/__init__.py
//! <cache>/spack-repo/spack_repo/<ns>/packages/__init__.py
//! <cache>/spack-repo/spack_repo/<ns>/packages/<name_with_underscores>/package.py
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::index::{Index, IndexRecord};
use crate::spec::VariantValue;

/// Where the repository lives inside a cache.
pub const REPO_DIR: &str = "spack-repo";

/// Runtime packages Spack attaches to every node a compiler builds; recipes never declare them.
const COMPILER_RUNTIMES: &[&str] = &["gcc-runtime", "intel-oneapi-runtime"];

pub use forge_plan::{PackageMeta, VariantMeta};

/// Spack's class name for a package (`forge-hello` → `ForgeHello`, `7zip` → `_7zip`).
pub fn class_name(pkg: &str) -> String {
    let mut s: String = pkg
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// The package's directory name in a v2 repository (`forge-hello` → `forge_hello`,
/// `7zip` → `_7zip`, `pass` → `_pass`).
pub fn package_dir(pkg: &str) -> String {
    let d = pkg.replace('-', "_");
    if d.starts_with(|c: char| c.is_ascii_digit()) || PY_KEYWORDS.contains(&d.as_str()) {
        format!("_{d}")
    } else {
        d
    }
}

/// A Python string literal.
fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A one-line Python docstring.
fn py_doc(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    let mut body = line.replace('\\', "\\\\").replace('"', "\\\"");
    if body.is_empty() {
        body.push_str("forge package");
    }
    format!("\"\"\"{body}\"\"\"")
}

#[derive(Default)]
struct Stub {
    versions: BTreeSet<String>,
    variants: BTreeMap<String, Vec<VariantValue>>,
    depends: BTreeMap<String, BTreeSet<String>>,
}

fn variant_value(v: &Value) -> Option<VariantValue> {
    match v {
        Value::Bool(b) => Some(VariantValue::Bool(*b)),
        Value::String(s) => Some(VariantValue::Single(s.clone())),
        Value::Array(a) => Some(VariantValue::Multi(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
        )),
        _ => None,
    }
}

const FLAG_KEYS: &[&str] = &[
    "cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs",
];

fn collect(index: &Index, rec: &IndexRecord, stub: &mut Stub) {
    stub.versions.insert(rec.field("version").to_string());
    if let Some(params) = rec.spec.get("parameters").and_then(Value::as_object) {
        for (k, v) in params {
            // `build_system` comes with the `Package` base class; `patches` is Spack's own.
            if FLAG_KEYS.contains(&k.as_str()) || k == "build_system" || k == "patches" {
                continue;
            }
            if let Some(val) = variant_value(v) {
                stub.variants.entry(k.clone()).or_default().push(val);
            }
        }
    }
    let Some(deps) = rec.spec.get("dependencies").and_then(Value::as_array) else {
        return;
    };
    for d in deps {
        let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
        let params = d.get("parameters");
        let types: Vec<&str> = params
            .and_then(|p| p.get("deptypes"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let virtuals: Vec<&str> = params
            .and_then(|p| p.get("virtuals"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let runtime: Vec<&str> = types
            .iter()
            .copied()
            .filter(|t| *t == "link" || *t == "run")
            .collect();
        let external = d
            .get("hash")
            .and_then(Value::as_str)
            .and_then(|h| index.records.get(h))
            .is_some_and(IndexRecord::is_external);
        if runtime.is_empty()
            || external
            || virtuals.contains(&"libc")
            || COMPILER_RUNTIMES.contains(&name)
        {
            continue;
        }
        // A virtual edge is declared on the virtual, which brings every provider into play.
        let target = if virtuals.len() == 1 {
            virtuals[0]
        } else {
            name
        };
        stub.depends.entry(target.to_string()).or_default().extend(
            types
                .iter()
                .filter(|t| **t != "test")
                .map(|t| t.to_string()),
        );
    }
}

fn render(pkg: &str, stub: &Stub, meta: Option<&PackageMeta>) -> String {
    let mut s = String::new();
    s.push_str(
        "# Generated by forge. A binary-only recipe: it lets Spack reuse the cached binaries of\n\
         # this package and cannot build it from source. Regenerated on every export.\n\n\
         from spack.package import *\n\n\n",
    );
    let _ = writeln!(s, "class {}(Package):", class_name(pkg));
    let doc = meta
        .and_then(|m| m.description.clone())
        .unwrap_or_else(|| format!("{pkg}, built and exported by forge."));
    let _ = writeln!(s, "    {}\n", py_doc(&doc));
    let homepage = meta
        .and_then(|m| m.homepage.clone())
        .unwrap_or_else(|| "https://example.invalid/forge".into());
    let _ = writeln!(s, "    homepage = {}\n", py_str(&homepage));
    for v in stub.versions.iter().rev() {
        let _ = writeln!(s, "    version({})", py_str(v));
    }
    if !stub.variants.is_empty() {
        s.push('\n');
    }
    for (name, seen) in &stub.variants {
        let m = meta.and_then(|m| m.variants.get(name));
        let desc = m
            .and_then(|m| m.description.clone())
            .unwrap_or_else(|| format!("forge variant `{name}`"));
        let default = m.map_or(seen[0].clone(), |m| m.default.clone());
        let line = match &default {
            VariantValue::Bool(b) => format!(
                "variant({}, default={}, description={})",
                py_str(name),
                if *b { "True" } else { "False" },
                py_str(&desc)
            ),
            VariantValue::Single(_) | VariantValue::Multi(_) => {
                let multi = matches!(default, VariantValue::Multi(_));
                let mut values: BTreeSet<String> = m
                    .map(|m| m.values.iter().cloned().collect())
                    .unwrap_or_default();
                let free = values.is_empty();
                for v in seen {
                    match v {
                        VariantValue::Single(x) => {
                            values.insert(x.clone());
                        }
                        VariantValue::Multi(xs) => values.extend(xs.iter().cloned()),
                        VariantValue::Bool(_) => {}
                    }
                }
                let default_text = match &default {
                    VariantValue::Multi(xs) => xs.join(","),
                    VariantValue::Single(d) => d.clone(),
                    VariantValue::Bool(b) => b.to_string(),
                };
                let values_text = if free && !multi {
                    "lambda x: True".to_string()
                } else {
                    let items: Vec<String> = values.iter().map(|v| py_str(v)).collect();
                    format!("({},)", items.join(", "))
                };
                format!(
                    "variant({}, default={}, values={values_text}, multi={}, description={})",
                    py_str(name),
                    py_str(&default_text),
                    if multi { "True" } else { "False" },
                    py_str(&desc)
                )
            }
        };
        let _ = writeln!(s, "    {line}");
    }
    if !stub.depends.is_empty() {
        s.push('\n');
    }
    for (dep, types) in &stub.depends {
        let order = ["build", "link", "run"];
        let types: Vec<String> = order
            .iter()
            .filter(|t| types.contains(**t))
            .map(|t| py_str(t))
            .collect();
        let tuple = if types.len() == 1 {
            format!("({},)", types[0])
        } else {
            format!("({})", types.join(", "))
        };
        let _ = writeln!(s, "    depends_on({}, type={tuple})", py_str(dep));
    }
    s
}

/// The repository files for every namespace other than `builtin` among the cached packages,
/// as (path relative to the cache, content).
pub(crate) fn generate(
    index: &Index,
    meta: &BTreeMap<String, PackageMeta>,
) -> Vec<(PathBuf, String)> {
    let mut stubs: BTreeMap<(String, String), Stub> = BTreeMap::new();
    for rec in index.records.values() {
        if !rec.in_buildcache || rec.is_external() {
            continue;
        }
        let ns = rec.field("namespace");
        if ns == "builtin" || ns.is_empty() {
            continue;
        }
        let key = (ns.to_string(), rec.field("name").to_string());
        collect(index, rec, stubs.entry(key).or_default());
    }
    let mut files = Vec::new();
    let namespaces: BTreeSet<&String> = stubs.keys().map(|(ns, _)| ns).collect();
    for ns in namespaces {
        let base = PathBuf::from(REPO_DIR).join("spack_repo").join(ns);
        files.push((
            base.join("repo.yaml"),
            format!("repo:\n  namespace: {ns}\n  api: v2.2\n"),
        ));
        files.push((base.join("__init__.py"), String::new()));
        files.push((base.join("packages").join("__init__.py"), String::new()));
    }
    for ((ns, pkg), stub) in &stubs {
        let path = PathBuf::from(REPO_DIR)
            .join("spack_repo")
            .join(ns)
            .join("packages")
            .join(package_dir(pkg))
            .join("package.py");
        files.push((path, render(pkg, stub, meta.get(pkg))));
    }
    files
}

/// The cache's `README.md`: what a consumer runs. `signed`: whether the cache publishes keys
/// that signed its manifests; an unsigned cache is added with `--unsigned` instead.
pub(crate) fn readme(index: &Index, signed: bool) -> String {
    let mut namespaces = BTreeSet::new();
    let mut roots = Vec::new();
    let mut referenced = BTreeSet::new();
    for r in index.records.values() {
        referenced.extend(r.dependency_hashes().into_iter().map(str::to_owned));
    }
    let mut packages = Vec::new();
    for (hash, r) in &index.records {
        if !r.in_buildcache {
            continue;
        }
        let ns = r.field("namespace");
        if ns != "builtin" {
            namespaces.insert(ns.to_string());
        }
        let line = format!("{}@{} /{}", r.field("name"), r.field("version"), &hash[..7]);
        if !referenced.contains(hash) {
            roots.push(line.clone());
        }
        packages.push((
            r.field("name").to_string(),
            r.field("version").to_string(),
            format!(
                "| `{}` | `{}` | `{}` | `{ns}` |",
                r.field("name"),
                r.field("version"),
                hash
            ),
        ));
    }
    // By name and version, as a reader looks a package up.
    packages.sort();
    let mut s = String::new();
    s.push_str(
        "# A Spack buildcache exported by forge\n\n\
         This directory is a Spack v1.0 binary mirror (layout v3). Install from it with Spack:\n\n```sh\n",
    );
    let mut step = 0;
    let mut next = || {
        step += 1;
        step
    };
    if !namespaces.is_empty() {
        let _ = writeln!(
            s,
            "# {}. forge's recipes of the packages it does not map onto Spack's builtin ones (they come first)",
            next()
        );
        for ns in &namespaces {
            let _ = writeln!(
                s,
                "spack repo add <this directory>/{REPO_DIR}/spack_repo/{ns}"
            );
        }
    }
    if signed {
        let _ = write!(
            s,
            "# {}. the mirror, and the public keys that signed it\n\
             spack mirror add forge <URL of this directory, e.g. file:///path/to/it>\n\
             spack buildcache keys --install --trust\n\
             # {}. install without building anything\n",
            next(),
            next()
        );
    } else {
        let _ = write!(
            s,
            "# {}. the mirror; its manifests are not signed, so Spack must be told not to check\n\
             spack mirror add --unsigned forge <URL of this directory, e.g. file:///path/to/it>\n\
             # {}. install without building anything\n",
            next(),
            next()
        );
    }
    if let Some(first) = roots.first() {
        let spec = first.split(' ').next().unwrap_or_default();
        let _ = writeln!(s, "spack install --cache-only {spec}");
    } else {
        s.push_str("spack install --cache-only <package>@<version>\n");
    }
    s.push_str(
        "```\n\n\
         `spack buildcache list --allarch -l -v` lists what the mirror holds. ",
    );
    s.push_str(if signed {
        "Signatures are checked\n\
         by default; the keys are published under `v3/manifests/key/`.\n\n"
    } else {
        "Nothing here is signed:\n\
         anyone who can write to the mirror can change what Spack installs from it. Export with\n\
         `forge export --sign` to publish signed manifests and their key.\n\n"
    });
    s.push_str("| package | version | hash | namespace |\n|---|---|---|---|\n");
    for (_, _, line) in packages {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, ns: &str, deps: &[&str]) -> serde_json::Map<String, serde_json::Value> {
        let deps: Vec<_> = deps
            .iter()
            .map(|h| serde_json::json!({"name": "x", "hash": h, "parameters": {}}))
            .collect();
        serde_json::json!({"name": name, "version": "1.0", "namespace": ns, "dependencies": deps})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn readme_numbers_the_steps_it_shows() {
        // Only builtin packages: no recipes to add, so the mirror is the first step.
        let mut index = Index::default();
        index.insert(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            record("zlib", "builtin", &[]),
            true,
        );
        index.insert(
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            record("app", "builtin", &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]),
            true,
        );
        let text = readme(&index, true);
        let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
        assert_eq!(
            steps,
            [
                "# A Spack buildcache exported by forge",
                "# 1. the mirror, and the public keys that signed it",
                "# 2. install without building anything",
            ],
            "{text}"
        );
        assert!(
            text.contains("spack install --cache-only app@1.0\n"),
            "{text}"
        );
        // Two other namespaces: one step adding both repositories.
        index.insert(
            "cccccccccccccccccccccccccccccccc",
            record("tool", "forge", &[]),
            true,
        );
        index.insert(
            "dddddddddddddddddddddddddddddddd",
            record("extra", "site", &[]),
            true,
        );
        let text = readme(&index, true);
        let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
        assert_eq!(
            steps[1..],
            [
                "# 1. forge's recipes of the packages it does not map onto Spack's builtin ones (they come first)",
                "# 2. the mirror, and the public keys that signed it",
                "# 3. install without building anything",
            ],
            "{text}"
        );
        assert!(text.contains("spack_repo/forge\n") && text.contains("spack_repo/site\n"));
        // The table is sorted by name, whatever the hashes.
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('`').nth(1).unwrap())
            .collect();
        assert_eq!(rows, ["app", "extra", "tool", "zlib"]);
        // Unsigned: no keys to trust, the mirror is added unsigned, and the text says so.
        let text = readme(&index, false);
        assert!(
            text.contains("spack mirror add --unsigned forge")
                && !text.contains("keys --install")
                && !text.contains("Signatures are checked")
                && text.contains("Nothing here is signed"),
            "{text}"
        );
    }

    #[test]
    fn names_follow_spack() {
        assert_eq!(class_name("forge-hello"), "ForgeHello");
        assert_eq!(class_name("py-h5py"), "PyH5py");
        assert_eq!(class_name("7zip"), "_7zip");
        assert_eq!(package_dir("forge-hello"), "forge_hello");
        assert_eq!(package_dir("3proxy"), "_3proxy");
        assert_eq!(package_dir("pass"), "_pass");
    }
}
