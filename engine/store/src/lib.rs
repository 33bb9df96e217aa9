//! The content-addressed store: output directories, their metadata in SQLite, locks, roots,
//! garbage collection, verification and build logs.
//!
//! The fifth stage of forge's pipeline (see `store-layout/store.md` for the on-disk format). A
//! store path is `<paths dir>/<hash>-<name>-<version>`, where the hash is the derivation hash
//! computed by `forge-plan`. A path is *valid* once its row is in the database; the row is
//! written last, after the output is complete, normalized, hashed, synced and renamed into place
//! ([`Store::commit`]). Everything else on disk is either metadata under `.forge/` or an invalid
//! leftover that [`Store::gc`] removes.
//!
//! This crate does not build, fetch or plan anything; it only keeps outputs safe.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod commit;
mod db;
mod error;
mod gc;
mod lock;
mod refs;
mod repair;
pub mod sharedfs;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

pub use commit::{CommitRequest, SHEBANG_LIMIT, rewrite_same_length};
pub use error::StoreError;
pub use gc::{GcReport, Root, RootKind, TempRoots, root_name_for};
pub use lock::PathLock;
pub use refs::{find_reference, scan_references};
pub use repair::{RebuiltDb, RepairReport, Skipped};
pub use verify::{Problem, VerifyReport};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

pub use forge_core::HASH_LEN;

/// Suffix of a rebuilt output kept beside its store path by `forge check --keep`
/// (`<path>.check`). Not registered; removed by `forge gc` together with its path.
pub const CHECK_SUFFIX: &str = ".check";

/// Name of the metadata directory inside the store root.
pub const META_DIR: &str = ".forge";

/// The store's settings, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoreConfig {
    /// Format version of the store layout.
    pub version: u32,
    /// Length the directory holding the outputs is padded to (0: no padding). Long build
    /// prefixes let Spack relocate binaries into any shorter consumer prefix.
    pub padded_length: usize,
}

/// Current store layout version.
pub const LAYOUT_VERSION: u32 = 1;

/// Padding of a new store's output directory when none is asked for. Exports relocate binaries
/// only into shorter prefixes; 160 bytes leave room for every consumer install root Spack accepts
/// (its `sbang` limit caps those at 117 bytes).
pub const DEFAULT_PADDED_LENGTH: usize = 160;

/// Metadata of a valid path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInfo {
    /// `<hash>-<name>-<version>`.
    pub name: String,
    /// Content hash of the output tree (`forge-tree-v1`, hex).
    pub content_hash: String,
    /// Total size of its regular files, in bytes.
    pub size: u64,
    /// Number of regular files.
    pub files: u64,
    /// The derivation hash that produced it.
    pub deriver: String,
    /// When it became valid (seconds since the Unix epoch).
    pub registered: i64,
    /// How long its build took, in seconds (0 for host tools).
    pub build_seconds: f64,
    /// Store paths it references at run time (sorted; may include itself).
    pub references: Vec<String>,
}

/// What a commit registered, and what it noticed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The registered path.
    pub info: PathInfo,
    /// Files of the output (relative, sorted) that name a build's scratch directory: they
    /// depend on where the store is, and on a directory deleted after the build.
    pub embeds_build_dir: Vec<PathBuf>,
}

pub use forge_core::name::split as parse_name;

/// The content-addressed store.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    paths_dir: PathBuf,
    meta: PathBuf,
    config: StoreConfig,
    /// Whether this process may write to the store (`false` for read-only commands).
    write: bool,
    /// Why the database could not be opened, for a store opened to be verified or repaired.
    trouble: Mutex<Option<DbTrouble>>,
    db: Mutex<rusqlite::Connection>,
    /// Whether `db` may write: a store opened to write whose file system was full has a
    /// read-only connection until something must be written (by then `gc` may have made room).
    db_writable: AtomicBool,
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// To build, collect garbage: everything may be written.
    Write,
    /// To read (`path-info`, `roots`, `gc --dry-run` …): nothing is written.
    Read,
    /// To verify: nothing is written, and a damaged or lost database is reported, not refused.
    Inspect,
    /// To repair: like `Inspect`, and writable.
    Repair,
}

