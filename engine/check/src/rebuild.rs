//! Rebuild and compare: `forge check`'s orchestration of realize's [`rebuild`] and [`compare`].
//!
//! Each node is built again from its (valid) dependencies in a fresh `<name>.check` scratch
//! directory (as long as the `<name>.build` one), at a later second than the stored build. Its
//! bytes land in `<paths dir>/<other hash>-<name>`, held under the store's build lock so that the
//! garbage collector removes it if forge is killed. Where the kernel allows a mount namespace,
//! that directory is mounted over the stored path for the build's commands, so the build sees
//! exactly the path the first build saw. Elsewhere the build writes to the temporary path itself
//! — exactly as long as the stored one — and the other hash is rewritten to the stored one
//! afterwards (build IDs, hashed over the old bytes, then differ; the report says so). The tree
//! is normalized as a commit would, then compared and explained.
//!
//! [`rebuild`]: forge_realize::rebuild

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forge_core::{HASH_LEN, StoreName};
use forge_plan::Plan;
use forge_realize::{NodeError, RebuildAt, Reporter};
use forge_store::{PathInfo, Store};
use petgraph::graph::NodeIndex;

use crate::{CompareContext, DiffoscopeOptions, NodeComparison, NodeReport, Report, TimeWindow};

/// How to check.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Rebuilds per node; the first that differs ends the node's check.
    pub rounds: u32,
    /// Keep the last rebuilt output beside the stored path (`<path>.check`).
    pub keep: bool,
    /// Run diffoscope on differing files.
    pub diffoscope: bool,
    /// Copy each rebuild's log here.
    pub log_dir: Option<PathBuf>,
}

/// What a check run tells its caller as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Node `label` is being checked: the `index`-th (from 1) of `total`.
    Checking {
        /// `<name>-<version>`.
        label: &'a str,
        /// Its position.
        index: usize,
        /// How many nodes are checked.
        total: usize,
    },
    /// Node `label` was compared.
    Checked {
        /// `<name>-<version>`.
        label: &'a str,
        /// Its report.
        report: &'a NodeReport,
    },
    /// Node `label` could not be rebuilt or compared.
    Failed {
        /// `<name>-<version>`.
        label: &'a str,
        /// Why.
        message: &'a str,
    },
}

/// The outcome of a check run.
#[derive(Debug)]
pub struct CheckRun {
    /// The comparisons of the nodes that were rebuilt.
    pub report: Report,
    /// Labels of the nodes that could not be rebuilt or compared.
    pub failed: Vec<String>,
    /// Whether the run was interrupted.
    pub cancelled: bool,
}

/// Why a check could not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Nodes a rebuild needs are not valid in the store.
    #[error("{} path{} needed to check `{target}` {} not in the store", missing.len(), if missing.len() == 1 { "" } else { "s" }, if missing.len() == 1 { "is" } else { "are" })]
    NotRealized {
        /// The checked target.
        target: String,
        /// Their store names.
        missing: Vec<StoreName>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] forge_store::StoreError),
    /// A file operation failed.
    #[error("{0}")]
    Io(String),
}

