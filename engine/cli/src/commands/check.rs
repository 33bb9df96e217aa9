//! `forge check`: rebuild realized nodes and compare them with the store, bit for bit.
//!
//! Each node is built again from its (valid) dependencies in a fresh `<name>.check` scratch
//! directory (as long as the `<name>.build` one), at a later second than the stored build.
//! Its bytes land in `<paths dir>/<other hash>-<name>`, held under the store's build lock so
//! that the garbage collector removes it if forge is killed. Where the kernel allows a mount
//! namespace, that directory is mounted over the stored path for the build's commands, so the
//! build sees exactly the path the first build saw. Elsewhere the build writes to the temporary
//! path itself — exactly as long as the stored one — and the other hash is rewritten to the
//! stored one afterwards (build IDs, hashed over the old bytes, then differ; the report says
//! so). The tree is normalized as a commit would, and `forge-check` compares and explains.
//!
//! `--export` checks the exporter instead: the closure is exported twice to the same directory
//! and the two buildcaches must be byte-identical.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forge_check::{CompareContext, DiffoscopeOptions, NodeReport, Report, TimeWindow};
use forge_plan::{DrvKind, Plan};
use forge_store::{HASH_LEN, Store};
use petgraph::graph::NodeIndex;

use super::realize::{build_options, reporter, runtime};
use crate::ExitStatus;
use crate::args::CheckArgs;
use crate::context::Ctx;

