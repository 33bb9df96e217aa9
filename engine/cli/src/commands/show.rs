//! `forge show-derivation`: the canonical form of one node.

use crate::ExitStatus;
use crate::args::ShowArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &ShowArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let plan = ctx.plan(&set, &host, &a.request)?;
    let i = super::pick_node(&plan, a.node.as_deref())?;
    let d = plan.drv(i);
    if a.canonical {
        ctx.printer.data(&d.canonical);
    } else {
        let mut doc = d.to_document();
        doc["store_path"] =
            serde_json::Value::String(d.store_path(&ctx.paths_dir()).display().to_string());
        ctx.printer
            .data(&serde_json::to_string_pretty(&doc).expect("serializes"));
    }
    Ok(ExitStatus::Success)
}
