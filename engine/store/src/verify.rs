//! `forge verify`: is every valid path present, unmodified and consistent?

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{Result, Store};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// A valid path's directory is gone.
    Missing {
        /// The store name.
        name: String,
    },
    /// A valid path's contents changed since it was registered.
    Modified {
        /// The store name.
        name: String,
        /// Content hash recorded at registration.
        expected: String,
        /// Content hash now.
        actual: String,
    },
    /// A valid path's contents cannot be read.
    Unreadable {
        /// The store name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A directory under the store that is not registered (an interrupted build); harmless, and
    /// removed by `forge gc`.
    Unregistered {
        /// The directory name.
        name: String,
    },
}

impl Problem {
    /// Whether this problem means a valid path cannot be trusted.
    pub fn is_corruption(&self) -> bool {
        !matches!(self, Self::Unregistered { .. })
    }
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Valid paths checked.
    pub checked: usize,
    /// Problems found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no valid path is missing or modified.
    pub fn is_clean(&self) -> bool {
        !self.problems.iter().any(Problem::is_corruption)
    }
}

impl Store {
    /// Checks that every valid path exists, and with `check_contents` that its content hash still
    /// matches; lists unregistered leftovers.
    pub fn verify(&self, check_contents: bool) -> Result<VerifyReport> {
        let valid = self.all_valid()?;
        let mut report = VerifyReport {
            checked: valid.len(),
            problems: Vec::new(),
        };
        for n in &valid {
            let p = self.path_of(n);
            if fs_err::symlink_metadata(&p).is_err() {
                report.problems.push(Problem::Missing { name: n.clone() });
                continue;
            }
            if check_contents {
                let info = self.query(n)?.expect("valid paths have info");
                match forge_core::treehash::hash_tree(&p) {
                    Ok(h) if h.hex() == info.content_hash => {}
                    Ok(h) => report.problems.push(Problem::Modified {
                        name: n.clone(),
                        expected: info.content_hash,
                        actual: h.hex(),
                    }),
                    Err(e) => report.problems.push(Problem::Unreadable {
                        name: n.clone(),
                        reason: e.to_string(),
                    }),
                }
            }
        }
        let valid_set: BTreeSet<&String> = valid.iter().collect();
        if let Ok(rd) = fs_err::read_dir(self.paths_dir()) {
            let mut extra: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    crate::parse_name(n).is_some() && !n.ends_with(".drv") && !valid_set.contains(n)
                })
                // A rebuild kept by `forge check --keep` beside its valid path is no leftover.
                .filter(|n| {
                    n.strip_suffix(crate::CHECK_SUFFIX)
                        .is_none_or(|base| !valid_set.contains(&base.to_owned()))
                })
                .collect();
            extra.sort();
            report
                .problems
                .extend(extra.into_iter().map(|name| Problem::Unregistered { name }));
        }
        Ok(report)
    }
}