/// Rebuilds of the nodes of one plan, compared with the store.
pub struct Checker {
    store: Arc<Store>,
    plan: Arc<Plan>,
    realize: forge_realize::Options,
    reporter: Arc<dyn Reporter>,
    cancel: tokio::sync::watch::Receiver<bool>,
    opts: RebuildOptions,
    host_name: Option<String>,
    user_name: Option<String>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker of `plan`'s nodes in `store`, building as `realize` says (its `seal` decides
    /// whether rebuilds see the stored path) and telling `reporter` about each build.
    pub fn new(
        store: Arc<Store>,
        plan: Arc<Plan>,
        realize: forge_realize::Options,
        reporter: Arc<dyn Reporter>,
        cancel: tokio::sync::watch::Receiver<bool>,
        opts: RebuildOptions,
    ) -> Self {
        Self {
            store,
            plan,
            realize,
            reporter,
            cancel,
            opts,
            host_name: host_name(),
            user_name: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty()),
        }
    }

    /// Whether rebuilds run at the stored path (mounted over by the temporary output). Without
    /// it, they run at a temporary path of the same length, rewritten afterwards, and build IDs
    /// differ.
    pub fn at_stored_path(&self) -> bool {
        self.realize.seal
    }

    /// Rebuilds and compares `nodes` (dependencies first) of `target`, telling `progress` about
    /// each.
    /// Everything the nodes' builds see must be valid; it is pinned against the garbage
    /// collector while the check runs.
    pub fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        target: &str,
        nodes: &[NodeIndex],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<CheckRun, RebuildError> {
        let names = forge_plan::store_names(&self.plan);
        let closure: BTreeSet<NodeIndex> =
            self.plan.graph.closure(nodes.iter().copied(), |_, _| true);
        let mut missing = Vec::new();
        for i in &closure {
            if !self.store.is_valid(&names[i.index()])? {
                missing.push(names[i.index()].clone());
            }
        }
        if !missing.is_empty() {
            return Err(RebuildError::NotRealized {
                target: target.to_owned(),
                missing,
            });
        }
        let _pins = closure
            .iter()
            .map(|i| self.store.pin(&names[i.index()]))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(dir) = &self.opts.log_dir {
            fs_err::create_dir_all(dir).map_err(|e| RebuildError::Io(e.to_string()))?;
        }
        let mut reports = Vec::new();
        let mut failed = Vec::new();
        for (k, &i) in nodes.iter().enumerate() {
            if *self.cancel.borrow() {
                break;
            }
            let name = &names[i.index()];
            let label = name.label();
            progress(Progress::Checking {
                label,
                index: k + 1,
                total: nodes.len(),
            });
            match self.node(rt, i, name) {
                Ok(report) => {
                    progress(Progress::Checked {
                        label,
                        report: &report,
                    });
                    reports.push(report);
                }
                Err(message) => {
                    progress(Progress::Failed {
                        label,
                        message: &message,
                    });
                    failed.push(label.to_owned());
                }
            }
        }
        Ok(CheckRun {
            report: Report::new(target, reports),
            failed,
            cancelled: *self.cancel.borrow(),
        })
    }

    /// Rebuilds one node up to `rounds` times, stopping at the first round that differs.
    fn node(
        &self,
        rt: &tokio::runtime::Runtime,
        i: NodeIndex,
        name: &StoreName,
    ) -> Result<NodeReport, String> {
        let info = self
            .store
            .query(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "not valid in the store any more".to_owned())?;
        let stored = self.store.path_of(name);
        let mut not_before = info.registered;
        let mut last = None;
        for round in 1..=self.opts.rounds.max(1) {
            let r = Round {
                checker: self,
                node: i,
                name,
                info: &info,
                round,
            };
            let (cmp, ended) = r.run(rt, not_before)?;
            not_before = ended;
            let differs = !cmp.reproducible();
            last = Some((round, cmp));
            if differs {
                break;
            }
        }
        let (rounds, cmp) = last.expect("at least one round");
        Ok(NodeReport::new(
            name.label(),
            stored.display().to_string(),
            rounds,
            cmp,
        ))
    }
}

/// One rebuild of one node.
struct Round<'a> {
    checker: &'a Checker,
    node: NodeIndex,
    name: &'a StoreName,
    info: &'a PathInfo,
    round: u32,
}

