//! One full run of the pipeline over a tree, timed per stage.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use forge_plan::Planner;
use forge_recipe::RecipeSet;
use forge_resolve::{HostProbe, Request, Resolver};

/// What one run did and how long each stage took.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Reading, parsing, decoding and validating every file.
    pub load: Duration,
    /// Resolving and planning (hashing) every target.
    pub resolve_and_plan: Duration,
    /// Files read.
    pub files: usize,
    /// Packages loaded.
    pub packages: usize,
    /// Targets in the tree.
    pub targets: usize,
    /// Targets that resolved and planned.
    pub planned: usize,
    /// Targets excluded by a declared conflict.
    pub conflicts: usize,
    /// Targets that failed otherwise, with the message.
    pub failed: Vec<(String, String)>,
    /// Nodes over all graphs.
    pub nodes: usize,
    /// Distinct derivations over all graphs.
    pub distinct: usize,
}

impl Run {
    /// Wall time of the whole run.
    pub fn total(&self) -> Duration {
        self.load + self.resolve_and_plan
    }
}

/// Loads, validates, resolves and plans every target of the tree at `root`, on all cores or on
/// one. A tree that does not load is an error (with the rendered diagnostics); targets that
/// fail are counted.
pub fn run(root: &Path, host: &dyn HostProbe, parallel: bool) -> Result<Run, String> {
    let start = Instant::now();
    let loaded = RecipeSet::load(root);
    if loaded.diags.has_errors() {
        return Err(loaded.diags.render(false, 100));
    }
    let set = loaded.set;
    let load = start.elapsed();
    let start = Instant::now();
    let mut r = Run {
        load,
        files: set.sources.iter().count(),
        packages: set.packages.len(),
        targets: set.targets.len(),
        ..Run::default()
    };
    let requests: Vec<Request> = set
        .targets
        .iter()
        .map(|t| Request::for_target(&set, t))
        .collect();
    let planner = Planner::new(&set);
    let mut distinct = BTreeSet::new();
    let results = if parallel {
        planner.resolve_and_plan_all(host, &requests)
    } else {
        requests
            .iter()
            .map(|req| {
                Resolver::new(&set, host)
                    .resolve(req)
                    .and_then(|g| planner.plan(g))
            })
            .collect()
    };
    for (req, result) in requests.iter().zip(results) {
        match result {
            Ok(p) => {
                r.planned += 1;
                r.nodes += p.graph.len();
                distinct.extend(p.drvs.iter().map(|d| d.hash));
            }
            Err(d) if d.code_str() == "resolve::conflict" => r.conflicts += 1,
            Err(d) => r.failed.push((req.name.clone(), d.message().to_owned())),
        }
    }
    r.resolve_and_plan = start.elapsed();
    r.distinct = distinct.len();
    Ok(r)
}

/// Minimum and median of durations.
pub fn min_median(mut ds: Vec<Duration>) -> (Duration, Duration) {
    ds.sort();
    let min = ds.first().copied().unwrap_or_default();
    let median = ds.get(ds.len() / 2).copied().unwrap_or_default();
    (min, median)
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
