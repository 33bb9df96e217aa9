//! Realize: make every node of a plan valid in the store, building only what is missing.
//!
//! The fourth stage of forge's pipeline. A [`scheduler`](crate::scheduler) runs ready nodes in
//! parallel on tokio within `jobs` (concurrent builds), giving each `cores` for its `{jobs}`,
//! longest critical path first. For each node ([`node`](crate::node)): take the path's lock
//! (another forge process may be building it: wait, then use its result), fetch sources into the
//! cache, build with `forge-builder`, keep the log, and commit the output to the store. Failures
//! stop the run unless `keep_going`; Ctrl-C (a `true` on the cancel channel) stops running builds
//! and cleans their scratch directories.
//!
//! "Obtain a valid path" is one step (`node::obtain`) with, for now, one way to do it: build. A
//! substituter (fetching from a forge-exported cache) will be the second.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod error;
mod event;
mod inputs;
mod node;
mod scheduler;
mod slurm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use forge_fetch::FetchOptions;
use forge_plan::{DrvKind, Plan};
use forge_store::Store;
use petgraph::graph::NodeIndex;

pub use error::{NodeError, RealizeError};
pub use event::{Event, How, JobState, Report, Reporter};
pub use slurm::{JobResult, SlurmOptions, realize_on_slurm, unix_now, write_result};

use node::{Job, Outcome};
use scheduler::Scheduler;

/// How to realize.
#[derive(Debug, Clone)]
pub struct Options {
    /// Builds running at the same time.
    pub jobs: usize,
    /// Parallel jobs each build may use (`{jobs}`, `make -j`).
    pub cores: usize,
    /// Keep building unrelated nodes after a failure.
    pub keep_going: bool,
    /// Keep the scratch directory of failed builds.
    pub keep_failed: bool,
    /// The forge executable (wrappers and sandbox shim).
    pub forge_exe: PathBuf,
    /// Whether build commands run without network.
    pub isolate_network: bool,
    /// Whether build commands can write only to their scratch directory and output.
    pub seal: bool,
    /// Source cache directory.
    pub source_cache: PathBuf,
    /// Download settings.
    pub fetch: FetchOptions,
    /// Binary caches to install nodes from before building them.
    pub substituter: Option<Arc<dyn Substitutes>>,
}

/// Installs store paths from binary caches instead of building them (implemented over Spack
/// buildcaches by `forge-spack`).
pub trait Substitutes: Send + Sync + std::fmt::Debug {
    /// Installs `name` at `dest` (absent; on the filesystem of `scratch`, which it may use and
    /// must leave removable), relocated into the store whose paths directory is `paths_dir`
    /// and whose `sbang` is `sbang`. `Ok(None)`: no cache has it; `Err`: one line per cache
    /// that has it but failed (the node is then built, with a warning).
    fn substitute(
        &self,
        name: &str,
        dest: &std::path::Path,
        scratch: &std::path::Path,
        paths_dir: &std::path::Path,
        sbang: &std::path::Path,
    ) -> Result<Option<SubstituteInfo>, Vec<String>>;
}

/// Where a substituted path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstituteInfo {
    /// The cache's URL.
    pub from: String,
    /// The fingerprint of the key that signed its manifest.
    pub signed_by: Option<String>,
}

pub use forge_plan::store_names;

/// The `Skipped` events of the nodes `above` (all that need node `failed`), each naming the
/// dependency through which it needs the failed node when that is not the failed node itself
/// (`gcc` for a library that needs `gmp` only through it).
pub(crate) fn skipped_events(
    plan: &Plan,
    names: &[forge_core::StoreName],
    failed: usize,
    above: &[usize],
) -> Vec<Event> {
    let above_set: std::collections::BTreeSet<usize> = above.iter().copied().collect();
    above
        .iter()
        .map(|&d| {
            let deps = plan.graph.deps(NodeIndex::new(d));
            let via = if deps.iter().any(|(x, _)| x.index() == failed) {
                None
            } else {
                deps.iter()
                    .find(|(x, _)| above_set.contains(&x.index()))
                    .map(|(x, _)| names[x.index()].clone())
            };
            Event::Skipped {
                node: names[d].clone(),
                because: names[failed].clone(),
                via,
            }
        })
        .collect()
}