impl Round<'_> {
    /// Rebuilds into a fresh temporary output and compares it with the stored output. Returns
    /// the comparison and the second the rebuild ended in.
    fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        not_before: i64,
    ) -> Result<(NodeComparison, i64), String> {
        let c = self.checker;
        let store = &c.store;
        let (hash, rest) = self.name.split_at(HASH_LEN);
        let other = other_hash(hash, self.round);
        let tmp_name = format!("{other}{rest}");
        let _lock = store.lock(&tmp_name).map_err(|e| e.to_string())?;
        // The rebuild runs in the scratch directory the stored build ran in, so that a path to
        // it that a build embeds (a compiler wrapper named in a configuration summary) is the
        // same in both. The check's pin (a shared lock on the path) keeps a realize from
        // building there meanwhile: building takes the lock exclusively.
        store.clear_invalid(&tmp_name).map_err(|e| e.to_string())?;
        let out = store.path_of(&tmp_name);
        let stored = store.path_of(self.name);
        let scratch = store.scratch_dir(self.name, "build");
        remove(&scratch)?;
        let at = if c.at_stored_path() {
            // The directory that stands in for the stored output must exist to be mounted.
            fs_err::create_dir(&out).map_err(|e| e.to_string())?;
            RebuildAt {
                out: stored.clone(),
                out_dir: Some(out.clone()),
                scratch: scratch.clone(),
            }
        } else {
            RebuildAt {
                out: out.clone(),
                out_dir: None,
                scratch: scratch.clone(),
            }
        };
        // A build that embeds the time must see another second than the stored build did.
        wait_until_after(not_before);
        let start = SystemTime::now();
        let built = rt.block_on(forge_realize::rebuild(
            Arc::clone(store),
            Arc::clone(&c.plan),
            self.node,
            c.realize.clone(),
            Arc::clone(&c.reporter),
            c.cancel.clone(),
            at,
        ));
        let end = SystemTime::now();
        let result = match built {
            Ok(b) => self.keep_log(&b.log),
            Err(e) => {
                if let Some(l) = e.command_log() {
                    self.keep_log(l)?;
                }
                Err(failure_message(e))
            }
        };
        remove(&scratch)?;
        if let Err(e) = result {
            remove(&out)?;
            return Err(e);
        }
        let compared = self.compare(&out, &other, hash, start, end);
        let kept = match (&compared, c.opts.keep) {
            (Ok(_), true) => {
                let dest =
                    PathBuf::from(format!("{}{}", stored.display(), forge_store::CHECK_SUFFIX));
                remove(&dest)?;
                fs_err::rename(&out, &dest).map_err(|e| e.to_string())?;
                true
            }
            _ => false,
        };
        if !kept {
            remove(&out)?;
        }
        Ok((compared?, unix_seconds(end)))
    }

    /// Gives the rebuilt tree its stored path back, normalizes it as a commit would, and
    /// compares it with the stored tree.
    fn compare(
        &self,
        out: &Path,
        other: &str,
        hash: &str,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<NodeComparison, String> {
        let c = self.checker;
        let store = &c.store;
        if !c.at_stored_path() {
            forge_store::rewrite_same_length(out, other.as_bytes(), hash.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        store.normalize(out).map_err(|e| e.to_string())?;
        let stored = store.path_of(self.name);
        let ctx = CompareContext {
            stored_output: Some(stored.clone()),
            rebuilt_output: Some(out.to_path_buf()),
            stored_build_dir: Some(store.scratch_dir(self.name, "build")),
            rebuilt_build_dir: Some(store.scratch_dir(self.name, "build")),
            extra_paths: vec![store.tmp_dir()],
            stored_window: Some(TimeWindow::ending_at(
                self.info.registered,
                self.info.build_seconds,
            )),
            rebuilt_window: Some(TimeWindow::new(start, end)),
            stored_host: c.host_name.clone(),
            rebuilt_host: c.host_name.clone(),
            user_names: c.user_name.iter().cloned().collect(),
            diffoscope: c.opts.diffoscope.then(DiffoscopeOptions::default),
            ..CompareContext::default()
        };
        let mut cmp = crate::compare(&stored, out, &ctx).map_err(|e| e.to_string())?;
        if !c.at_stored_path() && !cmp.reproducible() {
            cmp.notes.push(format!(
                "rebuilt at {} and rewritten to the stored path, because this kernel refused a mount namespace: GNU build IDs hash the temporary path and differ for that reason alone",
                out.display()
            ));
        }
        Ok(cmp)
    }

    /// Copies a rebuild's log into the log directory, if one was asked for.
    fn keep_log(&self, log: &Path) -> Result<(), String> {
        let c = self.checker;
        let Some(dir) = &c.opts.log_dir else {
            return Ok(());
        };
        let label = self.name.label();
        let file = if c.opts.rounds > 1 {
            format!("{label}.check{}.log", self.round)
        } else {
            format!("{label}.check.log")
        };
        fs_err::copy(log, dir.join(file))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What a failed rebuild says: its message, then the last lines of its log.
fn failure_message(e: NodeError) -> String {
    let (message, tail) = match &e {
        NodeError::Build(forge_builder::BuildError::Command {
            phase,
            status,
            tail,
            ..
        }) => (
            format!("phase `{phase}` failed: the command {status}"),
            tail.clone(),
        ),
        _ => (e.to_string(), Vec::new()),
    };
    let mut m = format!("the rebuild failed: {message}");
    for line in tail.iter().rev().take(10).rev() {
        m.push_str("\n    ");
        m.push_str(line);
    }
    m
}

/// A hash of the same length and alphabet as `hash`, different from it, and the same for the
/// same round: the temporary output's name.
fn other_hash(hash: &str, round: u32) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"forge-check\0");
    h.update(hash.as_bytes());
    h.update(&round.to_le_bytes());
    let mut xof = h.finalize_xof();
    loop {
        let mut bytes = vec![0u8; hash.len()];
        xof.fill(&mut bytes);
        let s: String = bytes
            .iter()
            .map(|b| forge_core::nixbase32::ALPHABET[usize::from(*b) % 32] as char)
            .collect();
        if s != hash {
            return s;
        }
    }
}

pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Sleeps until the wall clock has passed second `t`.
pub(crate) fn wait_until_after(t: i64) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if secs > t {
            return;
        }
        std::thread::sleep(
            Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()))
                + Duration::from_millis(5),
        );
    }
}

fn host_name() -> Option<String> {
    fs_err::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Removes a tree (read-only directories included) if it exists.
pub(crate) fn remove(p: &Path) -> Result<(), String> {
    if fs_err::symlink_metadata(p).is_err() {
        return Ok(());
    }
    forge_builder::remove_dir_all_forced(p)
        .map_err(|e| format!("cannot remove {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_hash_keeps_length_and_alphabet_and_differs() {
        let h = "0ymbizs207vwkgihjywg1c9m0iapfqh0";
        let a = other_hash(h, 1);
        let b = other_hash(h, 2);
        assert_eq!(a.len(), h.len());
        assert!(
            a.bytes()
                .all(|c| forge_core::nixbase32::ALPHABET.contains(&c))
        );
        assert_ne!(a, h);
        assert_ne!(a, b);
        assert_eq!(a, other_hash(h, 1));
    }

    #[test]
    fn waits_past_a_second() {
        let now = unix_seconds(SystemTime::now());
        wait_until_after(now);
        assert!(unix_seconds(SystemTime::now()) > now);
    }
}
