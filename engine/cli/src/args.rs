//! Command-line definitions. Parsing only: no logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// forge: declarative, content-addressed builds of HPC software stacks, published as Spack
/// buildcaches.
#[derive(Debug, Parser)]
#[command(name = "forge", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding `recipes/` and `toolchains/` [default: the nearest such directory
    /// above the current one]
    #[arg(long, global = true, env = "FORGE_RECIPES", value_name = "DIR")]
    pub recipes: Option<PathBuf>,

    /// The store [default: `$XDG_DATA_HOME/forge/store`]
    #[arg(long, global = true, env = "FORGE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// When to use colour on the terminal (`NO_COLOR` is respected)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print only errors
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve a target or spec and print its DAG: versions, variants, hashes and store paths
    ///
    /// TARGET is a name from `recipes/targets.kdl` (`slurm-25.11-gcc13`); a SPEC is written as in
    /// Spack (`slurm@25.11 +pmix ~nvml %gcc@13.4.0 target=x86-64-v3`).
    Plan(PlanArgs),
    /// Print the DAG of a target or spec as Graphviz dot or JSON
    Graph(GraphArgs),
    /// Print the canonical derivation of a node: exactly what its hash covers
    ShowDerivation(ShowArgs),
    /// Explain why two targets, specs or nodes have different hashes ("why would this rebuild?")
    Diff(DiffArgs),
    /// Check every recipe, toolchain and target; exit non-zero on any error
    Lint(LintArgs),
    /// Rewrite KDL files in canonical layout, keeping comments
    Fmt(FmtArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Target name or spec
    #[arg(required_unless_present = "all", value_name = "TARGET|SPEC")]
    pub request: Option<String>,
    /// Plan every target of `recipes/targets.kdl`
    #[arg(long, conflicts_with = "request")]
    pub all: bool,
    /// Print JSON on stdout instead of a tree
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Target name or spec
    #[arg(value_name = "TARGET|SPEC")]
    pub request: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Same as `--format json`
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Target name or spec whose graph holds the node
    #[arg(value_name = "TARGET|SPEC")]
    pub request: String,
    /// The package to show within that graph [default: the root]
    #[arg(long, value_name = "PACKAGE")]
    pub node: Option<String>,
    /// Print the canonical form exactly as hashed (one line) instead of indented JSON
    #[arg(long)]
    pub canonical: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First target or spec
    #[arg(value_name = "A")]
    pub a: String,
    /// Second target or spec
    #[arg(value_name = "B")]
    pub b: String,
    /// Compare this package's nodes instead of the roots
    #[arg(long, value_name = "PACKAGE")]
    pub node: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Only report files that are not formatted; exit 1 if any
    #[arg(long)]
    pub check: bool,
    /// Files to format [default: every KDL file of the recipe tree]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
