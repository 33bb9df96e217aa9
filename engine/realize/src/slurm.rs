//! The Slurm executor: every node to build becomes one batch job, chained to its dependencies'
//! jobs with `afterok`, that runs `forge build-node` on whichever machine Slurm picks; the
//! store is shared through the file system (`store-layout/slurm.md`).
//!
//! The client submits a node once each dependency is valid or has a job of its own, follows the
//! jobs with `squeue`, and learns each outcome from the store (the path is valid) and the result
//! file the job writes, which it also watches between reads of the queue: a success is seen
//! within 100 ms, a failure at the next read. Host tools, and nodes estimated under
//! `local_below` seconds, are built by the client itself. Every submission is recorded in
//! `<slurm dir>/<name>.job` under a per-node lock, so a second client, or the same one run again
//! after it was killed, attaches to the queued job instead of submitting it twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forge_core::StoreName;
use forge_plan::{DrvKind, Plan};
use forge_store::Store;
use petgraph::graph::NodeIndex;
use serde::{Deserialize, Serialize};

use crate::node::{Job, Outcome};
use crate::{Event, How, Options, RealizeError, Report, Reporter};

/// How to use the cluster.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`, per job.
    pub time_limit: Option<String>,
    /// More `sbatch` arguments, passed as given.
    pub sbatch_args: Vec<String>,
    /// What a job runs, before `--node NAME --result FILE`: the forge executable with the
    /// client's settings and `build-node REQUEST`.
    pub job_command: Vec<String>,
    /// How often the queue is read.
    pub poll: Duration,
    /// Nodes whose estimated build time is under this many seconds build on the client.
    pub local_below: f64,
    /// Packages whose recipes say `local-only`: built on the client.
    pub local_only: BTreeSet<String>,
}

/// What a job's `forge build-node` writes when it ends: how the node became valid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// How.
    pub how: How,
    /// Seconds the build took.
    pub seconds: f64,
    /// When `forge build-node` started, in seconds since the Unix epoch (0 when not known):
    /// with `ended`, what the job cost beyond its build, and when Slurm started it.
    #[serde(default)]
    pub started: f64,
    /// When it wrote this file, in seconds since the Unix epoch (0 when not known).
    #[serde(default)]
    pub ended: f64,
}

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A node's place in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum St {
    /// Its dependencies are not all valid or submitted yet.
    Waiting,
    /// Building on the client.
    Local,
    /// A job, pending.
    Queued(String),
    /// A job, running.
    Running(String),
    /// Valid.
    Done,
    /// Failed, skipped, or not started: settled without becoming valid.
    Settled,
}

/// One line of `squeue`: a job's state, where it runs, and why it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueueEntry {
    state: String,
    nodes: String,
    reason: String,
}

/// Whether a job state (`squeue %T`) is one a job does not leave.
fn is_final(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// Parses `squeue -h -o '%i|%T|%N|%r'`.
fn parse_squeue(out: &str) -> BTreeMap<String, QueueEntry> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let id = f.next()?.trim().to_owned();
            let state = f.next()?.trim().to_owned();
            let nodes = f.next().unwrap_or("").trim().to_owned();
            let reason = f.next().unwrap_or("").trim().to_owned();
            (!id.is_empty()).then_some((
                id,
                QueueEntry {
                    state,
                    nodes,
                    reason,
                },
            ))
        })
        .collect()
}

