//! Store commands: `path-info`, `why-depends`, `verify`, `roots`, `gc`, `log`.

use std::fmt::Write as _;

use crate::ExitStatus;
use crate::args::{GcArgs, LogArgs, PathInfoArgs, RootsArgs, VerifyArgs, WhyDependsArgs};
use crate::context::Ctx;
use crate::error::CliError;
use crate::printer::{counted, counted_as, human};

pub(super) fn path_info(ctx: &Ctx, a: &PathInfoArgs) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store_read_only()?;
    let mut rows = Vec::new();
    let mut missing = 0;
    for p in &a.paths {
        let name = ctx.resolve_path(&store, p)?;
        match store.query(&name)? {
            Some(info) => {
                let closure = if a.closure_size {
                    Some(store.closure_size(&name)?)
                } else {
                    None
                };
                rows.push((info, closure));
            }
            None => {
                ctx.printer.error(&format!(
                    "`{}` is not valid in the store",
                    store.path_of(&name).display()
                ));
                missing += 1;
            }
        }
    }
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(i, c)| {
                let mut v = serde_json::to_value(i).expect("serializes");
                v["path"] = serde_json::json!(store.path_of(&i.name));
                if let Some(c) = c {
                    v["closure_size"] = serde_json::json!(c);
                }
                v["substituted"] = store
                    .substitution(&i.name)
                    .unwrap_or(serde_json::Value::Null);
                v
            })
            .collect();
        ctx.printer
            .data(&serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        let mut out = String::new();
        for (i, c) in &rows {
            let _ = writeln!(out, "{}", store.path_of(&i.name).display());
            let _ = writeln!(
                out,
                "  size:        {} ({})",
                human(i.size),
                counted(i.files as usize, "file")
            );
            if let Some(c) = c {
                let _ = writeln!(out, "  closure:     {}", human(*c));
            }
            let _ = writeln!(out, "  content:     {}", i.content_hash);
            let _ = writeln!(out, "  deriver:     {}", i.deriver);
            match store.substitution(&i.name) {
                Some(sub) => {
                    let _ = writeln!(
                        out,
                        "  substituted: from {}{}",
                        sub["from"].as_str().unwrap_or("?"),
                        sub["signed_by"]
                            .as_str()
                            .map(|f| format!(", signed by {f}"))
                            .unwrap_or_else(|| ", unsigned".to_owned())
                    );
                }
                None => {
                    let _ = writeln!(out, "  built in:    {:.1}s", i.build_seconds);
                }
            }
            let refs: Vec<&String> = i.references.iter().filter(|r| **r != i.name).collect();
            let _ = writeln!(
                out,
                "  references:  {}",
                if refs.is_empty() {
                    "none".to_owned()
                } else {
                    String::new()
                }
            );
            for r in refs {
                let _ = writeln!(out, "    {}", store.path_of(r).display());
            }
        }
        ctx.printer.data(&out);
    }
    Ok(if missing > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

pub(super) fn why_depends(ctx: &Ctx, a: &WhyDependsArgs) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store_read_only()?;
    let from = ctx.resolve_path(&store, &a.from)?;
    let to = ctx.resolve_path(&store, &a.to)?;
    let Some(chain) = store.why_depends(&from, &to)? else {
        ctx.printer.data(&format!(
            "{} does not depend on {}",
            store.path_of(&from).display(),
            store.path_of(&to).display()
        ));
        return Ok(ExitStatus::Failure);
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", store.path_of(&chain[0]).display());
    for w in chain.windows(2) {
        let (x, y) = (&w[0], &w[1]);
        let evidence = forge_store::find_reference(&store.path_of(x), &y[..forge_store::HASH_LEN])?;
        match evidence {
            Some((file, off, context)) => {
                let rel = file.strip_prefix(store.path_of(x)).unwrap_or(&file);
                let _ = writeln!(out, "└── {}", store.path_of(y).display());
                let _ = writeln!(
                    out,
                    "      referenced from {} at byte {off}: …{context}…",
                    rel.display()
                );
            }
            None => {
                let _ = writeln!(out, "└── {}", store.path_of(y).display());
            }
        }
    }
    ctx.printer.data(&out);
    Ok(ExitStatus::Success)
}

pub(super) fn verify(ctx: &Ctx, a: &VerifyArgs) -> Result<ExitStatus, CliError> {
    let (store, report) = if a.repair {
        let store = forge_store::Store::open_to_repair(&ctx.store, ctx.padded_length())?;
        let repair = store.repair(a.check_contents)?;
        if a.json {
            ctx.printer
                .data(&serde_json::to_string_pretty(&repair).expect("serializes"));
            return Ok(status_of(&repair.after));
        }
        print_repair(ctx, &store, &repair);
        (store, repair.after)
    } else {
        let store = forge_store::Store::open_to_verify(&ctx.store, ctx.padded_length())?;
        let report = store.verify(a.check_contents)?;
        if a.json {
            ctx.printer
                .data(&serde_json::to_string_pretty(&report).expect("serializes"));
            return Ok(status_of(&report));
        }
        (store, report)
    };
    for p in &report.problems {
        print_problem(ctx, &store, p);
    }
    let bad = report
        .problems
        .iter()
        .filter(|p| p.is_corruption())
        .filter_map(|p| p.name())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        + report
            .problems
            .iter()
            .filter(|p| p.is_corruption() && p.name().is_none())
            .count();
    if bad == 0 {
        ctx.printer.info(&format!(
            "verified {} paths{}: all good",
            report.checked,
            if a.check_contents {
                " and their contents"
            } else {
                ""
            }
        ));
        return Ok(ExitStatus::Success);
    }
    if let Some(e) = database_error(&store, &report, a.repair) {
        return Err(e);
    }
    let mut e = CliError::failure(format!("{bad} of {} paths are damaged", report.checked));
    for hint in damage_hints(ctx, &store, &report.problems, a.repair) {
        e = e.with_hint(hint);
    }
    Err(e)
}

/// What to do about damaged paths, as commands that work: `forge realize TARGET` builds a
/// missing path again (realize treats it as unbuilt) when a target of the recipe tree here needs
/// it; a modified one must be removed first; a missing one nothing references can be
/// unregistered.
fn damage_hints(
    ctx: &Ctx,
    store: &forge_store::Store,
    problems: &[forge_store::Problem],
    repaired: bool,
) -> Vec<String> {
    use forge_store::Problem;
    let damaged: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            Problem::Missing { name, .. }
            | Problem::Modified { name, .. }
            | Problem::Unreadable { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let targets = targets_needing(ctx, &damaged);
    let mut hints = Vec::new();
    let mut by_target: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for p in problems {
        let (name, missing) = match p {
            Problem::Missing { name, referrers } => (name, Some(referrers)),
            Problem::Modified { name, .. } | Problem::Unreadable { name, .. } => (name, None),
            Problem::Mode { .. } => {
                let hint = "`forge verify --check-contents --repair` gives the entries of intact paths back the modes the store gave them".to_owned();
                if !hints.contains(&hint) {
                    hints.push(hint);
                }
                continue;
            }
            _ => continue,
        };
        let path = store.path_of(name);
        if missing.is_none() {
            hints.push(format!(
                "remove the damaged path first: `chmod -R u+w {0} && rm -rf {0}`",
                path.display()
            ));
        }
        if let Some(t) = targets.get(name.as_str()) {
            by_target.entry(t).or_default().push(name);
            continue;
        }
        match missing {
            Some(referrers) if referrers.is_empty() && !repaired => hints.push(format!(
                "nothing valid references `{}`: `forge verify --repair` unregisters it",
                path.display()
            )),
            _ => hints.push(format!(
                "`forge realize TARGET`, with a target that needs `{}` (run it in the recipe tree that built it, or pass `--recipes DIR`), builds it again",
                path.display()
            )),
        }
    }
    for (target, names) in by_target {
        let shown: Vec<String> = names
            .iter()
            .map(|n| match forge_store::parse_name(n) {
                Some((_, pkg, version)) => format!("{pkg}-{version}"),
                None => (*n).to_owned(),
            })
            .collect();
        hints.push(format!(
            "`forge realize {target}` builds {} again",
            shown.join(", ")
        ));
    }
    hints
}

/// For each of `names`, a target of the recipe tree here (if there is one) whose plan holds it.
fn targets_needing<'a>(
    ctx: &Ctx,
    names: &[&'a str],
) -> std::collections::BTreeMap<&'a str, String> {
    let mut out = std::collections::BTreeMap::new();
    if names.is_empty() {
        return out;
    }
    let Ok(root) = ctx.recipes_root() else {
        return out;
    };
    let loaded = forge_recipe::RecipeSet::load(&root);
    if loaded.diags.has_errors() {
        return out;
    }
    let set = loaded.set;
    let host = ctx.host();
    let requests: Vec<forge_resolve::Request> = set
        .targets
        .iter()
        .map(|t| forge_resolve::Request::for_target(&set, t))
        .collect();
    let plans = forge_plan::Planner::new(&set).resolve_and_plan_all(&host, &requests);
    for (t, plan) in set.targets.iter().zip(plans) {
        let Ok(plan) = plan else { continue };
        let held: std::collections::BTreeSet<String> = forge_realize::store_names(&plan)
            .into_iter()
            .map(String::from)
            .collect();
        for n in names {
            if held.contains(*n) {
                out.entry(*n).or_insert_with(|| t.name.value.clone());
            }
        }
    }
    out
}

fn status_of(report: &forge_store::VerifyReport) -> ExitStatus {
    if report.is_clean() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// The error for a damaged or lost database, which is the only problem reported then.
fn database_error(
    store: &forge_store::Store,
    report: &forge_store::VerifyReport,
    repaired: bool,
) -> Option<CliError> {
    let repair = if repaired {
        "`forge verify --repair` could not rebuild it; move it away and run `forge verify --repair` again"
    } else {
        "`forge verify --repair` rebuilds it from the store paths and their `.drv` files (the damaged file is kept beside it); stop other forge processes first"
    };
    report.problems.iter().find_map(|p| match p {
        forge_store::Problem::Database { path, problems } => {
            let mut e = CliError::failure(format!(
                "the store database `{}` is damaged",
                path.display()
            ));
            for line in problems.iter().take(5) {
                e = e.with_detail(format!("  {line}"));
            }
            Some(e.with_hint(repair))
        }
        forge_store::Problem::DatabaseMissing { path, paths } => Some(
            CliError::failure(format!(
                "the store database `{}` is missing or empty, but the store at `{}` holds {paths} store paths",
                path.display(),
                store.root().display()
            ))
            .with_hint(repair),
        ),
        _ => None,
    })
}

fn print_problem(ctx: &Ctx, store: &forge_store::Store, p: &forge_store::Problem) {
    match p {
        // Reported as the command's error.
        forge_store::Problem::Database { .. } | forge_store::Problem::DatabaseMissing { .. } => {}
        forge_store::Problem::Missing { name, referrers } => ctx.printer.error(&format!(
            "`{}` is registered but missing{}",
            store.path_of(name).display(),
            match referrers.as_slice() {
                [] => String::new(),
                [one] => format!(" (`{}` references it)", store.path_of(one).display()),
                [one, more @ ..] => format!(
                    " (`{}` and {} other paths reference it)",
                    store.path_of(one).display(),
                    more.len()
                ),
            }
        )),
        forge_store::Problem::Modified {
            name,
            expected,
            actual,
        } => ctx.printer.error(&format!(
            "`{}` was modified: content hash {actual}, registered {expected}",
            store.path_of(name).display()
        )),
        forge_store::Problem::Unreadable { name, reason } => ctx.printer.error(&format!(
            "`{}` cannot be read: {reason}",
            store.path_of(name).display()
        )),
        forge_store::Problem::Mode {
            name,
            file,
            mode,
            expected,
        } => ctx.printer.error(&format!(
            "`{}` has mode {mode:04o}; the store gives it {expected:04o}",
            entry_path(store, name, file).display()
        )),
        forge_store::Problem::Unregistered { name } => ctx.printer.warn(&format!(
            "`{}` is not registered (an interrupted build); `forge gc` removes it",
            store.path_of(name).display()
        )),
    }
}

/// An entry of a store path (`file` empty: the path itself).
fn entry_path(
    store: &forge_store::Store,
    name: &str,
    file: &std::path::Path,
) -> std::path::PathBuf {
    if file.as_os_str().is_empty() {
        store.path_of(name)
    } else {
        store.path_of(name).join(file)
    }
}

fn print_repair(ctx: &Ctx, store: &forge_store::Store, r: &forge_store::RepairReport) {
    for n in &r.unregistered {
        ctx.printer.info(&format!(
            "`{}` was missing and nothing references it: unregistered",
            store.path_of(n).display()
        ));
    }
    for n in &r.still_missing {
        ctx.printer.warn(&format!(
            "`{}` is missing but valid paths reference it: it stays registered until `forge realize` builds it again",
            store.path_of(n).display()
        ));
    }
    for (n, file) in &r.modes_restored {
        ctx.printer.info(&format!(
            "`{}`: mode restored",
            entry_path(store, n, file).display()
        ));
    }
    let Some(db) = &r.rebuilt else {
        return;
    };
    ctx.printer.info(&format!(
        "the store database `{}` was rebuilt ({}): {} paths registered again",
        store.db_path().display(),
        db.reason,
        db.registered.len()
    ));
    if let Some(copy) = &db.damaged_copy {
        ctx.printer.info(&format!(
            "the damaged database was kept as `{}`",
            copy.display()
        ));
    }
    for s in &db.skipped {
        ctx.printer.warn(&format!(
            "`{}` was not registered: {}",
            store.path_of(&s.name).display(),
            s.reason
        ));
    }
}

pub(super) fn roots(ctx: &Ctx, a: &RootsArgs) -> Result<ExitStatus, CliError> {
    if !a.remove.is_empty() {
        let store = ctx.open_store()?;
        let mut missing = Vec::new();
        for request in &a.remove {
            // The root's name, or the target or spec `realize` named it after.
            let name = forge_store::root_name_for(request);
            if store.remove_root(&name)? {
                ctx.printer.info(&format!("removed the GC root `{name}`"));
            } else {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(CliError::error(format!(
                "no GC root named {} in {}",
                missing
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                ctx.store.join(".forge/roots").display()
            ))
            .with_hint(
                "`forge roots` lists them; an out-link's root goes when you delete the out-link",
            ));
        }
        return Ok(ExitStatus::Success);
    }
    let store = ctx.open_store_read_only()?;
    let roots = store.roots()?;
    if a.json {
        ctx.printer
            .data(&serde_json::to_string_pretty(&roots).expect("serializes"));
    } else if roots.is_empty() {
        ctx.printer
            .info("no GC roots: `forge gc` would delete every store path no running process uses");
    } else {
        let mut out = String::new();
        for r in &roots {
            let _ = writeln!(
                out,
                "{} -> {}",
                r.link.display(),
                store.path_of(&r.target).display()
            );
        }
        ctx.printer.data(out.trim_end());
    }
    Ok(ExitStatus::Success)
}

pub(super) fn gc(ctx: &Ctx, a: &GcArgs) -> Result<ExitStatus, CliError> {
    let store = if a.dry_run {
        ctx.open_store_read_only()?
    } else {
        ctx.open_store()?
    };
    let report = store.gc(a.dry_run)?;
    // Partial downloads nobody is resuming hold space too (a server that sent an endless body
    // could have filled the disk before the bound existed).
    let partial = match ctx.source_cache().clean_partial(a.dry_run) {
        Ok(p) => p,
        Err(e) => {
            ctx.printer.warn(&format!(
                "the source cache's partial downloads were left: {e}"
            ));
            Vec::new()
        }
    };
    let partial_bytes: u64 = partial.iter().map(|(_, n)| n).sum();
    if a.json {
        let mut v = serde_json::to_value(&report).expect("serializes");
        v["partial_downloads"] = partial
            .iter()
            .map(|(p, n)| serde_json::json!({"path": p, "bytes": n}))
            .collect();
        ctx.printer
            .data(&serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        for n in &report.deleted {
            ctx.printer
                .info(&format!("{verb} {}", store.path_of(n).display()));
        }
        for n in &report.leftovers {
            ctx.printer
                .info(&format!("{verb} leftover {}", store.path_of(n).display()));
        }
        let meta = ctx.store.join(".forge");
        for f in &report.stale_logs {
            ctx.printer
                .info(&format!("{verb} {}", meta.join("logs").join(f).display()));
        }
        for d in &report.scratch {
            ctx.printer
                .info(&format!("{verb} {}", meta.join("build").join(d).display()));
        }
        ctx.printer.info(&format!(
            "{verb} {} ({}), {}, {} of builds that are not valid and {}; kept {}",
            counted(report.deleted.len(), "path"),
            human(report.freed_bytes),
            counted(report.leftovers.len(), "leftover"),
            counted(report.stale_logs.len(), "log"),
            counted_as(
                report.scratch.len(),
                "scratch directory",
                "scratch directories"
            ),
            report.kept
        ));
        if !partial.is_empty() {
            ctx.printer.info(&format!(
                "{verb} {} ({}) from the source cache",
                counted(partial.len(), "partial download"),
                human(partial_bytes)
            ));
        }
    }
    Ok(ExitStatus::Success)
}

pub(super) fn log(ctx: &Ctx, a: &LogArgs) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store_read_only()?;
    let name = ctx.resolve_path(&store, &a.path)?;
    let key = if a.wrapper {
        format!("{name}.wrapper")
    } else {
        name.clone()
    };
    match store.read_log(&key)? {
        Some(text) => {
            ctx.printer.data(&text);
            Ok(ExitStatus::Success)
        }
        None => Err(CliError::failure(format!(
            "no {}log is kept for `{}`",
            if a.wrapper { "wrapper " } else { "" },
            store.path_of(&name).display()
        ))
        .with_hint("logs are kept for paths built by this store; host tools have none")),
    }
}
