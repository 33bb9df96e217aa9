//! `forge diff`: which inputs of two derivations differ, recursively through dependencies — two
//! plans' derivations, or a plan's and a lock file's ([`Derivations`]).

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use serde::Serialize;
use serde_json::Value;

use crate::derivation::DrvInputs;
use crate::planner::Plan;

/// One differing input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The node, as a path from the compared roots (`slurm > munge`).
    pub node: String,
    /// The input, as a JSON path in the derivation (`build.phases[1].commands[0].argv`).
    pub input: String,
    /// Value on the left (absent: added on the right).
    pub old: Option<String>,
    /// Value on the right (absent: removed on the right).
    pub new: Option<String>,
    /// For lists of strings: items only on the right.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// For lists of strings: items only on the left.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

fn flatten(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(x, p, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn items(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(show).collect(),
        _ => Vec::new(),
    }
}

/// Derivations that can be looked up by hash: a plan's, or a lock file's.
pub trait Derivations {
    /// The hashed inputs of the derivation with this (Nix-base32) hash.
    fn inputs_of(&self, hash: &str) -> Option<&DrvInputs>;
}

impl Derivations for Plan {
    fn inputs_of(&self, hash: &str) -> Option<&DrvInputs> {
        self.drvs
            .iter()
            .find(|d| d.hash.to_string() == hash)
            .map(|d| &d.inputs)
    }
}

/// Compares node `ai` of `a` with node `bi` of `b`.
pub fn diff(a: &Plan, ai: NodeIndex, b: &Plan, bi: NodeIndex) -> Vec<Difference> {
    let (ha, hb) = (a.drv(ai).hash.to_string(), b.drv(bi).hash.to_string());
    diff_by_hash(&Indexed::new(a), &ha, &Indexed::new(b), &hb)
}

/// Compares the derivation `ha` of `a` with the derivation `hb` of `b`, recursively through
/// dependencies of the same name and role.
pub fn diff_by_hash(
    a: &dyn Derivations,
    ha: &str,
    b: &dyn Derivations,
    hb: &str,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let label = a.inputs_of(ha).map(|i| i.name.clone()).unwrap_or_default();
    walk(a, ha, b, hb, &label, &mut out, &mut seen);
    out
}

/// A plan's derivations indexed by hash, for many lookups.
struct Indexed<'p>(BTreeMap<String, &'p DrvInputs>);

impl<'p> Indexed<'p> {
    fn new(p: &'p Plan) -> Self {
        Self(
            p.drvs
                .iter()
                .map(|d| (d.hash.to_string(), &d.inputs))
                .collect(),
        )
    }
}

impl Derivations for Indexed<'_> {
    fn inputs_of(&self, hash: &str) -> Option<&DrvInputs> {
        self.0.get(hash).copied()
    }
}

/// `<hash>-<name>-<version>` of a derivation.
fn store_name(d: &dyn Derivations, hash: &str) -> String {
    d.inputs_of(hash).map_or_else(
        || hash.to_owned(),
        |i| format!("{hash}-{}-{}", i.name, i.version),
    )
}

fn walk(
    a: &dyn Derivations,
    ha: &str,
    b: &dyn Derivations,
    hb: &str,
    label: &str,
    out: &mut Vec<Difference>,
    seen: &mut BTreeSet<(String, String)>,
) {
    if ha == hb || !seen.insert((ha.to_owned(), hb.to_owned())) {
        return;
    }
    let (Some(da), Some(db)) = (a.inputs_of(ha), b.inputs_of(hb)) else {
        return;
    };
    let mut va = serde_json::to_value(da).expect("serializes");
    let mut vb = serde_json::to_value(db).expect("serializes");
    // Dependencies are compared by name and role below, recursively.
    let _ = va.as_object_mut().and_then(|m| m.remove("deps"));
    let _ = vb.as_object_mut().and_then(|m| m.remove("deps"));
    let mut fa = BTreeMap::new();
    let mut fb = BTreeMap::new();
    flatten(&va, String::new(), &mut fa);
    flatten(&vb, String::new(), &mut fb);
    let keys: BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    for k in keys {
        let (x, y) = (fa.get(k), fb.get(k));
        if x == y {
            continue;
        }
        let (ix, iy) = (items(x), items(y));
        out.push(Difference {
            node: label.to_owned(),
            input: k.clone(),
            old: x.map(show),
            new: y.map(show),
            added: iy.iter().filter(|i| !ix.contains(i)).cloned().collect(),
            removed: ix.iter().filter(|i| !iy.contains(i)).cloned().collect(),
        });
    }
    let index = |i: &DrvInputs| -> BTreeMap<(String, String), String> {
        i.deps
            .iter()
            .map(|d| ((d.name.clone(), d.role.as_str().to_owned()), d.drv.clone()))
            .collect()
    };
    let (ma, mb) = (index(da), index(db));
    let keys: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    for k in keys {
        match (ma.get(k), mb.get(k)) {
            (Some(x), Some(y)) => walk(a, x, b, y, &format!("{label} > {}", k.0), out, seen),
            (Some(x), None) => out.push(Difference {
                node: label.to_owned(),
                input: format!("deps.{}", k.0),
                old: Some(store_name(a, x)),
                new: None,
                added: Vec::new(),
                removed: Vec::new(),
            }),
            (None, Some(y)) => out.push(Difference {
                node: label.to_owned(),
                input: format!("deps.{}", k.0),
                old: None,
                new: Some(store_name(b, y)),
                added: Vec::new(),
                removed: Vec::new(),
            }),
            (None, None) => {}
        }
    }
}
