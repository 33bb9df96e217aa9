//! The malformed-input corpus: `tests/malformed/NN-name/` holds small broken trees, each laid
//! over `tests/malformed/_base/` (a valid tree), and an `expect.kdl` saying which diagnostics the
//! whole pipeline (load, validate, resolve and plan every target) must report:
//!
//! ```kdl
//! // what the case shows
//! error "recipe::bad-sha256" at="recipes/libgreet.kdl:5:26"
//! ```
//!
//! Exactly those diagnostics, no more: a cascade of follow-up errors is a defect too. Each one
//! must carry a location, a label and a help line, and its rendering is snapshotted so wording
//! changes are reviewed. Nothing may panic.

use std::path::{Path, PathBuf};

use forge_plan::Planner;
use forge_recipe::{Diag, Diagnostics, RecipeSet};
use forge_resolve::{FixedHost, Request, Resolver};
use miette::Diagnostic as _;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/malformed")
}

fn host() -> FixedHost {
    FixedHost::new([("gcc", "12.2.0"), ("cmake", "3.25.1")])
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs_err::read_dir(from).expect("listable") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            fs_err::create_dir_all(&dest).expect("mkdir");
            copy_tree(&path, &dest);
        } else {
            fs_err::copy(&path, &dest).expect("copy");
        }
    }
}

/// The base tree with the case's files laid over it, in a fresh directory.
fn materialize(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_tree(&corpus().join("_base"), dir.path());
    for sub in ["recipes", "toolchains", "src"] {
        let from = case.join(sub);
        if from.is_dir() {
            let to = dir.path().join(sub);
            fs_err::create_dir_all(&to).expect("mkdir");
            copy_tree(&from, &to);
        }
    }
    dir
}

/// Everything the pipeline reports for the tree at `root`.
fn run_pipeline(root: &Path) -> Vec<Diag> {
    let loaded = RecipeSet::load(root);
    let mut out: Vec<Diag> = loaded.diags.iter().cloned().collect();
    if loaded.diags.has_errors() {
        return out;
    }
    let set = &loaded.set;
    let host = host();
    let planner = Planner::new(set);
    for t in &set.targets {
        let req = Request::for_target(set, t);
        if let Err(d) = Resolver::new(set, &host)
            .resolve(&req)
            .and_then(|g| planner.plan(g))
        {
            out.push(*d);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    severity: &'static str,
    code: String,
    at: String,
}

fn found(d: &Diag) -> Found {
    Found {
        severity: if d.is_error() { "error" } else { "warning" },
        code: d.code_str().to_owned(),
        at: d
            .location()
            .map(|l| format!("{}:{}:{}", l.file, l.line, l.column))
            .unwrap_or_default(),
    }
}

fn expected(case: &Path) -> Vec<Found> {
    let path = case.join("expect.kdl");
    let text = fs_err::read_to_string(&path).unwrap_or_default();
    let doc: kdl::KdlDocument = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    doc.nodes()
        .iter()
        .map(|n| {
            let severity = match n.name().value() {
                "error" => "error",
                "warning" => "warning",
                other => panic!("{}: unknown line `{other}`", path.display()),
            };
            let code = n
                .get(0)
                .and_then(|v| v.as_string())
                .expect("a code")
                .to_owned();
            let at = n
                .get("at")
                .and_then(|v| v.as_string())
                .expect("at=")
                .to_owned();
            Found { severity, code, at }
        })
        .collect()
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs_err::read_dir(corpus())
        .expect("corpus exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_base_tree_is_valid() {
    let dir = materialize(&corpus().join("_base"));
    let diags = run_pipeline(dir.path());
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(
        cases().len() >= 30,
        "the issue asks for at least 30 broken trees"
    );
}

#[test]
fn every_case_yields_exactly_its_diagnostics() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case
            .file_name()
            .expect("named")
            .to_string_lossy()
            .into_owned();
        let dir = materialize(&case);
        let diags = run_pipeline(dir.path());
        let mut got: Vec<Found> = diags.iter().map(found).collect();
        got.sort();
        let mut want = expected(&case);
        want.sort();
        if got != want {
            let lines: Vec<String> = got
                .iter()
                .map(|f| format!("{} {:?} at={:?}", f.severity, f.code, f.at))
                .collect();
            failures.push(format!(
                "{name}: expected {want:?}, got\n{}",
                lines.join("\n")
            ));
            continue;
        }
        for d in &diags {
            let loc = d.location().expect("every diagnostic points somewhere");
            assert!(!loc.file.is_empty(), "{name}: no file");
            if loc.line > 0 {
                let labels: Vec<_> = d.labels().map(Iterator::collect).unwrap_or_default();
                assert!(!labels.is_empty(), "{name}: `{}` has no label", d.message());
            }
            let help = d.help_text().unwrap_or_default();
            assert!(
                !help.is_empty(),
                "{name}: `{}` has no help line",
                d.message()
            );
        }
        let mut all = Diagnostics::default();
        for d in diags {
            all.push(d);
        }
        let root = dir.path().display().to_string();
        let rendered = all.render(false, 100).replace(&root, "[TREE]");
        insta::assert_snapshot!(name.clone(), rendered);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
