//! The store's errors; each names the path or store name it is about.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("store database `{path}`: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The database file is damaged: SQLite reports corruption, or tables are missing.
    #[error(
        "the store database `{path}` is damaged ({reason}): `forge verify --repair` rebuilds it from the store paths"
    )]
    DbDamaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite or the schema check said.
        reason: String,
    },
    /// The database file is gone or empty, but the store holds paths.
    #[error(
        "the store database `{path}` is missing or empty, but the store at `{root}` holds {paths} store paths, which would all look unregistered: `forge verify --repair` rebuilds the database from them"
    )]
    DbMissing {
        /// The database file.
        path: PathBuf,
        /// The store root.
        root: PathBuf,
        /// Entries in the paths directory (outputs and `.drv` files).
        paths: usize,
    },
    /// The file system holding the store has no space left.
    #[error(
        "the file system holding the store at `{root}` is full (`{path}`: {reason}): `forge gc` deletes what no root keeps, or free space on it; read-only commands (`verify`, `path-info`, `roots`, `gc --dry-run`, `why-depends`, `log`) work meanwhile"
    )]
    DiskFull {
        /// The store root.
        root: PathBuf,
        /// The file that could not be written.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The store cannot be written (a read-only file system, or no write permission).
    #[error(
        "the store at `{root}` is read-only ({reason}): this command writes to it; make it writable (remount it read-write, or give this user write permission on it) or pass another `--store`; read-only commands (`verify`, `path-info`, `roots`, `gc --dry-run`, `why-depends`, `log`) work on it as it is"
    )]
    ReadOnly {
        /// The store root.
        root: PathBuf,
        /// What refused the write.
        reason: String,
    },
    /// The store's configuration names a layout version this forge does not know.
    #[error(
        "`{path}` says the store layout is version {found}, but this forge knows only version {known}: use the forge that made the store, or pass another `--store`"
    )]
    UnsupportedLayout {
        /// `config.json`.
        path: PathBuf,
        /// The version it records.
        found: u32,
        /// The version this forge writes.
        known: u32,
    },
    /// The store's configuration cannot be read.
    #[error(
        "`{path}` is not a store configuration ({reason}): it should read {{\"version\": 1, \"padded-length\": N}} with the padding the store was created with (the length of the directory holding its paths); restore it, or pass another `--store`"
    )]
    BadConfig {
        /// `config.json`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A metadata file does not parse.
    #[error("`{path}` is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store exists with another padding.
    #[error(
        "the store at `{root}` pads its paths to {existing} bytes; it cannot be reopened with {requested}"
    )]
    PaddingMismatch {
        /// The store root.
        root: PathBuf,
        /// Padding it was created with.
        existing: usize,
        /// Padding asked for now.
        requested: usize,
    },
    /// An output references a path that is not valid.
    #[error("`{name}` references `{reference}`, which is not a valid store path")]
    InvalidReference {
        /// The output being registered.
        name: String,
        /// The missing reference.
        reference: String,
    },
    /// An out-link's path holds something other than a symlink.
    #[error(
        "refusing to replace `{path}` with an out-link: it is {what}, and only a symlink is replaced"
    )]
    OutLinkTaken {
        /// The out-link's path.
        path: PathBuf,
        /// What is there (`a regular file`, `a directory`).
        what: &'static str,
    },
    /// A GC root name that cannot be a file name in `.forge/roots/`.
    #[error(
        "`{0}` cannot name a GC root: use letters, digits and `._@+=^~-`, not `auto`, not starting with `.`"
    )]
    BadRootName(String),
    /// A name that is not `<hash>-<name>-<version>`.
    #[error("`{0}` is not a store path name (expected `<32-character hash>-<name>-<version>`)")]
    BadName(String),
    /// Hashing an output failed.
    #[error(transparent)]
    Tree(#[from] forge_core::treehash::TreeError),
}
