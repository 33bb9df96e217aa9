//! `forge verify --repair`: rebuilding a damaged or lost database from the store paths.
//!
//! Everything the database records can be found again on disk, except build times: a path is
//! registered again when its top entry carries the marks of a finished commit (mode `0555` and
//! mtime 1, set last, after the output was complete and synced); its content hash, size and file
//! count are recomputed; its deriver is its hash part; its references are found again by scanning
//! it, as the commit did, for the hash parts of every path its derivation could see (the closure
//! of its `.drv` file's dependencies), or of every path in the store when a `.drv` of that closure
//! is gone. The new database is written beside the old one and renamed over it, so a repair that
//! is killed leaves either database, never a part.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{DbTrouble, HASH_LEN, PathInfo, Problem, Result, Store, StoreError, VerifyReport};

/// What a repair did, and the verification after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The database was damaged or lost, and rebuilt.
    pub rebuilt: Option<RebuiltDb>,
    /// Registered paths that were missing and that no present path references: unregistered.
    pub unregistered: Vec<String>,
    /// Registered paths that are missing but referenced by present ones: they stay registered
    /// (unregistering them would leave their referrers dangling) until `forge realize` builds
    /// them again.
    pub still_missing: Vec<String>,
    /// Entries (store name, path relative to it) whose mode was given back, with
    /// `check_contents`, in paths whose contents are intact.
    pub modes_restored: Vec<(String, PathBuf)>,
    /// The store checked after the repair.
    pub after: VerifyReport,
}

/// A database rebuilt from the store paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuiltDb {
    /// Why it was rebuilt.
    pub reason: String,
    /// Where the damaged file was moved (none when it was missing or empty).
    pub damaged_copy: Option<PathBuf>,
    /// Paths registered again.
    pub registered: Vec<String>,
    /// Entries of the paths directory left unregistered, and why.
    pub skipped: Vec<Skipped>,
}

/// An entry a rebuild did not register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The store name.
    pub name: String,
    /// Why.
    pub reason: String,
}

fn fs(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// Whether the entry at `path` carries the marks of a finished commit: mtime 1, and the mode
/// the normalization gives (a directory `0555`, a file `0444` or `0555`). An interrupted build
/// never leaves both.
fn committed(path: &Path) -> bool {
    let Ok(m) = fs_err::symlink_metadata(path) else {
        return false;
    };
    let mode = m.mode() & 0o7777;
    m.mtime() == 1
        && if m.is_dir() {
            mode == 0o555
        } else if m.is_file() {
            mode == 0o444 || mode == 0o555
        } else {
            m.file_type().is_symlink()
        }
}

/// The derivation hashes a `.drv` document depends on.
fn drv_deps(path: &Path) -> Option<Vec<String>> {
    let text = fs_err::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let deps = match doc.get("inputs")?.get("deps") {
        None => return Some(Vec::new()),
        Some(d) => d.as_array()?,
    };
    deps.iter()
        .map(|d| d.get("drv").and_then(|h| h.as_str()).map(str::to_owned))
        .collect()
}

/// The paths among `present` (by hash part) that the build of `name` could see: the closure of
/// its derivation's dependencies, itself included. `None` when a `.drv` of that closure is gone
/// or unreadable.
fn drv_candidates(
    name: &str,
    present: &HashMap<&str, &String>,
    drvs: &HashMap<String, PathBuf>,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.get(..HASH_LEN)?.to_owned()];
    let mut out = Vec::new();
    while let Some(h) = stack.pop() {
        if !seen.insert(h.clone()) {
            continue;
        }
        if let Some(n) = present.get(h.as_str()) {
            out.push((*n).clone());
        }
        stack.extend(drv_deps(drvs.get(&h)?)?);
    }
    Some(out)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Removes a database file and its write-ahead log and shared-memory index.
fn remove_db_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match fs_err::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fs(&p, e)),
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

