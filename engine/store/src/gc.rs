//! GC roots and garbage collection.
//!
//! Roots live in `.forge/roots/`: a *direct* root is a symlink there pointing at a store path; an
//! *indirect* root (made by `--out-link`) is a symlink in `.forge/roots/auto/` pointing at the
//! out-link outside the store, which points at the store path — delete the out-link and the root
//! goes away. `forge realize` keeps its result as the direct root named after the target
//! ([`root_name_for`]), replaced when the target is realized again. The collector keeps the closure of every root, of every path a running process has
//! open (found through `/proc`), of every temporary root of a running realization
//! (`.forge/temproots/<pid>`), and of every path whose build lock is held; it deletes the rest,
//! removing its files before unregistering it (deleting needs no space, so a full file system gets
//! room before the database is written). An interrupted collection leaves at worst dead paths
//! registered but missing, which are not valid and which the next collection unregisters.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Result, Store, StoreError};

/// What kind of root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// A link in `.forge/roots/`.
    Direct,
    /// An out-link elsewhere, registered in `.forge/roots/auto/`.
    Indirect,
}

/// A live GC root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Root {
    /// The link that keeps the path alive.
    pub link: PathBuf,
    /// The store name it points at.
    pub target: String,
    /// Direct or indirect.
    pub kind: RootKind,
}

/// What a collection did (or would do, for a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Valid paths deleted.
    pub deleted: Vec<String>,
    /// Unregistered leftovers (interrupted builds) deleted.
    pub leftovers: Vec<String>,
    /// Bytes freed (regular files of deleted valid paths).
    pub freed_bytes: u64,
    /// Valid paths kept.
    pub kept: usize,
    /// Logs (`logs/…`) of paths that are not valid and not being built: failed or interrupted
    /// builds. File names.
    pub stale_logs: Vec<String>,
    /// Scratch directories (`build/…`) no build holds: kept by `--keep-failed`, or left by a
    /// killed process. Directory names.
    pub scratch: Vec<String>,
}

fn fs(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

fn link_name_for(path: &Path) -> String {
    // A stable file name for an indirect root: the out-link path with `/` replaced.
    let s = path.to_string_lossy();
    let mut out: String = s.chars().map(|c| if c == '/' { '%' } else { c }).collect();
    if out.len() > 200 {
        let h = blake3::hash(s.as_bytes());
        out = format!("{}…{}", &out[..100], &h.to_hex()[..32]);
    }
    out
}

/// The direct root's name `forge realize` gives a request (a target or a spec): the request
/// with every character outside `[A-Za-z0-9._@+=^~-]` written `_`, and a leading `.` or the
/// reserved `auto` prefixed with `_`.
pub fn root_name_for(request: &str) -> String {
    let mut name: String = request
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+=^~-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') || name == "auto" {
        name.insert(0, '_');
    }
    if name.len() > 200 {
        let h = blake3::hash(request.as_bytes());
        name = format!("{}_{}", &name[..100], &h.to_hex()[..32]);
    }
    name
}

fn check_root_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name != "auto"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@+=^~-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadRootName(name.to_owned()))
    }
}

impl Store {
    /// Makes `.forge/roots/<root>` a direct root of the store path `name`, replacing the root of
    /// that name if there is one. Returns the root's link and whether it changed (it was
    /// missing or pointed elsewhere).
    pub fn add_root(&self, root: &str, name: &str) -> Result<(PathBuf, bool)> {
        check_root_name(root)?;
        let link = self.meta.join("roots").join(root);
        let target = self.path_of(name);
        if fs_err::read_link(&link).is_ok_and(|t| t == target) {
            return Ok((link, false));
        }
        if let Ok(m) = fs_err::symlink_metadata(&link)
            && !m.file_type().is_symlink()
        {
            return Err(StoreError::OutLinkTaken {
                path: link,
                what: if m.is_dir() {
                    "a directory"
                } else {
                    "a regular file"
                },
            });
        }
        fs_err::create_dir_all(self.meta.join("roots")).map_err(|e| fs(&link, e))?;
        replace_symlink(&target, &link)?;
        Ok((link, true))
    }