pub(super) fn run(ctx: &Ctx, a: &CheckArgs) -> Result<ExitStatus, ExitStatus> {
    let request = match (&a.request, ctx.example()) {
        (Some(r), _) => r.clone(),
        (None, true) => crate::examples::DEFAULT_TARGET.to_owned(),
        (None, false) => {
            ctx.printer.error("name a target or spec to check");
            ctx.printer
                .hint("`forge check TARGET` rebuilds the realized nodes of TARGET and compares them with the store");
            return Err(ExitStatus::Error);
        }
    };
    if a.export {
        return export_check(ctx, a, &request);
    }
    let set = ctx.load().map_err(|_| ExitStatus::Error)?;
    let host = ctx.host();
    let plan = Arc::new(
        ctx.plan(&set, &host, &request)
            .map_err(|_| ExitStatus::Error)?,
    );
    let store = Arc::new(ctx.open_store().map_err(|_| ExitStatus::Error)?);
    let names = forge_realize::store_names(&plan);
    let selected = select(ctx, &plan, &a.nodes)?;
    if selected.is_empty() {
        ctx.printer.error(&format!(
            "`{request}` has no node forge builds: nothing to check"
        ));
        return Err(ExitStatus::Error);
    }

    // Every selected node and everything its build sees must be in the store; pinned so that a
    // concurrent `forge gc` leaves them alone while we work.
    let closure = closure(&plan, &selected);
    let missing: Vec<&str> = closure
        .iter()
        .map(|i| names[i.index()].as_str())
        .filter(|n| !store.is_valid(n).unwrap_or(false))
        .collect();
    if !missing.is_empty() {
        super::report_missing(
            ctx,
            &store,
            &missing,
            &format!("needed to check `{request}`"),
            &format!(
                "`forge check` compares rebuilds with realized outputs: run `forge realize {request}` first"
            ),
        );
        return Err(ExitStatus::Error);
    }
    let _pins = closure
        .iter()
        .map(|i| store.pin(&names[i.index()]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(ctx, e))?;

    let forge_exe = std::env::current_exe()
        .map_err(|e| error(ctx, format!("cannot find the forge executable: {e}")))?;
    let opts = build_options(ctx, forge_exe, &store.tmp_dir(), 1, a.cores, false, false);
    // Builds see the stored path when the kernel gives them a mount namespace.
    let redirect = opts.seal;
    if !redirect {
        ctx.printer.warn("rebuilds cannot run at the stored path here: they run at a temporary path of the same length, rewritten afterwards, so build IDs will differ");
    }
    let reporter = reporter(ctx, false);
    let rt = runtime(ctx)?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = cancel_tx.send(true);
        }
    });
    if let Some(dir) = &a.log_dir {
        fs_err::create_dir_all(dir).map_err(|e| error(ctx, e))?;
    }
    let env = Env {
        host_name: host_name(),
        user_name: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty()),
    };

    let mut nodes = Vec::new();
    let mut failed = Vec::new();
    for (k, &i) in selected.iter().enumerate() {
        if *cancel_rx.borrow() {
            break;
        }
        let name = &names[i.index()];
        let label = &name[HASH_LEN + 1..];
        ctx.printer.info(&format!(
            "checking {label} ({}/{}, {} round{})",
            k + 1,
            selected.len(),
            a.rounds,
            if a.rounds == 1 { "" } else { "s" }
        ));
        let job = NodeCheck {
            store: &store,
            plan: &plan,
            node: i,
            name,
            args: a,
            env: &env,
            redirect,
        };
        match job.run(&rt, &opts, &reporter, &cancel_rx) {
            Ok(report) => {
                ctx.printer.info(&format!(
                    "{label}: {}",
                    if report.reproducible {
                        "reproducible".to_owned()
                    } else {
                        format!(
                            "NOT reproducible ({} difference{})",
                            report.differences.len(),
                            if report.differences.len() == 1 {
                                ""
                            } else {
                                "s"
                            }
                        )
                    }
                ));
                nodes.push(report);
            }
            Err(message) => {
                ctx.printer.error(&format!("{label}: {message}"));
                failed.push(label.to_owned());
            }
        }
    }
    drop(reporter);
    let cancelled = *cancel_rx.borrow();
    let report = Report::new(request.clone(), nodes);
    finish(ctx, a, &report)?;
    let s = &report.summary;
    let pct = if s.nodes == 0 {
        0.0
    } else {
        100.0 * s.reproducible as f64 / s.nodes as f64
    };
    ctx.printer.info(&format!(
        "checked {} node{}: {} reproducible, {} not ({pct:.1} % bit-identical){}",
        s.nodes,
        if s.nodes == 1 { "" } else { "s" },
        s.reproducible,
        s.not_reproducible,
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} could not be rebuilt: {}",
                failed.len(),
                failed.join(", ")
            )
        }
    ));
    if cancelled {
        ctx.printer
            .error("interrupted; the rebuild was stopped and its temporary output removed");
        return Ok(ExitStatus::Error);
    }
    Ok(if !failed.is_empty() {
        ExitStatus::Error
    } else if report.reproducible() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// What the machine is called and who runs the check: names a build might have embedded.
struct Env {
    host_name: Option<String>,
    user_name: Option<String>,
}

/// The nodes to check, dependencies first: the `--node`s, or every node forge builds.
fn select(ctx: &Ctx, plan: &Plan, wanted: &[String]) -> Result<Vec<NodeIndex>, ExitStatus> {
    let built = |i: &NodeIndex| plan.drv(*i).inputs.kind == DrvKind::Build;
    if wanted.is_empty() {
        return Ok(plan.graph.topo().filter(built).collect());
    }
    let mut picked = BTreeSet::new();
    for w in wanted {
        let i = super::pick_node(ctx, plan, Some(w)).map_err(|_| ExitStatus::Error)?;
        if !built(&i) {
            ctx.printer.error(&format!(
                "`{w}` is taken from the host, not built by forge: there is nothing to rebuild"
            ));
            return Err(ExitStatus::Error);
        }
        picked.insert(i);
    }
    Ok(plan.graph.topo().filter(|i| picked.contains(i)).collect())
}

/// The nodes and everything their builds can see.
fn closure(plan: &Plan, roots: &[NodeIndex]) -> BTreeSet<NodeIndex> {
    plan.graph.closure(roots.iter().copied(), |_, _| true)
}

/// One node's rebuilds and comparisons.
struct NodeCheck<'a> {
    store: &'a Arc<Store>,
    plan: &'a Arc<Plan>,
    node: NodeIndex,
    name: &'a str,
    args: &'a CheckArgs,
    env: &'a Env,
    /// Whether builds see the stored path (mounted over by the temporary output).
    redirect: bool,
}

