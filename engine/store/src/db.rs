//! The store database: valid paths and their references (SQLite, WAL).
//!
//! The schema is specified in `store-layout/store.md`; bump `SCHEMA_VERSION` and migrate when it
//! changes.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::{PathInfo, Result, StoreError};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ValidPaths (
    id            INTEGER PRIMARY KEY,
    path          TEXT    NOT NULL UNIQUE,
    content_hash  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    files         INTEGER NOT NULL,
    deriver       TEXT    NOT NULL,
    registered    INTEGER NOT NULL,
    build_seconds REAL    NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE CASCADE,
    reference INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE RESTRICT,
    PRIMARY KEY (referrer, reference)
);
CREATE INDEX IF NOT EXISTS RefsByReference ON Refs(reference);
";

/// The tables and index a store database holds (the schema above).
const SCHEMA_OBJECTS: [(&str, &str); 3] = [
    ("table", "ValidPaths"),
    ("table", "Refs"),
    ("index", "RefsByReference"),
];

fn wrap(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    }
}

fn damaged(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::DbDamaged {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether the database file at `path` is absent or holds nothing (an emptied file, or one
/// without any schema): a store database that was lost.
pub(crate) fn is_absent(path: &Path) -> bool {
    match fs_err::metadata(path) {
        Err(_) => true,
        Ok(m) if m.len() == 0 => true,
        Ok(_) => false,
    }
}

/// Creates the database at `path` (absent or empty) with the schema, and opens it. The schema is
/// written to a file of its own first, which then takes the name only if nothing else did
/// meanwhile: processes opening a new store at once all end up with the same complete database.
pub(crate) fn create(path: &Path) -> Result<Connection> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let io = |p: &Path, e: std::io::Error| StoreError::Io {
        path: p.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    };
    for suffix in ["", "-wal", "-shm"] {
        let mut p = tmp.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs_err::remove_file(std::path::PathBuf::from(p));
    }
    {
        let conn = Connection::open(&tmp).map_err(wrap(&tmp))?;
        conn.pragma_update(None, "journal_mode", journal_mode(path))
            .map_err(wrap(&tmp))?;
        conn.execute_batch(SCHEMA).map_err(wrap(&tmp))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(wrap(&tmp))?;
        // Closing the last connection folds the log into the file and removes it.
        conn.close().map_err(|(_, e)| wrap(&tmp)(e))?;
    }
    fs_err::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    let placed = if fs_err::metadata(path).is_ok_and(|m| m.len() == 0) {
        // An emptied file (in a store holding no paths): replaced.
        fs_err::rename(&tmp, path).map_err(|e| io(path, e))
    } else {
        match fs_err::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io(path, e)),
        }
    };
    let _ = fs_err::remove_file(&tmp);
    placed?;
    if let Some(dir) = path.parent() {
        crate::commit::sync_dir(dir)?;
    }
    open(path)
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(600))
        .map_err(wrap(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(wrap(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(wrap(path))?;
    Ok(())
}

/// Opens the existing database at `path` for reading and writing. Nothing is written when it is
/// already in order (no schema statement, no `user_version` update), so opening a store on a
/// full file system succeeds as far as SQLite lets it.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap(path))?;
    configure(&conn, path)?;
    check_schema(&conn, path)?;
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(wrap(path))?;
    let want = journal_mode(path);
    if !mode.eq_ignore_ascii_case(want) {
        conn.pragma_update(None, "journal_mode", want)
            .map_err(wrap(path))?;
    }
    Ok(conn)
}

/// SQLite's write-ahead log keeps its index in shared memory, which only one machine's
/// processes share: on a file system that machines share (`sharedfs`), the rollback journal.
fn journal_mode(path: &Path) -> &'static str {
    match path.parent().and_then(crate::sharedfs::shared_fs) {
        Some(_) => "DELETE",
        None => "WAL",
    }
}

/// Opens the existing database at `path` read-only: no write, no checkpoint, no schema change.
/// When SQLite cannot set up its shared-memory index (a full or read-only file system) and no
/// write-ahead log holds transactions, the file is read as immutable: it then is the whole
/// database.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let first = Connection::open_with_flags(path, flags).and_then(|c| {
        c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(c)
    });
    let conn = match first {
        Ok(c) => c,
        Err(e) if is_corruption(&e) => return Err(damaged(path, e.to_string())),
        Err(e) => {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            if fs_err::metadata(std::path::PathBuf::from(wal)).is_ok_and(|m| m.len() > 0) {
                return Err(wrap(path)(e));
            }
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags).map_err(wrap(path))?
        }
    };
    conn.busy_timeout(std::time::Duration::from_secs(600))
        .map_err(wrap(path))?;
    check_schema(&conn, path)?;
    Ok(conn)
}