/// What is wrong with a store's database file, as found when opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DbTrouble {
    /// The file is absent or empty while the paths directory holds this many entries.
    Missing(usize),
    /// SQLite or the schema check reports damage.
    Damaged(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory that holds outputs for a store rooted at `root` padded to `padded_length`:
/// `root` itself, or `root` followed by `__forge_padding…` components up to that length.
pub fn padded_paths_dir(root: &Path, padded_length: usize) -> PathBuf {
    let base = root.as_os_str().len();
    if padded_length <= base + 1 {
        return root.to_path_buf();
    }
    let mut remaining = padded_length - base;
    let mut out = root.to_path_buf();
    const COMPONENT: &str = "__forge_padding";
    while remaining > 1 {
        // `/` plus a component of at most 255 bytes.
        let mut len = (remaining - 1).min(255);
        if remaining - (len + 1) == 1 {
            // Never leave a single byte over: it cannot hold `/` and a name.
            len -= 1;
        }
        let mut c = String::with_capacity(len);
        c.push_str(&COMPONENT[..COMPONENT.len().min(len)]);
        while c.len() < len {
            c.push('_');
        }
        out.push(c);
        remaining -= len + 1;
    }
    out
}

/// Where the outputs of the store at `root` are (or will be), without creating or opening it:
/// the padding its configuration records, else `padded_length` (default
/// [`DEFAULT_PADDED_LENGTH`]) as a new store would get. For commands that only print paths.
pub fn paths_dir_for(root: &Path, padded_length: Option<usize>) -> PathBuf {
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let recorded = fs_err::read_to_string(root.join(META_DIR).join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<StoreConfig>(&t).ok())
        .map(|c| c.padded_length);
    let len = recorded.unwrap_or(padded_length.unwrap_or(DEFAULT_PADDED_LENGTH));
    padded_paths_dir(&root, len)
}

/// Refuses a store this process cannot write, before anything is attempted: its root or
/// metadata directory on a read-only file system, or without write permission.
fn check_writable(root: &Path, meta: &Path) -> Result<()> {
    for dir in [root, meta] {
        if !dir.exists() {
            continue;
        }
        if let Err(e) = rustix::fs::access(dir, rustix::fs::Access::WRITE_OK) {
            return Err(StoreError::ReadOnly {
                root: root.to_path_buf(),
                reason: format!("`{}`: {}", dir.display(), std::io::Error::from(e)),
            });
        }
    }
    Ok(())
}

/// A failed write in the store: [`StoreError::ReadOnly`] when the file system or the
/// permissions refused it.
fn read_only_or_io(root: &Path, path: &Path, e: std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
    ) {
        return StoreError::ReadOnly {
            root: root.to_path_buf(),
            reason: format!("`{}`: {e}", path.display()),
        };
    }
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// A database error that a full file system explains becomes [`StoreError::DiskFull`].
fn disk_full(root: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Db { path, source }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
                || (db::may_be_disk_full(&source) && db::file_system_full(&path)) =>
        {
            StoreError::DiskFull {
                root: root.to_path_buf(),
                path,
                reason: source.to_string(),
            }
        }
        e => e,
    }
}

/// How many outputs (or leftovers of builds) `paths_dir` holds: entries named like store paths,
/// other than `.drv` files. A store that holds any had a database.
fn store_entries(paths_dir: &Path) -> usize {
    fs_err::read_dir(paths_dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                parse_name(&n).is_some() && !n.ends_with(".drv")
            })
            .count()
    })
}

impl Store {
    /// Opens the store at `root`, creating it with `padded_length` (default
    /// [`DEFAULT_PADDED_LENGTH`]) if it does not exist. An existing store keeps the padding it was
    /// created with; asking for another is an error. A damaged database, or a lost one in a store
    /// that holds paths, is an error that names the repair ([`Store::repair`]).
    pub fn open(root: &Path, padded_length: Option<usize>) -> Result<Store> {
        Self::open_mode(root, padded_length, Mode::Write)
    }

    /// Opens the store at `root` for reading only: nothing is written (no directory, no
    /// configuration, no database change or checkpoint), so it works on a full or read-only file
    /// system. A store that does not exist is empty.
    pub fn open_read_only(root: &Path, padded_length: Option<usize>) -> Result<Store> {
        Self::open_mode(root, padded_length, Mode::Read)
    }

    /// Opens the store at `root` to verify it: nothing is written, and a damaged or lost
    /// database is not an error but what [`Store::verify`] reports. A store that does not exist
    /// is empty.
    pub fn open_to_verify(root: &Path, padded_length: Option<usize>) -> Result<Store> {
        Self::open_mode(root, padded_length, Mode::Inspect)
    }

