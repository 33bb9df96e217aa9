//! Realize: make every node of a plan valid in the store, building only what is missing.
//!
//! The fourth stage of forge's pipeline. A scheduler on tokio runs ready nodes in parallel within
//! `jobs` (concurrent builds), giving each `cores` for its `{jobs}`, longest critical path first.
//! For each node: take the path's lock (another forge process may be building it: wait, then use
//! its result), fetch sources into the cache, build with `forge-builder`, keep the log, and commit
//! the output to the store. Failures stop the run unless `keep_going`; Ctrl-C (a `true` on the
//! cancel channel) stops running builds and cleans their scratch directories.
//!
//! "Obtain a valid path" is one step ([`obtain`]) with, for now, one way to do it: build. A
//! substituter (fetching from a forge-exported cache) will be the second.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use forge_builder::{BuildError, BuildEvent, BuildRequest, DepPath};
use forge_fetch::{FetchOptions, SourceCache};
use forge_plan::{DrvKind, Plan};
use forge_store::{CommitRequest, Store};
use petgraph::graph::NodeIndex;
use serde::Serialize;

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
        node: String,
    },
    /// A node entered a phase.
    Phase {
        /// Store name.
        node: String,
        /// Phase name.
        phase: String,
    },
    /// A line of a node's build output.
    Line {
        /// Store name.
        node: String,
        /// The line.
        line: String,
    },
    /// A node became valid.
    Finished {
        /// Store name.
        node: String,
        /// Seconds spent.
        seconds: f64,
        /// `built`, `host`, or `by-other-process`.
        how: String,
    },
    /// Something worth noting about a node.
    Note {
        /// Store name.
        node: String,
        /// The note.
        message: String,
    },
    /// A node failed.
    Failed {
        /// Store name.
        node: String,
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
    },
    /// A node was not built because a dependency failed.
    Skipped {
        /// Store name.
        node: String,
        /// The failed dependency.
        because: String,
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
    pub built: Vec<String>,
    /// Nodes that were already valid.
    pub already_valid: usize,
    /// Nodes that failed.
    pub failed: Vec<String>,
    /// Nodes skipped because a dependency failed.
    pub skipped: Vec<String>,
    /// Whether the run was interrupted.
    pub cancelled: bool,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Whether every node is valid.
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.cancelled
    }
}

/// Errors that stop a realization before any build.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] forge_store::StoreError),
}

struct Ctx {
    store: Arc<Store>,
    plan: Arc<Plan>,
    names: Vec<String>,
    opts: Options,
    cache: SourceCache,
    reporter: Arc<dyn Reporter>,
    cancel: tokio::sync::watch::Receiver<bool>,
}