/// `path` percent-encoded for a `file:` URI.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An empty database in memory: what a store without a database file holds, for read-only
/// commands that must not create one.
pub(crate) fn memory() -> Connection {
    let conn = Connection::open_in_memory().expect("an in-memory database opens");
    conn.execute_batch(SCHEMA).expect("the schema applies");
    conn
}

/// Whether an error is one a full file system causes: SQLite's "database or disk is full", or
/// an I/O error or a file it cannot create (its shared-memory index needs space).
pub(crate) fn may_be_disk_full(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen)
    )
}

/// Whether the file system holding `path` has no block left for unprivileged writes.
pub(crate) fn file_system_full(path: &Path) -> bool {
    rustix::fs::statvfs(path).is_ok_and(|s| s.f_bavail == 0)
}

/// Whether an error means the database file itself is damaged.
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Checks that the database holds this forge's schema: its version, and every table and index.
fn check_schema(conn: &Connection, path: &Path) -> Result<()> {
    match schema_problems(conn) {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => {
            if let Some(newer) = problems.iter().find(|p| p.contains("newer")) {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: newer.clone(),
                });
            }
            Err(damaged(path, problems.join("; ")))
        }
        Err(e) if is_corruption(&e) => Err(damaged(path, e.to_string())),
        Err(e) => Err(wrap(path)(e)),
    }
}

/// What is wrong with the schema: a version other than this forge's, or missing tables.
fn schema_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let mut out = Vec::new();
    if version > SCHEMA_VERSION {
        out.push(format!(
            "database schema {version} is newer than this forge understands ({SCHEMA_VERSION}); upgrade forge"
        ));
        return Ok(out);
    }
    if version != SCHEMA_VERSION {
        out.push(format!(
            "schema version {version}, expected {SCHEMA_VERSION}"
        ));
    }
    let mut stmt = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2")?;
    for (kind, name) in SCHEMA_OBJECTS {
        if stmt
            .query_row([kind, name], |_| Ok(()))
            .optional()?
            .is_none()
        {
            out.push(format!("the {kind} `{name}` is missing"));
        }
    }
    Ok(out)
}

