//! `forge realize`: build every missing node of a target or spec.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use forge_realize::{Options, Reporter};

use crate::ExitStatus;
use crate::args::RealizeArgs;
use crate::context::Ctx;
use crate::error::CliError;
use crate::progress;

pub(super) fn run(ctx: &Ctx, a: &RealizeArgs) -> Result<ExitStatus, CliError> {
    let request = match (&a.request, ctx.example()) {
        (Some(r), _) => r.clone(),
        (None, true) => crate::examples::DEFAULT_TARGET.to_owned(),
        (None, false) => {
            return Err(CliError::error("name a target or spec to realize").with_hint(
                "`forge plan --all` lists the targets; `forge realize --example` builds the built-in example",
            ));
        }
    };
    // `FORGE_TIMINGS=1` prints where a run's set-up time goes (stderr).
    let timings = std::env::var_os("FORGE_TIMINGS").is_some();
    let t0 = std::time::Instant::now();
    // An out-link that would be refused is refused before anything is built.
    if let Some(link) = &a.out_link {
        forge_store::Store::check_out_link(link)?;
    }
    let lock_mode = super::lock::Mode::from_flags(a.lock, a.locked);
    let root = ctx.recipes_root()?;
    let slot = crate::plan_cache::Slot::new(
        &crate::context::cache_dir(),
        &root,
        &request,
        &ctx.store,
        ctx.padded_length(),
    );
    if lock_mode == super::lock::Mode::Ignore
        && !a.dry_run
        && let Some(hit) = slot.as_ref().and_then(crate::plan_cache::Slot::lookup)
        && let Some(status) = all_valid_from_cache(ctx, a, &request, &hit)?
    {
        if timings {
            ctx.printer.info(&format!(
                "timings: plan cache hit, {} nodes valid, {:.1} ms",
                hit.names.len(),
                t0.elapsed().as_secs_f64() * 1e3
            ));
        }
        return Ok(status);
    }
    let (set, clean) = ctx.load_at(&root)?;
    let t_load = t0.elapsed();
    let system = ctx.host();
    let host = crate::plan_cache::Recording::new(&system);
    let plan = Arc::new(ctx.plan(&set, &host, &request)?);
    if clean && let Some(slot) = &slot {
        slot.record(&plan, &host);
    }
    super::lock::apply(ctx, &set, &request, &plan, lock_mode)?;
    if a.dry_run {
        return dry_run(ctx, a, &plan);
    }
    let t_plan = t0.elapsed();
    let store = match forge_store::Store::open(&ctx.store, ctx.padded_length()) {
        Ok(s) => Arc::new(s),
        // A store this process cannot write (a shared one, mounted read-only) still serves what
        // is valid in it.
        Err(e @ forge_store::StoreError::ReadOnly { .. }) if a.out_link.is_none() => {
            let store = ctx.open_store_read_only()?;
            let names = forge_realize::store_names(&plan);
            if store.valid_subset(names.iter().map(|n| n.as_str()))?.len() != names.len() {
                return Err(e.into());
            }
            return finish_all_valid(
                ctx,
                a,
                &request,
                &store,
                &plan.root().store_name(),
                names.len(),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let t_store = t0.elapsed();
    // Until its GC root (or out-link) is made, what this run builds is kept by its temporary
    // roots: a `forge gc` meanwhile leaves it alone.
    let names = forge_realize::store_names(&plan);
    let _temp_roots = store.add_temp_roots(names.iter().map(|n| n.as_str()))?;
    let forge_exe = std::env::current_exe()
        .map_err(|e| CliError::error(format!("cannot find the forge executable: {e}")))?;
    let reporter = reporter(ctx, a.json);
    // Probe isolation only when something is to be built: a no-op realize stays instant.
    let all_valid = store
        .valid_subset(names.iter().map(|n| n.as_str()))
        .map(|v| v.len() == names.len())
        .unwrap_or(false);
    if timings {
        ctx.printer.info(&format!(
            "timings: load {:.1} ms, resolve+plan {:.1} ms, open store {:.1} ms, validity {:.1} ms",
            t_load.as_secs_f64() * 1e3,
            (t_plan - t_load).as_secs_f64() * 1e3,
            (t_store - t_plan).as_secs_f64() * 1e3,
            (t0.elapsed() - t_store).as_secs_f64() * 1e3
        ));
    }
    if all_valid {
        // Nothing to build: no scheduler, no runtime, no probes.
        drop(reporter);
        return finish_all_valid(
            ctx,
            a,
            &request,
            &store,
            &plan.root().store_name(),
            names.len(),
        );
    }
    let mut opts = build_options(
        ctx,
        forge_exe,
        &store.tmp_dir(),
        a.jobs,
        a.cores,
        a.keep_going,
        a.keep_failed,
    )?;
    opts.substituter = substituter(ctx, a)?;
    let runtime = runtime()?;
    let (interrupts, cancel_rx) = Interrupts::watch(&runtime)?;
    let report = match a.executor {
        crate::args::Executor::Local => runtime.block_on(forge_realize::realize(
            Arc::clone(&store),
            Arc::clone(&plan),
            opts,
            Arc::clone(&reporter),
            cancel_rx,
        )),
        crate::args::Executor::Slurm => {
            let mut slurm = slurm_options(ctx, a, &request, &opts)?;
            slurm.local_only = set
                .packages
                .values()
                .filter(|r| r.local_only)
                .map(|r| r.name.value.clone())
                .collect();
            runtime.block_on(forge_realize::realize_on_slurm(
                Arc::clone(&store),
                Arc::clone(&plan),
                opts,
                slurm,
                Arc::clone(&reporter),
                cancel_rx,
            ))
        }
    };
    drop(reporter);
    let report = report.map_err(CliError::error)?;
    let total = names.len();
    if report.cancelled {
        if a.json {
            ctx.printer
                .json_line(&done_event(&report, total, None, None));
        }
        return Err(interrupts.error(&format!(
            "running builds were stopped and their scratch directories removed; {}",
            tally(&report, total)
        )));
    }
    if !report.success() {
        // What failed and why was reported as it happened; this is the tally.
        if a.json {
            ctx.printer
                .json_line(&done_event(&report, total, None, None));
        }
        let e = CliError::failure(tally(&report, total));
        return Err(if !report.not_started.is_empty() && !a.keep_going {
            e.with_hint(
                "`--keep-going` (`-k`) builds everything that does not depend on a failed node",
            )
        } else {
            e
        });
    }
    if !a.json && !report.substituted.is_empty() {
        ctx.printer.info(&format!(
            "substituted {} node{} from binary caches",
            report.substituted.len(),
            if report.substituted.len() == 1 {
                ""
            } else {
                "s"
            },
        ));
    }
    if !a.json && !report.built.is_empty() {
        ctx.printer.info(&format!(
            "built {} node{} in {:.1}s",
            report.built.len(),
            if report.built.len() == 1 { "" } else { "s" },
            report.seconds
        ));
    }
    finish(
        ctx,
        a,
        &request,
        &store,
        &plan.root().store_name(),
        &report,
        total,
    )
}

/// How `--executor slurm` submits: the job's command repeats this run's settings (store,
/// recipes, sources, sandbox) explicitly, so a job on another machine builds the same node.
fn slurm_options(
    ctx: &Ctx,
    a: &RealizeArgs,
    request: &str,
    opts: &Options,
) -> Result<forge_realize::SlurmOptions, CliError> {
    let path = |p: &std::path::Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut cmd = Vec::new();
    // A shared file system declared by hand is declared for the jobs too.
    if std::env::var("FORGE_STORE_SHARED").is_ok_and(|v| v == "1") {
        cmd.extend(["env".to_owned(), "FORGE_STORE_SHARED=1".to_owned()]);
    }
    cmd.extend([
        opts.forge_exe.display().to_string(),
        "--store".to_owned(),
        path(&ctx.store),
    ]);
    if ctx.example() {
        cmd.push("--example".into());
    } else {
        cmd.push("--recipes".into());
        cmd.push(path(&ctx.recipes_root()?));
    }
    cmd.push("--source-cache".into());
    cmd.push(path(&ctx.source_cache));
    for m in &ctx.mirrors {
        cmd.push(format!("--mirror={m}"));
    }
    if let Some(n) = ctx.padded_length() {
        cmd.push(format!("--padded-length={n}"));
    }
    cmd.push(format!(
        "--sandbox={}",
        clap::ValueEnum::to_possible_value(&ctx.sandbox)
            .expect("every mode has a name")
            .get_name()
    ));
    cmd.extend([
        "build-node".to_owned(),
        request.to_owned(),
        format!("--cores={}", opts.cores),
    ]);
    let poll = std::env::var("FORGE_SLURM_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            std::time::Duration::from_secs(2),
            std::time::Duration::from_millis,
        );
    Ok(forge_realize::SlurmOptions {
        partition: a.partition.clone(),
        account: a.account.clone(),
        time_limit: a.time_limit.clone(),
        sbatch_args: a.sbatch_args.clone(),
        job_command: cmd,
        poll,
        local_below: a.local_below,
        local_only: Default::default(),
    })
}

/// `forge build-node REQUEST --node NAME`: plans REQUEST and builds that one node, whose
/// dependencies must be valid; what a Slurm job runs.
pub(super) fn build_node(
    ctx: &Ctx,
    a: &crate::args::BuildNodeArgs,
) -> Result<ExitStatus, CliError> {
    let started = forge_realize::unix_now();
    let root = ctx.recipes_root()?;
    let (set, _) = ctx.load_at(&root)?;
    let system = ctx.host();
    let host = crate::plan_cache::Recording::new(&system);
    let plan = Arc::new(ctx.plan(&set, &host, &a.request)?);
    let names = forge_realize::store_names(&plan);
    let Some(i) = names.iter().position(|n| n.as_str() == a.node) else {
        return Err(CliError::error(format!(
            "`{}` no longer plans `{}`: the recipes changed since the job was submitted",
            a.request, a.node
        ))
        .with_hint("run `forge realize` again: it submits jobs for what the recipes say now"));
    };
    let store = Arc::new(forge_store::Store::open(&ctx.store, ctx.padded_length())?);
    let forge_exe = std::env::current_exe()
        .map_err(|e| CliError::error(format!("cannot find the forge executable: {e}")))?;
    let opts = build_options(ctx, forge_exe, &store.tmp_dir(), 1, a.cores, false, false)?;
    let reporter = reporter(ctx, false);
    let runtime = runtime()?;
    let (interrupts, cancel_rx) = Interrupts::watch(&runtime)?;
    let report = runtime
        .block_on(forge_realize::realize_node(
            Arc::clone(&store),
            plan,
            petgraph::graph::NodeIndex::new(i),
            opts,
            reporter,
            cancel_rx,
        ))
        .map_err(CliError::error)?;
    if report.cancelled {
        return Err(interrupts.error("the build was stopped and its scratch directory removed"));
    }
    if !report.success() {
        return Err(CliError::failure(format!("building {} failed", a.node)));
    }
    if let Some(path) = &a.result {
        let how = if !report.built.is_empty() {
            forge_realize::How::Built
        } else if !report.substituted.is_empty() {
            forge_realize::How::Substituted
        } else {
            forge_realize::How::ByOtherProcess
        };
        let seconds = store.query(&a.node)?.map_or(0.0, |p| p.build_seconds);
        // The node is valid: a result file that cannot be written must not fail the job
        // (its dependents would be cancelled); the client then reads the store instead.
        if let Err(e) = forge_realize::write_result(
            path,
            &forge_realize::JobResult {
                how,
                seconds,
                started,
                ended: forge_realize::unix_now(),
            },
        ) {
            ctx.printer
                .warn(&format!("cannot write `{}`: {e}", path.display()));
        }
    }
    Ok(ExitStatus::Success)
}

/// `--dry-run`: the nodes that are not valid and the sources not in the cache.
fn dry_run(ctx: &Ctx, a: &RealizeArgs, plan: &forge_plan::Plan) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store_read_only()?;
    let names = forge_realize::store_names(plan);
    let valid = store.valid_subset(names.iter().map(|n| n.as_str()))?;
    let build: Vec<&forge_core::StoreName> = names
        .iter()
        .filter(|n| !valid.contains(n.as_str()))
        .collect();
    let mut needed = std::collections::BTreeMap::new();
    for i in plan.graph.topo() {
        if !valid.contains(names[i.index()].as_str()) {
            super::fetch::sources_of_node(plan, i, &mut needed);
        }
    }
    let cache = ctx.source_cache();
    let downloads: Vec<&super::fetch::Needed> = needed
        .values()
        .filter(|n| cache.get(&n.sha256).is_none())
        .collect();
    if a.json {
        ctx.printer.json_line(&serde_json::json!({
            "event": "dry-run",
            "total": names.len(),
            "to_build": build.iter().map(|n| store.path_of(n)).collect::<Vec<_>>(),
            "downloads": downloads.iter().map(|n| serde_json::json!({
                "name": n.name, "sha256": n.sha256, "urls": n.urls, "nodes": n.nodes,
            })).collect::<Vec<_>>(),
        }));
        return Ok(ExitStatus::Success);
    }
    let mut out = format!(
        "would build (or link from the host) {} of {}",
        build.len(),
        crate::printer::counted(names.len(), "node")
    );
    for n in &build {
        out.push_str(&format!("\n  {}", store.path_of(n).display()));
    }
    out.push_str(&format!(
        "\nwould download {} (not in the source cache {})",
        crate::printer::counted(downloads.len(), "source"),
        cache.dir().display()
    ));
    for n in &downloads {
        out.push_str(&format!(
            "\n  {}  sha256 {}  {}",
            n.name,
            n.sha256,
            n.urls.first().map_or("(mirrors only)", String::as_str)
        ));
    }
    ctx.printer.data(&out);
    Ok(ExitStatus::Success)
}

/// The end of a run that found all `n` nodes valid: the plan's event, then [`finish`].
fn finish_all_valid(
    ctx: &Ctx,
    a: &RealizeArgs,
    request: &str,
    store: &forge_store::Store,
    root: &forge_core::StoreName,
    n: usize,
) -> Result<ExitStatus, CliError> {
    reporter(ctx, a.json).event(&forge_realize::Event::Planned {
        total: n,
        valid: n,
        to_build: 0,
    });
    let report = forge_realize::Report {
        already_valid: n,
        ..Default::default()
    };
    finish(ctx, a, request, store, root, &report, n)
}

/// What happened to the nodes, adding up to `total`: `of 72 nodes: 1 failed, 53 skipped (they
/// need a failed node), 16 not started, 2 built, 0 were valid`.
fn tally(r: &forge_realize::Report, total: usize) -> String {
    use crate::printer::counted;
    let mut parts = vec![format!("{} failed", r.failed.len())];
    if !r.skipped.is_empty() {
        parts.push(format!(
            "{} skipped (they need a failed node)",
            r.skipped.len()
        ));
    }
    if !r.not_started.is_empty() {
        parts.push(format!(
            "{} {}",
            r.not_started.len(),
            if r.cancelled {
                "not finished (interrupted)"
            } else {
                "not started (the run stopped at the failure)"
            }
        ));
    }
    parts.push(format!("{} built", r.built.len()));
    if !r.substituted.is_empty() {
        parts.push(format!("{} substituted", r.substituted.len()));
    }
    parts.push(format!(
        "{} valid before or found on the host",
        r.already_valid + r.other_valid
    ));
    format!("of {}: {}", counted(total, "node"), parts.join(", "))
}

/// The last event of `realize --json`: the outcome, the counts, the output and its GC root.
fn done_event(
    r: &forge_realize::Report,
    total: usize,
    path: Option<&std::path::Path>,
    gc_root: Option<&std::path::Path>,
) -> serde_json::Value {
    serde_json::json!({
        "event": "done",
        "success": r.success(),
        "interrupted": r.cancelled,
        "path": path,
        "gc_root": gc_root,
        "total": total,
        "valid_before": r.already_valid,
        "host_or_other_process": r.other_valid,
        "built": r.built.len(),
        "substituted": r.substituted.len(),
        "failed": r.failed,
        "skipped": r.skipped.len(),
        "not_started": r.not_started.len(),
        "seconds": (r.seconds * 1000.0).round() / 1000.0,
    })
}

/// The end of a realize whose plan came from the plan cache: `None` unless every node is valid
/// (then the normal path plans and builds).
fn all_valid_from_cache(
    ctx: &Ctx,
    a: &RealizeArgs,
    request: &str,
    hit: &crate::plan_cache::Hit,
) -> Result<Option<ExitStatus>, CliError> {
    let store = match forge_store::Store::open(&ctx.store, ctx.padded_length()) {
        Ok(s) => s,
        Err(forge_store::StoreError::ReadOnly { .. }) if a.out_link.is_none() => {
            ctx.open_store_read_only()?
        }
        // The normal path reports it.
        Err(_) => return Ok(None),
    };
    if store
        .valid_subset(hit.names.iter().map(String::as_str))?
        .len()
        != hit.names.len()
    {
        return Ok(None);
    }
    let Some(root) = forge_core::StoreName::parse(&hit.root) else {
        return Ok(None);
    };
    finish_all_valid(ctx, a, request, &store, &root, hit.names.len()).map(Some)
}

/// The scheduler's options for this machine: isolation probed once (in `probe_dir`), `make -j`
/// from the CPUs unless given. Less than sealed isolation is a warning naming the cause, or
/// with `--sandbox require` an error.
pub(super) fn build_options(
    ctx: &Ctx,
    forge_exe: std::path::PathBuf,
    probe_dir: &std::path::Path,
    jobs: usize,
    cores: Option<usize>,
    keep_going: bool,
    keep_failed: bool,
) -> Result<Options, CliError> {
    let isolation = forge_builder::probe(&forge_exe, probe_dir);
    // What builds would get, and why not more.
    let weakened = match &isolation {
        forge_builder::Isolation::Sealed => None,
        forge_builder::Isolation::NetworkOnly(why) => Some((
            "without network but able to write outside their output",
            format!(
                "forge could not give them a mount namespace of their own ({why}{})",
                isolation_cause(why)
            ),
        )),
        forge_builder::Isolation::Unavailable(why) => Some((
            "able to reach the network and write outside their output",
            format!(
                "forge could not isolate them ({why}{})",
                isolation_cause(why)
            ),
        )),
    };
    if let Some((how, cause)) = weakened {
        if ctx.sandbox == crate::args::SandboxMode::Require {
            return Err(CliError::error(format!(
                "refusing to build with --sandbox require: builds would run {how}: {cause}"
            ))
            .with_hint("`--sandbox auto` (or FORGE_SANDBOX=auto) builds anyway, less isolated"));
        }
        ctx.printer.warn(&format!("builds run {how}: {cause}"));
    }
    let cores =
        cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(Options {
        jobs: jobs.max(1),
        cores,
        keep_going,
        keep_failed,
        forge_exe,
        isolate_network: isolation.network(),
        seal: isolation.sealed(),
        source_cache: ctx.source_cache.clone(),
        fetch: ctx.fetch_options(),
        substituter: None,
    })
}

/// What an isolation failure's errno usually means on Linux, as a sentence to append.
fn isolation_cause(why: &str) -> &'static str {
    if why.contains("os error 28") {
        "; a namespace limit is 0 or reached: see /proc/sys/user/max_mnt_namespaces and max_net_namespaces"
    } else if why.contains("os error 1)") || why.contains("os error 13)") {
        "; namespaces are not permitted here: unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, AppArmor), or a container lacks CAP_SYS_ADMIN"
    } else if why.contains("os error 22)") {
        "; this kernel lacks the namespace support forge needs"
    } else {
        ""
    }
}

/// The binary caches of this run: `--substituter`, else `FORGE_SUBSTITUTERS`, else the lines
/// of `<config dir>/substituters` (`#` starts a comment). Signatures are checked against the
/// keyring's public keys unless `--no-check-signature`.
fn substituter(
    ctx: &Ctx,
    a: &RealizeArgs,
) -> Result<Option<Arc<dyn forge_realize::Substitutes>>, CliError> {
    let mut urls = a.substituters.clone();
    if urls.is_empty()
        && let Some(env) = std::env::var_os("FORGE_SUBSTITUTERS")
    {
        urls = env
            .to_string_lossy()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
    }
    let config = crate::context::config_dir().join("substituters");
    if urls.is_empty()
        && let Ok(text) = fs_err::read_to_string(&config)
    {
        urls = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let trusted = forge_spack::Keyring::open(&ctx.keys)
        .and_then(|k| k.trusted())
        .map_err(|e| CliError::error(format!("cannot read the trusted keys: {e}")))?;
    if trusted.is_empty() && !a.no_check_signature {
        ctx.printer.warn(&format!(
            "no trusted keys in {}: every signed substitute will be refused; trust the cache's key with `forge key trust KEYFILE`",
            ctx.keys.join("public").display()
        ));
    }
    let sub = forge_spack::substitute::Substituter::new(
        &urls,
        trusted,
        !a.no_check_signature,
        ctx.fetch_options(),
        crate::context::cache_dir().join("substitutes"),
    )
    .map_err(|e| {
        CliError::error(e)
            .with_hint("`--substituter` takes a directory, `file:///…`, `http://…` or `https://…`")
    })?;
    Ok(Some(Arc::new(SpackCaches(sub))))
}

/// forge-spack's substituter, for the scheduler.
#[derive(Debug)]
struct SpackCaches(forge_spack::substitute::Substituter);

impl forge_realize::Substitutes for SpackCaches {
    fn substitute(
        &self,
        name: &str,
        dest: &std::path::Path,
        scratch: &std::path::Path,
        paths_dir: &std::path::Path,
        sbang: &std::path::Path,
    ) -> Result<Option<forge_realize::SubstituteInfo>, Vec<String>> {
        Ok(self
            .0
            .substitute(name, dest, scratch, paths_dir, sbang)?
            .map(|s| forge_realize::SubstituteInfo {
                from: s.from,
                signed_by: s.signed_by,
            }))
    }
}

/// Progress on the terminal (live when the printer says so), or a JSON event stream on stdout.
pub(super) fn reporter(ctx: &Ctx, json: bool) -> Arc<dyn Reporter> {
    if json {
        Arc::new(progress::Json::new(ctx.printer))
    } else if ctx.printer.live_progress() {
        Arc::new(progress::Live::new(ctx.printer))
    } else {
        Arc::new(progress::Plain::new(ctx.printer))
    }
}

/// A multi-threaded runtime for the scheduler.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::error(format!("cannot start the scheduler: {e}")))
}

/// The signals that stop a run cleanly: Ctrl-C (SIGINT), and SIGTERM and SIGHUP, which CI
/// timeouts, service managers and closed terminals send. Any of them cancels the run, so builds
/// are stopped and their scratch directories and locks released, as for Ctrl-C; the command then
/// exits with 128 + the signal's number, as a shell reports a process the signal killed.
#[derive(Debug)]
pub(super) struct Interrupts {
    caught: Arc<AtomicI32>,
}

impl Interrupts {
    /// Installs the handlers now (a signal from here on cancels, none is lost to the default
    /// action) and returns the channel that turns true when one arrives.
    pub(super) fn watch(
        rt: &tokio::runtime::Runtime,
    ) -> Result<(Self, tokio::sync::watch::Receiver<bool>), CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let _in_runtime = rt.enter();
        let kinds = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let stream = signal(kind).map_err(|e| {
                CliError::error(format!("cannot watch for interrupting signals: {e}"))
            })?;
            streams.push((kind.as_raw_value(), stream));
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let caught = Arc::new(AtomicI32::new(0));
        let seen = Arc::clone(&caught);
        rt.spawn(async move {
            let [(int, mut a), (term, mut b), (hup, mut c)] =
                <[_; 3]>::try_from(streams).expect("three signals");
            let n = tokio::select! {
                _ = a.recv() => int,
                _ = b.recv() => term,
                _ = c.recv() => hup,
            };
            seen.store(n, Ordering::SeqCst);
            let _ = tx.send(true);
        });
        Ok((Self { caught }, rx))
    }

    /// The error a cancelled run ends with: which signal stopped it and `what` was cleaned up;
    /// its status is 128 + the signal's number.
    pub(super) fn error(&self, what: &str) -> CliError {
        let n = self.caught.load(Ordering::SeqCst);
        let name = match n {
            1 => "SIGHUP",
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "a signal",
        };
        let e = CliError::failure(format!("interrupted by {name}; {what}"));
        match u8::try_from(n) {
            Ok(n) if n > 0 => e.with_status(ExitStatus::Interrupted(n)),
            _ => e,
        }
    }
}