enum Outcome {
    Valid(&'static str, f64),
    Failed(Box<Event>),
    Cancelled,
}

/// The store names of every node of a plan, by node index.
pub fn store_names(plan: &Plan) -> Vec<String> {
    plan.drvs
        .iter()
        .map(forge_plan::Derivation::store_name)
        .collect()
}

/// Critical-path priority of each node: its own estimated duration plus the longest chain of
/// dependents above it.
fn priorities(plan: &Plan, estimate: &dyn Fn(NodeIndex) -> f64) -> Vec<f64> {
    let g = &plan.graph;
    let n = g.len();
    let mut prio = vec![0.0; n];
    // Nodes are stored dependencies first; walk from the top down.
    for i in (0..n).rev() {
        let idx = NodeIndex::new(i);
        let above = g
            .dependents(idx)
            .iter()
            .map(|d| prio[d.index()])
            .fold(0.0, f64::max);
        prio[i] = estimate(idx) + above;
    }
    prio
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
    let names = store_names(&plan);
    let valid = store.valid_subset(names.iter().map(String::as_str))?;
    let n = names.len();
    let to_build: Vec<usize> = (0..n).filter(|i| !valid.contains(&names[*i])).collect();
    reporter.event(&Event::Planned {
        total: n,
        valid: n - to_build.len(),
        to_build: to_build.len(),
    });
    let mut report = Report {
        already_valid: n - to_build.len(),
        ..Report::default()
    };
    if to_build.is_empty() {
        report.seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let estimate = |i: NodeIndex| -> f64 {
        let d = plan.drv(i);
        if d.inputs.kind == DrvKind::Host || valid.contains(&names[i.index()]) {
            return 0.0;
        }
        store
            .build_estimate(&d.inputs.name)
            .ok()
            .flatten()
            .unwrap_or(1.0)
    };
    let prio = priorities(&plan, &estimate);
    let cache = SourceCache::new(opts.source_cache.clone(), opts.fetch.clone());
    let ctx = Arc::new(Ctx {
        store: Arc::clone(&store),
        plan: Arc::clone(&plan),
        names: names.clone(),
        opts,
        cache,
        reporter: Arc::clone(&reporter),
        cancel: cancel.clone(),
    });
    // Dependency counts among the nodes still to build.
    let pending: BTreeSet<usize> = to_build.iter().copied().collect();
    let mut waiting: HashMap<usize, usize> = HashMap::new();
    for &i in &to_build {
        let deps = plan
            .graph
            .deps(NodeIndex::new(i))
            .iter()
            .filter(|(d, _)| pending.contains(&d.index()))
            .count();
        waiting.insert(i, deps);
    }
    let mut ready: Vec<usize> = to_build
        .iter()
        .copied()
        .filter(|i| waiting[i] == 0)
        .collect();
    let mut running = tokio::task::JoinSet::new();
    let mut stopped = false;
    let mut failed_nodes: BTreeSet<usize> = BTreeSet::new();
    loop {
        if *cancel.borrow() {
            stopped = true;
            report.cancelled = true;
        }
        // Highest priority last, so `pop` takes it; ties broken by name for determinism.
        ready.sort_by(|a, b| {
            prio[*a]
                .total_cmp(&prio[*b])
                .then_with(|| names[*b].cmp(&names[*a]))
        });
        while !stopped && running.len() < ctx.opts.jobs.max(1) {
            let Some(i) = ready.pop() else { break };
            let c = Arc::clone(&ctx);
            running.spawn(async move { (i, obtain(&c, NodeIndex::new(i)).await) });
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
        match outcome {
            Outcome::Valid(how, seconds) => {
                if how != "by-other-process" {
                    report.built.push(names[i].clone());
                }
                reporter.event(&Event::Finished {
                    node: names[i].clone(),
                    seconds,
                    how: how.to_owned(),
                });
                for d in plan.graph.dependents(NodeIndex::new(i)) {
                    if let Some(w) = waiting.get_mut(&d.index()) {
                        *w -= 1;
                        if *w == 0 && !failed_nodes.contains(&d.index()) {
                            ready.push(d.index());
                        }
                    }
                }
            }
            Outcome::Failed(ev) => {
                reporter.event(&ev);
                report.failed.push(names[i].clone());
                failed_nodes.insert(i);
                // Everything above a failed node that has not run is skipped.
                let above = forge_core::graph::reachable([NodeIndex::new(i)], |x| {
                    plan.graph.dependents(*x).into_iter().filter(|d| {
                        pending.contains(&d.index()) && !failed_nodes.contains(&d.index())
                    })
                });
                for d in above {
                    failed_nodes.insert(d.index());
                    report.skipped.push(names[d.index()].clone());
                    reporter.event(&Event::Skipped {
                        node: names[d.index()].clone(),
                        because: names[i].clone(),
                    });
                }
                ready.retain(|r| !failed_nodes.contains(r));
                if !ctx.opts.keep_going {
                    stopped = true;
                }
            }
            Outcome::Cancelled => {
                report.cancelled = true;
                stopped = true;
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn failure(name: &str, message: String, log: Option<PathBuf>) -> Outcome {
    Outcome::Failed(Box::new(Event::Failed {
        node: name.to_owned(),
        phase: None,
        command: None,
        message,
        log,
        tail: Vec::new(),
    }))
}

/// Makes one node valid: build it (or find that another process did).
async fn obtain(ctx: &Arc<Ctx>, i: NodeIndex) -> Outcome {
    let name = ctx.names[i.index()].clone();
    let store = Arc::clone(&ctx.store);
    let n2 = name.clone();
    let lock = match tokio::task::spawn_blocking(move || store.lock(&n2)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return failure(&name, e.to_string(), None),
        Err(e) => return failure(&name, e.to_string(), None),
    };
    match ctx.store.is_valid(&name) {
        Ok(true) => return Outcome::Valid("by-other-process", 0.0),
        Ok(false) => {}
        Err(e) => return failure(&name, e.to_string(), None),
    }
    let c = Arc::clone(ctx);
    let outcome = build_node(c, i).await;
    drop(lock);
    outcome
}

fn deps_of(plan: &Plan, i: NodeIndex, names: &[String], store: &Store) -> Vec<DepPath> {
    plan.graph
        .deps(i)
        .into_iter()
        .map(|(d, e)| DepPath {
            name: plan.graph.node(d).name().to_owned(),
            virtuals: e.virtuals.clone(),
            path: store.path_of(&names[d.index()]),
            types: e.types.names().into_iter().map(str::to_owned).collect(),
            role: format!("{:?}", e.role).to_lowercase(),
        })
        .collect()
}

/// `bin` dirs of the run-time closure of a node's build tools.
fn tool_paths(plan: &Plan, i: NodeIndex, names: &[String], store: &Store) -> Vec<PathBuf> {
    let g = &plan.graph;
    let tools = g
        .deps(i)
        .into_iter()
        .filter(|(_, e)| e.types.contains(forge_recipe::DepType::Build))
        .map(|(d, _)| d);
    g.reachable(tools, |_, e| e.types.contains(forge_recipe::DepType::Run))
        .into_iter()
        .map(|d| store.path_of(&names[d.index()]).join("bin"))
        .collect()
}

/// `lib` dirs of the link closure: RUNPATH entries for everything the node links.
fn rpaths(plan: &Plan, i: NodeIndex, names: &[String], store: &Store) -> Vec<PathBuf> {
    let linked = plan.graph.reachable([i], |d, e| {
        e.types.contains(forge_recipe::DepType::Link) && plan.drv(d).inputs.kind == DrvKind::Build
    });
    let mut out = Vec::new();
    for d in linked {
        let p = store.path_of(&names[d.index()]);
        // Dependencies are complete: only directories that exist go on the RUNPATH.
        for sub in ["lib", "lib64"] {
            if p.join(sub).is_dir() {
                out.push(p.join(sub));
            }
        }
    }
    out
}

/// Every store name the node's build can see (its whole dependency closure): the candidates for
/// runtime references.
fn input_closure(plan: &Plan, i: NodeIndex, names: &[String]) -> Vec<String> {
    let mut seen = plan.graph.reachable([i], |_, _| true);
    seen.sort_unstable();
    seen.into_iter().map(|d| names[d.index()].clone()).collect()
}

/// Fetches a node's sources and assembles its build request, to build into `out` with
/// `scratch`.
async fn prepare(
    ctx: &Arc<Ctx>,
    i: NodeIndex,
    out: PathBuf,
    scratch: PathBuf,
) -> Result<BuildRequest, String> {
    let name = &ctx.names[i.index()];
    let drv = ctx.plan.drv(i).clone();
    let store = &ctx.store;
    ctx.reporter.event(&Event::Phase {
        node: name.clone(),
        phase: "fetch".into(),
    });
    let mut sources = Vec::new();
    for (s, f) in drv.inputs.sources.iter().zip(&drv.fetch) {
        if let Some(p) = &f.path {
            sources.push(p.clone());
            continue;
        }
        let sha = s
            .sha256
            .clone()
            .ok_or_else(|| format!("source `{}` has no sha256", s.name))?;
        let cache = ctx.cache.clone();
        let (fname, urls) = (s.name.clone(), f.urls.clone());
        match tokio::task::spawn_blocking(move || cache.fetch(&fname, &sha, &urls)).await {
            Ok(Ok(p)) => sources.push(p),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(BuildRequest {
        out,
        scratch,
        deps: deps_of(&ctx.plan, i, &ctx.names, store),
        tool_paths: tool_paths(&ctx.plan, i, &ctx.names, store),
        rpaths: rpaths(&ctx.plan, i, &ctx.names, store),
        sources,
        jobs: ctx.opts.cores.max(1),
        forge_exe: ctx.opts.forge_exe.clone(),
        isolate_network: ctx.opts.isolate_network,
        seal: ctx.opts.seal,
        out_dir: None,
        drv,
    })
}

fn event_sink(reporter: &Arc<dyn Reporter>, name: &str) -> forge_builder::EventSink {
    let reporter = Arc::clone(reporter);
    let node_name = name.to_owned();
    Arc::new(move |e: BuildEvent| match e {
        BuildEvent::Phase(p) => reporter.event(&Event::Phase {
            node: node_name.clone(),
            phase: p,
        }),
        BuildEvent::Line(l) => reporter.event(&Event::Line {
            node: node_name.clone(),
            line: l,
        }),
    })
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
) -> Result<forge_builder::BuildResult, Box<Event>> {
    let names = store_names(&plan);
    let name = names[i.index()].clone();
    let cache = SourceCache::new(opts.source_cache.clone(), opts.fetch.clone());
    let ctx = Arc::new(Ctx {
        store,
        plan,
        names,
        opts,
        cache,
        reporter,
        cancel,
    });
    let fail = |message: String| {
        Box::new(Event::Failed {
            node: name.clone(),
            phase: None,
            command: None,
            message,
            log: None,
            tail: Vec::new(),
        })
    };
    let mut req = prepare(&ctx, i, at.out, at.scratch).await.map_err(fail)?;
    req.out_dir = at.out_dir;
    let sink = event_sink(&ctx.reporter, &name);
    forge_builder::build(&req, sink, ctx.cancel.clone())
        .await
        .map_err(|e| match e {
            BuildError::Command {
                phase,
                command,
                status,
                tail,
                log,
            } => Box::new(Event::Failed {
                node: name.clone(),
                message: format!("phase `{phase}` failed: the command {status}"),
                phase: Some(phase),
                command: Some(command),
                log: Some(log),
                tail,
            }),
            other => fail(other.to_string()),
        })
}

async fn build_node(ctx: Arc<Ctx>, i: NodeIndex) -> Outcome {
    let name = ctx.names[i.index()].clone();
    let drv = ctx.plan.drv(i).clone();
    let store = Arc::clone(&ctx.store);
    let out = store.path_of(&name);
    ctx.reporter.event(&Event::Started { node: name.clone() });
    if let Err(e) = store.clear_invalid(&name) {
        return failure(&name, e.to_string(), None);
    }
    let doc = serde_json::to_vec_pretty(&drv.to_document()).expect("serializes");
    if let Err(e) = store.write_drv(&name, &doc) {
        return failure(&name, e.to_string(), None);
    }
    if drv.inputs.kind == DrvKind::Host {
        let start = Instant::now();
        let r = forge_builder::realize_host(&drv, &out);
        if let Err(e) = r {
            return failure(&name, e.to_string(), None);
        }
        let res = tokio::task::spawn_blocking({
            let store = Arc::clone(&store);
            let name = name.clone();
            let out = out.clone();
            let deriver = drv.hash.to_string();
            move || {
                store.commit(CommitRequest {
                    name: &name,
                    staged: &out,
                    deriver: &deriver,
                    candidates: &[],
                    build_seconds: 0.0,
                })
            }
        })
        .await;
        return match res {
            Ok(Ok(_)) => Outcome::Valid("host", start.elapsed().as_secs_f64()),
            Ok(Err(e)) => failure(&name, e.to_string(), None),
            Err(e) => failure(&name, e.to_string(), None),
        };
    }
    // Pin the inputs against the garbage collector while building.
    let names = ctx.names.clone();
    let input_names = input_closure(&ctx.plan, i, &names);
    let pins = {
        let store = Arc::clone(&store);
        let inputs = input_names.clone();
        match tokio::task::spawn_blocking(move || {
            inputs
                .iter()
                .map(|n| store.pin(n))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return failure(&name, e.to_string(), None),
            Err(e) => return failure(&name, e.to_string(), None),
        }
    };
    let scratch = store.scratch_dir(&name, "build");
    let req = match prepare(&ctx, i, out.clone(), scratch.clone()).await {
        Ok(r) => r,
        Err(e) => return failure(&name, e, None),
    };
    let sink = event_sink(&ctx.reporter, &name);
    let result = forge_builder::build(&req, sink, ctx.cancel.clone()).await;
    let keep_scratch = |failed: bool| {
        if !(failed && ctx.opts.keep_failed) {
            let _ = forge_builder::remove_dir_all_forced(&scratch);
        }
    };
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            // Nothing half-built may stay at the output path.
            let _ = store.clear_invalid(&name);
            let failed_log = scratch.join("build.log");
            let kept = if failed_log.exists() {
                store.store_log(&name, &failed_log).ok()
            } else {
                None
            };
            let cancelled = matches!(e, BuildError::Cancelled);
            keep_scratch(!cancelled);
            if cancelled {
                return Outcome::Cancelled;
            }
            let log = if ctx.opts.keep_failed {
                Some(failed_log)
            } else {
                kept
            };
            return Outcome::Failed(Box::new(match e {
                BuildError::Command {
                    phase,
                    command,
                    status,
                    tail,
                    ..
                } => Event::Failed {
                    node: name.clone(),
                    phase: Some(phase.clone()),
                    command: Some(command),
                    message: format!("phase `{phase}` failed: the command {status}"),
                    log,
                    tail,
                },
                other => Event::Failed {
                    node: name.clone(),
                    phase: None,
                    command: None,
                    message: other.to_string(),
                    log,
                    tail: Vec::new(),
                },
            }));
        }
    };
    for n in &built.notes {
        ctx.reporter.event(&Event::Note {
            node: name.clone(),
            message: n.clone(),
        });
    }
    ctx.reporter.event(&Event::Phase {
        node: name.clone(),
        phase: "commit".into(),
    });
    let commit = tokio::task::spawn_blocking({
        let store = Arc::clone(&store);
        let name = name.clone();
        let out = out.clone();
        let deriver = drv.hash.to_string();
        let log = built.log.clone();
        let seconds = built.seconds;
        move || -> Result<(), forge_store::StoreError> {
            store.store_log(&name, &log)?;
            // Keep the wrapper's record of every compiler call next to the log.
            let wrapper_log = log.with_file_name("wrapper.log");
            if wrapper_log.exists() {
                store.store_log(&format!("{name}.wrapper"), &wrapper_log)?;
            }
            store.commit(CommitRequest {
                name: &name,
                staged: &out,
                deriver: &deriver,
                candidates: &input_names,
                build_seconds: seconds,
            })?;
            Ok(())
        }
    })
    .await;
    drop(pins);
    match commit {
        Ok(Ok(())) => {
            keep_scratch(false);
            Outcome::Valid("built", built.seconds)
        }
        Ok(Err(e)) => {
            let _ = store.clear_invalid(&name);
            keep_scratch(true);
            failure(&name, format!("committing the output failed: {e}"), None)
        }
        Err(e) => failure(&name, e.to_string(), None),
    }
}

