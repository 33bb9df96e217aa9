//! Making one node valid: take its lock, fetch its sources, build it (or link a host tool), keep
//! its log, and commit the output to the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use forge_builder::{BuildError, BuildEvent, BuildRequest, BuildResult};
use forge_core::StoreName;
use forge_fetch::SourceCache;
use forge_plan::{DrvKind, Plan};
use forge_store::{CommitRequest, Store};
use petgraph::graph::NodeIndex;

use crate::inputs::{deps_of, input_closure, rpaths, tool_paths};
use crate::{Event, How, NodeError, Options, Reporter};

/// What every node of one realization shares.
pub(crate) struct Job {
    pub(crate) store: Arc<Store>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) names: Vec<StoreName>,
    pub(crate) opts: Options,
    pub(crate) cache: SourceCache,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) cancel: tokio::sync::watch::Receiver<bool>,
}

/// How one node's attempt ended.
pub(crate) enum Outcome {
    /// It is valid, after `seconds`.
    Valid { how: How, seconds: f64 },
    /// It failed; the event says how.
    Failed(Box<Event>),
    /// The run was interrupted while it built.
    Cancelled,
}

impl Job {
    pub(crate) fn new(
        store: Arc<Store>,
        plan: Arc<Plan>,
        opts: Options,
        reporter: Arc<dyn Reporter>,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            names: crate::store_names(&plan),
            cache: SourceCache::new(opts.source_cache.clone(), opts.fetch.clone()),
            store,
            plan,
            opts,
            reporter,
            cancel,
        }
    }

    fn failed(&self, i: NodeIndex, e: NodeError, log: Option<PathBuf>) -> Outcome {
        Outcome::Failed(Box::new(e.into_event(self.names[i.index()].clone(), log)))
    }
}

/// Makes one node valid: build it (or find that another process did).
pub(crate) async fn obtain(job: &Arc<Job>, i: NodeIndex) -> Outcome {
    let name = job.names[i.index()].clone();
    // Someone else holds the path's lock: say so before waiting, or the run looks stuck.
    let lock = match job.store.try_lock(&name) {
        Ok(Some(l)) => l,
        Ok(None) => {
            job.reporter.event(&Event::Note {
                node: name.clone(),
                message: "waiting for another forge process that holds its lock (building it, or checking it)".into(),
            });
            let store = Arc::clone(&job.store);
            match tokio::task::spawn_blocking(move || store.lock(&name)).await {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return job.failed(i, e.into(), None),
                Err(e) => return job.failed(i, e.into(), None),
            }
        }
        Err(e) => return job.failed(i, e.into(), None),
    };
    match job.store.is_valid(&job.names[i.index()]) {
        Ok(true) => {
            return Outcome::Valid {
                how: How::ByOtherProcess,
                seconds: 0.0,
            };
        }
        Ok(false) => {}
        Err(e) => return job.failed(i, e.into(), None),
    }
    if job.opts.substituter.is_some()
        && job.plan.drv(i).inputs.kind != DrvKind::Host
        && let Some(outcome) = substitute_node(job, i).await
    {
        drop(lock);
        return outcome;
    }
    let outcome = build_node(job, i).await;
    drop(lock);
    outcome
}

