//! `forge plan`, `graph`, `show-derivation`, `diff`, `lint` and `fmt` end to end: the real binary
//! on a temp copy of the fixture trees (`tests/fixtures/full`, `tests/malformed`).
//!
//! The host is made of scripts on `PATH` that print fixed versions, so graphs and hashes are the
//! same on every machine, and equal to what the library computes with `FixedHost` at the same
//! versions: the CLI tests double as the check that hashes are identical across processes.
//! Temp paths are filtered out of snapshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use forge_plan::Planner;
use forge_recipe::RecipeSet;
use forge_resolve::{FixedHost, Request, Resolver};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for e in fs_err::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs_err::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The fake host: every tool the fixture's `host` lines name, printing a fixed version the way
/// the real tool does.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("gcc", "12.2.0"),
    ("g++", "12.2.0"),
    ("gfortran", "12.2.0"),
    ("m4", "m4 (GNU M4) 1.4.19"),
    ("cmake", "cmake version 3.25.1"),
    ("ctest", "ctest version 3.25.1"),
    ("cpack", "cpack version 3.25.1"),
    (
        "perl",
        "This is perl 5, version 36, subversion 0 (v5.36.0) built for x86_64-linux",
    ),
];

/// The same host for the library.
fn fixed_host() -> FixedHost {
    FixedHost::new([
        ("gcc", "12.2.0"),
        ("m4", "1.4.19"),
        ("cmake", "3.25.1"),
        ("perl", "5.36.0"),
    ])
}

/// A copy of a recipe tree with a fake host, in a temp dir.
struct Tree {
    world: World,
}

