//! The buildcache index: a Spack database (version 8) listing every spec of the cache.
//!
//! `{"database": {"version": "8", "installs": {"<hash>": {"spec": <node>, "ref_count": n,
//! "in_buildcache": bool}}}}`, compact JSON. Records are kept sorted by hash, so merging
//! exports in any order gives the same bytes; `ref_count` is recomputed from the edges among the
//! records on every write.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The database version written and read.
pub const DB_VERSION: &str = "8";

/// One record.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRecord {
    /// The node, with its `hash`.
    pub spec: Map<String, Value>,
    /// Whether the cache holds its tarball.
    pub in_buildcache: bool,
}

impl IndexRecord {
    /// A string field of the node.
    pub fn field(&self, key: &str) -> &str {
        self.spec
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The dependency hashes of the node.
    pub fn dependency_hashes(&self) -> Vec<&str> {
        self.spec
            .get("dependencies")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|e| e.get("hash").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the node is an external.
    pub fn is_external(&self) -> bool {
        self.spec.contains_key("external")
    }
}

/// The index of a cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Index {
    /// Records by DAG hash.
    pub records: BTreeMap<String, IndexRecord>,
}

impl Index {
    /// Parses an index blob (database versions 6 to 8).
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        let db = v.get("database").ok_or("no `database` object")?;
        let version = db.get("version").and_then(Value::as_str).unwrap_or("0");
        if !matches!(version, "6" | "7" | "8") {
            return Err(format!("unsupported database version `{version}`"));
        }
        let installs = db
            .get("installs")
            .and_then(Value::as_object)
            .ok_or("no `installs` object")?;
        let mut records = BTreeMap::new();
        for (hash, rec) in installs {
            let spec = rec
                .get("spec")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("record `{hash}` has no `spec`"))?
                .clone();
            let in_buildcache = rec
                .get("in_buildcache")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            records.insert(
                hash.clone(),
                IndexRecord {
                    spec,
                    in_buildcache,
                },
            );
        }
        Ok(Self { records })
    }

    /// Adds a node; an existing record keeps its spec and becomes `in_buildcache` if either is.
    pub fn insert(&mut self, hash: &str, spec: Map<String, Value>, in_buildcache: bool) {
        self.records
            .entry(hash.to_string())
            .and_modify(|r| r.in_buildcache |= in_buildcache)
            .or_insert(IndexRecord {
                spec,
                in_buildcache,
            });
    }

    /// The blob bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut refs: BTreeMap<&str, u64> = BTreeMap::new();
        for r in self.records.values() {
            for d in r.dependency_hashes() {
                if self.records.contains_key(d) {
                    *refs.entry(d).or_default() += 1;
                }
            }
        }
        let mut installs = Map::new();
        for (hash, r) in &self.records {
            installs.insert(
                hash.clone(),
                json!({
                    "spec": Value::Object(r.spec.clone()),
                    "ref_count": refs.get(hash.as_str()).copied().unwrap_or(0),
                    "in_buildcache": r.in_buildcache,
                }),
            );
        }
        let db = json!({"database": {"version": DB_VERSION, "installs": Value::Object(installs)}});
        forge_core::json::python_compact(&db).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spacks_index_and_recomputes_its_ref_counts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spack-v1.0/index-blob.79c29406e7d8.json"
        );
        let data = fs_err::read(path).unwrap();
        let idx = Index::parse(&data).unwrap();
        assert_eq!(idx.records.len(), 7);
        let ours: Value = serde_json::from_slice(&idx.to_bytes()).unwrap();
        let theirs: Value = serde_json::from_slice(&data).unwrap();
        for (hash, rec) in theirs["database"]["installs"].as_object().unwrap() {
            let mine = &ours["database"]["installs"][hash];
            assert_eq!(mine["ref_count"], rec["ref_count"], "{hash}");
            assert_eq!(mine["in_buildcache"], rec["in_buildcache"], "{hash}");
            assert_eq!(mine["spec"], rec["spec"], "{hash}");
        }
    }
}