/// Tries the binary caches for node `i` (its lock held): `None` when no cache has it, or when
/// one has it but it was refused (then a note says why, and the node is built).
async fn substitute_node(job: &Arc<Job>, i: NodeIndex) -> Option<Outcome> {
    let sub = Arc::clone(job.opts.substituter.as_ref()?);
    let name = job.names[i.index()].clone();
    let store = Arc::clone(&job.store);
    let start = std::time::Instant::now();
    if let Err(e) = store.clear_invalid(&name) {
        return Some(job.failed(i, e.into(), None));
    }
    let doc = serde_json::to_vec_pretty(&job.plan.drv(i).to_document()).expect("serializes");
    if let Err(e) = store.write_drv(&name, &doc) {
        return Some(job.failed(i, e.into(), None));
    }
    let deriver = job.plan.drv(i).hash.to_string();
    let candidates: Vec<String> = input_closure(&job.plan, i, &job.names)
        .into_iter()
        .map(String::from)
        .collect();
    let task_name = name.clone();
    let done = tokio::task::spawn_blocking(move || {
        let name = task_name;
        // The inputs are pinned against the collector until the commit has registered the
        // references to them.
        let _pins = candidates
            .iter()
            .map(|n| store.pin(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![e.to_string()])?;
        let dest = store.path_of(&name);
        let scratch = store.scratch_dir(&name, "substitute");
        let got = sub.substitute(
            &name,
            &dest,
            &scratch,
            store.paths_dir(),
            &store.sbang_path(),
        );
        let _ = forge_builder::remove_dir_all_forced(&scratch);
        let info = match got {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(None),
            Err(problems) => return Err(problems),
        };
        let committed = store.commit(CommitRequest {
            name: &name,
            staged: &dest,
            deriver: &deriver,
            candidates: &candidates,
            build_seconds: 0.0,
        });
        match committed {
            Ok(_) => {
                let _ = store.record_substitution(&name, &info.from, info.signed_by.as_deref());
                Ok(Some(info))
            }
            Err(e) => {
                let _ = store.clear_invalid(&name);
                Err(vec![format!("registering the substitute failed: {e}")])
            }
        }
    })
    .await;
    match done {
        Ok(Ok(Some(info))) => {
            job.reporter.event(&Event::Substituted {
                node: name,
                from: info.from,
                signed_by: info.signed_by,
            });
            Some(Outcome::Valid {
                how: How::Substituted,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Ok(Ok(None)) => None,
        Ok(Err(problems)) => {
            job.reporter.event(&Event::Note {
                node: name,
                message: format!(
                    "not substituted, building it instead:\n  {}",
                    problems.join("\n  ")
                ),
            });
            None
        }
        Err(e) => Some(job.failed(i, e.into(), None)),
    }
}

/// Fetches a node's sources and assembles its build request, to build into `out` with
/// `scratch`.
pub(crate) async fn prepare(
    job: &Job,
    i: NodeIndex,
    out: PathBuf,
    scratch: PathBuf,
) -> Result<BuildRequest, NodeError> {
    let name = &job.names[i.index()];
    let drv = job.plan.drv(i).clone();
    let store = &job.store;
    job.reporter.event(&Event::Phase {
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
            .ok_or_else(|| NodeError::NoChecksum(s.name.clone()))?;
        let cache = job.cache.clone();
        let (fname, urls) = (s.name.clone(), f.urls.clone());
        sources.push(tokio::task::spawn_blocking(move || cache.fetch(&fname, &sha, &urls)).await??);
    }
    Ok(BuildRequest {
        out,
        scratch,
        deps: deps_of(&job.plan, i, &job.names, store),
        tool_paths: tool_paths(&job.plan, i, &job.names, store),
        rpaths: rpaths(&job.plan, i, &job.names, store),
        sources,
        jobs: job.opts.cores.max(1),
        forge_exe: job.opts.forge_exe.clone(),
        isolate_network: job.opts.isolate_network,
        seal: job.opts.seal,
        visible: vec![store.root().to_path_buf()],
        out_dir: None,
        drv,
    })
}

/// Passes a build's phases and log lines on to the reporter as the node's events.
pub(crate) fn event_sink(
    reporter: &Arc<dyn Reporter>,
    name: &StoreName,
) -> forge_builder::EventSink {
    let reporter = Arc::clone(reporter);
    let node = name.clone();
    Arc::new(move |e: BuildEvent| match e {
        BuildEvent::Phase(phase) => reporter.event(&Event::Phase {
            node: node.clone(),
            phase,
        }),
        BuildEvent::Line(line) => reporter.event(&Event::Line {
            node: node.clone(),
            line,
        }),
    })
}

/// Links a host tool's executables into the store.
async fn link_host(job: &Job, i: NodeIndex) -> Outcome {
    let start = Instant::now();
    let name = job.names[i.index()].clone();
    let drv = job.plan.drv(i);
    let out = job.store.path_of(&name);
    if let Err(e) = forge_builder::realize_host(drv, &out) {
        return job.failed(i, e.into(), None);
    }
    let store = Arc::clone(&job.store);
    let deriver = drv.hash.to_string();
    let res = tokio::task::spawn_blocking(move || {
        store.commit(CommitRequest {
            name: &name,
            staged: &out,
            deriver: &deriver,
            candidates: &[],
            build_seconds: 0.0,
        })
    })
    .await;
    match res {
        Ok(Ok(_)) => Outcome::Valid {
            how: How::Host,
            seconds: start.elapsed().as_secs_f64(),
        },
        Ok(Err(e)) => job.failed(i, e.into(), None),
        Err(e) => job.failed(i, e.into(), None),
    }
}

async fn build_node(job: &Arc<Job>, i: NodeIndex) -> Outcome {
    let name = job.names[i.index()].clone();
    let store = Arc::clone(&job.store);
    job.reporter.event(&Event::Started { node: name.clone() });
    if let Err(e) = store.clear_invalid(&name) {
        return job.failed(i, e.into(), None);
    }
    let doc = serde_json::to_vec_pretty(&job.plan.drv(i).to_document()).expect("serializes");
    if let Err(e) = store.write_drv(&name, &doc) {
        return job.failed(i, e.into(), None);
    }
    if job.plan.drv(i).inputs.kind == DrvKind::Host {
        return link_host(job, i).await;
    }
    // Pin the inputs against the garbage collector while building.
    let input_names = input_closure(&job.plan, i, &job.names);
    let pins = {
        let store = Arc::clone(&store);
        let inputs = input_names.clone();
        let pinned = tokio::task::spawn_blocking(move || {
            inputs
                .iter()
                .map(|n| store.pin(n))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        match pinned {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return job.failed(i, e.into(), None),
            Err(e) => return job.failed(i, e.into(), None),
        }
    };
    let out = store.path_of(&name);
    let scratch = store.scratch_dir(&name, "build");
    let req = match prepare(job, i, out.clone(), scratch.clone()).await {
        Ok(r) => r,
        Err(e) => return job.failed(i, e, None),
    };
    let result =
        forge_builder::build(&req, event_sink(&job.reporter, &name), job.cancel.clone()).await;
    let keep_scratch = |failed: bool| {
        if !(failed && job.opts.keep_failed) {
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
            let log = if job.opts.keep_failed {
                job.reporter.event(&Event::Note {
                    node: name.clone(),
                    message: format!(
                        "kept its scratch directory for inspection (`forge gc` removes it): {}",
                        scratch.display()
                    ),
                });
                Some(failed_log)
            } else {
                kept
            };
            return job.failed(i, e.into(), log);
        }
    };
    for n in &built.notes {
        job.reporter.event(&Event::Note {
            node: name.clone(),
            message: n.clone(),
        });
    }
    job.reporter.event(&Event::Phase {
        node: name.clone(),
        phase: "commit".into(),
    });
    let commit = commit(
        &store,
        &name,
        &out,
        job.plan.drv(i).hash.to_string(),
        &built,
        input_names,
    )
    .await;
    drop(pins);
    match commit {
        Ok(Ok(embeds)) => {
            if let Some(first) = embeds.first() {
                job.reporter.event(&Event::Note {
                    node: name.clone(),
                    message: build_dir_note(&embeds, first),
                });
            }
            keep_scratch(false);
            Outcome::Valid {
                how: How::Built,
                seconds: built.seconds,
            }
        }
        Ok(Err(e)) => {
            let _ = store.clear_invalid(&name);
            keep_scratch(true);
            job.failed(i, NodeError::Commit(e), None)
        }
        Err(e) => job.failed(i, e.into(), None),
    }
}

/// The note for an output whose files name the build's scratch directory.
fn build_dir_note(embeds: &[std::path::PathBuf], first: &std::path::Path) -> String {
    let (more, verb) = match embeds.len() {
        1 => (String::new(), "embeds"),
        n => (
            format!(" and {} other file{}", n - 1, if n == 2 { "" } else { "s" }),
            "embed",
        ),
    };
    format!(
        "{}{more} {verb} the build directory, which is deleted after the build and differs between \
         stores: map it away (the wrapper adds -ffile-prefix-map to what it compiles; compilers it \
         does not see need the flag too)",
        first.display()
    )
}

/// Keeps the build's logs and commits its output, on a blocking thread; returns the output's
/// files that name the build directory.
async fn commit(
    store: &Arc<Store>,
    name: &StoreName,
    out: &std::path::Path,
    deriver: String,
    built: &BuildResult,
    candidates: Vec<StoreName>,
) -> Result<Result<Vec<std::path::PathBuf>, forge_store::StoreError>, tokio::task::JoinError> {
    let store = Arc::clone(store);
    let (name, out) = (name.clone(), out.to_path_buf());
    let (log, seconds) = (built.log.clone(), built.seconds);
    tokio::task::spawn_blocking(move || {
        store.store_log(&name, &log)?;
        // Keep the wrapper's record of every compiler call next to the log.
        let wrapper_log = log.with_file_name("wrapper.log");
        if wrapper_log.exists() {
            store.store_log(&format!("{name}.wrapper"), &wrapper_log)?;
        }
        let candidates: Vec<String> = candidates.into_iter().map(String::from).collect();
        let committed = store.commit(CommitRequest {
            name: &name,
            staged: &out,
            deriver: &deriver,
            candidates: &candidates,
            build_seconds: seconds,
        })?;
        Ok(committed.embeds_build_dir)
    })
    .await
}