/// Everything SQLite and the schema say is wrong with the database (empty when it is sound):
/// `PRAGMA integrity_check` (every page, every index), the schema, `PRAGMA foreign_key_check`.
pub(crate) fn health(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let integrity = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
    match integrity {
        Ok(lines) => out.extend(lines.into_iter().filter(|l| l != "ok")),
        Err(e) => {
            out.push(e.to_string());
            return out;
        }
    }
    match schema_problems(conn) {
        Ok(p) => out.extend(p),
        Err(e) => out.push(e.to_string()),
    }
    if !out.is_empty() {
        return out;
    }
    let fk = conn.prepare("PRAGMA foreign_key_check").and_then(|mut s| {
        s.query_map([], |r| {
            Ok(format!(
                "a row of `{}` (rowid {}) refers to a missing row of `{}`",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<rusqlite::Result<Vec<String>>>()
    });
    match fk {
        Ok(lines) => out.extend(lines.into_iter().take(20)),
        Err(e) => out.push(e.to_string()),
    }
    out
}

pub(crate) fn is_valid(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM ValidPaths WHERE path = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()
        .map(|r| r.is_some())
}

pub(crate) fn valid_subset<'a>(
    conn: &Connection,
    names: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<BTreeSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM ValidPaths WHERE path = ?1")?;
    let mut out = BTreeSet::new();
    for n in names {
        if stmt.query_row([n], |_| Ok(())).optional()?.is_some() {
            out.insert(n.to_owned());
        }
    }
    Ok(out)
}

pub(crate) fn references(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.path FROM Refs JOIN ValidPaths p ON p.id = Refs.referrer JOIN ValidPaths r ON r.id = Refs.reference
         WHERE p.path = ?1 ORDER BY r.path",
    )?;
    let rows = stmt.query_map([name], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn referrers(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.path FROM Refs JOIN ValidPaths p ON p.id = Refs.referrer JOIN ValidPaths r ON r.id = Refs.reference
         WHERE r.path = ?1 ORDER BY p.path",
    )?;
    let rows = stmt.query_map([name], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn query(conn: &Connection, name: &str) -> rusqlite::Result<Option<PathInfo>> {
    let row = conn
        .prepare_cached("SELECT path, content_hash, size, files, deriver, registered, build_seconds FROM ValidPaths WHERE path = ?1")?
        .query_row([name], |r| {
            Ok(PathInfo {
                name: r.get(0)?,
                content_hash: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                files: r.get::<_, i64>(3)? as u64,
                deriver: r.get(4)?,
                registered: r.get(5)?,
                build_seconds: r.get(6)?,
                references: Vec::new(),
            })
        })
        .optional()?;
    match row {
        Some(mut info) => {
            info.references = references(conn, name)?;
            Ok(Some(info))
        }
        None => Ok(None),
    }
}

pub(crate) fn all_valid(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT path FROM ValidPaths ORDER BY path")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn closure(conn: &Connection, names: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut roots = Vec::new();
    for n in names {
        if is_valid(conn, n)? {
            roots.push(n.clone());
        }
    }
    let mut failure = None;
    let all = forge_core::graph::closure(roots, |n| {
        references(conn, n).unwrap_or_else(|e| {
            failure.get_or_insert(e);
            Vec::new()
        })
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(all.into_iter().collect()),
    }
}

pub(crate) fn build_estimate(conn: &Connection, package: &str) -> rusqlite::Result<Option<f64>> {
    // Store names are `<hash>-<package>-<version>`: match the package part.
    let pattern = format!("{}-{package}-%", "_".repeat(crate::HASH_LEN));
    conn.prepare_cached(
        "SELECT AVG(build_seconds) FROM ValidPaths WHERE path LIKE ?1 AND build_seconds > 0",
    )?
    .query_row([pattern], |r| r.get(0))
}

pub(crate) enum RegisterError {
    Db(rusqlite::Error),
    InvalidReference(String),
}

impl From<rusqlite::Error> for RegisterError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

/// Registers a valid path and its references in one transaction. References must be valid
/// already (or be the path itself). A path registered already (rebuilt after it was deleted)
/// gets the new row and references; its row keeps its id, so its referrers stay.
pub(crate) fn register(
    conn: &mut Connection,
    info: &PathInfo,
) -> std::result::Result<(), RegisterError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO ValidPaths (path, content_hash, size, files, deriver, registered, build_seconds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(path) DO UPDATE SET content_hash = excluded.content_hash,
             size = excluded.size, files = excluded.files, deriver = excluded.deriver,
             registered = excluded.registered, build_seconds = excluded.build_seconds",
        params![info.name, info.content_hash, info.size as i64, info.files as i64, info.deriver, info.registered, info.build_seconds],
    )?;
    let id: i64 = tx.query_row(
        "SELECT id FROM ValidPaths WHERE path = ?1",
        [&info.name],
        |r| r.get(0),
    )?;
    tx.execute("DELETE FROM Refs WHERE referrer = ?1", [id])?;
    for r in &info.references {
        let rid: Option<i64> = tx
            .query_row("SELECT id FROM ValidPaths WHERE path = ?1", [r], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(rid) = rid else {
            return Err(RegisterError::InvalidReference(r.clone()));
        };
        tx.execute(
            "INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)",
            params![id, rid],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Removes the registration of `names` (all at once, so references among them do not block).
/// Fails if a path outside `names` still references one of them.
pub(crate) fn unregister(
    conn: &mut Connection,
    names: &[String],
) -> rusqlite::Result<std::result::Result<(), (String, String)>> {
    let tx = conn.transaction()?;
    let set: BTreeSet<&String> = names.iter().collect();
    for n in names {
        for referrer in referrers(&tx, n)? {
            if !set.contains(&referrer) {
                return Ok(Err((n.clone(), referrer)));
            }
        }
    }
    for n in names {
        tx.execute(
            "DELETE FROM Refs WHERE referrer = (SELECT id FROM ValidPaths WHERE path = ?1)",
            [n],
        )?;
    }
    for n in names {
        tx.execute("DELETE FROM ValidPaths WHERE path = ?1", [n])?;
    }
    tx.commit()?;
    Ok(Ok(()))
}

/// Registers every path of `infos` and their references in one transaction (rows first, so
/// references among them need no order). For rebuilding a lost database.
pub(crate) fn insert_all(conn: &mut Connection, infos: &[PathInfo]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for info in infos {
        tx.execute(
            "INSERT INTO ValidPaths (path, content_hash, size, files, deriver, registered, build_seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![info.name, info.content_hash, info.size as i64, info.files as i64, info.deriver, info.registered, info.build_seconds],
        )?;
    }
    for info in infos {
        for r in &info.references {
            tx.execute(
                "INSERT OR IGNORE INTO Refs (referrer, reference)
                 SELECT p.id, r.id FROM ValidPaths p, ValidPaths r WHERE p.path = ?1 AND r.path = ?2",
                params![info.name, r],
            )?;
        }
    }
    tx.commit()
}
