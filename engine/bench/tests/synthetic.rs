//! The synthetic trees the benchmark measures must be valid recipe sets whose every target
//! resolves, or the benchmark would time error paths.

use std::collections::BTreeMap;
use std::path::Path;

use forge_bench::{measure, synthetic};
use forge_resolve::FixedHost;

fn files(root: &Path) -> BTreeMap<String, String> {
    forge_recipe::set::kdl_files(root)
        .unwrap()
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, fs_err::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn a_synthetic_tree_loads_cleanly_and_every_target_plans() {
    let dir = tempfile::tempdir().unwrap();
    let summary = synthetic::generate(dir.path(), 150, 7).unwrap();
    assert_eq!(summary.packages, 150);
    let loaded = forge_recipe::RecipeSet::load(dir.path());
    assert!(
        loaded.diags.is_empty(),
        "{}",
        loaded.diags.render(false, 100)
    );
    let host = FixedHost::new([("gcc", "12.2.0"), ("p0005", "9.0.0")]);
    for parallel in [false, true] {
        let run = measure::run(dir.path(), &host, parallel).unwrap();
        assert_eq!(run.targets, summary.targets);
        assert!(run.failed.is_empty(), "{:?}", run.failed);
        assert_eq!(run.planned + run.conflicts, run.targets);
        assert!(run.planned * 10 >= run.targets * 9, "most targets plan");
        // Graphs of realistic size: tens of nodes, shared between targets.
        assert!(run.nodes >= run.planned * 10, "{} nodes", run.nodes);
        assert!(run.distinct < run.nodes);
    }
}

#[test]
fn synthetic_trees_are_a_function_of_size_and_seed() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    synthetic::generate(a.path(), 60, 1).unwrap();
    synthetic::generate(b.path(), 60, 1).unwrap();
    synthetic::generate(c.path(), 60, 2).unwrap();
    assert_eq!(files(a.path()), files(b.path()));
    assert_ne!(files(a.path()), files(c.path()));
}