/// The GC root (the out-link, else the store's root named after the request, unless
/// `--no-root`) and the output path, once every node is valid; with `--json`, the `done` event
/// (`report`'s counts of `total` nodes).
fn finish(
    ctx: &Ctx,
    a: &RealizeArgs,
    request: &str,
    store: &forge_store::Store,
    root: &forge_core::StoreName,
    report: &forge_realize::Report,
    total: usize,
) -> Result<ExitStatus, CliError> {
    let mut gc_root = None;
    if let Some(link) = &a.out_link {
        store.add_out_link(root, link)?;
        gc_root = Some(std::path::absolute(link).unwrap_or_else(|_| link.clone()));
    } else if !a.no_root && store.writable() {
        let name = forge_store::root_name_for(request);
        match store.add_root(&name, root) {
            Ok((link, changed)) => {
                if changed && !a.json {
                    ctx.printer.info(&format!(
                        "kept as the GC root `{name}` ({}); `forge roots --remove {name}` lets `forge gc` delete it",
                        link.display()
                    ));
                }
                gc_root = Some(link);
            }
            // The result is valid either way; say that nothing keeps it (a full file system
            // must not turn a finished realize into a failure).
            Err(e) => ctx.printer.warn(&format!(
                "no GC root keeps the result, `forge gc` may delete it: {e}"
            )),
        }
    }
    let path = store.path_of(root);
    if a.json {
        ctx.printer
            .json_line(&done_event(report, total, Some(&path), gc_root.as_deref()));
    } else {
        ctx.printer.data(&path.display().to_string());
    }
    Ok(ExitStatus::Success)
}
