//! The store database: valid paths and their references (SQLite, WAL).
//!
//! The schema is specified in `store-layout/store.md`; bump `SCHEMA_VERSION` and migrate when it
//! changes.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

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

pub(crate) fn open(path: &Path) -> Result<Connection> {
    let wrap = |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(wrap)?;
    conn.busy_timeout(std::time::Duration::from_secs(600))
        .map_err(wrap)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(wrap)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(wrap)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(wrap)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(wrap)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "database schema {version} is newer than this forge understands ({SCHEMA_VERSION}); upgrade forge"
            ),
        });
    }
    conn.execute_batch(SCHEMA).map_err(wrap)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(wrap)?;
    Ok(conn)
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
/// already (or be the path itself).
pub(crate) fn register(
    conn: &mut Connection,
    info: &PathInfo,
) -> std::result::Result<(), RegisterError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO ValidPaths (path, content_hash, size, files, deriver, registered, build_seconds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(path) DO NOTHING",
        params![info.name, info.content_hash, info.size as i64, info.files as i64, info.deriver, info.registered, info.build_seconds],
    )?;
    let id: i64 = tx.query_row(
        "SELECT id FROM ValidPaths WHERE path = ?1",
        [&info.name],
        |r| r.get(0),
    )?;
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
