//! `forge graph`: the DAG as Graphviz dot or JSON.

use std::fmt::Write as _;

use forge_resolve::EdgeRole;

use crate::ExitStatus;
use crate::args::{GraphArgs, GraphFormat};
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &GraphArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let plan = ctx.plan(&set, &host, &a.request)?;
    if a.json || a.format == GraphFormat::Json {
        ctx.printer.data(
            &serde_json::to_string_pretty(&super::plan::plan_json(&plan, &ctx.paths_dir()))
                .expect("serializes"),
        );
        return Ok(ExitStatus::Success);
    }
    let g = &plan.graph;
    let mut out = String::new();
    let _ = writeln!(out, "digraph {:?} {{", g.name);
    let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
    for i in g.topo() {
        let n = g.node(i);
        let d = plan.drv(i);
        let style = if i == g.root { ", style=bold" } else { "" };
        let _ = writeln!(
            out,
            "  {:?} [label=\"{}@{}\\n{}\"{style}];",
            d.hash.to_string(),
            n.name(),
            n.version,
            &d.hash.to_string()[..8]
        );
    }
    for i in g.topo() {
        for (d, e) in g.deps(i) {
            let label = match e.role {
                EdgeRole::Declared => e.types.to_string(),
                EdgeRole::Compiler => "compiler".to_owned(),
                EdgeRole::Runtime => "runtime".to_owned(),
            };
            let dashed = if e.types.contains(forge_recipe::DepType::Link)
                || e.types.contains(forge_recipe::DepType::Run)
            {
                ""
            } else {
                ", style=dashed"
            };
            let _ = writeln!(
                out,
                "  {:?} -> {:?} [label={label:?}{dashed}];",
                plan.drv(i).hash.to_string(),
                plan.drv(d).hash.to_string()
            );
        }
    }
    out.push_str("}\n");
    ctx.printer.data(&out);
    Ok(ExitStatus::Success)
}