/// The fields of `scontrol show job -o ID` (`Key=Value` separated by spaces).
fn parse_scontrol(out: &str) -> BTreeMap<String, String> {
    out.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `'…'` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs a Slurm command and returns its stdout, or an error naming it and what it said.
async fn slurm_cmd(prog: &str, args: &[String]) -> Result<String, String> {
    let out = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        // Not in forge's process group: a Ctrl-C at the terminal reaches forge, which cancels
        // its jobs, and not an `sbatch` half-way through submitting one.
        .process_group(0)
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot run `{prog}`: not found on PATH (run forge where Slurm's client commands are, e.g. on a login node)"
                )
            } else {
                format!("cannot run `{prog}`: {e}")
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A job's fields, from `scontrol show job` (while Slurm remembers it); none otherwise.
async fn job_info(id: &str) -> BTreeMap<String, String> {
    slurm_cmd(
        "scontrol",
        &["show".into(), "job".into(), "-o".into(), id.to_owned()],
    )
    .await
    .map(|o| parse_scontrol(&o))
    .unwrap_or_default()
}

/// A job's state, from `scontrol show job` (while Slurm remembers it).
async fn job_state(id: &str) -> Option<String> {
    job_info(id).await.remove("JobState")
}

/// The files of one node's jobs in the Slurm directory.
struct Files {
    dir: PathBuf,
}

impl Files {
    /// The record of the node's job: its id.
    fn record(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.job"))
    }
    fn script(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sbatch"))
    }
    /// The job's output (what `forge build-node` prints).
    fn output(&self, name: &str, id: &str) -> PathBuf {
        self.dir.join(format!("{name}.{id}.log"))
    }
    fn result(&self, name: &str, id: &str) -> PathBuf {
        self.dir.join(format!("{name}.{id}.json"))
    }
}

/// How many `sbatch` a client runs at once (each waits ~20-30 ms for the controller).
const SUBMIT_AT_ONCE: usize = 8;

/// A node about to be submitted: its submission lock, and its `sbatch` arguments.
struct Prepared {
    lock: forge_store::PathLock,
    args: Vec<String>,
    /// The jobs it runs after.
    after: Vec<String>,
}

/// The client's view of one realization on the cluster.
struct Run {
    store: Arc<Store>,
    plan: Arc<Plan>,
    names: Vec<StoreName>,
    opts: Options,
    slurm: SlurmOptions,
    reporter: Arc<dyn Reporter>,
    files: Files,
    st: Vec<St>,
    /// Nodes this run makes valid.
    pending: BTreeSet<usize>,
    /// Critical-path priority of every node.
    prio: Vec<f64>,
    /// Nodes built on the client.
    local: Vec<bool>,
    report: Report,
    /// No more submissions: a failure without `keep_going`, or an interruption.
    stopped: bool,
    /// Nodes whose job another client (or an earlier run) submitted: what it built is not
    /// counted as built by this run.
    attached: BTreeSet<usize>,
}

impl Run {
    fn name(&self, i: usize) -> &StoreName {
        &self.names[i]
    }

    fn job_of(&self, i: usize) -> Option<&str> {
        match &self.st[i] {
            St::Queued(id) | St::Running(id) => Some(id),
            _ => None,
        }
    }

    fn jobs(&self) -> Vec<String> {
        (0..self.st.len())
            .filter_map(|i| self.job_of(i).map(str::to_owned))
            .collect()
    }

    /// The jobs of this user in the queue. A controller that does not answer (restarting,
    /// busy) is asked again a few times before the run gives up.
    async fn queue(&self) -> Result<BTreeMap<String, QueueEntry>, RealizeError> {
        let args = [
            "--me".to_owned(),
            // Jobs in hidden partitions too.
            "--all".to_owned(),
            "-h".to_owned(),
            "-o".to_owned(),
            "%i|%T|%N|%r".to_owned(),
        ];
        let mut tries = 0;
        loop {
            match slurm_cmd("squeue", &args).await {
                Ok(out) => return Ok(parse_squeue(&out)),
                Err(e) if tries < 5 && !e.starts_with("cannot run") => {
                    tries += 1;
                    tokio::time::sleep(self.slurm.poll.max(Duration::from_secs(1))).await;
                }
                Err(e) => return Err(RealizeError::Slurm(e)),
            }
        }
    }

    /// The `sbatch` arguments and batch script for node `i` after the jobs `after`.
    fn submission(&self, i: usize, after: &[String]) -> (Vec<String>, String) {
        let name = self.name(i).as_str();
        let maxp = self.prio.iter().copied().fold(0.0, f64::max).max(1e-9);
        // Slurm schedules lower nice first; users may only raise it: the critical path gets 0.
        let nice = (((maxp - self.prio[i]) / maxp) * 10_000.0).round() as u64;
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={name}"),
            format!(
                "--output={}",
                self.files.dir.join(format!("{name}.%j.log")).display()
            ),
            format!("--cpus-per-task={}", self.opts.cores.max(1)),
            format!("--nice={nice}"),
            "--kill-on-invalid-dep=yes".to_owned(),
        ];
        if !after.is_empty() {
            args.push(format!("--dependency=afterok:{}", after.join(":")));
        }
        if let Some(p) = &self.slurm.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.slurm.account {
            args.push(format!("--account={a}"));
        }
        if let Some(t) = &self.slurm.time_limit {
            args.push(format!("--time={t}"));
        }
        args.extend(self.slurm.sbatch_args.iter().cloned());
        let mut cmd: Vec<String> = self.slurm.job_command.iter().map(|a| sh_quote(a)).collect();
        cmd.push("--node".into());
        cmd.push(sh_quote(name));
        cmd.push("--result".into());
        cmd.push(format!(
            "{}\"$SLURM_JOB_ID\".json",
            sh_quote(&format!("{}/{name}.", self.files.dir.display()))
        ));
        let script = format!(
            "#!/bin/sh\n# forge: builds {name} in the shared store (submitted by `forge realize --executor slurm`)\nexec {}\n",
            cmd.join(" ")
        );
        (args, script)
    }

    /// Submits the nodes `nodes` (none depending on another), or attaches to the jobs clients
    /// submitted for them before: each under its submission lock, taken in name order (so that
    /// two clients submitting overlapping batches cannot wait for each other), with up to
    /// [`SUBMIT_AT_ONCE`] `sbatch` running at once, in the order given.
    async fn submit(
        &mut self,
        nodes: &[usize],
        queue: &BTreeMap<String, QueueEntry>,
    ) -> Result<(), RealizeError> {
        let mut by_name = nodes.to_vec();
        by_name.sort_by(|a, b| self.names[*a].cmp(&self.names[*b]));
        let mut prepared = BTreeMap::new();
        for i in by_name {
            if let Some(p) = self.prepare(i, queue).await? {
                prepared.insert(i, p);
            }
        }
        let order: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|i| prepared.contains_key(i))
            .collect();
        let slots = Arc::new(tokio::sync::Semaphore::new(SUBMIT_AT_ONCE));
        let mut sbatch = tokio::task::JoinSet::new();
        for &i in &order {
            let args = prepared[&i].args.clone();
            let slot = Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            sbatch.spawn(async move {
                let out = slurm_cmd("sbatch", &args).await;
                drop(slot);
                (i, out)
            });
        }
        let mut outs = BTreeMap::new();
        while let Some(joined) = sbatch.join_next().await {
            let (i, out) = joined.expect("an sbatch task panicked");
            outs.insert(i, out);
        }
        // The accepted jobs first: a refusal that stops the run then cancels them too.
        let mut lost = None;
        let mut refused = Vec::new();
        for i in order {
            let p = prepared.remove(&i).expect("prepared");
            match outs.remove(&i).expect("submitted") {
                Ok(out) => {
                    if let Err(e) = self.submitted(i, p, &out) {
                        lost.get_or_insert(e);
                    }
                }
                // No Slurm here at all: nothing can be submitted.
                Err(e) if e.starts_with("cannot run") => {
                    lost.get_or_insert(RealizeError::Slurm(e));
                }
                Err(e) => refused.push((i, p, e)),
            }
        }
        // Refused (a limit, a partition, a transient error): the node failed.
        for (i, p, e) in refused {
            drop(p.lock);
            if self.st[i] != St::Waiting {
                // Skipped by an earlier refusal.
                continue;
            }
            let ev = Event::Failed {
                node: self.names[i].clone(),
                phase: None,
                command: Some(format!("sbatch {}", p.args.join(" "))),
                message: format!("submitting its job failed: {e}"),
                log: None,
                tail: Vec::new(),
                attempts: Vec::new(),
            };
            self.failed(i, ev).await;
        }
        lost.map_or(Ok(()), Err)
    }

    /// Takes node `i`'s submission lock and either attaches to the job recorded for it, finds it
    /// valid, or writes its batch script: then it is to be submitted, and the lock is kept.
    async fn prepare(
        &mut self,
        i: usize,
        queue: &BTreeMap<String, QueueEntry>,
    ) -> Result<Option<Prepared>, RealizeError> {
        let name = self.name(i).clone();
        let lock = self.store.submit_lock(&name)?;
        let recorded = fs_err::read_to_string(self.files.record(&name))
            .ok()
            .map(|s| s.trim().to_owned());
        // The queue was read before this lock was taken: a job submitted since is asked for.
        let alive = match &recorded {
            Some(id) => match queue.get(id) {
                Some(e) => Some(e.state.clone()),
                None => job_state(id).await.filter(|s| {
                    matches!(
                        s.as_str(),
                        "PENDING"
                            | "RUNNING"
                            | "CONFIGURING"
                            | "COMPLETING"
                            | "REQUEUED"
                            | "SUSPENDED"
                    )
                }),
            },
            None => None,
        };
        if let (Some(id), Some(state)) = (recorded, alive) {
            self.reporter.event(&Event::Job {
                node: name.clone(),
                job: id.clone(),
                state: crate::JobState::Attached,
                detail: Vec::new(),
            });
            self.attached.insert(i);
            self.st[i] = if state == "RUNNING" {
                self.reporter.event(&Event::Started { node: name.clone() });
                St::Running(id)
            } else {
                St::Queued(id)
            };
            return Ok(None);
        }
        if self.store.is_valid(&name)? {
            drop(lock);
            self.valid(i, How::ByOtherProcess, 0.0);
            return Ok(None);
        }
        let after: Vec<String> = self
            .plan
            .graph
            .deps(NodeIndex::new(i))
            .iter()
            .filter_map(|(d, _)| self.job_of(d.index()).map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut args, script) = self.submission(i, &after);
        let script_path = self.files.script(&name);
        forge_core::fs::write_atomic(&script_path, script.as_bytes()).map_err(|e| {
            RealizeError::Slurm(format!("cannot write `{}`: {e}", script_path.display()))
        })?;
        args.push(script_path.display().to_string());
        Ok(Some(Prepared { lock, args, after }))
    }

    /// `sbatch` accepted node `i`'s job: records its id, then lets go of the node's lock.
    fn submitted(&mut self, i: usize, p: Prepared, out: &str) -> Result<(), RealizeError> {
        let name = self.names[i].clone();
        // `--parsable`: `id` or `id;cluster`.
        let id = out.trim().split(';').next().unwrap_or_default().to_owned();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RealizeError::Slurm(format!(
                "sbatch printed no job id for {name}: `{}`",
                out.trim()
            )));
        }
        let record = self.files.record(&name);
        forge_core::fs::write_atomic(&record, format!("{id}\n").as_bytes()).map_err(|e| {
            RealizeError::Slurm(format!("cannot write `{}`: {e}", record.display()))
        })?;
        drop(p.lock);
        self.reporter.event(&Event::Job {
            node: name,
            job: id.clone(),
            state: crate::JobState::Submitted,
            detail: p.after,
        });
        self.st[i] = St::Queued(id);
        Ok(())
    }

    fn valid(&mut self, i: usize, how: How, seconds: f64) {
        self.report.count_valid(&self.names[i], how);
        self.reporter.event(&Event::Finished {
            node: self.names[i].clone(),
            seconds,
            how,
        });
        self.st[i] = St::Done;
    }

    /// A build on the client ended.
    async fn local_ended(&mut self, i: usize, outcome: Outcome) {
        match outcome {
            Outcome::Valid { how, seconds } => self.valid(i, how, seconds),
            Outcome::Failed(ev) => self.failed(i, *ev).await,
            Outcome::Cancelled => self.st[i] = St::Settled,
        }
    }

    /// Node `i` failed (its event already made): everything above it that has not run is
    /// skipped, and their jobs cancelled.
    async fn failed(&mut self, i: usize, ev: Event) {
        self.reporter.event(&ev);
        self.report.failed.push(self.names[i].clone());
        self.st[i] = St::Settled;
        let above: Vec<usize> = forge_core::graph::reachable([NodeIndex::new(i)], |x| {
            self.plan
                .graph
                .dependents(*x)
                .into_iter()
                .filter(|d| self.pending.contains(&d.index()))
        })
        .into_iter()
        .map(NodeIndex::index)
        .filter(|&d| !matches!(self.st[d], St::Done | St::Settled))
        .collect();
        let cancel: Vec<String> = above
            .iter()
            .filter(|d| !self.attached.contains(d))
            .filter_map(|&d| self.job_of(d).map(str::to_owned))
            .collect();
        self.scancel(&cancel).await;
        for (&d, ev) in above
            .iter()
            .zip(crate::skipped_events(&self.plan, &self.names, i, &above))
        {
            self.reporter.event(&ev);
            self.report.skipped.push(self.names[d].clone());
            self.st[d] = St::Settled;
        }
        if !self.opts.keep_going {
            self.stop(false).await;
        }
    }

    /// No more submissions; pending jobs are cancelled (running ones too when `all`).
    async fn stop(&mut self, all: bool) {
        self.stopped = true;
        let mut cancel = Vec::new();
        for i in 0..self.st.len() {
            let stop = match &self.st[i] {
                St::Queued(id) => Some(id.clone()),
                St::Running(id) if all => Some(id.clone()),
                _ => None,
            };
            if let Some(id) = stop {
                // A job another client submitted is its to cancel: this run only lets go.
                if !self.attached.contains(&i) {
                    cancel.push(id);
                }
                self.st[i] = St::Settled;
            }
        }
        self.scancel(&cancel).await;
    }

    async fn scancel(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        // Best effort: a job that ended meanwhile is no error.
        let _ = slurm_cmd("scancel", ids).await;
    }

    /// Updates every job from the queue: started, still waiting, or ended (then its outcome
    /// comes from the store and its result file).
    async fn follow(&mut self, queue: &BTreeMap<String, QueueEntry>) -> Result<(), RealizeError> {
        for i in 0..self.st.len() {
            let Some(id) = self.job_of(i).map(str::to_owned) else {
                continue;
            };
            match queue.get(&id) {
                // Not among this user's jobs: an attached job of another user is asked for.
                None if self.attached.contains(&i)
                    && job_state(&id).await.is_some_and(|s| !is_final(&s)) => {}
                // Gone from the queue, or in a final state: it ended.
                None => self.ended(i, &id).await?,
                Some(e) if is_final(&e.state) => self.ended(i, &id).await?,
                Some(e) if matches!(e.state.as_str(), "RUNNING" | "COMPLETING" | "STAGE_OUT") => {
                    if self.st[i] == St::Queued(id.clone()) {
                        let node = self.names[i].clone();
                        self.reporter.event(&Event::Started { node: node.clone() });
                        self.reporter.event(&Event::Job {
                            node,
                            job: id.clone(),
                            state: crate::JobState::Running,
                            detail: vec![e.nodes.clone()],
                        });
                        self.st[i] = St::Running(id);
                    }
                }
                // Waiting: pending, held, requeued, suspended ….
                Some(e) => {
                    if e.reason == "DependencyNeverSatisfied" {
                        // A dependency failed; its failure skips this node when it is read.
                        self.scancel(std::slice::from_ref(&id)).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn ended(&mut self, i: usize, id: &str) -> Result<(), RealizeError> {
        let name = self.names[i].clone();
        // A job that never ran, gone while one of its dependencies has not ended as far as
        // this run knows (a failed one still `COMPLETING`): Slurm dropped it for that
        // dependency, whose outcome, read at a later poll, decides (a failure skips it).
        let never_ran = self.st[i] == St::Queued(id.to_owned());
        let deps_pending = self
            .plan
            .graph
            .deps(NodeIndex::new(i))
            .iter()
            .any(|(d, _)| matches!(self.st[d.index()], St::Queued(_) | St::Running(_)));
        if never_ran && deps_pending && !self.store.is_valid(&name)? {
            return Ok(());
        }
        let result: Option<JobResult> = fs_err::read(self.files.result(&name, id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if self.store.is_valid(&name)? {
            let (how, seconds) = match result {
                Some(r) if self.attached.contains(&i) && r.how == How::Built => {
                    (How::ByOtherProcess, r.seconds)
                }
                Some(r) => (r.how, r.seconds),
                None => (
                    How::ByOtherProcess,
                    self.store.query(&name)?.map_or(0.0, |p| p.build_seconds),
                ),
            };
            if self.st[i] == St::Queued(id.to_owned()) {
                self.reporter.event(&Event::Started { node: name.clone() });
            }
            self.valid(i, how, seconds);
            return Ok(());
        }
        let info = job_info(id).await;
        let state = info
            .get("JobState")
            .cloned()
            .unwrap_or_else(|| "ended".into());
        let code = info
            .get("ExitCode")
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default();
        let log = self.files.output(&name, id);
        let ev = Event::Failed {
            node: name,
            phase: None,
            command: None,
            message: format!(
                "Slurm job {id} ended ({state}{code}) without making the path valid; its output: {}",
                log.display()
            ),
            tail: forge_core::fs::tail_lines(&log, 25),
            log: Some(log),
            attempts: Vec::new(),
        };
        self.failed(i, ev).await;
        Ok(())
    }

    /// The jobs that may be running: seen running, or queued with every dependency valid.
    fn may_run(&self) -> Vec<(usize, String)> {
        (0..self.st.len())
            .filter_map(|i| match &self.st[i] {
                St::Running(id) => Some((i, id.clone())),
                St::Queued(id)
                    if self
                        .plan
                        .graph
                        .deps(NodeIndex::new(i))
                        .iter()
                        .all(|(d, _)| self.st[d.index()] == St::Done) =>
                {
                    Some((i, id.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Settles the jobs whose result file says they made their node valid: between two reads
    /// of the queue, a `stat` per job that may be running tells the client a job ended long
    /// before Slurm's queue would (and before the job has even left it). Returns how many jobs
    /// it looked at.
    async fn watch(&mut self) -> Result<usize, RealizeError> {
        let candidates = self.may_run();
        for (i, id) in &candidates {
            let name = self.names[*i].clone();
            if self.files.result(&name, id).exists() && self.store.is_valid(&name)? {
                self.ended(*i, id).await?;
            }
        }
        Ok(candidates.len())
    }

    /// Whether node `i` can go now: built on the client once its dependencies are valid; as a
    /// job once each is valid or has a job to wait for.
    fn ready(&self, i: usize) -> bool {
        self.plan
            .graph
            .deps(NodeIndex::new(i))
            .iter()
            .all(|(d, _)| {
                let d = d.index();
                !self.pending.contains(&d)
                    || match &self.st[d] {
                        St::Done => true,
                        St::Queued(_) | St::Running(_) => !self.local[i],
                        _ => false,
                    }
            })
    }
}

/// Realizes every node of `plan` through Slurm. `cancel` set to `true` cancels every job this
/// run submitted and stops.
pub async fn realize_on_slurm(
    store: Arc<Store>,
    plan: Arc<Plan>,
    opts: Options,
    slurm: SlurmOptions,
    reporter: Arc<dyn Reporter>,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Report, RealizeError> {
    let start = Instant::now();
    let crate::Begun {
        names,
        valid,
        to_build,
        mut report,
    } = crate::begin(&store, &plan, reporter.as_ref())?;
    let n = names.len();
    if to_build.is_empty() {
        report.seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let estimates: Vec<Option<f64>> = (0..n)
        .map(|i| crate::known_estimate(&store, &plan, &names, &valid, NodeIndex::new(i)))
        .collect();
    let prio =
        crate::scheduler::priorities(&plan, &|i: NodeIndex| estimates[i.index()].unwrap_or(1.0));
    let local: Vec<bool> = (0..n)
        .map(|i| {
            let d = plan.drv(NodeIndex::new(i));
            d.inputs.kind == DrvKind::Host
                || slurm.local_only.contains(&d.inputs.name)
                || estimates[i].is_some_and(|e| e < slurm.local_below)
        })
        .collect();
    // Jobs on other machines lock and commit into this store.
    forge_store::sharedfs::check_shared_store(store.root()).map_err(RealizeError::Slurm)?;
    let dir = store.slurm_dir();
    fs_err::create_dir_all(&dir)
        .map_err(|e| RealizeError::Slurm(format!("cannot create `{}`: {e}", dir.display())))?;
    let job = Arc::new(Job::new(
        Arc::clone(&store),
        Arc::clone(&plan),
        opts.clone(),
        Arc::clone(&reporter),
        cancel.clone(),
    ));
    let mut run = Run {
        store,
        plan,
        names,
        opts,
        slurm,
        reporter,
        files: Files { dir },
        st: vec![St::Waiting; n],
        pending: to_build.iter().copied().collect(),
        prio,
        local,
        report,
        stopped: false,
        attached: BTreeSet::new(),
    };
    for i in 0..n {
        if !run.pending.contains(&i) {
            run.st[i] = St::Done;
        }
    }
    let mut locals = tokio::task::JoinSet::new();
    let outcome = drive(&mut run, &job, &mut locals, &mut cancel).await;
    if outcome.is_err() {
        // Whatever stopped the run, none of its jobs stays queued behind it.
        run.stop(true).await;
        cancel_locals(&mut run, &mut locals).await;
    }
    outcome?;
    let mut report = std::mem::take(&mut run.report);
    report.not_started = to_build
        .iter()
        .filter(|&&i| {
            run.st[i] != St::Done
                && !report.failed.contains(&run.names[i])
                && !report.skipped.contains(&run.names[i])
        })
        .map(|&i| run.names[i].clone())
        .collect();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The run's loop: start what can start, read the queue when a poll is due, and wait for a
/// poll, a local build or an interruption.
async fn drive(
    run: &mut Run,
    job: &Arc<Job>,
    locals: &mut tokio::task::JoinSet<(usize, Outcome)>,
    cancel: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), RealizeError> {
    let n = run.st.len();
    let mut next_poll = Instant::now();
    let mut next_watch = Instant::now();
    loop {
        if *cancel.borrow() && !run.report.cancelled {
            run.report.cancelled = true;
            run.stop(true).await;
        }
        while let Some(joined) = locals.try_join_next() {
            let (i, outcome) = joined.expect("a local build task panicked");
            run.local_ended(i, outcome).await;
        }
        let has_jobs = !run.jobs().is_empty();
        if has_jobs && Instant::now() >= next_watch {
            let looked = run.watch().await?;
            next_watch = Instant::now() + watch_interval(looked);
        }
        let has_jobs = !run.jobs().is_empty();
        let due = has_jobs && Instant::now() >= next_poll;
        // What can start now: a job once its dependencies are valid or queued; a local build
        // once they are valid and a slot is free. Highest priority first.
        let mut free = run.opts.jobs.max(1).saturating_sub(locals.len());
        let mut startable: Vec<usize> = if run.stopped {
            Vec::new()
        } else {
            (0..n)
                .filter(|&i| run.st[i] == St::Waiting && run.ready(i))
                .collect()
        };
        startable.sort_by(|a, b| run.prio[*b].total_cmp(&run.prio[*a]).then(a.cmp(b)));
        startable.retain(|&i| {
            if !run.local[i] {
                return true;
            }
            let take = free > 0;
            free = free.saturating_sub(1);
            take
        });
        let submits = startable.iter().any(|&i| !run.local[i]);
        // The queue is read only to follow jobs or to submit (attaching needs it).
        let queue = if due || submits {
            Some(run.queue().await?)
        } else {
            None
        };
        if let Some(q) = &queue {
            if due {
                run.follow(q).await?;
                next_poll = Instant::now() + run.slurm.poll;
            }
            let mut jobs = Vec::new();
            for i in startable {
                if run.local[i] {
                    run.st[i] = St::Local;
                    let j = Arc::clone(job);
                    locals.spawn(
                        async move { (i, crate::node::obtain(&j, NodeIndex::new(i)).await) },
                    );
                } else {
                    jobs.push(i);
                }
            }
            if !jobs.is_empty() && !*cancel.borrow() {
                run.submit(&jobs, q).await?;
                // Their dependents can be submitted now, after them.
                next_watch = Instant::now();
            }
        } else {
            for i in startable {
                run.st[i] = St::Local;
                let j = Arc::clone(job);
                locals.spawn(async move { (i, crate::node::obtain(&j, NodeIndex::new(i)).await) });
            }
        }
        let has_jobs = !run.jobs().is_empty();
        if !has_jobs && locals.is_empty() {
            // Nothing runs, so nothing still waiting can start (it waits for a failed node,
            // or the run stopped): the run is over.
            return Ok(());
        }
        // Jobs: wake for the next look at their results or the queue. Only local builds: wake
        // when one ends.
        let wait = if has_jobs {
            next_poll
                .min(next_watch)
                .saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            Some(joined) = locals.join_next(), if !locals.is_empty() => {
                let (i, outcome) = joined.expect("a local build task panicked");
                run.local_ended(i, outcome).await;
            }
            () = tokio::time::sleep(wait) => {}
            _ = cancel.changed(), if !run.report.cancelled => {}
        }
    }
}

/// How often the result files of `jobs` jobs that may be running are looked at: every 100 ms,
/// and no more than 500 `stat`s a second on the shared file system.
fn watch_interval(jobs: usize) -> Duration {
    Duration::from_millis(100)
        .max(Duration::from_millis(2) * u32::try_from(jobs).unwrap_or(u32::MAX))
}

/// Waits for the client's own builds to end (as the local executor lets running builds end
/// after a failure).
async fn cancel_locals(run: &mut Run, locals: &mut tokio::task::JoinSet<(usize, Outcome)>) {
    while let Some(joined) = locals.join_next().await {
        if let Ok((i, outcome)) = joined {
            run.local_ended(i, outcome).await;
        }
    }
}

/// Where a job writes how its node became valid.
pub fn write_result(path: &Path, result: &JobResult) -> std::io::Result<()> {
    forge_core::fs::write_atomic(
        path,
        serde_json::to_string(result)
            .expect("serializes")
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_state_host_and_reason() {
        let q = parse_squeue(
            "12|PENDING||Dependency\n13|RUNNING|node1|None\n14|PENDING||DependencyNeverSatisfied\n",
        );
        assert_eq!(q.len(), 3);
        assert_eq!(q["13"].state, "RUNNING");
        assert_eq!(q["13"].nodes, "node1");
        assert_eq!(q["14"].reason, "DependencyNeverSatisfied");
    }

    #[test]
    fn scontrol_fields_are_read() {
        let f =
            parse_scontrol("JobId=7 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0");
        assert_eq!(f["JobState"], "FAILED");
        assert_eq!(f["ExitCode"], "1:0");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b c"), r"'a'\''b c'");
    }
}
