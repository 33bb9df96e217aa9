//! `forge-bench plan`: how long loading, validating, resolving and planning every target takes.
//!
//! ```text
//! forge-bench plan                      # the repository's recipes, 20 runs
//! forge-bench plan --recipes DIR        # another tree
//! forge-bench plan --synthetic 100,1000 # generated trees of 100 and 1,000 packages
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use forge_bench::measure::{self, Run, min_median, ms};
use forge_bench::synthetic;
use forge_resolve::{FixedHost, HostProbe, SystemHost};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "forge-bench", about = "Benchmarks of forge's pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load, validate, resolve and plan every target of a tree, several times
    Plan(PlanArgs),
    /// A no-op `forge realize` of a synthetic graph whose nodes are all valid (target <= 20 ms)
    RealizeNoop {
        /// Nodes in the graph
        #[arg(long, default_value_t = 60)]
        nodes: usize,
        /// Timed runs
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// A real target instead of a synthetic graph (with `--recipes` and `--store`; every
        /// node must already be valid there)
        #[arg(long, requires_all = ["recipes", "store"])]
        target: Option<String>,
        /// The recipe tree of `--target`
        #[arg(long)]
        recipes: Option<PathBuf>,
        /// The store `--target` was realized in
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Scheduler efficiency on sleep-only builds with known durations (target <= 1.05 x ideal)
    Scheduler {
        /// Nodes in the graph
        #[arg(long, default_value_t = 60)]
        nodes: usize,
        /// Concurrent builds; a comma-separated list measures each
        #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
        jobs: Vec<usize>,
        /// Shortest build, seconds
        #[arg(long, default_value_t = 0.5)]
        min: f64,
        /// Longest build, seconds
        #[arg(long, default_value_t = 2.0)]
        max: f64,
        /// Seed of the graph
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Output tree hashing next to `b3sum` over the same files (target >= 0.8 x b3sum)
    Hash {
        /// Size of the tree in MiB
        #[arg(long, default_value_t = 1024)]
        mb: u64,
        /// Timed runs
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HostMode {
    /// One probe of the machine, shared by all runs (the first run pays for it)
    Cached,
    /// A fresh probe of the machine in every run, without the version cache
    Fresh,
    /// A fresh probe in every run with a version cache kept between runs, as separate `forge`
    /// processes do (the first run fills the cache)
    Process,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The tree holding `recipes/` and `toolchains/` [default: the repository's]
    #[arg(long, value_name = "DIR", conflicts_with = "synthetic")]
    recipes: Option<PathBuf>,
    /// Generate trees of these many packages instead (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    synthetic: Vec<usize>,
    /// Seed of the synthetic trees
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the synthetic trees under this directory instead of a temporary one
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Full runs per tree
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// How host tools are probed (repository trees; synthetic trees use a fixed host)
    #[arg(long, value_enum, default_value_t = HostMode::Cached)]
    host: HostMode,
    /// Resolve and plan targets on one thread instead of all cores
    #[arg(long)]
    sequential: bool,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Plan(a) if a.synthetic.is_empty() => tree(&a),
        Command::Plan(a) => synthetic_trees(&a),
        Command::RealizeNoop {
            nodes,
            runs,
            target,
            recipes,
            store,
        } => print(match (target, recipes, store) {
            (Some(t), Some(r), Some(s)) => forge_bench::realize::noop_real(&t, &r, &s, runs),
            _ => forge_bench::realize::noop(nodes, runs),
        }),
        Command::Scheduler {
            nodes,
            jobs,
            min,
            max,
            seed,
        } => print(forge_bench::realize::scheduler(
            nodes, &jobs, min, max, seed,
        )),
        Command::Hash { mb, runs } => print(forge_bench::realize::hash(mb, runs)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print(r: Result<String, String>) -> Result<(), String> {
    let text = r?;
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())
}

/// Runs the pipeline `runs` times; the first run is returned apart (it pays for host probes and
/// cold caches).
fn repeat(
    root: &std::path::Path,
    runs: usize,
    parallel: bool,
    host: &mut dyn FnMut() -> Box<dyn HostProbe>,
) -> Result<(Run, Vec<Run>), String> {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs.max(2) {
        let h = host();
        all.push(measure::run(root, h.as_ref(), parallel)?);
    }
    let first = all.remove(0);
    Ok((first, all))
}

fn describe(out: &mut impl std::io::Write, first: &Run, rest: &[Run]) -> std::io::Result<()> {
    let (min, median) = min_median(rest.iter().map(Run::total).collect());
    let mid = rest.iter().find(|r| r.total() == median).unwrap_or(first);
    writeln!(
        out,
        "  {} files, {} packages, {} targets: {} planned, {} excluded by a conflict, {} failed",
        first.files,
        first.packages,
        first.targets,
        first.planned,
        first.conflicts,
        first.failed.len()
    )?;
    writeln!(
        out,
        "  {} nodes in all graphs, {} distinct derivations",
        first.nodes, first.distinct
    )?;
    writeln!(out, "  first run: {} ms", ms(first.total()))?;
    writeln!(
        out,
        "  next {} runs: min {} ms, median {} ms (load+validate {}, resolve+plan {})",
        rest.len(),
        ms(min),
        ms(median),
        ms(mid.load),
        ms(mid.resolve_and_plan)
    )?;
    for (t, m) in first.failed.iter().take(5) {
        writeln!(out, "  failed: {t}: {m}")?;
    }
    Ok(())
}

fn threads(sequential: bool) -> String {
    if sequential {
        "one thread".to_owned()
    } else {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        format!("{n} threads")
    }
}

fn tree(a: &PlanArgs) -> Result<(), String> {
    let root = a
        .recipes
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let shared = std::sync::Arc::new(SystemHost::new());
    #[derive(Debug)]
    struct Shared(std::sync::Arc<SystemHost>);
    impl HostProbe for Shared {
        fn probe(
            &self,
            package: &str,
            decl: &forge_recipe::HostDecl,
        ) -> Result<forge_resolve::HostTool, forge_resolve::HostError> {
            self.0.probe(package, decl)
        }
    }
    let mode = a.host;
    let versions = tempfile::tempdir().map_err(|e| e.to_string())?;
    let versions_file = versions.path().join("host-versions.json");
    let mut host = move || -> Box<dyn HostProbe> {
        match mode {
            HostMode::Cached => Box::new(Shared(std::sync::Arc::clone(&shared))),
            HostMode::Fresh => Box::new(SystemHost::new()),
            HostMode::Process => {
                Box::new(SystemHost::new().with_version_cache(versions_file.clone()))
            }
        }
    };
    let (first, rest) = repeat(&root, a.runs, !a.sequential, &mut host)?;
    let mut out = std::io::stdout().lock();
    let shown = fs_err::canonicalize(&root).unwrap_or(root);
    writeln!(
        out,
        "forge-bench plan: {} (host: {:?}, {})",
        shown.display(),
        a.host,
        threads(a.sequential)
    )
    .and_then(|()| describe(&mut out, &first, &rest))
    .map_err(|e| e.to_string())
}

fn synthetic_trees(a: &PlanArgs) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for &n in &a.synthetic {
        let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = match &a.keep {
            Some(k) => k.join(format!("synthetic-{n}")),
            None => temp.path().to_path_buf(),
        };
        let summary = synthetic::generate(&root, n, a.seed).map_err(|e| e.to_string())?;
        // A host with gcc and a few of the tools; the others are built from their recipes.
        let mut host = || -> Box<dyn HostProbe> {
            Box::new(FixedHost::new([
                ("gcc", "12.2.0"),
                ("p0005", "9.0.0"),
                ("p0017", "1.0.0"),
            ]))
        };
        let (first, rest) = repeat(&root, a.runs, !a.sequential, &mut host)?;
        writeln!(
            out,
            "synthetic tree: {} packages, {} targets (seed {}, {})",
            summary.packages,
            summary.targets,
            a.seed,
            threads(a.sequential)
        )
        .and_then(|()| describe(&mut out, &first, &rest))
        .map_err(|e| e.to_string())?;
        let (min, median) = min_median(rest.iter().map(Run::total).collect());
        rows.push((summary.packages, first.nodes, min, median));
    }
    if rows.len() > 1 {
        let (p0, n0, _, m0) = rows[0];
        writeln!(out, "scaling (median, relative to {p0} packages):").map_err(|e| e.to_string())?;
        for (p, n, _, m) in &rows {
            writeln!(
                out,
                "  {p:>6} packages {n:>7} nodes  {:>8} ms  ×{:.1} time for ×{:.1} packages, ×{:.1} nodes",
                ms(*m),
                m.as_secs_f64() / m0.as_secs_f64().max(1e-9),
                *p as f64 / p0 as f64,
                *n as f64 / n0.max(1) as f64
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
