//! `forge.lock`: what each target resolved to, so that CI can rebuild exactly what was released.
//!
//! For every locked target the lock names its root(s) and the store name of every node, and it
//! holds the hashed inputs of every derivation those names stand for — versions, variants,
//! source and patch checksums, build steps, toolchain, dependencies — each once. `--locked`
//! compares a fresh plan with it and names what drifted, down to the input ([`Lock::check`]);
//! `forge diff` takes a locked target as one side. The format is specified in
//! `store-layout/forge-lock.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::derivation::{DrvHash, DrvInputs};
use crate::diff::{Derivations, Difference, diff_by_hash};
use crate::planner::Plan;

/// The file name, at the root of a recipe tree (beside `recipes/` and `toolchains/`).
pub const LOCK_FILE: &str = "forge.lock";

/// The format version this forge writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// One locked target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockedTarget {
    /// The root's store name, then those of the extra roots.
    pub roots: Vec<String>,
    /// Every node's store name, sorted.
    pub nodes: Vec<String>,
}

/// A lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lock {
    /// [`LOCK_VERSION`].
    pub lock_version: u32,
    /// Locked targets by name.
    pub targets: BTreeMap<String, LockedTarget>,
    /// The hashed inputs of every locked node, by store name.
    pub derivations: BTreeMap<String, DrvInputs>,
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// It could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It is not a lock file this forge reads.
    #[error("{path}: not a forge lock file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A derivation in it does not hash to the name it is filed under (edited by hand, or
    /// damaged).
    #[error("{path}: `{name}` does not hash to its name; the file was edited or damaged")]
    Tampered {
        /// The file.
        path: PathBuf,
        /// The store name.
        name: String,
    },
}

/// How a target's fresh plan differs from its lock entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The lock has no entry for the target.
    NotLocked,
    /// The plan differs: the roots that changed, and the inputs that did, per root.
    Changed {
        /// Store names of nodes only in the lock.
        removed: Vec<String>,
        /// Store names of nodes only in the plan.
        added: Vec<String>,
        /// Differing inputs, root by root (locked side first).
        differences: Vec<Difference>,
    },
}

impl Lock {
    /// Reads a lock file; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, LockError> {
        let text = match fs_err::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let invalid = |reason: String| LockError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let lock: Lock = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if lock.lock_version != LOCK_VERSION {
            return Err(invalid(format!(
                "lock-version {} (this forge reads {LOCK_VERSION})",
                lock.lock_version
            )));
        }
        // Every derivation must hash to the name it is filed under, and every name a target
        // lists must have its derivation.
        for (name, inputs) in &lock.derivations {
            let hash = crate::derivation::Derivation::new(inputs.clone(), Vec::new(), Vec::new())
                .hash
                .to_string();
            if !name.starts_with(&hash) {
                return Err(LockError::Tampered {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
        }
        for (t, locked) in &lock.targets {
            if let Some(n) = locked
                .nodes
                .iter()
                .chain(&locked.roots)
                .find(|n| !lock.derivations.contains_key(*n))
            {
                return Err(invalid(format!(
                    "target `{t}` names `{n}`, which it does not hold"
                )));
            }
        }
        Ok(Some(lock))
    }

    /// Writes the lock file atomically (a temporary file renamed over it).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).expect("a lock serializes");
        text.push('\n');
        let tmp = path.with_file_name(format!(
            ".{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        fs_err::write(&tmp, text).map_err(io)?;
        fs_err::rename(&tmp, path).map_err(io)
    }

    /// Records (or replaces) `target`'s plan, and drops derivations no target needs any more.
    pub fn record(&mut self, target: &str, plan: &Plan) {
        self.lock_version = LOCK_VERSION;
        let names = crate::planner::store_names(plan);
        let mut nodes: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        nodes.sort();
        nodes.dedup();
        let roots = plan
            .graph
            .roots()
            .into_iter()
            .map(|i| names[i.index()].to_string())
            .collect();
        for (n, d) in names.iter().zip(&plan.drvs) {
            self.derivations
                .entry(n.to_string())
                .or_insert_with(|| d.inputs.clone());
        }
        self.targets
            .insert(target.to_owned(), LockedTarget { roots, nodes });
        let used: std::collections::BTreeSet<&String> =
            self.targets.values().flat_map(|t| &t.nodes).collect();
        let unused: Vec<String> = self
            .derivations
            .keys()
            .filter(|k| !used.contains(k))
            .cloned()
            .collect();
        for k in unused {
            self.derivations.remove(&k);
        }
    }

    /// Whether `target`'s fresh `plan` is what the lock holds; if not, what drifted.
    pub fn check(&self, target: &str, plan: &Plan) -> Result<(), Drift> {
        let Some(locked) = self.targets.get(target) else {
            return Err(Drift::NotLocked);
        };
        let names = crate::planner::store_names(plan);
        let mut nodes: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        nodes.sort();
        nodes.dedup();
        if nodes == locked.nodes {
            return Ok(());
        }
        let removed = locked
            .nodes
            .iter()
            .filter(|n| nodes.binary_search(n).is_err())
            .cloned()
            .collect();
        let added = nodes
            .iter()
            .filter(|n| locked.nodes.binary_search(n).is_err())
            .cloned()
            .collect();
        let mut differences = Vec::new();
        for (old, new) in locked.roots.iter().zip(plan.graph.roots()) {
            let new_hash = plan.drv(new).hash.to_string();
            differences.extend(diff_by_hash(self, hash_of(old), plan, &new_hash));
        }
        Err(Drift::Changed {
            removed,
            added,
            differences,
        })
    }
}

/// The hash part of a store name.
pub fn hash_of(name: &str) -> &str {
    name.get(..forge_core::HASH_LEN).unwrap_or(name)
}

impl Derivations for Lock {
    fn inputs_of(&self, hash: &str) -> Option<&DrvInputs> {
        let h = DrvHash::parse(hash)?.to_string();
        self.derivations
            .range(h.clone()..)
            .next()
            .filter(|(k, _)| k.starts_with(&h))
            .map(|(_, v)| v)
    }
}