/// Where a realization starts: the plan's store names, which are valid, which to build, and
/// the report so far (the `Planned` event is sent).
pub(crate) struct Begun {
    pub(crate) names: Vec<forge_core::StoreName>,
    pub(crate) valid: std::collections::BTreeSet<String>,
    pub(crate) to_build: Vec<usize>,
    pub(crate) report: Report,
}

pub(crate) fn begin(
    store: &Store,
    plan: &Plan,
    reporter: &dyn Reporter,
) -> Result<Begun, RealizeError> {
    let names = store_names(plan);
    let valid = store.valid_subset(names.iter().map(|n| n.as_str()))?;
    let n = names.len();
    let to_build: Vec<usize> = (0..n)
        .filter(|i| !valid.contains(names[*i].as_str()))
        .collect();
    reporter.event(&Event::Planned {
        total: n,
        valid: n - to_build.len(),
        to_build: to_build.len(),
    });
    let report = Report {
        already_valid: n - to_build.len(),
        ..Report::default()
    };
    Ok(Begun {
        names,
        valid,
        to_build,
        report,
    })
}

/// How long node `i` should take to build: nothing for a host tool or a valid path, else the
/// average of the store's earlier builds of its package, if any.
pub(crate) fn known_estimate(
    store: &Store,
    plan: &Plan,
    names: &[forge_core::StoreName],
    valid: &std::collections::BTreeSet<String>,
    i: NodeIndex,
) -> Option<f64> {
    let d = plan.drv(i);
    if d.inputs.kind == DrvKind::Host || valid.contains(names[i.index()].as_str()) {
        return Some(0.0);
    }
    store.build_estimate(&d.inputs.name).ok().flatten()
}

