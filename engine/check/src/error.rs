//! Why a comparison could not be made.

use std::path::PathBuf;

/// Why [`compare`](crate::compare) (or a helper) failed. A difference between the trees is never
/// an error: it is the result.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The stored output could not be hashed.
    #[error("cannot hash the stored output: {0}")]
    HashStored(#[source] forge_core::treehash::TreeError),
    /// The rebuilt output could not be hashed.
    #[error("cannot hash the rebuilt output: {0}")]
    HashRebuilt(#[source] forge_core::treehash::TreeError),
    /// A file could not be read while explaining a difference.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `diffoscope` could not be started or waited for.
    #[error("cannot run `{program}`: {source}")]
    Diffoscope {
        /// The program that was run.
        program: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A report is not valid JSON of the `forge-check-report/1` schema.
    #[error("not a forge check report: {0}")]
    Report(#[from] serde_json::Error),
    /// A report of another schema version.
    #[error("unsupported report schema `{found}` (this forge reads `{expected}`)")]
    Schema {
        /// The schema the report declares.
        found: String,
        /// The schema this version reads.
        expected: &'static str,
    },
}

impl CheckError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CheckError {
        let path = path.into();
        move |source| CheckError::Io { path, source }
    }
}
