//! `forge check`: rebuild realized nodes and compare them with the store, bit for bit
//! ([`forge_check::Checker`]); `--export` exports a closure twice and compares the caches
//! ([`forge_check::check_export`]). This module parses, calls and renders.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use forge_check::{CheckRun, Checker, NodeReport, Progress, RebuildOptions, Report};
use forge_plan::{DrvKind, Plan};
use petgraph::graph::NodeIndex;

use super::realize::{Interrupts, build_options, reporter, runtime};
use crate::ExitStatus;
use crate::args::CheckArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &CheckArgs) -> Result<ExitStatus, CliError> {
    let request = match (&a.request, ctx.example()) {
        (Some(r), _) => r.clone(),
        (None, true) => crate::examples::DEFAULT_TARGET.to_owned(),
        (None, false) => {
            return Err(CliError::error("name a target or spec to check").with_hint(
                "`forge check TARGET` rebuilds the realized nodes of TARGET and compares them with the store",
            ));
        }
    };
    if a.export {
        return export_check(ctx, a, &request);
    }
    // A target that cannot be checked is an error here (exit 2), whatever the reason.
    let set = ctx.load().map_err(|e| e.with_status(ExitStatus::Error))?;
    let host = ctx.host();
    let plan = Arc::new(
        ctx.plan(&set, &host, &request)
            .map_err(|e| e.with_status(ExitStatus::Error))?,
    );
    let store = Arc::new(ctx.open_store()?);
    let selected = select(&plan, &a.nodes)?;
    if selected.is_empty() {
        return Err(CliError::error(format!(
            "`{request}` has no node forge builds: nothing to check"
        )));
    }
    let forge_exe = std::env::current_exe()
        .map_err(|e| CliError::error(format!("cannot find the forge executable: {e}")))?;
    let opts = build_options(ctx, forge_exe, &store.tmp_dir(), 1, a.cores, false, false)?;
    let rt = runtime()?;
    let (interrupts, cancel_rx) = Interrupts::watch(&rt)?;
    let checker = Checker::new(
        Arc::clone(&store),
        plan,
        opts,
        reporter(ctx, false),
        cancel_rx,
        RebuildOptions {
            rounds: a.rounds,
            keep: a.keep,
            diffoscope: a.diffoscope,
            log_dir: a.log_dir.clone(),
        },
    );
    if !checker.at_stored_path() {
        ctx.printer.warn("rebuilds cannot run at the stored path here: they run at a temporary path of the same length, rewritten afterwards, so build IDs will differ");
    }
    let rounds = a.rounds;
    let mut show = |p: Progress<'_>| match p {
        Progress::Checking {
            label,
            index,
            total,
        } => ctx.printer.info(&format!(
            "checking {label} ({index}/{total}, {rounds} round{})",
            if rounds == 1 { "" } else { "s" }
        )),
        Progress::Checked { label, report } => ctx.printer.info(&format!(
            "{label}: {}",
            if report.reproducible {
                "reproducible".to_owned()
            } else {
                let n = report.differences.len();
                format!(
                    "NOT reproducible ({n} difference{})",
                    if n == 1 { "" } else { "s" }
                )
            }
        )),
        Progress::Failed { label, message } => ctx.printer.error(&format!("{label}: {message}")),
    };
    let run = checker
        .run(&rt, &request, &selected, &mut show)
        .map_err(|e| crate::error::from_rebuild(e, &store))?;
    summarize(ctx, a, &run, &interrupts)
}

/// The report, the one-line summary and the exit status of a check run.
fn summarize(
    ctx: &Ctx,
    a: &CheckArgs,
    run: &CheckRun,
    interrupts: &Interrupts,
) -> Result<ExitStatus, CliError> {
    let report = &run.report;
    finish(ctx, a, report)?;
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
        if run.failed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} could not be rebuilt: {}",
                run.failed.len(),
                run.failed.join(", ")
            )
        }
    ));
    if run.cancelled {
        return Err(interrupts.error("the rebuild was stopped and its temporary output removed"));
    }
    Ok(if !run.failed.is_empty() {
        ExitStatus::Error
    } else if report.reproducible() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// The nodes to check, dependencies first: the `--node`s, or every node forge builds.
fn select(plan: &Plan, wanted: &[String]) -> Result<Vec<NodeIndex>, CliError> {
    let built = |i: &NodeIndex| plan.drv(*i).inputs.kind == DrvKind::Build;
    if wanted.is_empty() {
        return Ok(plan.graph.topo().filter(built).collect());
    }
    let mut picked = BTreeSet::new();
    for w in wanted {
        let i = super::pick_node(plan, Some(w)).map_err(|e| e.with_status(ExitStatus::Error))?;
        if !built(&i) {
            return Err(CliError::error(format!(
                "`{w}` is taken from the host, not built by forge: there is nothing to rebuild"
            )));
        }
        picked.insert(i);
    }
    Ok(plan.graph.topo().filter(|i| picked.contains(i)).collect())
}

/// Prints the report (text on stderr; JSON on stdout with `--json`) and writes `--report`.
fn finish(ctx: &Ctx, a: &CheckArgs, report: &Report) -> Result<(), CliError> {
    let json = report.to_json();
    if let Some(file) = &a.report {
        write_atomically(file, json.as_bytes()).map_err(CliError::error)?;
    }
    if !report.reproducible() || !ctx.printer.quiet() {
        let text = forge_check::render_text(report);
        if !report.reproducible() {
            // The explanation matters even with `--quiet`.
            ctx.printer.important(&text);
        } else {
            ctx.printer.info(text.trim_end());
        }
    }
    if a.json {
        ctx.printer.data(&json);
    }
    Ok(())
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
fn export_check(ctx: &Ctx, a: &CheckArgs, request: &str) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store()?;
    let ex = super::export::exportable(ctx, &store, &[request.to_owned()], false, true)
        .map_err(|e| e.with_status(ExitStatus::Error))?;
    let work = store
        .tmp_dir()
        .join(format!("export-check.{}", std::process::id()));
    let (cmp, kept) = forge_check::check_export(&ex, &work, a.keep)
        .map_err(|e| CliError::error(format!("export check of `{request}`: {e}")))?;
    if let Some((first, second)) = kept {
        ctx.printer.info(&format!(
            "kept both exports: {} and {}",
            first.display(),
            second.display()
        ));
    }
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
