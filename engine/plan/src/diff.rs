//! `forge diff`: which inputs of two derivations differ, recursively through dependencies.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use serde::Serialize;
use serde_json::Value;

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

/// Compares node `ai` of `a` with node `bi` of `b`.
pub fn diff(a: &Plan, ai: NodeIndex, b: &Plan, bi: NodeIndex) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    walk(
        a,
        ai,
        b,
        bi,
        &a.drv(ai).inputs.name.clone(),
        &mut out,
        &mut seen,
    );
    out
}

fn walk(
    a: &Plan,
    ai: NodeIndex,
    b: &Plan,
    bi: NodeIndex,
    label: &str,
    out: &mut Vec<Difference>,
    seen: &mut BTreeSet<(String, String)>,
) {
    let (da, db) = (a.drv(ai), b.drv(bi));
    if da.hash == db.hash || !seen.insert((da.hash.to_string(), db.hash.to_string())) {
        return;
    }
    let mut va = serde_json::to_value(&da.inputs).expect("serializes");
    let mut vb = serde_json::to_value(&db.inputs).expect("serializes");
    // Dependencies are compared by name and role below, recursively.
    let deps_a = va.as_object_mut().and_then(|m| m.remove("deps"));
    let deps_b = vb.as_object_mut().and_then(|m| m.remove("deps"));
    let _ = (deps_a, deps_b);
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
    let index = |p: &Plan, i: NodeIndex| -> BTreeMap<(String, String), NodeIndex> {
        p.graph
            .deps(i)
            .into_iter()
            .map(|(d, e)| {
                (
                    (
                        p.graph.node(d).name().to_owned(),
                        format!("{:?}", e.role).to_lowercase(),
                    ),
                    d,
                )
            })
            .collect()
    };
    let (ma, mb) = (index(a, ai), index(b, bi));
    let keys: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    for k in keys {
        match (ma.get(k), mb.get(k)) {
            (Some(x), Some(y)) => walk(a, *x, b, *y, &format!("{label} > {}", k.0), out, seen),
            (Some(x), None) => out.push(Difference {
                node: label.to_owned(),
                input: format!("deps.{}", k.0),
                old: Some(a.drv(*x).store_name().into()),
                new: None,
                added: Vec::new(),
                removed: Vec::new(),
            }),
            (None, Some(y)) => out.push(Difference {
                node: label.to_owned(),
                input: format!("deps.{}", k.0),
                old: None,
                new: Some(b.drv(*y).store_name().into()),
                added: Vec::new(),
                removed: Vec::new(),
            }),
            (None, None) => {}
        }
    }
}