    /// Removes the direct root `.forge/roots/<root>`; `false` when there is none. What it kept
    /// alive goes at the next collection unless another root holds it.
    pub fn remove_root(&self, root: &str) -> Result<bool> {
        check_root_name(root)?;
        let link = self.meta.join("roots").join(root);
        match fs_err::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {
                fs_err::remove_file(&link).map_err(|e| fs(&link, e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Whether `link` may become an out-link: nothing is there, or a symlink (an earlier
    /// out-link, dangling or not), which is replaced. Anything else is someone's data: refused.
    pub fn check_out_link(link: &Path) -> Result<()> {
        match fs_err::symlink_metadata(link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fs(link, e)),
            Ok(m) if m.file_type().is_symlink() => Ok(()),
            Ok(m) => Err(StoreError::OutLinkTaken {
                path: link.to_path_buf(),
                what: if m.is_dir() {
                    "a directory"
                } else if m.is_file() {
                    "a regular file"
                } else {
                    "a special file"
                },
            }),
        }
    }

    /// Makes `link` (outside the store) a symlink to `name` and registers it as an indirect
    /// root. Only a symlink already at `link` is replaced ([`Self::check_out_link`]).
    pub fn add_out_link(&self, name: &str, link: &Path) -> Result<()> {
        let link = std::path::absolute(link).map_err(|e| fs(link, e))?;
        Self::check_out_link(&link)?;
        let target = self.path_of(name);
        replace_symlink(&target, &link)?;
        let reg = self.meta.join("roots/auto").join(link_name_for(&link));
        replace_symlink(&link, &reg)
    }

    /// Makes `names` temporary roots of this process until the returned guard is dropped:
    /// `.forge/temproots/<host>.<pid>` lists them, locked (`flock`) while the process holds
    /// it, and a collection keeps their closures while the lock is held. A realization takes
    /// them before it builds, so that a collection running between a path's commit and its GC
    /// root (or out-link) being made does not delete it. The lock, not the pid, says whether
    /// the process lives: a collection on another machine of a shared store sees it too.
    pub fn add_temp_roots<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<TempRoots> {
        let dir = self.meta.join("temproots");
        fs_err::create_dir_all(&dir).map_err(|e| fs(&dir, e))?;
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .replace(['/', '.'], "_");
        let path = dir.join(format!("{host}.{}", std::process::id()));
        let mut text = String::new();
        for n in names {
            text.push_str(n);
            text.push('\n');
        }
        // Locked before it takes its name: a collection never sees it unlocked.
        let tmp = dir.join(format!(".{host}.{}.tmp", std::process::id()));
        fs_err::write(&tmp, text).map_err(|e| fs(&tmp, e))?;
        let file = fs_err::File::open(&tmp).map_err(|e| fs(&tmp, e))?;
        file.file().lock().map_err(|e| fs(&tmp, e))?;
        fs_err::rename(&tmp, &path).map_err(|e| fs(&path, e))?;
        Ok(TempRoots { path, _lock: file })
    }

    /// The temporary roots whose process holds them; the files of processes that are gone
    /// (unlocked) are removed on the way (unless the store was opened read-only).
    pub fn temp_roots(&self) -> Vec<String> {
        let dir = self.meta.join("temproots");
        let mut out = Vec::new();
        for file in sorted_names(&dir) {
            if file.starts_with('.') {
                continue;
            }
            let path = dir.join(&file);
            let Ok(f) = fs_err::File::open(&path) else {
                continue;
            };
            match f.file().try_lock_shared() {
                Ok(()) => {
                    // Nobody holds it: its process is gone.
                    if self.write {
                        let _ = fs_err::remove_file(&path);
                    }
                    continue;
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(_)) => continue,
            }
            if let Ok(text) = fs_err::read_to_string(&path) {
                out.extend(
                    text.lines()
                        .filter(|l| crate::parse_name(l).is_some())
                        .map(str::to_owned),
                );
            }
        }
        out
    }

    /// Every live root; dangling indirect roots (their out-link was deleted or repointed outside
    /// the store) are unregistered on the way, unless the store was opened read-only.
    pub fn roots(&self) -> Result<Vec<Root>> {
        let mut out = Vec::new();
        for (dir, kind) in [
            (self.meta.join("roots"), RootKind::Direct),
            (self.meta.join("roots/auto"), RootKind::Indirect),
        ] {
            let Ok(rd) = fs_err::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for reg in entries {
                // `.<name>.<pid>.tmp`: a root being replaced right now.
                if reg
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
                {
                    continue;
                }
                let Ok(meta) = fs_err::symlink_metadata(&reg) else {
                    continue;
                };
                if !meta.file_type().is_symlink() {
                    continue;
                }
                let Ok(first) = fs_err::read_link(&reg) else {
                    continue;
                };
                let (link, target) = match kind {
                    RootKind::Direct => (reg.clone(), first),
                    RootKind::Indirect => match fs_err::read_link(&first) {
                        Ok(t) => (first, t),
                        Err(_) => {
                            if self.write {
                                let _ = fs_err::remove_file(&reg);
                            }
                            continue;
                        }
                    },
                };
                match self.name_of(&target) {
                    Some(n) => out.push(Root {
                        link,
                        target: n,
                        kind,
                    }),
                    None if kind == RootKind::Indirect && self.write => {
                        let _ = fs_err::remove_file(&reg);
                    }
                    None => {}
                }
            }
        }
        Ok(out)
    }

    /// Store names that running processes use: executables, working directories, mapped files
    /// and open files under the store.
    pub fn in_use(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Ok(rd) = fs_err::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let pid = e.file_name();
            if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let base = e.path();
            for l in ["exe", "cwd", "root"] {
                if let Ok(t) = fs_err::read_link(base.join(l)) {
                    out.extend(self.name_of(&t));
                }
            }
            if let Ok(fds) = fs_err::read_dir(base.join("fd")) {
                for fd in fds.flatten() {
                    if let Ok(t) = fs_err::read_link(fd.path()) {
                        out.extend(self.name_of(&t));
                    }
                }
            }
            if let Ok(maps) = fs_err::read_to_string(base.join("maps")) {
                for line in maps.lines() {
                    if let Some(i) = line.find('/') {
                        out.extend(self.name_of(Path::new(&line[i..])));
                    }
                }
            }
        }
        out
    }

    /// Deletes every path that is not reachable from a root, in use, or locked. With `dry_run`,
    /// only reports what would go.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let mut keep: Vec<String> = self.roots()?.into_iter().map(|r| r.target).collect();
        keep.extend(self.in_use());
        keep.extend(self.temp_roots());
        let valid = self.all_valid()?;
        // A held lock means a build (or a reader such as export) is working on the path.
        // A store opened read-only (a dry run) only looks at the locks.
        assert!(
            dry_run || self.write,
            "a store opened read-only is never collected"
        );
        let mut locks = GcLocks::new(self);
        for n in &valid {
            if !locks.idle(n)? {
                keep.push(n.clone());
            }
        }
        let live: BTreeSet<String> = self.closure(&keep)?.into_iter().collect();
        let dead: Vec<String> = valid
            .iter()
            .filter(|n| !live.contains(*n))
            .cloned()
            .collect();
        let mut report = GcReport {
            kept: valid.len() - dead.len(),
            ..GcReport::default()
        };
        for n in dead.iter().filter(|n| self.is_present(n)) {
            report.freed_bytes += self.query(n)?.map_or(0, |i| i.size);
        }
        // Unregistered directories in the paths dir: leftovers of interrupted builds.
        let valid_set: BTreeSet<&String> = valid.iter().collect();
        let mut leftovers = Vec::new();
        let entries = match fs_err::read_dir(self.paths_dir()) {
            Ok(rd) => rd.flatten().collect(),
            // A store that does not exist yet, opened read-only.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.write => Vec::new(),
            Err(e) => return Err(fs(self.paths_dir(), e)),
        };
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::parse_name(&name).is_none()
                || name.ends_with(".drv")
                || valid_set.contains(&name)
            {
                continue;
            }
            if let Some(base) = name.strip_suffix(crate::CHECK_SUFFIX) {
                // A rebuild `forge check --keep` left next to its path: it goes with the path.
                // Its lock is the path's, which this collection holds when the path is valid.
                if live.contains(base) {
                    continue;
                }
                if valid_set.contains(&base.to_owned()) {
                    leftovers.push(name);
                    continue;
                }
            }
            // A build that committed since `valid` was read released the lock it held: with
            // the lock taken here, its path is checked again.
            if locks.idle(&name)? && !self.is_valid(&name)? {
                leftovers.push(name);
            }
        }
        report.deleted = dead.clone();
        report.leftovers = leftovers;
        for file in sorted_names(&self.meta.join("logs")) {
            let Some(base) = [".wrapper.log.zst", ".log.zst", ".substituted.json"]
                .iter()
                .find_map(|suffix| file.strip_suffix(suffix))
            else {
                continue;
            };
            // A valid path's logs stay with it; a dead one's go with it below.
            if crate::parse_name(base).is_none() || valid_set.contains(&base.to_owned()) {
                continue;
            }
            if locks.idle(base)? && !self.is_valid(base)? {
                report.stale_logs.push(file);
            }
        }
        for dir in sorted_names(&self.meta.join("build")) {
            let Some((base, _purpose)) = dir.rsplit_once('.') else {
                continue;
            };
            if crate::parse_name(base).is_some() && locks.idle(base)? {
                report.scratch.push(dir);
            }
        }
        if dry_run {
            return Ok(report);
        }
        // Nothing outside the dead set may reference it (the database would refuse the
        // unregistration below): checked before anything is deleted.
        let dead_set: BTreeSet<&String> = dead.iter().collect();
        for n in &dead {
            if let Some(r) = self
                .referrers(n)?
                .into_iter()
                .find(|r| !dead_set.contains(r))
            {
                return Err(StoreError::Corrupt {
                    path: self.db_path(),
                    reason: format!("`{n}` is dead but referenced by live `{r}`"),
                });
            }
        }
        self.empty_trash();
        // Files first, then the registrations: deleting needs no space, so a full file system
        // gets room before the database is written. A collection killed in between leaves dead
        // paths registered but missing, which are not valid (realize builds them again) and
        // which the next collection unregisters.
        for n in dead.iter().chain(report.leftovers.iter()) {
            remove_tree(self, &self.path_of(n))?;
            let _ = fs_err::remove_file(self.drv_path(n));
            let _ = fs_err::remove_file(self.log_path(n));
            let _ = fs_err::remove_file(self.log_path(&format!("{n}.wrapper")));
            let _ = fs_err::remove_file(self.substitution_path(n));
        }
        for file in &report.stale_logs {
            let _ = fs_err::remove_file(self.meta.join("logs").join(file));
        }
        for dir in &report.scratch {
            remove_tree(self, &self.meta.join("build").join(dir))?;
        }
        if !dead.is_empty() {
            match crate::db::unregister(&mut *self.db_for_writing()?, &dead)
                .map_err(|e| self.db_err(e))?
            {
                Ok(()) => {}
                Err((name, referrer)) => {
                    return Err(StoreError::Corrupt {
                        path: self.db_path(),
                        reason: format!("`{name}` is dead but referenced by live `{referrer}`"),
                    });
                }
            }
        }
        drop(locks);
        Ok(report)
    }

    /// Removes what a killed collection left in `.forge/trash` (entries `<name>.<pid>` of
    /// processes that are gone).
    fn empty_trash(&self) {
        let trash = self.meta.join("trash");
        let Ok(rd) = fs_err::read_dir(&trash) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let alive = name
                .rsplit_once('.')
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if alive {
                continue;
            }
            let p = e.path();
            make_writable(&p);
            let _ = if p.is_dir() {
                fs_err::remove_dir_all(&p)
            } else {
                fs_err::remove_file(&p)
            };
        }
    }
}

