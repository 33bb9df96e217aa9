//! What a realization tells its reporter, and what it returns.

use std::path::PathBuf;

use forge_core::StoreName;
use serde::{Deserialize, Serialize};

/// How a node became valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Built from its sources by this process.
    Built,
    /// A host tool, linked into the store.
    Host,
    /// Another forge process built it while this one waited for its lock.
    ByOtherProcess,
    /// Installed from a binary cache (see [`Event::Substituted`]).
    Substituted,
}

/// What happened to a node's Slurm job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// This run submitted it.
    Submitted,
    /// A job submitted earlier (by another client, or this one before it was stopped).
    Attached,
    /// It runs (on the host in `detail`).
    Running,
}

/// Something a reporter is told.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan: how many nodes, how many already valid.
    Planned {
        /// Nodes in the graph.
        total: usize,
        /// Already valid.
        valid: usize,
        /// To build.
        to_build: usize,
    },
    /// A node's build started.
    Started {
        /// Store name.
        node: StoreName,
    },
    /// A node entered a phase.
    Phase {
        /// Store name.
        node: StoreName,
        /// Phase name.
        phase: String,
    },
    /// A line of a node's build output.
    Line {
        /// Store name.
        node: StoreName,
        /// The line.
        line: String,
    },
    /// A node became valid.
    Finished {
        /// Store name.
        node: StoreName,
        /// Seconds spent.
        seconds: f64,
        /// How.
        how: How,
    },
    /// A node was installed from a binary cache instead of being built (followed by its
    /// `Finished` event).
    Substituted {
        /// Store name.
        node: StoreName,
        /// The cache's URL.
        from: String,
        /// The key that signed the cache's manifest, if it was signed by a trusted one.
        signed_by: Option<String>,
    },
    /// A node's Slurm job (`realize --executor slurm`) was submitted, attached to, or seen
    /// running.
    Job {
        /// Store name.
        node: StoreName,
        /// The job's id.
        job: String,
        /// What happened.
        state: JobState,
        /// For `submitted`: the jobs it runs after; for `running`: the host.
        detail: Vec<String>,
    },
    /// Something worth noting about a node.
    Note {
        /// Store name.
        node: StoreName,
        /// The note.
        message: String,
    },
    /// A node failed.
    Failed {
        /// Store name.
        node: StoreName,
        /// Phase it failed in, if a command failed.
        phase: Option<String>,
        /// The command, if a command failed.
        command: Option<String>,
        /// What went wrong.
        message: String,
        /// The build log.
        log: Option<PathBuf>,
        /// The log's last lines.
        tail: Vec<String>,
        /// For a source that could not be fetched: each location tried and what it answered.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attempts: Vec<String>,
    },
    /// A node was not built because a dependency failed.
    Skipped {
        /// Store name.
        node: StoreName,
        /// The failed dependency.
        because: StoreName,
        /// The node's direct dependency through which it needs the failed one, when that is
        /// not the failed node itself (`gcc` for a library that needs `gmp` only through it).
        via: Option<StoreName>,
    },
}

/// Receives events; implementations render them (progress bars, plain lines, JSON).
pub trait Reporter: Send + Sync {
    /// One event.
    fn event(&self, e: &Event);
}

/// The outcome of a realization.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Nodes built in this run.
    pub built: Vec<StoreName>,
    /// Nodes installed from a binary cache in this run.
    pub substituted: Vec<StoreName>,
    /// Nodes that were already valid.
    pub already_valid: usize,
    /// Nodes that failed.
    pub failed: Vec<StoreName>,
    /// Nodes skipped because a dependency failed.
    pub skipped: Vec<StoreName>,
    /// Nodes that became valid without being built or substituted here: host tools linked in,
    /// and nodes another process built meanwhile.
    pub other_valid: usize,
    /// Nodes the run did not finish because it stopped first: at the first failure without
    /// `--keep-going` (never started), or interrupted.
    pub not_started: Vec<StoreName>,
    /// Whether the run was interrupted.
    pub cancelled: bool,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Counts `name`, which became valid `how`.
    pub(crate) fn count_valid(&mut self, name: &StoreName, how: How) {
        match how {
            How::Built => self.built.push(name.clone()),
            How::Substituted => self.substituted.push(name.clone()),
            How::Host | How::ByOtherProcess => self.other_valid += 1,
        }
    }

    /// Whether every node is valid.
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.cancelled
    }
}
