//! forge's Spack formats against files real Spack v1.0 wrote (`tests/fixtures/spack-v1.0`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use forge_spack::{
    Arch, DepTypes, ExportGraph, Index, Manifest, Node, NodeId, NodeKind, Target, VariantValue,
    dag_hash_of_json, spec_blob_json,
};
use serde_json::{Map, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spack-v1.0")
}

fn read_json(rel: &str) -> Value {
    let text = fs_err::read_to_string(fixtures().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every node object of a spec document.
fn nodes(doc: &Value) -> Vec<Map<String, Value>> {
    doc["spec"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_object().unwrap().clone())
        .collect()
}

#[test]
fn recomputes_the_dag_hash_of_every_node_spack_wrote() {
    let mut checked = 0;
    for entry in fs_err::read_dir(fixtures().join("spec")).unwrap() {
        let path = entry.unwrap().path();
        let doc = read_json(&format!(
            "spec/{}",
            path.file_name().unwrap().to_str().unwrap()
        ));
        for n in nodes(&doc) {
            let stored = n["hash"].as_str().unwrap();
            assert_eq!(
                dag_hash_of_json(&n),
                stored,
                "{} in {}",
                n["name"],
                path.display()
            );
            checked += 1;
        }
    }
    // The index records too: the record key is the node's hash.
    for rel in ["index-blob.79c29406e7d8.json", "synthetic.index-blob.json"] {
        let idx = Index::parse(&fs_err::read(fixtures().join(rel)).unwrap()).unwrap();
        for (hash, rec) in &idx.records {
            assert_eq!(&dag_hash_of_json(&rec.spec), hash, "{rel}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} nodes checked");
}

#[test]
fn a_changed_field_changes_the_hash() {
    let doc = read_json("spec/spec-blob.zlib.76beadc6e5dd.json");
    let mut n = nodes(&doc)[0].clone();
    let h = dag_hash_of_json(&n);
    n["parameters"]["shared"] = Value::Bool(false);
    assert_ne!(dag_hash_of_json(&n), h);
}

fn variant(v: &Value) -> VariantValue {
    match v {
        Value::Bool(b) => VariantValue::Bool(*b),
        Value::String(s) => VariantValue::Single(s.clone()),
        Value::Array(a) => {
            VariantValue::Multi(a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        }
        other => panic!("unexpected variant value {other}"),
    }
}

/// Rebuilds a real Spack DAG through forge's own model: each node's facts are taken from the
/// file, but its JSON, its hash and the document around it are forge's.
fn rebuild(doc: &Value) -> (ExportGraph, BTreeMap<String, NodeId>) {
    let mut g = ExportGraph::new("/store");
    let mut ids = BTreeMap::new();
    let all = nodes(doc);
    // Dependencies first: add nodes in reverse pre-order until every dependency exists.
    let mut pending: Vec<&Map<String, Value>> = all.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|n| {
            let deps = n.get("dependencies").and_then(Value::as_array);
            let ready = deps.is_none_or(|d| {
                d.iter()
                    .all(|e| ids.contains_key(e["hash"].as_str().unwrap()))
            });
            if !ready {
                return true;
            }
            let name = n["name"].as_str().unwrap();
            let version = n["version"].as_str().unwrap();
            let a = &n["arch"];
            let arch = Arch {
                platform: a["platform"].as_str().unwrap().into(),
                platform_os: a["platform_os"].as_str().unwrap().into(),
                target: match &a["target"] {
                    Value::String(s) => Target::Generic(s.clone()),
                    o => Target::Microarch(o.clone()),
                },
            };
            let mut node = match n.get("external") {
                Some(e) => Node::external(name, version, arch, e["path"].as_str().unwrap())
                    .extra_attributes(e["extra_attributes"].as_object().unwrap().clone()),
                None => Node::built(name, version, arch, format!("/store/{name}")),
            };
            node.variants.clear();
            for (k, v) in n["parameters"].as_object().unwrap() {
                if ![
                    "cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs",
                ]
                .contains(&k.as_str())
                {
                    node.variants.insert(k.clone(), variant(v));
                }
            }
            if let Some(p) = n.get("patches") {
                node.variants.remove("patches");
                node.patches = p
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
            }
            let node = node
                .namespace(n["namespace"].as_str().unwrap())
                .package_hash(n["package_hash"].as_str().unwrap());
            let id = g.add(node);
            for e in deps.into_iter().flatten() {
                let p = &e["parameters"];
                let types = p["deptypes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| DepTypes::from_name(t.as_str().unwrap()).unwrap())
                    .fold(DepTypes::NONE, |a, b| a | b);
                let virtuals: Vec<&str> = p["virtuals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                g.depend(id, ids[e["hash"].as_str().unwrap()], types, &virtuals);
            }
            ids.insert(n["hash"].as_str().unwrap().to_string(), id);
            false
        });
        assert!(pending.len() < before, "unresolvable dependencies");
    }
    (g, ids)
}

#[test]
fn forge_writes_spacks_spec_blobs_byte_for_byte() {
    for f in [
        "spec-blob.forge-hello.5429e2ae7b6a.json",
        "spec-blob.zlib.76beadc6e5dd.json",
        "spec-blob.gcc-runtime.0112f4f69ffe.json",
        "spec-blob.compiler-wrapper.16805cd0a684.json",
        "synthetic.spec-blob.forge-demo.json",
    ] {
        let text = fs_err::read_to_string(fixtures().join("spec").join(f)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let (g, ids) = rebuild(&doc);
        let root_hash = doc["spec"]["nodes"][0]["hash"].as_str().unwrap();
        let hashed = g.hashed().unwrap();
        let root = ids[root_hash];
        assert_eq!(hashed.dag_hash(root), root_hash, "{f}");
        // Same nodes, same order, same keys, same bytes.
        assert_eq!(spec_blob_json(&hashed, root), text, "{f}");
        // And the prefix's spec.json is the same document without the layout version.
        let installed =
            fs_err::read_to_string(fixtures().join("spec/installed-prefix.forge-hello.spec.json"))
                .unwrap();
        if f.contains("forge-hello") {
            assert_eq!(
                forge_core::json::python_compact(&hashed.spec_document(root)),
                installed
            );
        }
        let NodeKind::Built { .. } = &g.node(root).kind else {
            panic!("roots of pushed specs are built")
        };
    }
}

#[test]
fn forge_writes_spacks_manifests_byte_for_byte() {
    for dir in [
        "mirror-unsigned/v3/manifests",
        "mirror-signed/v3/manifests/index",
    ] {
        let mut stack = vec![fixtures().join(dir)];
        while let Some(d) = stack.pop() {
            for e in fs_err::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let text = fs_err::read_to_string(&p).unwrap();
                let m = Manifest::parse(&text).unwrap();
                assert_eq!(m.to_text(), text, "{}", p.display());
            }
        }
    }
}

#[test]
fn the_key_index_has_spacks_form() {
    let real =
        fs_err::read_to_string(fixtures().join("keys-index-blob.06b2894e5e85.json")).unwrap();
    let v: Value = serde_json::from_str(&real).unwrap();
    assert_eq!(forge_core::json::python_compact(&v), real);
}