/// Temporary roots of this process ([`Store::add_temp_roots`]): removed when dropped.
#[derive(Debug)]
pub struct TempRoots {
    path: PathBuf,
    /// The open file whose lock says the process lives.
    _lock: fs_err::File,
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

/// The build locks one collection holds, each name's taken at most once: the locks are
/// `flock`s, and a second one on another descriptor would fail against the first, making
/// the collection think a build holds what it holds itself.
struct GcLocks<'a> {
    store: &'a Store,
    /// Whether each name asked about was idle (its lock free, now held here).
    idle: BTreeMap<String, bool>,
    held: Vec<crate::PathLock>,
}

impl<'a> GcLocks<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            idle: BTreeMap::new(),
            held: Vec::new(),
        }
    }

    /// Whether no build holds `name`'s lock; if so, the collection holds it from now on. A
    /// store opened read-only (a dry run) takes nothing: it only checks that nobody holds it.
    fn idle(&mut self, name: &str) -> Result<bool> {
        if let Some(&v) = self.idle.get(name) {
            return Ok(v);
        }
        let v = if self.store.write {
            match self.store.try_lock(name)? {
                Some(l) => {
                    self.held.push(l);
                    true
                }
                None => false,
            }
        } else {
            !crate::lock::is_held(&self.store.meta.join("locks"), name)?
        };
        self.idle.insert(name.to_owned(), v);
        Ok(v)
    }
}

