//! `forge verify`: is the database sound, and every valid path present, unmodified and
//! consistent?

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::{Result, Store};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// The database file is damaged: SQLite's integrity check, the schema check or the
    /// foreign-key check found problems. Nothing else can be checked until it is rebuilt.
    Database {
        /// The database file.
        path: PathBuf,
        /// What the checks said (at most about twenty lines).
        problems: Vec<String>,
    },
    /// The database file is absent or empty, but the store holds paths.
    DatabaseMissing {
        /// The database file.
        path: PathBuf,
        /// Entries named like store paths in the paths directory.
        paths: usize,
    },
    /// A registered path's directory is gone. It is not valid: `forge realize` builds it again.
    Missing {
        /// The store name.
        name: String,
        /// Present registered paths that reference it (so it cannot just be unregistered).
        referrers: Vec<String>,
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
    /// An entry of a valid path lost the mode the commit gave it (files `0444`, or `0555` when
    /// the owner may execute them; directories `0555`): a setuid, setgid or sticky bit, a write
    /// bit. The content hash covers only the execute bit, so only this check sees it.
    Mode {
        /// The store name.
        name: String,
        /// The entry, relative to the store path (empty: the path itself).
        file: PathBuf,
        /// Its permission bits now.
        mode: u32,
        /// The bits the commit gave it.
        expected: u32,
    },
    /// A directory under the store that is not registered (an interrupted build); harmless, and
    /// removed by `forge gc`.
    Unregistered {
        /// The directory name.
        name: String,
    },
}

impl Problem {
    /// The store name this problem is about (none for the database's).
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Database { .. } | Self::DatabaseMissing { .. } => None,
            Self::Missing { name, .. }
            | Self::Modified { name, .. }
            | Self::Unreadable { name, .. }
            | Self::Mode { name, .. }
            | Self::Unregistered { name } => Some(name),
        }
    }

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
    ///
    /// The database is checked first (`PRAGMA integrity_check`, the schema, the foreign keys); a
    /// damaged or lost one is the only problem reported, since nothing it says can be trusted.
    pub fn verify(&self, check_contents: bool) -> Result<VerifyReport> {
        let trouble = self.trouble();
        let db_problem = match trouble {
            Some(crate::DbTrouble::Missing(paths)) => Some(Problem::DatabaseMissing {
                path: self.db_path(),
                paths,
            }),
            Some(crate::DbTrouble::Damaged(reason)) => Some(Problem::Database {
                path: self.db_path(),
                problems: vec![reason],
            }),
            None => {
                let problems = crate::db::health(&self.db());
                (!problems.is_empty()).then(|| Problem::Database {
                    path: self.db_path(),
                    problems,
                })
            }
        };
        if let Some(p) = db_problem {
            return Ok(VerifyReport {
                checked: 0,
                problems: vec![p],
            });
        }
        let valid = self.all_valid()?;
        let mut report = VerifyReport {
            checked: valid.len(),
            problems: Vec::new(),
        };
        for n in &valid {
            let p = self.path_of(n);
            if !self.is_present(n) {
                let mut referrers = self.referrers(n)?;
                referrers.retain(|r| r != n && self.is_present(r));
                report.problems.push(Problem::Missing {
                    name: n.clone(),
                    referrers,
                });
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
                for (file, mode, expected) in mode_problems(&p, MODE_PROBLEMS_PER_PATH) {
                    report.problems.push(Problem::Mode {
                        name: n.clone(),
                        file,
                        mode,
                        expected,
                    });
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

/// How many mode problems one path reports at most.
const MODE_PROBLEMS_PER_PATH: usize = 20;

/// The mode the commit gives an entry of mode `mode` (see `commit::normalize`): directories
/// `0555`, files `0555` when the owner may execute them and `0444` otherwise; `None` for
/// symlinks, whose mode means nothing.
pub(crate) fn normal_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let ft = meta.file_type();
    if ft.is_dir() {
        Some(0o555)
    } else if ft.is_file() {
        Some(if meta.permissions().mode() & 0o100 != 0 {
            0o555
        } else {
            0o444
        })
    } else {
        None
    }
}

/// Entries under `root` whose permission bits are not the commit's: (relative path, mode,
/// expected), at most `limit`. Unreadable entries are left to the hash.
pub(crate) fn mode_problems(root: &std::path::Path, limit: usize) -> Vec<(PathBuf, u32, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs_err::symlink_metadata(&p) else {
            continue;
        };
        if let Some(expected) = normal_mode(&meta) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode != expected {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                out.push((rel, mode, expected));
                if out.len() == limit {
                    break;
                }
            }
        }
        if meta.is_dir()
            && let Ok(rd) = fs_err::read_dir(&p)
        {
            let mut children: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            children.sort_by(|a, b| b.cmp(a));
            stack.extend(children);
        }
    }
    out.sort();
    out
}
