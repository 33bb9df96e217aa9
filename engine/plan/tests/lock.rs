//! forge.lock: a plan recorded, read back, checked against fresh plans, and refused when
//! damaged.

use forge_plan::{Drift, Lock, LockError, Plan, Planner};
use forge_recipe::RecipeSet;
use forge_resolve::{Request, Resolver};

#[path = "../../../tests/fixtures/support.rs"]
mod support;
use support::{fixture_root, host, load_with, texts};

fn plan_of(set: &RecipeSet, target: &str) -> Plan {
    let t = set.target(target).expect("target");
    let g = Resolver::new(set, &host())
        .resolve(&Request::for_target(set, t))
        .expect("resolves");
    Planner::new(set).plan(g).expect("plans")
}

#[test]
fn a_recorded_plan_reads_back_and_checks_clean() {
    let set = load_with(texts(&fixture_root()));
    let mut lock = Lock::default();
    for t in ["sched-host", "sched-mpich"] {
        lock.record(t, &plan_of(&set, t));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forge.lock");
    lock.write(&path).unwrap();
    let back = Lock::read(&path).unwrap().expect("a lock");
    assert_eq!(back, lock);
    for t in ["sched-host", "sched-mpich"] {
        assert_eq!(back.check(t, &plan_of(&set, t)), Ok(()));
    }
    assert_eq!(
        back.check("sched-generic", &plan_of(&set, "sched-generic")),
        Err(Drift::NotLocked)
    );
    // Nodes both targets share are held once.
    let listed: usize = back.targets.values().map(|t| t.nodes.len()).sum();
    assert!(
        back.derivations.len() < listed,
        "shared derivations held once"
    );
    // Re-recording one target drops what only its old plan needed.
    let mut smaller = back.clone();
    smaller.targets.remove("sched-mpich");
    smaller.record("sched-host", &plan_of(&set, "sched-host"));
    assert_eq!(
        smaller.derivations.len(),
        smaller.targets["sched-host"].nodes.len()
    );
    assert_eq!(Lock::read(&dir.path().join("none.lock")).unwrap(), None);
}

#[test]
fn drift_names_the_inputs_that_changed() {
    let set = load_with(texts(&fixture_root()));
    let mut lock = Lock::default();
    lock.record("sched-host", &plan_of(&set, "sched-host"));
    // The same tree with one configure argument of pmix changed.
    let mut files = texts(&fixture_root());
    let pmix = files
        .iter_mut()
        .find(|(n, _, _)| n == "recipes/pmix.kdl")
        .expect("pmix recipe");
    assert!(
        pmix.2.contains("configure \""),
        "pmix has configure arguments"
    );
    pmix.2 = pmix
        .2
        .replacen("configure \"", "configure \"--enable-drift\" \"", 1);
    let changed = load_with(files);
    match lock.check("sched-host", &plan_of(&changed, "sched-host")) {
        Err(Drift::Changed {
            removed,
            added,
            differences,
        }) => {
            assert!(removed.iter().any(|n| n.contains("-pmix-")), "{removed:?}");
            assert_eq!(removed.len(), added.len(), "the same nodes, rehashed");
            assert!(
                differences
                    .iter()
                    .any(|d| d.node.ends_with("pmix")
                        && d.added.iter().any(|a| a == "--enable-drift")),
                "{differences:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_lock_is_refused_with_its_path() {
    let set = load_with(texts(&fixture_root()));
    let mut lock = Lock::default();
    lock.record("sched-host", &plan_of(&set, "sched-host"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forge.lock");
    lock.write(&path).unwrap();
    // A version edited by hand no longer hashes to its name.
    let text = fs_err::read_to_string(&path).unwrap();
    let edited = text.replacen("\"version\": \"25.11", "\"version\": \"25.12", 1);
    assert_ne!(edited, text);
    fs_err::write(&path, &edited).unwrap();
    match Lock::read(&path) {
        Err(e @ LockError::Tampered { .. }) => {
            assert!(e.to_string().contains("forge.lock"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    fs_err::write(
        &path,
        "{\"lock-version\": 99, \"targets\": {}, \"derivations\": {}}",
    )
    .unwrap();
    assert!(matches!(Lock::read(&path), Err(LockError::Invalid { .. })));
    fs_err::write(&path, "not json").unwrap();
    assert!(matches!(Lock::read(&path), Err(LockError::Invalid { .. })));
}
