//! `forge diff`: why two derivations differ.

use std::fmt::Write as _;

use crate::ExitStatus;
use crate::args::DiffArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &DiffArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let (a_lock, b_lock) = (lock_side(&a.a, &a.b), lock_side(&a.b, &a.a));
    if a_lock.is_some() && b_lock.is_some() {
        return Err(CliError::error(
            "compare a lock with a target or spec, not two locks",
        ));
    }
    if let Some((path, target)) = a_lock.or(b_lock.clone()) {
        let other = if b_lock.is_some() { &a.a } else { &a.b };
        return with_lock(ctx, &set, &host, a, &path, &target, other, b_lock.is_some());
    }
    let pa = ctx.plan(&set, &host, &a.a)?;
    let pb = ctx.plan(&set, &host, &a.b)?;
    let ia = super::pick_node(&pa, a.node.as_deref())?;
    let ib = super::pick_node(&pb, a.node.as_deref())?;
    let diffs = forge_plan::diff(&pa, ia, &pb, ib);
    let (na, nb) = (
        pa.drv(ia).store_name().to_string(),
        pb.drv(ib).store_name().to_string(),
    );
    show(ctx, a, &na, &nb, &diffs)
}

/// `FILE.lock:TARGET`, or `FILE.lock` for the target named on the other side.
fn lock_side(arg: &str, other: &str) -> Option<(std::path::PathBuf, String)> {
    if let Some((file, target)) = arg.rsplit_once(':')
        && file.ends_with(".lock")
    {
        return Some((file.into(), target.to_owned()));
    }
    arg.ends_with(".lock")
        .then(|| (arg.into(), other.to_owned()))
}

/// A locked target against a fresh plan (`lock_right`: the lock is the second side).
#[allow(clippy::too_many_arguments)]
fn with_lock(
    ctx: &Ctx,
    set: &forge_recipe::RecipeSet,
    host: &forge_resolve::SystemHost,
    a: &DiffArgs,
    path: &std::path::Path,
    target: &str,
    other: &str,
    lock_right: bool,
) -> Result<ExitStatus, CliError> {
    // A bare file name that is not here is the lock beside the recipes.
    let beside;
    let path = if !path.exists() && path.parent().is_none_or(|p| p.as_os_str().is_empty()) {
        beside = ctx.recipes_root()?.join(path);
        beside.as_path()
    } else {
        path
    };
    let lock = forge_plan::Lock::read(path)
        .map_err(CliError::error)?
        .ok_or_else(|| CliError::error(format!("{}: no such lock file", path.display())))?;
    let locked = lock.targets.get(target).ok_or_else(|| {
        let held: Vec<&str> = lock.targets.keys().map(String::as_str).collect();
        CliError::error(format!("{} does not lock `{target}`", path.display())).with_hint(
            if held.is_empty() {
                "the lock holds no target".to_owned()
            } else {
                format!("it locks: {}", held.join(", "))
            },
        )
    })?;
    let plan = ctx.plan(set, host, other)?;
    let i = super::pick_node(&plan, a.node.as_deref())?;
    let planned = plan.drv(i);
    let locked_name = match &a.node {
        None => locked.roots[0].clone(),
        Some(_) => {
            let same: Vec<&String> = locked
                .nodes
                .iter()
                .filter(|n| lock.derivations[*n].name == planned.inputs.name)
                .collect();
            match same.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(CliError::failure(format!(
                        "`{}` is not in the locked graph of `{target}`",
                        planned.inputs.name
                    )));
                }
                many => many
                    .iter()
                    .find(|n| lock.derivations[**n].version == planned.inputs.version)
                    .map_or_else(|| many[0].clone(), |n| (*n).clone()),
            }
        }
    };
    let locked_hash = forge_plan::lock::hash_of(&locked_name);
    let planned_hash = planned.hash.to_string();
    let planned_name = planned.store_name().to_string();
    if lock_right {
        let diffs = forge_plan::diff_by_hash(&plan, &planned_hash, &lock, locked_hash);
        show(ctx, a, &planned_name, &locked_name, &diffs)
    } else {
        let diffs = forge_plan::diff_by_hash(&lock, locked_hash, &plan, &planned_hash);
        show(ctx, a, &locked_name, &planned_name, &diffs)
    }
}

/// Prints the differences of `na` (left) and `nb` (right).
fn show(
    ctx: &Ctx,
    a: &DiffArgs,
    na: &str,
    nb: &str,
    diffs: &[forge_plan::Difference],
) -> Result<ExitStatus, CliError> {
    if a.json {
        let doc = serde_json::json!({
            "a": na,
            "b": nb,
            "identical": diffs.is_empty(),
            "differences": diffs,
        });
        ctx.printer
            .data(&serde_json::to_string_pretty(&doc).expect("serializes"));
    } else if diffs.is_empty() {
        ctx.printer.data(&format!("identical: {na}"));
    } else {
        let mut out = String::new();
        let _ = writeln!(out, "{na} → {nb}");
        let mut last_node = String::new();
        for d in diffs {
            if d.node != last_node {
                let _ = writeln!(out, "{}:", d.node);
                last_node.clone_from(&d.node);
            }
            if !d.added.is_empty() || !d.removed.is_empty() {
                let _ = writeln!(out, "  {}", d.input);
                for r in &d.removed {
                    let _ = writeln!(out, "    - {r}");
                }
                for x in &d.added {
                    let _ = writeln!(out, "    + {x}");
                }
            } else {
                let _ = writeln!(
                    out,
                    "  {}: {} → {}",
                    d.input,
                    d.old.as_deref().unwrap_or("(absent)"),
                    d.new.as_deref().unwrap_or("(absent)")
                );
            }
        }
        ctx.printer.data(&out);
    }
    Ok(if diffs.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
