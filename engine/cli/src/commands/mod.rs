//! One module per command; each returns an [`ExitStatus`], or a [`CliError`] that [`run`]
//! renders.

mod check;
mod completions;
mod diff;
mod export;
mod fetch;
mod fmt;
mod graph;
mod info;
mod lint;
mod lock;
mod plan;
mod realize;
mod recipe;
mod show;
mod store_cmds;

use crate::ExitStatus;
use crate::args::{Cli, Command};
use crate::context::Ctx;
use crate::error::CliError;

pub fn run(cli: Cli) -> ExitStatus {
    let ctx = Ctx::new(&cli.global);
    let result = match cli.command {
        Command::Plan(a) => plan::run(&ctx, &a),
        Command::Graph(a) => graph::run(&ctx, &a),
        Command::ShowDerivation(a) => show::run(&ctx, &a),
        Command::Diff(a) => diff::run(&ctx, &a),
        Command::Lint(a) => lint::run(&ctx, &a),
        Command::Fmt(a) => fmt::run(&ctx, &a),
        Command::List(a) => info::list(&ctx, &a),
        Command::Info(a) => info::info(&ctx, &a),
        Command::Fetch(a) => fetch::run(&ctx, &a),
        Command::Realize(a) => realize::run(&ctx, &a),
        Command::Check(a) => check::run(&ctx, &a),
        Command::PathInfo(a) => store_cmds::path_info(&ctx, &a),
        Command::WhyDepends(a) => store_cmds::why_depends(&ctx, &a),
        Command::Verify(a) => store_cmds::verify(&ctx, &a),
        Command::Roots(a) => store_cmds::roots(&ctx, &a),
        Command::Gc(a) => store_cmds::gc(&ctx, &a),
        Command::Log(a) => store_cmds::log(&ctx, &a),
        Command::Export(a) => export::export(&ctx, &a),
        Command::Key(k) => export::key(&ctx, &k),
        Command::Cache(c) => export::cache(&ctx, &c),
        Command::Recipe(crate::args::RecipeCommand::AddVersion(a)) => recipe::add_version(&ctx, &a),
        Command::Completions(a) => completions::run(&ctx, &a),
        Command::CompleteNames => completions::names(&ctx),
        Command::BuildNode(a) => realize::build_node(&ctx, &a),
    };
    // The one place a command's error reaches the terminal.
    result.unwrap_or_else(|e| {
        ctx.printer.report(&e);
        e.status()
    })
}

/// Picks the node of `package` in a plan, or the root.
pub(crate) fn pick_node(
    plan: &forge_plan::Plan,
    package: Option<&str>,
) -> Result<petgraph::graph::NodeIndex, CliError> {
    let Some(p) = package else {
        return Ok(plan.graph.root);
    };
    // `name` or `name@version` (which picks among contexts, e.g. `gcc@13.4.0` vs the host gcc).
    let (name, version) = match p.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (p, None),
    };
    let found: Vec<petgraph::graph::NodeIndex> = plan
        .graph
        .find(name)
        .into_iter()
        .filter(|i| version.is_none_or(|v| plan.graph.node(*i).version.as_str() == v))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::failure(format!(
            "`{p}` is not in the graph of `{}`",
            plan.graph.name
        ))
        .with_hint("`forge plan` shows the nodes of a graph")),
        many => {
            // The same package in several contexts (built by two toolchains): take the one the
            // root's toolchain built, which is what a user means.
            let root_ctx = &plan.graph.node(plan.graph.root).key.context;
            if let Some(i) = many
                .iter()
                .find(|i| &plan.graph.node(**i).key.context == root_ctx)
            {
                return Ok(*i);
            }
            Ok(many[0])
        }
    }
}