impl Tree {
    fn of(src: &Path) -> Self {
        let world = World::new();
        copy_dir(src, &world.recipes());
        let bin = world.path().join("bin");
        fs_err::create_dir_all(&bin).unwrap();
        for (tool, says) in HOST_TOOLS {
            let script = bin.join(tool);
            fs_err::write(&script, format!("#!/bin/sh\necho '{says}'\n")).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { world }
    }

    fn fixture() -> Self {
        Self::of(&repo().join("tests/fixtures/full"))
    }

    /// A malformed case laid over its base tree.
    fn malformed(case: &str) -> Self {
        let t = Self::of(&repo().join("tests/malformed/_base"));
        let case = repo().join("tests/malformed").join(case);
        for sub in ["recipes", "toolchains"] {
            if case.join(sub).is_dir() {
                copy_dir(&case.join(sub), &t.world.recipes().join(sub));
            }
        }
        t
    }

    fn root(&self) -> PathBuf {
        self.world.recipes()
    }

    fn forge(&self, args: &[&str]) -> Output {
        let mut c = self.world.forge();
        // An unpadded store: printed paths must not depend on the temp dir's length.
        c.env("PATH", self.world.path().join("bin"))
            .env("FORGE_PADDED_LENGTH", "0")
            .arg("--recipes")
            .arg(self.root())
            .args(args);
        c.output().expect("forge runs")
    }

    /// Output with the temp dir replaced by `[TEMP]`.
    fn filter(&self, s: &str) -> String {
        let mut out = s.to_owned();
        let p = self.world.path();
        if let Ok(real) = fs_err::canonicalize(p) {
            out = out.replace(&real.display().to_string(), "[TEMP]");
        }
        out.replace(&p.display().to_string(), "[TEMP]")
    }

    fn stdout(&self, o: &Output) -> String {
        self.filter(&text(&o.stdout))
    }

    fn stderr(&self, o: &Output) -> String {
        self.filter(&text(&o.stderr))
    }
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

#[test]
fn plan_prints_the_tree_of_a_target() {
    let t = Tree::fixture();
    let o = t.forge(&["plan", "sched-host"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    insta::assert_snapshot!(t.stdout(&o));
}

#[test]
fn plan_all_reports_every_target_and_excluded_rows() {
    let t = Tree::fixture();
    let o = t.forge(&["plan", "--all"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    insta::assert_snapshot!(t.stdout(&o));
}

#[test]
fn hashes_are_identical_across_processes_and_equal_to_the_library() {
    let t = Tree::fixture();
    let set = RecipeSet::load(&t.root())
        .into_result()
        .expect("fixture loads")
        .0;
    let host = fixed_host();
    let planner = Planner::new(&set);
    let mut compared = 0;
    for target in [
        "sched-host",
        "sched-25.11-gcc13",
        "datatool",
        "sched-generic",
    ] {
        let first = t.forge(&["plan", "--json", target]);
        let second = t.forge(&["plan", "--json", target]);
        assert_eq!(code(&first), 0, "{}", t.stderr(&first));
        assert_eq!(
            first.stdout, second.stdout,
            "two runs of `forge plan --json {target}`"
        );
        let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
        let decl = set.target(target).unwrap();
        let plan = planner
            .plan(
                Resolver::new(&set, &host)
                    .resolve(&Request::for_target(&set, decl))
                    .unwrap(),
            )
            .unwrap();
        let nodes = doc["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), plan.graph.len());
        for (n, i) in nodes.iter().zip(plan.graph.topo()) {
            assert_eq!(n["name"], plan.graph.node(i).name());
            assert_eq!(
                n["hash"],
                plan.drv(i).hash.to_string(),
                "{target}: {}",
                n["name"]
            );
            compared += 1;
        }
        assert_eq!(doc["root"], plan.root().hash.to_string());
    }
    assert!(compared > 40);
    let all_a = t.forge(&["plan", "--all", "--json"]);
    let all_b = t.forge(&["plan", "--all", "--json"]);
    assert_eq!(all_a.stdout, all_b.stdout);
}

#[test]
fn show_derivation_prints_what_the_hash_covers() {
    let t = Tree::fixture();
    let o = t.forge(&["show-derivation", "sched-host", "--node", "pmix"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    insta::assert_snapshot!(t.stdout(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let canonical = t.forge(&[
        "show-derivation",
        "sched-host",
        "--node",
        "pmix",
        "--canonical",
    ]);
    let canonical = text(&canonical.stdout);
    let canonical = canonical.trim_end();
    // The canonical form is the hashed inputs, compact with sorted keys.
    let reparsed: serde_json::Value = serde_json::from_str(canonical).unwrap();
    assert_eq!(reparsed, doc["inputs"]);
    assert_eq!(forge_core::json::canonical(&reparsed), canonical);
    let hash = forge_plan::derivation::hash_canonical(canonical);
    assert_eq!(doc["hash"], hash.to_string());
}

#[test]
fn graph_prints_dot() {
    let t = Tree::fixture();
    let o = t.forge(&["graph", "lapack"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    insta::assert_snapshot!(t.stdout(&o));
}

#[test]
fn diff_explains_why_two_targets_differ() {
    let t = Tree::fixture();
    let o = t.forge(&["diff", "sched-host", "sched-mpich"]);
    assert_eq!(code(&o), 1, "a difference is exit 1: {}", t.stderr(&o));
    insta::assert_snapshot!(t.stdout(&o));
    let same = t.forge(&["diff", "sched-host", "sched@25.11 +pmix ~nvml"]);
    assert_eq!(code(&same), 0, "{}", t.stderr(&same));
    assert!(text(&same.stdout).starts_with("identical: "));
}

#[test]
fn specs_on_the_command_line() {
    let t = Tree::fixture();
    let o = t.forge(&["plan", "--json", "sched@24.11 ~pmix %gcc@10.5.0 ^mpich"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let root = doc["nodes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(root["version"], "24.11.6");
    assert_eq!(root["toolchain"]["compiler_version"], "10.5.0");
    let o = t.forge(&["plan", "schd"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("typo-on-the-command-line", t.stderr(&o));
    let o = t.forge(&["plan", "sched +nvml %gcc@10.5.0"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("conflict-on-the-command-line", t.stderr(&o));
}

#[test]
fn lint_passes_the_fixture_and_notes_excluded_rows() {
    let t = Tree::fixture();
    let o = t.forge(&["lint"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    insta::assert_snapshot!(t.stderr(&o));
}

#[test]
fn lint_reports_every_error_with_its_location() {
    let t = Tree::malformed("56-several-errors");
    let o = t.forge(&["lint"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(t.stderr(&o));
    let o = t.forge(&["lint", "--json"]);
    assert_eq!(code(&o), 1);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["errors"], 4);
    let located: Vec<String> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {}:{}:{}",
                d["code"].as_str().unwrap(),
                d["file"].as_str().unwrap(),
                d["line"],
                d["column"]
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            "recipe::unknown-node recipes/hello.kdl:8:5",
            "recipe::bad-sha256 recipes/libgreet.kdl:5:26",
            "recipe::unknown-arch recipes/targets.kdl:2:10",
            "recipe::unknown-package toolchains/toolchains.kdl:3:13",
        ]
    );
}

#[test]
fn lint_points_into_the_recipes_when_a_target_does_not_resolve() {
    let t = Tree::malformed("51-no-version-satisfies-all");
    let o = t.forge(&["lint"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(t.stderr(&o));
}

#[test]
fn plan_refuses_a_broken_tree() {
    let t = Tree::malformed("11-unknown-dependency");
    let o = t.forge(&["plan", "hello"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(t.stderr(&o));
}

/// A broken recipe file stops only what uses it: a target that needs nothing of it plans, with
/// a warning naming the file; one that needs it is refused, naming both.
#[test]
fn a_broken_recipe_file_stops_only_the_targets_that_use_it() {
    let t = Tree::fixture();
    let before = t.forge(&["plan", "lapack", "--json"]);
    assert_eq!(code(&before), 0, "{}", t.stderr(&before));
    fs_err::write(
        t.root().join("recipes/unrelated.kdl"),
        "package \"unrelated\" {\n    version \"1.0\" sha256=\n",
    )
    .unwrap();
    let o = t.forge(&["plan", "lapack", "--json"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    assert_eq!(o.stdout, before.stdout, "the same plan");
    let err = t.stderr(&o);
    assert!(
        err.contains("planned `lapack` without `recipes/unrelated.kdl`, which has errors"),
        "{err}"
    );
    // The package a target needs, broken: refused, naming the file.
    let lapack = t.root().join("recipes/lapack.kdl");
    let text = fs_err::read_to_string(&lapack).unwrap();
    fs_err::write(&lapack, text.replacen("version", "version version=", 1)).unwrap();
    let o = t.forge(&["plan", "lapack"]);
    assert_eq!(code(&o), 1, "{}", t.stderr(&o));
    let err = t.stderr(&o);
    assert!(
        err.contains("`recipes/lapack.kdl`") && err.contains("`lapack`"),
        "{err}"
    );
    // Listing shows the whole tree: it refuses while any file is broken.
    let o = t.forge(&["list"]);
    assert_eq!(code(&o), 1, "{}", t.stderr(&o));
    // A toolchain's runtime, kept under recipes/ and broken: every plan is refused (the
    // resolver takes a toolchain's packages as given), with no panic.
    fs_err::write(&lapack, &text).unwrap();
    fs_err::remove_file(t.root().join("recipes/unrelated.kdl")).unwrap();
    let runtime = fs_err::read_to_string(t.root().join("toolchains/gcc-runtime.kdl")).unwrap();
    fs_err::remove_file(t.root().join("toolchains/gcc-runtime.kdl")).unwrap();
    fs_err::write(
        t.root().join("recipes/gcc-runtime.kdl"),
        runtime.replacen("    license", "    license license=", 1),
    )
    .unwrap();
    let o = t.forge(&["plan", "lapack"]);
    let err = t.stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("of the toolchain") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn fmt_lays_files_out_without_changing_a_hash() {
    let t = Tree::fixture();
    let before = t.forge(&["plan", "--all", "--json"]);
    let sched = t.root().join("recipes/sched.kdl");
    let messy = fs_err::read_to_string(&sched).unwrap().replace(
        "    depends \"hwloc@2:\"",
        "  depends    \"hwloc@2:\"   // comment kept",
    );
    fs_err::write(&sched, &messy).unwrap();
    let check = t.forge(&["fmt", "--check"]);
    assert_eq!(code(&check), 1, "{}", t.stderr(&check));
    assert!(t.stderr(&check).contains("recipes/sched.kdl"));
    // It shows what would change, as a unified diff.
    let diff = t.stdout(&check);
    assert!(
        diff.contains("recipes/sched.kdl")
            && diff.contains("\n-  depends    \"hwloc@2:\"   // comment kept\n")
            && diff.contains("\n+    depends \"hwloc@2:\""),
        "{diff}"
    );
    let o = t.forge(&["fmt"]);
    assert_eq!(code(&o), 0, "{}", t.stderr(&o));
    let formatted = fs_err::read_to_string(&sched).unwrap();
    assert!(formatted.contains("// comment kept"));
    assert_ne!(formatted, messy);
    let check = t.forge(&["fmt", "--check"]);
    assert_eq!(code(&check), 0, "{}", t.stderr(&check));
    let after = t.forge(&["plan", "--all", "--json"]);
    assert_eq!(before.stdout, after.stdout, "formatting changes no hash");
}

#[test]
fn without_a_recipe_tree_forge_says_where_it_looked() {
    let w = World::new();
    let o = w.forge().args(["plan", "anything"]).output().unwrap();
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(err.contains("no recipe tree here"), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

/// `forge plan SPEC --json` of the repository's recipes: the nodes.
fn repo_plan(w: &World, target: &str) -> Vec<serde_json::Value> {
    let o = w.run_in(&repo(), &["plan", target, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    v["nodes"].as_array().unwrap().clone()
}

#[test]
fn the_recipe_set_lints_clean_and_every_matrix_target_plans() {
    let w = World::new();
    ok(&w.run_in(&repo(), &["lint"]));
    let o = w.run_in(&repo(), &["plan", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    let targets = v["targets"].as_array().unwrap();
    // The matrix the recipes issue asks for: 25.11 with all nine GCCs, the older series with
    // GCC 7-14, each also as -gpu, the two host-toolchain targets, and the three built from the
    // sources Debian's archive serves.
    let mut want = vec![
        "slurm-25.11-host".to_owned(),
        "slurm-22.05-host".to_owned(),
        "slurm-24.11-gcc13-deb".to_owned(),
        "slurm-24.11-host-deb".to_owned(),
        "gcc-13.4.0-deb".to_owned(),
    ];
    for (series, gccs) in [
        ("25.11", 7..=15),
        ("24.11", 7..=14),
        ("23.11", 7..=14),
        ("23.02", 7..=14),
    ] {
        for g in gccs {
            want.push(format!("slurm-{series}-gcc{g}"));
            want.push(format!("slurm-{series}-gcc{g}-gpu"));
        }
    }
    let mut got: Vec<String> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for t in targets {
        // Every row plans, or is excluded by a declared conflict that says why.
        match t["status"].as_str().unwrap() {
            "ok" => assert!(t["nodes"].as_u64().unwrap() > 10, "{t}"),
            "excluded" => assert!(!t["reason"].as_str().unwrap_or("").is_empty(), "{t}"),
            other => panic!("{other}: {t}"),
        }
    }
}

#[test]
fn slurm_25_11_gcc13_has_the_stack_on_one_compiler_and_its_runtime() {
    let w = World::new();
    let nodes = repo_plan(&w, "slurm-25.11-gcc13");
    let by_name = |name: &str| -> Vec<&serde_json::Value> {
        nodes.iter().filter(|n| n["name"] == name).collect()
    };
    let slurm = by_name("slurm");
    assert_eq!(slurm.len(), 1);
    assert!(slurm[0]["version"].as_str().unwrap().starts_with("25.11."));
    for pkg in [
        "munge",
        "pmix",
        "hwloc",
        "openssl",
        "s2n-tls",
        "libevent",
        "hdf5",
        "readline",
        "http-parser",
        "json-c",
        "libyaml",
        "libjwt",
        "lz4",
        "curl",
        "lua",
        "librdkafka",
        "freeipmi",
        "linux-pam",
    ] {
        assert!(!by_name(pkg).is_empty(), "{pkg} in slurm-25.11-gcc13");
    }
    assert!(by_name("cuda").is_empty() && by_name("rocm-smi-lib").is_empty());

    // The compiler is gcc 13.4.0, built by the host's gcc, with its own runtime node.
    let gcc13 = nodes
        .iter()
        .find(|n| n["name"] == "gcc" && n["version"] == "13.4.0")
        .expect("gcc 13.4.0 is a node");
    let runtime13 = nodes
        .iter()
        .find(|n| n["name"] == "gcc-runtime" && n["version"] == "13.4.0")
        .expect("its gcc-runtime is a node");
    // gcc 13.4.0 and what it is built from are compiled by the bootstrap toolchain; everything
    // else compiled in this graph uses gcc 13.4.0 and links its runtime.
    let hash = |n: &serde_json::Value| n["hash"].as_str().unwrap().to_owned();
    let mut bootstrap = std::collections::BTreeSet::from([hash(gcc13)]);
    let mut stack = vec![gcc13];
    while let Some(n) = stack.pop() {
        for d in n["deps"].as_array().unwrap() {
            if let Some(dn) = nodes.iter().find(|x| x["hash"] == d["hash"])
                && dn["context"] != "gcc@13.4.0"
                && bootstrap.insert(hash(dn))
            {
                stack.push(dn);
            }
        }
    }
    let mut compiled = 0;
    for n in &nodes {
        if n["toolchain"].is_null() || bootstrap.contains(&hash(n)) {
            continue;
        }
        compiled += 1;
        assert_eq!(
            n["toolchain"]["compiler_version"], "13.4.0",
            "{}",
            n["name"]
        );
        assert!(
            n["toolchain"]["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "-march=x86-64-v3"),
            "{}",
            n["name"]
        );
        if n["name"] != "gcc-runtime" {
            assert!(
                n["deps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["hash"] == runtime13["hash"]
                        && d["types"].as_array().unwrap().iter().any(|t| t == "link")),
                "{} links gcc-runtime 13.4.0",
                n["name"]
            );
        }
    }
    assert!(compiled > 40, "{compiled} nodes compiled by gcc 13.4.0");
}

#[test]
fn the_gpu_target_adds_cuda_and_rocm_smi_and_old_gccs_get_their_own_mpfr() {
    let w = World::new();
    let plain = repo_plan(&w, "slurm-25.11-gcc13");
    let gpu = repo_plan(&w, "slurm-25.11-gcc13-gpu");
    let names = |nodes: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        nodes
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let added: Vec<String> = names(&gpu).difference(&names(&plain)).cloned().collect();
    for pkg in ["cuda", "rocm-smi-lib", "rocm-core", "libdrm"] {
        assert!(
            added.iter().any(|a| a == pkg),
            "{pkg} added by -gpu: {added:?}"
        );
    }
    let slurm = gpu.iter().find(|n| n["name"] == "slurm").unwrap();
    assert_eq!(slurm["variants"]["nvml"], true, "{slurm}");
    assert_eq!(slurm["variants"]["rsmi"], true, "{slurm}");
    // GCC 7 builds with mpfr 3.1.x and the runtime of gcc 7.5.0.
    let old = repo_plan(&w, "slurm-23.02-gcc7");
    let mpfr: Vec<&str> = old
        .iter()
        .filter(|n| n["name"] == "mpfr")
        .map(|n| n["version"].as_str().unwrap())
        .collect();
    assert_eq!(mpfr, ["3.1.6"]);
    assert!(
        old.iter()
            .any(|n| n["name"] == "gcc-runtime" && n["version"] == "7.5.0")
    );
    // A CUDA that rejects the host compiler is refused when planning, with NVIDIA's reason.
    let o = w.run_in(
        &repo(),
        &["plan", "cuda@11.8.0 %gcc@13.4.0 target=x86-64-v3"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("CUDA 11.8 supports gcc up to 11 as host compiler"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn openmpi_5_launches_under_slurm_with_pmix_and_ucx_on_rdma_core() {
    let w = World::new();
    let nodes = repo_plan(&w, "openmpi@5.0 ^slurm@25.11 %gcc@13.4.0 target=x86-64-v3");
    let version = |name: &str| -> String {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} in the openmpi graph"))["version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(version("openmpi").starts_with("5.0."));
    assert!(version("slurm").starts_with("25.11."));
    for pkg in ["pmix", "ucx", "rdma-core", "hwloc"] {
        version(pkg);
    }
    let ompi = nodes.iter().find(|n| n["name"] == "openmpi").unwrap();
    assert_eq!(
        ompi["variants"]["schedulers"],
        serde_json::json!(["slurm"]),
        "{ompi}"
    );
    assert_eq!(
        ompi["variants"]["fabrics"],
        serde_json::json!(["ucx"]),
        "{ompi}"
    );
}

#[test]
fn a_target_with_extra_roots_shares_equal_nodes_and_refuses_disagreeing_ones() {
    let w = World::new();
    let pkgs = [
        Pkg {
            name: "base",
            deps: &[],
            script: "mkdir -p \"$out\"; echo base > \"$out/base\"".into(),
        },
        Pkg {
            name: "app",
            deps: &["base"],
            script: "mkdir -p \"$out\"; echo app > \"$out/app\"".into(),
        },
        Pkg {
            name: "tool",
            deps: &["base"],
            script: "mkdir -p \"$out\"; echo tool > \"$out/tool\"".into(),
        },
    ];
    write_tree(&w.recipes(), &pkgs, &[]);
    let targets = w.recipes().join("recipes/targets.kdl");
    let mut t = fs_err::read_to_string(&targets).unwrap();
    t.push_str("target \"both\" {\n    spec \"app\"\n    extra-root \"tool\"\n}\n");
    fs_err::write(&targets, &t).unwrap();

    let plan: serde_json::Value =
        serde_json::from_str(&ok(&w.run(&["plan", "both", "--json"]))).unwrap();
    let names: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    // base once, shared by both roots.
    assert_eq!(
        names.iter().filter(|n| **n == "base").count(),
        1,
        "{names:?}"
    );
    assert!(
        names.contains(&"app") && names.contains(&"tool"),
        "{names:?}"
    );
    let tool = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "tool")
        .unwrap();
    assert_eq!(plan["extra_roots"], serde_json::json!([tool["hash"]]));
    let tree = text(&w.run(&["plan", "both"]).stdout);
    // A second tree at the top level, marked as not built yet.
    assert!(
        tree.lines().any(|l| l.starts_with(" -  tool@1.0")),
        "{tree}"
    );

    // Realize builds both roots and prints the root's path.
    let o = w.run(&["realize", "both"]);
    let root = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    assert!(root.join("app").exists());
    assert!(
        PathBuf::from(tool["store_path"].as_str().unwrap())
            .join("tool")
            .exists()
    );

    // A root that needs a node the other way is refused, naming the node.
    let libs = w.recipes().join("recipes/base.kdl");
    let mut b = fs_err::read_to_string(&libs).unwrap();
    b = b.replace(
        "    languages\n",
        "    languages\n    variant \"fast\" default=#false\n",
    );
    fs_err::write(&libs, b).unwrap();
    t.push_str(
        "target \"split\" {\n    spec \"app ^base~fast\"\n    extra-root \"tool ^base+fast\"\n}\n",
    );
    fs_err::write(&targets, &t).unwrap();
    let o = w.run(&["plan", "split"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("resolve::roots-disagree") && err.contains("base"),
        "{err}"
    );
}

/// miette's graphical handler panics on a label past column 65,535: long lines are cut around
/// the span instead, and the header still gives the real line and column.
#[test]
fn a_diagnostic_far_along_a_line_is_cut_around_its_span() {
    let w = World::new();
    let spec = format!("hello{}@@", " ".repeat(70_000));
    let o = w
        .forge()
        .args(["--example", "plan", &spec])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", &err[..err.len().min(2000)]);
    assert!(err.contains("[command line:1:70007]"), "{err:.2000}");
    assert!(err.contains("…") && err.contains("@@"), "{err:.2000}");
    assert!(err.lines().all(|l| l.chars().count() < 300), "{err:.2000}");

    // The same in a recipe: a 65,600-character description, then an unknown node on its line.
    let t = Tree::of(&repo().join("examples/hello"));
    let hello = t.root().join("recipes/hello.kdl");
    let kdl = fs_err::read_to_string(&hello).unwrap().replace(
        "description \"a program that links libgreet\"",
        &format!("description \"{}\"; licence \"MIT\"", "a".repeat(65_600)),
    );
    fs_err::write(&hello, kdl).unwrap();
    let o = t.forge(&["lint"]);
    let err = t.stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", &err[..err.len().min(2000)]);
    assert!(
        err.contains("[recipes/hello.kdl:2:65621]") && err.contains("licence \"MIT\""),
        "{err:.2000}"
    );
    assert!(err.lines().all(|l| l.chars().count() < 300), "{err:.2000}");
}

/// Specs and cache file names can hold any byte: what forge prints about them has their
/// control characters escaped, so an escape sequence never reaches the terminal.
#[test]
fn control_characters_in_specs_and_cache_names_are_escaped() {
    let w = World::new();
    let raw = |o: &Output| {
        let err = text(&o.stderr);
        assert!(
            !err.contains(['\x1b', '\x07', '\r']),
            "control characters reached the terminal: {err:?}"
        );
        err
    };
    for (spec, shown) in [
        ("hello\x1b[31m", "hello\\u{1b}[31m"),
        ("\x1b]0;pwned\x07", "\\u{1b}]0;pwned\\u{7}"),
        ("hello@1.0\r\x1b[2J", "hello@1.0\\r\\u{1b}[2J"),
    ] {
        let o = w
            .forge()
            .args(["--example", "plan", spec])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{spec:?}");
        let err = raw(&o);
        assert!(err.contains("resolve::bad-spec"), "{err}");
        // The source line shows control pictures; messages show escapes.
        assert!(err.contains(" 1 │ ") && err.contains('␛'), "{err}");
        if spec.starts_with("hello\x1b") {
            assert!(err.contains(&format!("`{shown}`")), "{err}");
        }
    }

    let cache = w.path().join("cache-dir");
    let spec_dir = cache.join("v3/manifests/spec/x");
    fs_err::create_dir_all(&spec_dir).unwrap();
    fs_err::create_dir_all(cache.join("v3/manifests/index")).unwrap();
    fs_err::write(cache.join("v3/manifests/index/index.manifest.json"), "{").unwrap();
    fs_err::write(spec_dir.join("a\x1b[31m\r.spec.manifest.json"), "").unwrap();
    let o = w
        .forge()
        .arg("cache")
        .arg("verify")
        .arg(&cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = raw(&o);
    assert!(
        err.contains("`v3/manifests/spec/x/a\\u{1b}[31m\\r.spec.manifest.json`"),
        "{err}"
    );
}

/// A patch whose path is in the tree but is a symlink leading out of it (to any file of the
/// machine) is refused by lint and by plan, naming the patch; a symlink that stays inside the
/// tree is fine.
#[test]
fn a_patch_through_a_symlink_out_of_the_tree_is_refused() {
    use sha2::Digest as _;
    let t = Tree::of(&repo().join("examples/hello"));
    let secret = t.world.path().join("secret.txt");
    fs_err::write(&secret, "root:x:0:0\n").unwrap();
    let sha = format!("{:x}", sha2::Sha256::digest(b"root:x:0:0\n"));
    let patches = t.root().join("recipes/patches");
    fs_err::create_dir_all(&patches).unwrap();
    fs_err::os::unix::fs::symlink(&secret, patches.join("evil.patch")).unwrap();
    let hello = t.root().join("recipes/hello.kdl");
    let original = fs_err::read_to_string(&hello).unwrap();
    let with_patch = |file: &str| {
        original.replace(
            "    license \"Apache-2.0\"\n",
            &format!("    license \"Apache-2.0\"\n    patch \"{file}\" sha256=\"{sha}\"\n"),
        )
    };
    fs_err::write(&hello, with_patch("patches/evil.patch")).unwrap();
    for args in [&["lint"][..], &["plan", "hello"]] {
        let o = t.forge(args);
        let err = t.stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("recipe::bad-path")
                && err.contains("patch `patches/evil.patch` leads outside the recipe tree")
                && err.contains("[TEMP]/secret.txt")
                && err.contains("[recipes/hello.kdl:4:")
                && err.contains("help:"),
            "{args:?}: {err}"
        );
    }

    // A symlink to another file of the tree is allowed.
    fs_err::create_dir_all(t.root().join("shared")).unwrap();
    fs_err::copy(&secret, t.root().join("shared/real.patch")).unwrap();
    fs_err::os::unix::fs::symlink("../../shared/real.patch", patches.join("ok.patch")).unwrap();
    fs_err::write(&hello, with_patch("patches/ok.patch")).unwrap();
    let o = t.forge(&["lint"]);
    assert_eq!(o.status.code(), Some(0), "{}", t.stderr(&o));
}

/// A padding no path could hold is refused up front with a short message, not at `mkdir` with
/// the whole 100 KB path in it.
#[test]
fn an_impossible_padded_length_is_refused_up_front() {
    let w = World::new();
    let o = w
        .forge()
        .args(["--padded-length", "100000", "--example", "realize"])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err:.2000}");
    assert!(err.len() < 600, "{} bytes: {err:.2000}", err.len());
    assert!(
        err.contains("100000") && err.contains("at most 1024"),
        "{err}"
    );
    assert!(!w.store().exists(), "nothing created");
    // The largest allowed padding works.
    let o = w
        .forge()
        .args(["--padded-length", "1024", "--example", "realize"])
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(
        out.trim_end().ends_with("-hello-1.0") && out.len() > 1024,
        "{out}"
    );
}

/// `forge list` and `forge info` say what the recipe set holds; typos get the name that was
/// meant, not a parse error; a directory that is not a recipe tree, or a hash prefix too short,
/// is named for what it is.
#[test]
fn list_info_and_hints_name_what_was_meant() {
    let w = World::new();
    let forge = |args: &[&str]| w.forge().args(args).output().unwrap();
    let o = forge(&["--example", "list"]);
    insta::assert_snapshot!("example_list", ok(&o));
    let o = forge(&["--example", "info", "hello"]);
    insta::assert_snapshot!("example_info_hello", ok(&o));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&forge(&["--example", "info", "libgreet", "--json"]))).unwrap();
    assert_eq!(info["targets"], serde_json::json!(["hello"]), "{info}");
    assert_eq!(info["versions"][0]["source"], "local");
    let o = forge(&["--example", "info", "helo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("did you mean `hello`?"),
        "{}",
        text(&o.stderr)
    );

    // The repository's recipes: a target with a typo, a `^` dependency with one.
    let repo_run = |args: &[&str]| {
        w.forge()
            .arg("--recipes")
            .arg(repo())
            .args(args)
            .output()
            .unwrap()
    };
    let o = repo_run(&["plan", "slurm-25.11-gcc31"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no target is called `slurm-25.11-gcc31`")
            && err.contains("did you mean `slurm-25.11-gcc13`?")
            && !err.contains("invalid spec"),
        "{err}"
    );
    let o = repo_run(&["plan", "slurm ^mnuge"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no package or virtual is called `mnuge`")
            && err.contains("did you mean `munge`?"),
        "{err}"
    );
    let o = repo_run(&["plan", "slurmm"]);
    assert!(
        text(&o.stderr).contains("did you mean `slurm`?"),
        "{}",
        text(&o.stderr)
    );

    // Not a recipe tree: said so, not as errors in the recipes.
    let empty = w.path().join("empty");
    fs_err::create_dir_all(&empty).unwrap();
    let o = w
        .forge()
        .arg("--recipes")
        .arg(&empty)
        .args(["plan", "slurm"])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(
        err.contains("is not a recipe tree: it holds neither `recipes/` nor `toolchains/`")
            && !err.contains("plans nothing"),
        "{err}"
    );
    // Five characters of hash.
    let o = forge(&["--example", "log", "abc12"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("too short to be a hash prefix"), "{err}");
}

/// `forge --version` names the commit it was built from; `forge diff --help` its exit codes.
#[test]
fn version_names_the_commit_and_diff_help_its_exit_codes() {
    let w = World::new();
    let v = ok(&w.forge().arg("--version").output().unwrap());
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned());
    match head {
        Some(h) => assert_eq!(
            v.trim(),
            format!("forge {} ({h})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(v.contains("(unknown commit)"), "{v}"),
    }
    let help = ok(&w.forge().args(["diff", "--help"]).output().unwrap());
    assert!(
        help.contains("Exit 0: the two are the same derivation; 1: they differ"),
        "{help}"
    );
}

/// Bash completion completes the target and package names of the recipe tree for commands
/// that take them.
#[test]
fn bash_completion_completes_targets_and_packages() {
    let w = World::new();
    let script = w.path().join("forge.bash");
    fs_err::write(
        &script,
        ok(&w.forge().args(["completions", "bash"]).output().unwrap()),
    )
    .unwrap();
    let complete = |words: &str| {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({} {words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _forge_names forge \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display(),
                forge_bin().display()
            ))
            .current_dir(repo())
            .env("XDG_CACHE_HOME", w.path().join("cache"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let targets = complete("realize slurm-25.11-gcc1");
    assert!(
        targets.lines().any(|l| l == "slurm-25.11-gcc13"),
        "{targets}"
    );
    assert!(
        targets.lines().all(|l| l.starts_with("slurm-25.11-gcc1")),
        "{targets}"
    );
    let packages = complete("info mun");
    assert_eq!(packages.trim(), "munge");
}

/// Fish and zsh complete the same names (fish for real; zsh's completion system needs a
/// terminal, so its hook runs with `compadd` recording what it is given).
#[test]
fn fish_and_zsh_completion_complete_targets_and_packages() {
    let w = World::new();
    let script = |shell: &str| {
        let p = w.path().join(format!("forge.{shell}"));
        fs_err::write(
            &p,
            ok(&w.forge().args(["completions", shell]).output().unwrap()),
        )
        .unwrap();
        p
    };
    let path = format!("{}:/usr/bin:/bin", forge_bin().parent().unwrap().display());
    let run = |shell: &str, code: String| {
        let o = Command::new(shell)
            .arg("-c")
            .arg(code)
            .current_dir(repo())
            .env("PATH", &path)
            .env("XDG_CACHE_HOME", w.path().join("cache"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let fish = script("fish");
    let targets = run(
        "fish",
        format!(
            "source {}; complete -C 'forge realize slurm-25.11-gcc1'",
            fish.display()
        ),
    );
    assert!(
        targets.lines().any(|l| l.trim() == "slurm-25.11-gcc13"),
        "{targets}"
    );
    let packages = run(
        "fish",
        format!("source {}; complete -C 'forge info mun'", fish.display()),
    );
    assert_eq!(packages.trim(), "munge", "{packages}");
    let zsh = script("zsh");
    let offered = run(
        "zsh",
        format!(
            "compdef() {{ : }}; _forge() {{ : }}; compadd() {{ shift; print -l -- \"$@\" }}; \
             source {}; words=(forge realize slurm); CURRENT=3; _forge_names",
            zsh.display()
        ),
    );
    assert!(
        offered.lines().any(|l| l == "slurm-25.11-gcc13") && offered.lines().any(|l| l == "munge"),
        "{offered}"
    );
}