impl NodeCheck<'_> {
    /// Rebuilds up to `--rounds` times, stopping at the first round that differs.
    fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        opts: &forge_realize::Options,
        reporter: &Arc<dyn forge_realize::Reporter>,
        cancel: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<NodeReport, String> {
        let store = self.store;
        let info = store
            .query(self.name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "not valid in the store any more".to_owned())?;
        let stored = store.path_of(self.name);
        let mut not_before = info.registered;
        let mut last = None;
        for round in 1..=self.args.rounds {
            let (cmp, ended) = self.round(rt, opts, reporter, cancel, &info, round, not_before)?;
            not_before = ended;
            let differs = !cmp.reproducible();
            last = Some((round, cmp));
            if differs {
                break;
            }
        }
        let (rounds, cmp) = last.expect("at least one round");
        Ok(NodeReport::new(
            &self.name[HASH_LEN + 1..],
            stored.display().to_string(),
            rounds,
            cmp,
        ))
    }

    /// One rebuild into a fresh temporary output, compared with the stored output. Returns the
    /// comparison and the second the rebuild ended in.
    #[allow(clippy::too_many_arguments)]
    fn round(
        &self,
        rt: &tokio::runtime::Runtime,
        opts: &forge_realize::Options,
        reporter: &Arc<dyn forge_realize::Reporter>,
        cancel: &tokio::sync::watch::Receiver<bool>,
        info: &forge_store::PathInfo,
        round: u32,
        not_before: i64,
    ) -> Result<(forge_check::NodeComparison, i64), String> {
        let store = self.store;
        let (hash, rest) = self.name.split_at(HASH_LEN);
        let other = other_hash(hash, round);
        let tmp_name = format!("{other}{rest}");
        let _lock = store.lock(&tmp_name).map_err(|e| e.to_string())?;
        store.clear_invalid(&tmp_name).map_err(|e| e.to_string())?;
        let out = store.path_of(&tmp_name);
        let stored = store.path_of(self.name);
        let scratch = store.scratch_dir(self.name, "check");
        remove(&scratch)?;
        let at = if self.redirect {
            // The directory that stands in for the stored output must exist to be mounted.
            fs_err::create_dir(&out).map_err(|e| e.to_string())?;
            forge_realize::RebuildAt {
                out: stored.clone(),
                out_dir: Some(out.clone()),
                scratch: scratch.clone(),
            }
        } else {
            forge_realize::RebuildAt {
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
            Arc::clone(self.plan),
            self.node,
            opts.clone(),
            Arc::clone(reporter),
            cancel.clone(),
            at,
        ));
        let end = SystemTime::now();
        let result = match built {
            Ok(b) => {
                self.keep_log(&b.log, round)?;
                Ok(())
            }
            Err(e) => {
                let log = e.command_log().map(Path::to_path_buf);
                if let Some(l) = &log {
                    self.keep_log(l, round)?;
                }
                let tail = match &e {
                    forge_realize::NodeError::Build(forge_builder::BuildError::Command {
                        tail,
                        ..
                    }) => tail.clone(),
                    _ => Vec::new(),
                };
                let mut m = format!("the rebuild failed: {}", rebuild_message(e));
                for line in tail.iter().rev().take(10).rev() {
                    m.push_str("\n    ");
                    m.push_str(line);
                }
                Err(m)
            }
        };
        remove(&scratch)?;
        if let Err(e) = result {
            remove(&out)?;
            return Err(e);
        }
        let compared = self.compare(&out, &other, hash, info, start, end);
        let kept = match (&compared, self.args.keep) {
            (Ok(_), true) => {
                let dest = PathBuf::from(format!(
                    "{}{}",
                    store.path_of(self.name).display(),
                    forge_store::CHECK_SUFFIX
                ));
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
        info: &forge_store::PathInfo,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<forge_check::NodeComparison, String> {
        let store = self.store;
        if !self.redirect {
            forge_store::rewrite_same_length(out, other.as_bytes(), hash.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        store.normalize(out).map_err(|e| e.to_string())?;
        let stored = store.path_of(self.name);
        let mut c = CompareContext::default();
        c.stored_output = Some(stored.clone());
        c.rebuilt_output = Some(out.to_path_buf());
        c.stored_build_dir = Some(store.scratch_dir(self.name, "build"));
        c.rebuilt_build_dir = Some(store.scratch_dir(self.name, "check"));
        c.extra_paths = vec![store.tmp_dir()];
        c.stored_window = Some(TimeWindow::ending_at(info.registered, info.build_seconds));
        c.rebuilt_window = Some(TimeWindow::new(start, end));
        c.stored_host = self.env.host_name.clone();
        c.rebuilt_host = self.env.host_name.clone();
        c.user_names = self.env.user_name.iter().cloned().collect();
        if self.args.diffoscope {
            c.diffoscope = Some(DiffoscopeOptions::default());
        }
        let mut cmp = forge_check::compare(&stored, out, &c).map_err(|e| e.to_string())?;
        if !self.redirect && !cmp.reproducible() {
            cmp.notes.push(format!(
                "rebuilt at {} and rewritten to the stored path, because this kernel refused a mount namespace: GNU build IDs hash the temporary path and differ for that reason alone",
                out.display()
            ));
        }
        Ok(cmp)
    }

    /// Copies a rebuild's log into `--log-dir`.
    fn keep_log(&self, log: &Path, round: u32) -> Result<(), String> {
        let Some(dir) = &self.args.log_dir else {
            return Ok(());
        };
        let label = &self.name[HASH_LEN + 1..];
        let file = if self.args.rounds > 1 {
            format!("{label}.check{round}.log")
        } else {
            format!("{label}.check.log")
        };
        fs_err::copy(log, dir.join(file))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
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

/// What a failed rebuild says: the message its `failed` event would carry.
fn rebuild_message(e: forge_realize::NodeError) -> String {
    match &e {
        forge_realize::NodeError::Build(forge_builder::BuildError::Command {
            phase,
            status,
            ..
        }) => format!("phase `{phase}` failed: the command {status}"),
        _ => e.to_string(),
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Sleeps until the wall clock has passed second `t`.
fn wait_until_after(t: i64) {
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
fn remove(p: &Path) -> Result<(), String> {
    if fs_err::symlink_metadata(p).is_err() {
        return Ok(());
    }
    forge_builder::remove_dir_all_forced(p)
        .map_err(|e| format!("cannot remove {}: {e}", p.display()))
}

fn error(ctx: &Ctx, e: impl std::fmt::Display) -> ExitStatus {
    ctx.printer.error(&e.to_string());
    ExitStatus::Error
}

/// Prints the report (text on stderr; JSON on stdout with `--json`) and writes `--report`.
fn finish(ctx: &Ctx, a: &CheckArgs, report: &Report) -> Result<(), ExitStatus> {
    let json = report.to_json();
    if let Some(file) = &a.report {
        write_atomically(file, json.as_bytes()).map_err(|e| error(ctx, e))?;
    }
    if !report.reproducible() || !ctx.printer.quiet {
        let text = forge_check::render_text(report);
        if !report.reproducible() {
            // The explanation matters even with `--quiet`.
            eprint_block(&text);
        } else {
            ctx.printer.info(text.trim_end());
        }
    }
    if a.json {
        ctx.printer.data(&json);
    }
    Ok(())
}

#[allow(clippy::print_stderr)]
fn eprint_block(text: &str) {
    eprint!("{text}");
}

fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    fs_err::write(&tmp, bytes).map_err(|e| e.to_string())?;
    fs_err::rename(&tmp, file).map_err(|e| e.to_string())
}

/// `--export`: export the closure twice to the same place and compare the two caches.
fn export_check(ctx: &Ctx, a: &CheckArgs, request: &str) -> Result<ExitStatus, ExitStatus> {
    let store = ctx.open_store().map_err(|_| ExitStatus::Error)?;
    let ex = super::export::exportable(ctx, &store, &[request.to_owned()], false)
        .map_err(|_| ExitStatus::Error)?;
    let base = store
        .tmp_dir()
        .join(format!("export-check.{}", std::process::id()));
    remove(&base).map_err(|e| error(ctx, e))?;
    let cache = base.join("cache");
    let first = base.join("first");
    let opts = forge_spack::ExportOptions {
        package_meta: ex.meta.clone(),
        ..forge_spack::ExportOptions::default()
    };
    let result = (|| -> Result<forge_check::NodeComparison, String> {
        fs_err::create_dir_all(&base).map_err(|e| e.to_string())?;
        forge_spack::export(&ex.graph, &ex.roots, &cache, None, &opts)
            .map_err(|e| e.to_string())?;
        fs_err::rename(&cache, &first).map_err(|e| e.to_string())?;
        // A second later, so that a time written into the cache shows.
        wait_until_after(unix_seconds(SystemTime::now()));
        forge_spack::export(&ex.graph, &ex.roots, &cache, None, &opts)
            .map_err(|e| e.to_string())?;
        let mut c = CompareContext::default();
        c.extra_paths = vec![base.clone()];
        forge_check::compare(&first, &cache, &c).map_err(|e| e.to_string())
    })();
    let kept = a.keep && result.is_ok();
    if kept {
        ctx.printer.info(&format!(
            "kept both exports: {} and {}",
            first.display(),
            cache.display()
        ));
    } else {
        remove(&base).map_err(|e| error(ctx, e))?;
    }
    let cmp = result.map_err(|e| error(ctx, format!("export check of `{request}`: {e}")))?;
    let files = cmp.stored.files;
    let report = Report::new(
        format!("export {request}"),
        vec![NodeReport::new("buildcache", "", 2, cmp)],
    );
    finish(ctx, a, &report)?;
    ctx.printer.info(&format!(
        "two exports of `{request}` ({files} files): {}",
        if report.reproducible() {
            "byte-identical"
        } else {
            "DIFFER"
        }
    ));
    Ok(if report.reproducible() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
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