impl Store {
    /// Repairs what `forge verify --repair` can: a damaged or lost database is rebuilt from the
    /// store paths (see the module documentation). Then verifies the store again
    /// (`check_contents` as for [`Store::verify`]). Run it while no other forge process uses the
    /// store.
    pub fn repair(&self, check_contents: bool) -> Result<RepairReport> {
        let reason = match self.trouble() {
            Some(DbTrouble::Missing(n)) => Some(format!(
                "the database file is missing or empty, and the store holds {n} store paths"
            )),
            Some(DbTrouble::Damaged(r)) => Some(r),
            None => {
                let problems = crate::db::health(&self.db());
                (!problems.is_empty()).then(|| problems.join("; "))
            }
        };
        let rebuilt = match reason {
            Some(r) => Some(self.rebuild_db(r)?),
            None => None,
        };
        let (unregistered, still_missing) = self.unregister_missing()?;
        let mut after = self.verify(check_contents)?;
        let modes_restored = self.restore_modes(&after)?;
        if !modes_restored.is_empty() {
            after = self.verify(check_contents)?;
        }
        Ok(RepairReport {
            rebuilt,
            unregistered,
            still_missing,
            modes_restored,
            after,
        })
    }

    /// Gives every entry of the paths with mode problems in `report` back the mode the commit
    /// gave it, in paths whose contents are intact (a modified path needs more than modes).
    fn restore_modes(&self, report: &VerifyReport) -> Result<Vec<(String, PathBuf)>> {
        use std::os::unix::fs::PermissionsExt;
        let mut names = BTreeSet::new();
        let mut modified = BTreeSet::new();
        for p in &report.problems {
            match p {
                Problem::Mode { name, .. } => {
                    names.insert(name);
                }
                Problem::Modified { name, .. } | Problem::Unreadable { name, .. } => {
                    modified.insert(name);
                }
                _ => {}
            }
        }
        let mut restored = Vec::new();
        for name in names.difference(&modified) {
            let root = self.path_of(name);
            for (file, _, expected) in crate::verify::mode_problems(&root, usize::MAX) {
                let path = root.join(&file);
                fs_err::set_permissions(&path, std::fs::Permissions::from_mode(expected))
                    .map_err(|e| fs(&path, e))?;
                restored.push(((*name).clone(), file));
            }
        }
        Ok(restored)
    }

    /// Unregisters the registered paths that are missing, as `nix-store --verify` does, except
    /// those a present path references; returns (unregistered, kept).
    fn unregister_missing(&self) -> Result<(Vec<String>, Vec<String>)> {
        let missing: Vec<String> = self
            .all_valid()?
            .into_iter()
            .filter(|n| !self.is_present(n))
            .collect();
        let mut referrers = HashMap::new();
        for n in &missing {
            referrers.insert(n.clone(), self.referrers(n)?);
        }
        // A missing path goes when every path referencing it goes too.
        let mut going: BTreeSet<&String> = missing.iter().collect();
        loop {
            let before = going.len();
            let snapshot = going.clone();
            going.retain(|n| referrers[*n].iter().all(|r| snapshot.contains(r)));
            if going.len() == before {
                break;
            }
        }
        let going: Vec<String> = going.into_iter().cloned().collect();
        let kept: Vec<String> = missing
            .iter()
            .filter(|n| !going.contains(n))
            .cloned()
            .collect();
        if !going.is_empty() {
            match crate::db::unregister(&mut *self.db_for_writing()?, &going)
                .map_err(|e| self.db_err(e))?
            {
                Ok(()) => {}
                Err((name, referrer)) => {
                    return Err(StoreError::Corrupt {
                        path: self.db_path(),
                        reason: format!(
                            "`{name}` is missing and was to be unregistered, but `{referrer}` references it"
                        ),
                    });
                }
            }
        }
        Ok((going, kept))
    }