/// Realizes every node of `plan`. `cancel` set to `true` interrupts.
pub async fn realize(
    store: Arc<Store>,
    plan: Arc<Plan>,
    opts: Options,
    reporter: Arc<dyn Reporter>,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Report, RealizeError> {
    let start = Instant::now();
    let Begun {
        names,
        valid,
        to_build,
        mut report,
    } = begin(&store, &plan, reporter.as_ref())?;
    if to_build.is_empty() {
        report.seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let estimate = |i: NodeIndex| known_estimate(&store, &plan, &names, &valid, i).unwrap_or(1.0);
    let mut queue = Scheduler::new(&plan, &to_build, &estimate);
    let job = Arc::new(Job::new(
        store,
        Arc::clone(&plan),
        opts,
        Arc::clone(&reporter),
        cancel.clone(),
    ));
    let mut running = tokio::task::JoinSet::new();
    let mut stopped = false;
    // Nodes that finished, failed or were skipped; the rest of `to_build` never started.
    let mut settled = std::collections::BTreeSet::new();
    loop {
        if *cancel.borrow() {
            stopped = true;
            report.cancelled = true;
        }
        while !stopped && running.len() < job.opts.jobs.max(1) {
            let Some(i) = queue.next(&names) else { break };
            let j = Arc::clone(&job);
            running.spawn(async move { (i, node::obtain(&j, NodeIndex::new(i)).await) });
        }
        if running.is_empty() {
            break;
        }
        let mut cancel_wait = cancel.clone();
        let joined = tokio::select! {
            j = running.join_next() => j,
            () = async { let _ = cancel_wait.wait_for(|c| *c).await; }, if !report.cancelled => {
                report.cancelled = true;
                stopped = true;
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (i, outcome) = match joined {
            Ok(x) => x,
            Err(e) => panic!("a build task panicked: {e}"),
        };
        if !matches!(outcome, Outcome::Cancelled) {
            settled.insert(i);
        }
        match outcome {
            Outcome::Valid { how, seconds } => {
                report.count_valid(&names[i], how);
                reporter.event(&Event::Finished {
                    node: names[i].clone(),
                    seconds,
                    how,
                });
                queue.done(&plan, i);
            }
            Outcome::Failed(ev) => {
                reporter.event(&ev);
                report.failed.push(names[i].clone());
                let above = queue.failed(&plan, i);
                for (&d, ev) in above.iter().zip(skipped_events(&plan, &names, i, &above)) {
                    settled.insert(d);
                    report.skipped.push(names[d].clone());
                    reporter.event(&ev);
                }
                if !job.opts.keep_going {
                    stopped = true;
                }
            }
            Outcome::Cancelled => {
                report.cancelled = true;
                stopped = true;
            }
        }
    }
    report.not_started = to_build
        .iter()
        .filter(|i| !settled.contains(*i))
        .map(|&i| names[i].clone())
        .collect();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Makes exactly node `node` of `plan` valid, as `forge build-node` does in a Slurm job: its
/// dependencies must be valid already (the job runs after theirs). The same lock, substitution,
/// sandbox, build and commit as [`realize`].
pub async fn realize_node(
    store: Arc<Store>,
    plan: Arc<Plan>,
    node: NodeIndex,
    opts: Options,
    reporter: Arc<dyn Reporter>,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Report, RealizeError> {
    let start = Instant::now();
    let names = store_names(&plan);
    let name = names[node.index()].clone();
    let inputs: Vec<forge_core::StoreName> = inputs::input_closure(&plan, node, &names)
        .into_iter()
        .filter(|n| *n != name)
        .collect();
    let valid = store.valid_subset(inputs.iter().map(|n| n.as_str()))?;
    let missing: Vec<forge_core::StoreName> = inputs
        .into_iter()
        .filter(|n| !valid.contains(n.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(RealizeError::DepsNotValid {
            node: name,
            missing,
        });
    }
    let already = store.is_valid(&name)?;
    reporter.event(&Event::Planned {
        total: 1,
        valid: usize::from(already),
        to_build: usize::from(!already),
    });
    let mut report = Report::default();
    if already {
        report.already_valid = 1;
        report.seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let job = Arc::new(Job::new(store, plan, opts, Arc::clone(&reporter), cancel));
    match node::obtain(&job, node).await {
        Outcome::Valid { how, seconds } => {
            report.count_valid(&name, how);
            reporter.event(&Event::Finished {
                node: name,
                seconds,
                how,
            });
        }
        Outcome::Failed(ev) => {
            reporter.event(&ev);
            report.failed.push(name);
        }
        Outcome::Cancelled => {
            report.cancelled = true;
            report.not_started.push(name);
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Where a rebuild goes.
#[derive(Debug, Clone)]
pub struct RebuildAt {
    /// The output path the build sees (`{out}`).
    pub out: PathBuf,
    /// Where its bytes land instead, if not at `out` (see [`forge_builder::BuildRequest::out_dir`]).
    pub out_dir: Option<PathBuf>,
    /// Its scratch directory.
    pub scratch: PathBuf,
}

/// Builds node `i` of `plan` once more, as `at` says, without committing anything: `forge
/// check`'s rebuild. Its dependencies must be valid.
pub async fn rebuild(
    store: Arc<Store>,
    plan: Arc<Plan>,
    i: NodeIndex,
    opts: Options,
    reporter: Arc<dyn Reporter>,
    cancel: tokio::sync::watch::Receiver<bool>,
    at: RebuildAt,
) -> Result<forge_builder::BuildResult, NodeError> {
    let job = Job::new(store, plan, opts, reporter, cancel);
    let mut req = node::prepare(&job, i, at.out, at.scratch).await?;
    req.out_dir = at.out_dir;
    let sink = node::event_sink(&job.reporter, &job.names[i.index()]);
    Ok(forge_builder::build(&req, sink, job.cancel.clone()).await?)
}
