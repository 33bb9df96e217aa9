//! Why a realization, or one node of it, failed.

use std::path::{Path, PathBuf};

use forge_builder::BuildError;
use forge_core::StoreName;
use forge_store::StoreError;

use crate::Event;

/// Errors that stop a realization before any build.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `forge build-node` was asked for a node whose dependencies are not all valid.
    #[error(
        "cannot build {node}: its dependencies {} are not valid in the store (a job ran before its dependencies' jobs finished, or the store is not the one they were built into)",
        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
    )]
    DepsNotValid {
        /// The node.
        node: StoreName,
        /// Its dependencies that are not valid.
        missing: Vec<StoreName>,
    },
    /// Slurm refused or failed.
    #[error("{0}")]
    Slurm(String),
}

/// Why one node could not be made valid.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store refused (its lock, database or files).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A downloaded source has no checksum to check it by.
    #[error("source `{0}` has no sha256")]
    NoChecksum(String),
    /// A source could not be fetched.
    #[error(transparent)]
    Fetch(#[from] forge_fetch::FetchError),
    /// The build failed (a command, or setting it up).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The built output could not be committed to the store.
    #[error("committing the output failed: {0}")]
    Commit(#[source] StoreError),
    /// A worker thread died.
    #[error("{0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl NodeError {
    /// The log of a failed build command, in its scratch directory.
    pub fn command_log(&self) -> Option<&Path> {
        match self {
            Self::Build(BuildError::Command { log, .. }) => Some(log),
            _ => None,
        }
    }

    /// The `failed` event for `node`, naming `log` as the build log.
    pub fn into_event(self, node: StoreName, log: Option<PathBuf>) -> Event {
        match self {
            Self::Build(BuildError::Command {
                phase,
                command,
                status,
                tail,
                ..
            }) => Event::Failed {
                node,
                message: format!("phase `{phase}` failed: the command {status}"),
                phase: Some(phase),
                command: Some(command),
                log,
                tail,
                attempts: Vec::new(),
            },
            Self::Fetch(e) => Event::Failed {
                node,
                phase: Some("fetch".into()),
                command: None,
                message: e.to_string(),
                log,
                tail: Vec::new(),
                attempts: match e {
                    forge_fetch::FetchError::Unavailable { attempts, .. } => attempts,
                    _ => Vec::new(),
                },
            },
            other => Event::Failed {
                node,
                phase: None,
                command: None,
                message: other.to_string(),
                log,
                tail: Vec::new(),
                attempts: Vec::new(),
            },
        }
    }
}