    fn rebuild_db(&self, reason: String) -> Result<RebuiltDb> {
        let mut outputs = Vec::new();
        let mut drvs = HashMap::new();
        for e in fs_err::read_dir(self.paths_dir())
            .map_err(|e| fs(self.paths_dir(), e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::parse_name(&name).is_none() {
                continue;
            }
            if name.ends_with(".drv") {
                drvs.insert(name[..HASH_LEN].to_owned(), e.path());
                continue;
            }
            // A rebuild `forge check --keep` left beside its path is not an output.
            if let Some(base) = name.strip_suffix(crate::CHECK_SUFFIX)
                && crate::parse_name(base).is_some()
                && fs_err::symlink_metadata(self.path_of(base)).is_ok()
            {
                continue;
            }
            outputs.push(name);
        }
        outputs.sort();
        let mut locks = Vec::new();
        let mut keep = Vec::new();
        let mut skipped = Vec::new();
        for name in outputs {
            let Some(lock) = self.try_lock(&name)? else {
                skipped.push(Skipped {
                    name,
                    reason: "its build lock is held: a build of it is running".into(),
                });
                continue;
            };
            if committed(&self.path_of(&name)) {
                keep.push(name);
                locks.push(lock);
            } else {
                skipped.push(Skipped {
                    name,
                    reason: "it is not normalized (mode 0555, mtime 1): the leftover of an interrupted build, which `forge gc` removes".into(),
                });
            }
        }
        let present: HashMap<&str, &String> = keep.iter().map(|n| (&n[..HASH_LEN], n)).collect();
        let mut infos = Vec::with_capacity(keep.len());
        for name in &keep {
            let path = self.path_of(name);
            let tree = forge_core::treehash::hash_tree(&path)?;
            let candidates = drv_candidates(name, &present, &drvs).unwrap_or_else(|| keep.clone());
            let references = crate::refs::scan(&path, &candidates, None)?
                .references
                .into_iter()
                .collect();
            let registered = drvs
                .get(&name[..HASH_LEN])
                .and_then(|d| fs_err::metadata(d).ok())
                .map_or_else(now, |m| m.mtime());
            infos.push(PathInfo {
                name: name.clone(),
                content_hash: tree.hex(),
                size: tree.bytes,
                files: tree.files,
                deriver: name[..HASH_LEN].to_owned(),
                registered,
                build_seconds: 0.0,
                references,
            });
        }
        // The new database is complete on disk before it takes the old one's name.
        let db_path = self.db_path();
        let fresh = with_suffix(&db_path, ".rebuild");
        let wrap = |source| StoreError::Db {
            path: fresh.clone(),
            source,
        };
        remove_db_files(&fresh)?;
        {
            let mut conn = crate::db::create(&fresh)?;
            crate::db::insert_all(&mut conn, &infos).map_err(wrap)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(wrap)?;
            conn.close().map_err(|(_, e)| wrap(e))?;
        }
        for suffix in ["-wal", "-shm"] {
            let _ = fs_err::remove_file(with_suffix(&fresh, suffix));
        }
        fs_err::File::open(&fresh)
            .and_then(|f| f.sync_all())
            .map_err(|e| fs(&fresh, e))?;
        let mut conn = self.db();
        // Close the old database before its files move.
        *conn = crate::db::memory();
        let damaged_copy = if crate::db::is_absent(&db_path) {
            remove_db_files(&db_path)?;
            None
        } else {
            let copy = with_suffix(&db_path, &format!(".damaged-{}", now()));
            fs_err::rename(&db_path, &copy).map_err(|e| fs(&db_path, e))?;
            // The log belongs to the damaged file: beside the new one it would be replayed into it.
            let wal = with_suffix(&db_path, "-wal");
            if wal.exists() {
                let to = with_suffix(&copy, "-wal");
                fs_err::rename(&wal, &to).map_err(|e| fs(&wal, e))?;
            }
            let shm = with_suffix(&db_path, "-shm");
            let _ = fs_err::remove_file(&shm);
            Some(copy)
        };
        fs_err::rename(&fresh, &db_path).map_err(|e| fs(&db_path, e))?;
        crate::commit::sync_dir(self.meta_dir())?;
        *conn = crate::db::open(&db_path)?;
        drop(conn);
        self.set_db_writable();
        *self
            .trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        drop(locks);
        Ok(RebuiltDb {
            reason,
            damaged_copy,
            registered: keep,
            skipped,
        })
    }
}
