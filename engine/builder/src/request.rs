//! The boundary between realize and the builder: what one build is given ([`BuildRequest`]),
//! what it reports as it goes, and how it ends. A request is serializable, so it can be written
//! to a file and built by another process on another host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use forge_plan::{DepType, DepTypes, Derivation, EdgeRole};
use serde::{Deserialize, Serialize};

/// A direct dependency, with where its output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DepPath {
    /// Package name.
    pub name: String,
    /// Virtuals (or languages) this edge satisfies.
    pub virtuals: Vec<String>,
    /// The dependency's output directory.
    pub path: PathBuf,
    /// Dependency types.
    pub types: DepTypes,
    /// Why the edge exists.
    pub role: EdgeRole,
}

impl DepPath {
    pub(crate) fn has(&self, t: DepType) -> bool {
        self.types.contains(t)
    }
}

/// Everything one build needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildRequest {
    /// The derivation.
    pub drv: Derivation,
    /// The output's final path (`{out}`).
    pub out: PathBuf,
    /// A fresh scratch directory on the store's filesystem (created, or emptied, by the build).
    pub scratch: PathBuf,
    /// Direct dependencies.
    pub deps: Vec<DepPath>,
    /// Extra `bin` directories for `PATH`: the run-time closure of the build tools.
    pub tool_paths: Vec<PathBuf>,
    /// Directories for the RUNPATH of everything linked (the link closure's `lib` dirs).
    pub rpaths: Vec<PathBuf>,
    /// The fetched sources, parallel to the derivation's sources.
    pub sources: Vec<PathBuf>,
    /// `{jobs}`.
    pub jobs: usize,
    /// The forge executable (compiler wrappers and the sandbox shim are forge itself).
    pub forge_exe: PathBuf,
    /// Whether commands run without network.
    pub isolate_network: bool,
    /// Whether commands may write only to the scratch directory, the output and their own
    /// `/tmp` (needs `isolate_network` and a kernel that allows mount namespaces: see
    /// [`crate::Isolation::Sealed`]). The output directory then exists, empty, when the first
    /// command starts.
    pub seal: bool,
    /// Directories outside the scratch directory and the output that the build reads (the
    /// store, for its dependencies and `sbang`): a sealed build keeps them reachable, read-only.
    #[serde(default)]
    pub visible: Vec<PathBuf>,
    /// Where the output's bytes go when that is not `out` itself: an existing, empty directory
    /// that commands see at `out` (mounted over it in their own mount namespace; needs
    /// `isolate_network`). `forge check` rebuilds at the stored path this way.
    pub out_dir: Option<PathBuf>,
}

impl BuildRequest {
    /// Where the output really is on this machine's filesystem.
    pub fn real_out(&self) -> &Path {
        self.out_dir.as_deref().unwrap_or(&self.out)
    }
}

/// What a build reports as it goes.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A phase started.
    Phase(String),
    /// A line of output.
    Line(String),
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Wall time.
    pub seconds: f64,
    /// The plain-text log in the scratch directory.
    pub log: PathBuf,
    /// Things worth telling the user (files installed outside the prefix and dropped …).
    pub notes: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A command failed.
    #[error("phase `{phase}` failed: `{command}` {status}")]
    Command {
        /// The phase.
        phase: String,
        /// The command as run.
        command: String,
        /// How it ended.
        status: String,
        /// The log.
        log: PathBuf,
        /// Its last lines.
        tail: Vec<String>,
    },
    /// Preparing the build failed (sources, patches, scratch dir …).
    #[error("{context}: {reason}")]
    Setup {
        /// What was being done.
        context: String,
        /// Why it failed.
        reason: String,
        /// The log, if one was started.
        log: Option<PathBuf>,
    },
    /// The build was interrupted.
    #[error("interrupted")]
    Cancelled,
}

pub(crate) fn setup(context: impl Into<String>, reason: impl ToString) -> BuildError {
    BuildError::Setup {
        context: context.into(),
        reason: reason.to_string(),
        log: None,
    }
}

/// Callback for build events.
pub type EventSink = Arc<dyn Fn(BuildEvent) + Send + Sync>;