/// The entries of `dir`, sorted; none when it cannot be read.
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs_err::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Points `link` at `target`, replacing whatever is there, atomically.
fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        link.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs_err::remove_file(&tmp);
    // Errors name `link`: the temporary name means nothing to whoever asked for the link.
    fs_err::os::unix::fs::symlink(target, &tmp).map_err(|e| fs(link, e))?;
    fs_err::rename(&tmp, link).map_err(|e| {
        let _ = fs_err::remove_file(&tmp);
        fs(link, e)
    })
}

/// Removes a store tree: moved to `.forge/trash` first (one atomic step), then deleted with
/// write permission restored on its directories.
pub(crate) fn remove_tree(store: &Store, path: &Path) -> Result<()> {
    let Ok(meta) = fs_err::symlink_metadata(path) else {
        return Ok(());
    };
    let trash = store.meta.join("trash").join(format!(
        "{}.{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let target = if meta.is_dir() {
        // The directory's own permissions must allow the rename to a new parent.
        let _ = fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755));
        fs_err::rename(path, &trash).map_err(|e| fs(path, e))?;
        trash
    } else {
        path.to_path_buf()
    };
    make_writable(&target);
    if meta.is_dir() {
        fs_err::remove_dir_all(&target).map_err(|e| fs(&target, e))
    } else {
        fs_err::remove_file(&target).map_err(|e| fs(&target, e))
    }
}

fn make_writable(p: &Path) {
    let Ok(meta) = fs_err::symlink_metadata(p) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        if let Ok(rd) = fs_err::read_dir(p) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}
