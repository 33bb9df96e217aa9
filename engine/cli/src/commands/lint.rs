//! `forge lint`: every recipe, toolchain and target checked; every target resolved and planned.

use forge_plan::Planner;
use forge_recipe::{Diag, Diagnostics, RecipeSet};
use forge_resolve::Request;

use crate::ExitStatus;
use crate::args::LintArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &LintArgs) -> Result<ExitStatus, CliError> {
    let root = ctx.recipes_root()?;
    let loaded = RecipeSet::load(&root);
    let mut diags = loaded.diags;
    let mut conflicts = Vec::new();
    if !diags.has_errors() {
        let set = &loaded.set;
        let host = ctx.host();
        let requests: Vec<Request> = set
            .targets
            .iter()
            .map(|t| Request::for_target(set, t))
            .collect();
        let results = Planner::new(set).resolve_and_plan_all(&host, &requests);
        for (t, result) in set.targets.iter().zip(results) {
            match result {
                Ok(_) => {}
                Err(d) if d.code_str() == "resolve::conflict" => {
                    conflicts.push((t.name.value.clone(), d.message().to_owned()))
                }
                // The resolver's own diagnostic, which points into the recipes.
                Err(d) => diags
                    .push(d.with_context(format!("target `{}` does not resolve", t.name.value))),
            }
        }
    }
    let errors = diags.error_count();
    let warnings = diags.len() - errors;
    if a.json {
        let doc = serde_json::json!({
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diags.iter().map(Diag::to_json).collect::<Vec<_>>(),
            "conflicting_targets": conflicts.iter().map(|(n, m)| serde_json::json!({"name": n, "message": m})).collect::<Vec<_>>(),
        });
        ctx.printer
            .data(&serde_json::to_string_pretty(&doc).expect("serializes"));
    } else {
        print(ctx, &diags);
        for (n, m) in &conflicts {
            ctx.printer.info(&format!(
                "note: target `{n}` is excluded by a declared conflict: {m}"
            ));
        }
        if errors == 0 {
            ctx.printer.info(&format!(
                "lint: no errors, {warnings} warning{}",
                if warnings == 1 { "" } else { "s" }
            ));
        } else {
            return Err(CliError::failure(format!(
                "lint: {errors} error{}, {warnings} warning{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            )));
        }
    }
    Ok(if errors > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn print(ctx: &Ctx, diags: &Diagnostics) {
    ctx.printer.diagnostics(diags);
}