    /// Opens (creating if needed) the store at `root` to repair it with [`Store::repair`]: a
    /// damaged or lost database is not an error.
    pub fn open_to_repair(root: &Path, padded_length: Option<usize>) -> Result<Store> {
        Self::open_mode(root, padded_length, Mode::Repair)
    }

    fn open_mode(root: &Path, padded_length: Option<usize>, mode: Mode) -> Result<Store> {
        let root = std::path::absolute(root).map_err(io(root))?;
        let meta = root.join(META_DIR);
        let write = matches!(mode, Mode::Write | Mode::Repair);
        if write {
            check_writable(&root, &meta)?;
            for d in [
                "",
                "locks",
                "logs",
                "roots",
                "roots/auto",
                "build",
                "tmp",
                "trash",
            ] {
                let p = meta.join(d);
                fs_err::create_dir_all(&p).map_err(|e| read_only_or_io(&root, &p, e))?;
            }
        }
        let config_path = meta.join("config.json");
        let config = match fs_err::read_to_string(&config_path) {
            Ok(text) => {
                let c: StoreConfig =
                    serde_json::from_str(&text).map_err(|e| StoreError::BadConfig {
                        path: config_path.clone(),
                        reason: e.to_string(),
                    })?;
                if c.version != LAYOUT_VERSION {
                    return Err(StoreError::UnsupportedLayout {
                        path: config_path,
                        found: c.version,
                        known: LAYOUT_VERSION,
                    });
                }
                if let Some(p) = padded_length
                    && p != c.padded_length
                {
                    return Err(StoreError::PaddingMismatch {
                        root: root.clone(),
                        existing: c.padded_length,
                        requested: p,
                    });
                }
                c
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    path: config_path,
                    source: std::io::Error::new(e.kind(), e.to_string()),
                });
            }
            Err(_) => {
                let c = StoreConfig {
                    version: LAYOUT_VERSION,
                    padded_length: padded_length.unwrap_or(DEFAULT_PADDED_LENGTH),
                };
                if write {
                    commit::write_atomic(
                        &config_path,
                        serde_json::to_string_pretty(&c)
                            .expect("serializes")
                            .as_bytes(),
                    )?;
                }
                c
            }
        };
        let paths_dir = padded_paths_dir(&root, config.padded_length);
        if write {
            fs_err::create_dir_all(&paths_dir).map_err(|e| StoreError::Io {
                path: paths_dir.clone(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            })?;
            commit::install_sbang(&root)?;
        }
        let db_path = meta.join("db.sqlite");
        let mut trouble = None;
        let tolerant = matches!(mode, Mode::Inspect | Mode::Repair);
        let mut writable = write;
        let mut fresh = None;
        if db::is_absent(&db_path) {
            let entries = store_entries(&paths_dir);
            if entries == 0 {
                fresh = Some(if write {
                    db::create(&db_path)?
                } else {
                    db::memory()
                });
            } else if db::is_absent(&db_path) {
                // (Looked at again: another process may have created it and built since.)
                if !tolerant {
                    return Err(StoreError::DbMissing {
                        path: db_path,
                        root,
                        paths: entries,
                    });
                }
                trouble = Some(DbTrouble::Missing(entries));
                fresh = Some(db::memory());
            }
        }
        let conn = match fresh {
            Some(c) => c,
            None => {
                let opened = if write {
                    db::open(&db_path).or_else(|e| match e {
                        // A full file system: read now, open for writing when it is needed.
                        StoreError::Db { ref source, .. }
                            if db::may_be_disk_full(source) && db::file_system_full(&db_path) =>
                        {
                            writable = false;
                            db::open_read_only(&db_path).map_err(|_| e)
                        }
                        e => Err(e),
                    })
                } else {
                    db::open_read_only(&db_path)
                };
                match opened.map_err(|e| disk_full(&root, e)) {
                    Ok(c) => c,
                    Err(StoreError::DbDamaged { reason, .. }) if tolerant => {
                        trouble = Some(DbTrouble::Damaged(reason));
                        db::memory()
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Store {
            root,
            paths_dir,
            meta,
            config,
            write,
            trouble: Mutex::new(trouble),
            db: Mutex::new(conn),
            db_writable: AtomicBool::new(writable),
        })
    }

    /// The store root (what `--store` names).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding the outputs (the root, or the padded directory below it).
    pub fn paths_dir(&self) -> &Path {
        &self.paths_dir
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The metadata directory (`<root>/.forge`).
    pub fn meta_dir(&self) -> &Path {
        &self.meta
    }

    /// `<root>/bin/sbang`: the interpreter trampoline for shebang lines longer than the kernel
    /// accepts.
    pub fn sbang_path(&self) -> PathBuf {
        self.root.join("bin/sbang")
    }

    /// Whether this handle may write (false for [`Store::open_read_only`]).
    pub fn writable(&self) -> bool {
        self.write
    }

    /// Full path of a store name.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.paths_dir.join(name)
    }

    /// The store name of a full path inside the store (`…/<name>/bin/x` → `<name>`).
    pub fn name_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.paths_dir).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        parse_name(first).map(|_| first.to_owned())
    }

    /// Where the derivation document of a store name is kept.
    pub fn drv_path(&self, name: &str) -> PathBuf {
        self.paths_dir.join(format!("{name}.drv"))
    }

    /// Writes a derivation document next to its output (atomically).
    pub fn write_drv(&self, name: &str, document: &[u8]) -> Result<()> {
        let p = self.drv_path(name);
        if p.exists() {
            return Ok(());
        }
        commit::write_atomic(&p, document)
    }

    /// A scratch directory for building `name`, on the store's filesystem (so the output can be
    /// renamed into place). The caller must hold the path's lock.
    pub fn scratch_dir(&self, name: &str, purpose: &str) -> PathBuf {
        self.meta.join("build").join(format!("{name}.{purpose}"))
    }

    /// Directory for temporary files on the store's filesystem.
    pub fn tmp_dir(&self) -> PathBuf {
        self.meta.join("tmp")
    }

    /// What was wrong with the database when the store was opened to verify or repair it.
    pub(crate) fn trouble(&self) -> Option<DbTrouble> {
        self.trouble
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database, opened for writing if it was opened read-only on a full file system.
    pub(crate) fn db_for_writing(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        let mut conn = self.db();
        if !self.db_writable.load(Ordering::SeqCst) {
            assert!(self.write, "a store opened read-only is never written");
            *conn = db::open(&self.db_path()).map_err(|e| disk_full(&self.root, e))?;
            self.db_writable.store(true, Ordering::SeqCst);
        }
        Ok(conn)
    }

    /// Records that the database connection (replaced by a repair) may write.
    pub(crate) fn set_db_writable(&self) {
        self.db_writable.store(true, Ordering::SeqCst);
    }

    /// Whether `name` is valid: registered, and present. A registered path that was deleted
    /// behind forge's back is not valid: it is built again, and its commit registers it anew.
    pub fn is_valid(&self, name: &str) -> Result<bool> {
        Ok(db::is_valid(&self.db(), name).map_err(|e| self.db_err(e))? && self.is_present(name))
    }

    /// The subset of `names` that is valid (registered and present), in one query.
    pub fn valid_subset<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeSet<String>> {
        let mut valid = db::valid_subset(&self.db(), names).map_err(|e| self.db_err(e))?;
        valid.retain(|n| self.is_present(n));
        Ok(valid)
    }

    /// Whether something is at the store path of `name`.
    pub(crate) fn is_present(&self, name: &str) -> bool {
        fs_err::symlink_metadata(self.path_of(name)).is_ok()
    }

    /// Metadata of a valid path.
    pub fn query(&self, name: &str) -> Result<Option<PathInfo>> {
        db::query(&self.db(), name).map_err(|e| self.db_err(e))
    }

    /// Every valid path, sorted.
    pub fn all_valid(&self) -> Result<Vec<String>> {
        db::all_valid(&self.db()).map_err(|e| self.db_err(e))
    }

    /// Paths that reference `name`.
    pub fn referrers(&self, name: &str) -> Result<Vec<String>> {
        db::referrers(&self.db(), name).map_err(|e| self.db_err(e))
    }

    /// The runtime closure of `names` (themselves included), sorted.
    pub fn closure(&self, names: &[String]) -> Result<Vec<String>> {
        db::closure(&self.db(), names).map_err(|e| self.db_err(e))
    }

    /// Total size of the closure of `name`.
    pub fn closure_size(&self, name: &str) -> Result<u64> {
        let c = self.closure(&[name.to_owned()])?;
        let mut total = 0;
        for n in c {
            if let Some(i) = self.query(&n)? {
                total += i.size;
            }
        }
        Ok(total)
    }

    /// Average build time of earlier builds of `package`, for scheduling.
    pub fn build_estimate(&self, package: &str) -> Result<Option<f64>> {
        db::build_estimate(&self.db(), package).map_err(|e| self.db_err(e))
    }

    /// A shortest chain of references from `from` to `to`, both included.
    pub fn why_depends(&self, from: &str, to: &str) -> Result<Option<Vec<String>>> {
        let conn = self.db();
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_owned()]);
        let mut seen = BTreeSet::from([from.to_owned()]);
        while let Some(cur) = queue.pop_front() {
            if cur == to {
                let mut chain = vec![cur.clone()];
                let mut c = cur;
                while let Some(p) = prev.get(&c) {
                    chain.push(p.clone());
                    c = p.clone();
                }
                chain.reverse();
                return Ok(Some(chain));
            }
            for r in db::references(&conn, &cur).map_err(|e| self.db_err(e))? {
                if seen.insert(r.clone()) {
                    prev.insert(r.clone(), cur.clone());
                    queue.push_back(r);
                }
            }
        }
        Ok(None)
    }

    /// Takes the build lock of `name`, waiting for another process that holds it.
    pub fn lock(&self, name: &str) -> Result<PathLock> {
        lock::acquire(&self.meta.join("locks"), name, true)
            .map(|l| l.expect("blocking acquire returns a lock"))
    }

    /// Pins a valid path against garbage collection while it is used (shared lock).
    pub fn pin(&self, name: &str) -> Result<PathLock> {
        lock::acquire_shared(&self.meta.join("locks"), name)
    }

    /// Takes the build lock of `name` if nobody holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<PathLock>> {
        lock::acquire(&self.meta.join("locks"), name, false)
    }

    /// Where the Slurm executor keeps its job records, batch scripts and job output
    /// (`store-layout/slurm.md`).
    pub fn slurm_dir(&self) -> PathBuf {
        self.meta.join("slurm")
    }

    /// Takes the submission lock of `name` (not its build lock, which the job takes), waiting:
    /// two clients never both submit a job for one node.
    pub fn submit_lock(&self, name: &str) -> Result<PathLock> {
        let dir = self.meta.join("slurm/locks");
        fs_err::create_dir_all(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), e.to_string()))
            .map_err(io(&dir))?;
        lock::acquire(&dir, name, true).map(|l| l.expect("blocking acquire returns a lock"))
    }

    /// Makes a finished output valid: normalizes it, rewrites over-long shebang lines to go
    /// through `sbang`, scans it for references, hashes it, syncs it, renames it into place and
    /// registers it. The caller must hold the path's lock.
    pub fn commit(&self, req: CommitRequest<'_>) -> Result<Committed> {
        let prepared = commit::prepare(self, &req)?;
        let info = PathInfo {
            name: req.name.to_owned(),
            content_hash: prepared.content_hash,
            size: prepared.size,
            files: prepared.files,
            deriver: req.deriver.to_owned(),
            registered: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            build_seconds: req.build_seconds,
            references: prepared.references,
        };
        let embeds_build_dir = prepared.embeds_build_dir;
        db::register(&mut *self.db_for_writing()?, &info).map_err(|e| match e {
            db::RegisterError::Db(e) => self.db_err(e),
            db::RegisterError::InvalidReference(r) => StoreError::InvalidReference {
                name: req.name.to_owned(),
                reference: r,
            },
        })?;
        Ok(Committed {
            info,
            embeds_build_dir,
        })
    }

    /// Normalizes a tree as a commit would (modes, times, long shebangs through `sbang`) without
    /// registering it: `forge check` compares a rebuilt output in that state.
    pub fn normalize(&self, path: &Path) -> Result<()> {
        commit::normalize_tree(path, &self.sbang_path())
    }

    /// Removes what an interrupted build of `name` may have left at its final path. The caller
    /// must hold the path's lock, and the path must not be valid.
    pub fn clear_invalid(&self, name: &str) -> Result<()> {
        let p = self.path_of(name);
        if fs_err::symlink_metadata(&p).is_ok() {
            gc::remove_tree(self, &p)?;
        }
        Ok(())
    }

    /// Keeps a compressed copy of a build log.
    pub fn store_log(&self, name: &str, log: &Path) -> Result<PathBuf> {
        let dest = self.log_path(name);
        let data = fs_err::read(log).map_err(|e| StoreError::Io {
            path: log.to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })?;
        let compressed = zstd::bulk::compress(&data, 9).map_err(io(log))?;
        commit::write_atomic(&dest, &compressed)?;
        Ok(dest)
    }

    /// Where the compressed log of `name` is kept.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.meta.join("logs").join(format!("{name}.log.zst"))
    }

    /// Where the record of a substituted path is: `logs/<name>.substituted.json`.
    pub fn substitution_path(&self, name: &str) -> PathBuf {
        self.meta
            .join("logs")
            .join(format!("{name}.substituted.json"))
    }

    /// Records that `name` was installed from the binary cache `from` (signed by `signed_by`),
    /// for `forge path-info`. Written atomically; removed with the path.
    pub fn record_substitution(
        &self,
        name: &str,
        from: &str,
        signed_by: Option<&str>,
    ) -> Result<()> {
        let dest = self.substitution_path(name);
        let doc = serde_json::json!({"from": from, "signed_by": signed_by});
        let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
        fs_err::write(&tmp, doc.to_string()).map_err(io(&tmp))?;
        fs_err::rename(&tmp, &dest).map_err(io(&dest))?;
        Ok(())
    }

    /// Where `name` was substituted from (`from`, `signed_by`), if it was.
    pub fn substitution(&self, name: &str) -> Option<serde_json::Value> {
        let text = fs_err::read(self.substitution_path(name)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The build log of `name`, decompressed.
    pub fn read_log(&self, name: &str) -> Result<Option<String>> {
        let p = self.log_path(name);
        let Ok(data) = fs_err::read(&p) else {
            return Ok(None);
        };
        let plain = zstd::stream::decode_all(&data[..]).map_err(io(&p))?;
        Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.meta.join("db.sqlite")
    }

    fn db_err(&self, source: rusqlite::Error) -> StoreError {
        if db::is_corruption(&source) {
            return StoreError::DbDamaged {
                path: self.db_path(),
                reason: source.to_string(),
            };
        }
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            return StoreError::ReadOnly {
                root: self.root.clone(),
                reason: format!("`{}`: {source}", self.db_path().display()),
            };
        }
        disk_full(
            &self.root,
            StoreError::Db {
                path: self.db_path(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_hash_name_version() {
        let n = "0123456789abcdfghijklmnpqrsvwxyz-gcc-runtime-12.2.0";
        assert_eq!(
            parse_name(n),
            Some(("0123456789abcdfghijklmnpqrsvwxyz", "gcc-runtime", "12.2.0"))
        );
        assert_eq!(
            parse_name("0123456789abcdfghijklmnpqrsvwxyz-x-1"),
            Some(("0123456789abcdfghijklmnpqrsvwxyz", "x", "1"))
        );
        assert!(parse_name("short-x-1").is_none());
        assert!(
            parse_name("0123456789abcdfghijklmnpqrsvwxye-x-1").is_none(),
            "e is not in the alphabet"
        );
        assert!(parse_name("0123456789abcdfghijklmnpqrsvwxyz-noversion").is_none());
    }

    #[test]
    fn paths_dir_without_opening_follows_the_recorded_padding() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("s");
        // No store yet: what a new one would get, and nothing is created.
        let fresh = paths_dir_for(&root, None);
        assert_eq!(fresh, padded_paths_dir(&root, DEFAULT_PADDED_LENGTH));
        assert!(!root.exists());
        let store = Store::open(&root, Some(200)).unwrap();
        // An existing store: its own padding, whatever is asked.
        assert_eq!(paths_dir_for(&root, None), store.paths_dir());
        assert_eq!(paths_dir_for(&root, Some(0)), store.paths_dir());
    }

    #[test]
    fn padding_reaches_the_requested_length() {
        for len in [0, 10, 12, 64, 128, 256, 267, 268, 269, 600, 1000] {
            let p = padded_paths_dir(Path::new("/tmp/store"), len);
            let got = p.as_os_str().len();
            if len <= "/tmp/store".len() + 1 {
                assert_eq!(p, Path::new("/tmp/store"));
            } else {
                assert_eq!(got, len, "{}", p.display());
                assert!(p.components().all(|c| c.as_os_str().len() <= 255));
            }
        }
    }
}
