//! `forge diff`: why two derivations differ.

use std::fmt::Write as _;

use crate::ExitStatus;
use crate::args::DiffArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &DiffArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let pa = ctx.plan(&set, &host, &a.a)?;
    let pb = ctx.plan(&set, &host, &a.b)?;
    let ia = super::pick_node(&pa, a.node.as_deref())?;
    let ib = super::pick_node(&pb, a.node.as_deref())?;
    let diffs = forge_plan::diff(&pa, ia, &pb, ib);
    if a.json {
        let doc = serde_json::json!({
            "a": pa.drv(ia).store_name(),
            "b": pb.drv(ib).store_name(),
            "identical": diffs.is_empty(),
            "differences": diffs,
        });
        ctx.printer
            .data(&serde_json::to_string_pretty(&doc).expect("serializes"));
    } else if diffs.is_empty() {
        ctx.printer
            .data(&format!("identical: {}", pa.drv(ia).store_name()));
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} → {}",
            pa.drv(ia).store_name(),
            pb.drv(ib).store_name()
        );
        let mut last_node = String::new();
        for d in &diffs {
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
