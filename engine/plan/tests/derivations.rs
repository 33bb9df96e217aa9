//! Derivations of the fixture tree (`tests/fixtures/full`): every distinct derivation of every
//! target, as `forge show-derivation` prints it, and the store names per target.
//!
//! The snapshots pin the hashes themselves: a change of any hash (a new field, a different
//! canonical form, another build convention) shows in review. The assertions state what must and
//! must not enter a hash.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use forge_plan::{Plan, Planner};
use forge_recipe::RecipeSet;
use forge_resolve::{Request, Resolver};
use serde_json::Value;

#[path = "../../../tests/fixtures/support.rs"]
mod support;
use support::{fixture_root, host, load_with, texts};

/// Plans of every target that resolves (the two conflicting matrix rows do not).
fn plans(set: &RecipeSet) -> Vec<Plan> {
    let host = host();
    let planner = Planner::new(set);
    set.targets
        .iter()
        .filter_map(|t| {
            let g = Resolver::new(set, &host)
                .resolve(&Request::for_target(set, t))
                .ok()?;
            Some(planner.plan(g).expect("every resolved fixture graph plans"))
        })
        .collect()
}

/// The document `forge show-derivation` prints, with the fixture's location replaced.
fn document(d: &forge_plan::Derivation) -> String {
    let text = serde_json::to_string_pretty(&d.to_document()).expect("serializes");
    let root = fixture_root();
    let root = fs_err::canonicalize(&root).unwrap_or(root);
    text.replace(&root.display().to_string(), "[FIXTURE]")
        .replace(&fixture_root().display().to_string(), "[FIXTURE]")
}

#[test]
fn every_distinct_derivation() {
    let set = load_with(texts(&fixture_root()));
    let mut all: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for plan in plans(&set) {
        for d in &plan.drvs {
            all.entry((
                d.inputs.name.clone(),
                d.inputs.version.clone(),
                d.hash.to_string(),
            ))
            .or_insert_with(|| document(d));
        }
    }
    let mut out = String::new();
    for ((name, version, hash), doc) in &all {
        let _ = writeln!(out, "=== {name}@{version} {hash}\n{doc}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn store_names_per_target() {
    let set = load_with(texts(&fixture_root()));
    let mut out = String::new();
    for plan in plans(&set) {
        let _ = writeln!(out, "{}:", plan.graph.name);
        for i in plan.graph.topo() {
            let _ = writeln!(
                out,
                "  {} [{}]",
                plan.drv(i).store_name(),
                plan.graph.node(i).key.context
            );
        }
    }
    insta::assert_snapshot!(out);
}

fn plan_of(set: &RecipeSet, target: &str) -> Plan {
    let host = host();
    let t = set.target(target).expect("target exists");
    let g = Resolver::new(set, &host)
        .resolve(&Request::for_target(set, t))
        .expect("resolves");
    Planner::new(set).plan(g).expect("plans")
}

fn drv<'p>(plan: &'p Plan, package: &str) -> &'p forge_plan::Derivation {
    let g = &plan.graph;
    let root_ctx = &g.node(g.root).key.context;
    let found = g.find(package);
    let i = match found.as_slice() {
        [one] => *one,
        many => *many
            .iter()
            .find(|i| &g.node(**i).key.context == root_ctx)
            .unwrap_or_else(|| panic!("`{package}` in the root's context of `{}`", g.name)),
    };
    plan.drv(i)
}

fn inputs(d: &forge_plan::Derivation) -> Value {
    serde_json::to_value(&d.inputs).expect("serializes")
}

fn phase_names(d: &forge_plan::Derivation) -> Vec<String> {
    d.inputs
        .build
        .as_ref()
        .expect("built")
        .phases
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn build_systems_expand_into_explicit_phases() {
    let set = load_with(texts(&fixture_root()));
    let plan = plan_of(&set, "sched-host");
    // autoreconf first when its condition holds, the recipe's phase after `install`.
    assert_eq!(
        phase_names(drv(&plan, "sched")),
        ["autoreconf", "configure", "build", "install", "docs"]
    );
    // A phase before `configure`, the conditional `check` phase absent with `~tests`.
    assert_eq!(
        phase_names(drv(&plan, "pmix")),
        ["autogen", "configure", "build", "install"]
    );
    let pmix = inputs(drv(&plan, "pmix"));
    let configure = &pmix["build"]["phases"][1]["commands"][0];
    assert_eq!(
        configure["argv"][0], "../dist/configure",
        "an out-of-tree configure runs by a relative path, so srcdir is relative"
    );
    assert_eq!(configure["cwd"], "build");
    // Installs are staged unless the recipe says otherwise.
    assert_eq!(pmix["build"]["phases"][3]["destdir"], true);
    let plan = plan_of(&set, "datatool");
    let datatool = inputs(drv(&plan, "datatool"));
    assert_eq!(
        phase_names(drv(&plan, "datatool")),
        ["prepare", "build", "install"]
    );
    assert!(datatool["build"]["phases"][2].get("destdir").is_none());
    // `parallel #false`: no `-j{jobs}`.
    let build_argv = datatool["build"]["phases"][1]["commands"][0]["argv"].to_string();
    assert!(!build_argv.contains("{jobs}"), "{build_argv}");
    assert!(
        build_argv.contains("LAPACK={dep:lapack}"),
        "the `+fast` arguments"
    );
}

#[test]
fn placeholders_for_the_builder_stay_symbolic() {
    let set = load_with(texts(&fixture_root()));
    let plan = plan_of(&set, "sched-host");
    let canonical = &drv(&plan, "sched").canonical;
    for symbolic in ["{out}", "{jobs}", "{dep:hwloc}", "{dep:mpi}", "{dep:pmix}"] {
        assert!(canonical.contains(symbolic), "{symbolic} in {canonical}");
    }
    // Planner-time placeholders are filled in.
    assert!(canonical.contains("--sysconfdir=/etc/sched\""));
    assert!(canonical.contains("--enable-plugins=cgroup\""));
    assert!(!canonical.contains("{variant:"));
    let plan = plan_of(&set, "sched-generic");
    let zng = inputs(drv(&plan, "zlib-ng"));
    let setup = zng["build"]["phases"][0]["commands"][0]["argv"].to_string();
    assert!(setup.contains("-Dsymbol-prefix=zlib-ng_2"), "{setup}");
    assert!(setup.contains("-Dzlib-compat=true"), "{setup}");
}

#[test]
fn sources_enter_by_content_and_urls_only_in_fetch() {
    let set = load_with(texts(&fixture_root()));
    let plan = plan_of(&set, "sched-host");
    let sched = drv(&plan, "sched");
    assert_eq!(sched.inputs.sources.len(), 1);
    assert_eq!(
        sched.inputs.sources[0].name, "sched-25-11-2-1.tar.gz",
        "{{version.dashed}}"
    );
    assert!(!sched.canonical.contains("example.org"), "no URL is hashed");
    assert_eq!(
        sched.fetch[0].urls,
        [
            "https://example.org/sched/archive/sched-25-11-2-1.tar.gz",
            "https://mirror.example.org/sched/sched-25.11.2.tar.bz2"
        ]
    );
    // Only the unconditional patch applies to 25.11.
    let patches: Vec<&str> = sched
        .inputs
        .patches
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(patches, ["patches/sched-werror.patch"]);
    assert_eq!(sched.inputs.patches[0].level, 0);
    let plan = plan_of(&set, "sched-24.11-gcc10");
    let patches: Vec<&str> = drv(&plan, "sched")
        .inputs
        .patches
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        patches,
        ["patches/sched-cgroup.patch", "patches/sched-werror.patch"]
    );
    // A local directory enters by tree hash, a local file by sha256, a packed download unpacked never.
    let plan = plan_of(&set, "datatool");
    let src = &drv(&plan, "datatool").inputs.sources[0];
    assert!(src.tree.is_some() && src.sha256.is_none() && !src.unpack);
    let plan = plan_of(&set, "site-config");
    let src = &drv(&plan, "site-config").inputs.sources[0];
    assert!(src.sha256.is_some() && src.tree.is_none());
    let plan = plan_of(&set, "sched-25.11-gcc13-gpu");
    let nvml = drv(&plan, "nvml");
    assert!(!nvml.inputs.sources[0].unpack, "`expand=#false`");
    assert!(
        nvml.inputs.toolchain.is_none(),
        "`languages` with no arguments"
    );
}

#[test]
fn the_target_and_toolchain_are_inputs_of_the_hash() {
    let set = load_with(texts(&fixture_root()));
    let v3 = plan_of(&set, "sched-host");
    let generic = plan_of(&set, "sched-generic");
    let a = inputs(drv(&v3, "hwloc"));
    let b = inputs(drv(&generic, "hwloc"));
    assert_eq!(a["toolchain"]["arch"], "x86-64-v3");
    assert_eq!(b["toolchain"]["arch"], "x86-64");
    assert_ne!(drv(&v3, "hwloc").hash, drv(&generic, "hwloc").hash);
    // `env` conditioned on the target.
    assert_eq!(
        inputs(drv(&v3, "sched"))["build"]["env"]["SCHED_TUNE"],
        "v3"
    );
    assert!(
        inputs(drv(&generic, "sched"))["build"]["env"]
            .get("SCHED_TUNE")
            .is_none()
    );
    // The same package built by two compilers has two hashes.
    let gcc13 = plan_of(&set, "sched-25.11-gcc13");
    assert_ne!(drv(&v3, "hwloc").hash, drv(&gcc13, "hwloc").hash);
    assert_eq!(
        inputs(drv(&gcc13, "sched"))["build"]["env"]["CFLAGS"],
        "-O2 -fcommon",
        "`when=\"%gcc@10:\"` holds for gcc 13"
    );
}

#[test]
fn a_node_outside_any_toolchain_hashes_the_same_everywhere() {
    let set = load_with(texts(&fixture_root()));
    let a = plan_of(&set, "sched-host");
    let b = plan_of(&set, "sched-25.11-gcc13");
    assert_eq!(drv(&a, "site-config").hash, drv(&b, "site-config").hash);
    assert_eq!(drv(&a, "perl").hash, drv(&b, "perl").hash);
}

#[test]
fn store_paths_are_hash_name_version() {
    let set = load_with(texts(&fixture_root()));
    let plan = plan_of(&set, "sched-host");
    let d = plan.root();
    let name = d.store_name();
    let (hash, rest) = name.split_at(32);
    assert_eq!(rest, "-sched-25.11.2");
    assert_eq!(forge_plan::DrvHash::parse(hash), Some(d.hash));
    assert_eq!(
        d.store_path(Path::new("/store")),
        Path::new("/store").join(&name)
    );
}

#[test]
fn planning_all_targets_at_once_equals_one_by_one() {
    let set = load_with(texts(&fixture_root()));
    let host = host();
    let requests: Vec<Request> = set
        .targets
        .iter()
        .map(|t| Request::for_target(&set, t))
        .collect();
    let together = Planner::new(&set).resolve_and_plan_all(&host, &requests);
    assert_eq!(together.len(), requests.len());
    for (req, got) in requests.iter().zip(together) {
        // A fresh planner per target: no cache shared with the run above.
        let alone = Resolver::new(&set, &host)
            .resolve(req)
            .and_then(|g| Planner::new(&set).plan(g));
        match (got, alone) {
            (Ok(a), Ok(b)) => {
                let ha: Vec<_> = a
                    .drvs
                    .iter()
                    .map(|d| (d.store_name(), &d.canonical))
                    .collect();
                let hb: Vec<_> = b
                    .drvs
                    .iter()
                    .map(|d| (d.store_name(), &d.canonical))
                    .collect();
                assert_eq!(ha, hb, "{}", req.name);
            }
            (Err(a), Err(b)) => assert_eq!(a.message(), b.message()),
            (a, b) => panic!("{}: {:?} vs {:?}", req.name, a.is_ok(), b.is_ok()),
        }
    }
}

/// A patch symlink that stays in the tree when the recipes are checked but is swapped for one
/// leading out of it before planning is refused by the planner; one still in the tree is
/// resolved, so the build reads the file itself and never follows the symlink.
#[test]
fn a_patch_swapped_to_a_symlink_out_of_the_tree_is_refused_when_planning() {
    use sha2::Digest as _;
    let tmp = tempfile::tempdir().unwrap();
    let root = fs_err::canonicalize(tmp.path()).unwrap().join("tree");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    for sub in ["recipes", "toolchains"] {
        fs_err::create_dir_all(root.join(sub)).unwrap();
        for e in fs_err::read_dir(example.join(sub)).unwrap() {
            let e = e.unwrap();
            fs_err::copy(e.path(), root.join(sub).join(e.file_name())).unwrap();
        }
    }
    for src in ["hello", "libgreet"] {
        fs_err::create_dir_all(root.join("src").join(src)).unwrap();
        fs_err::write(root.join("src").join(src).join("README"), src).unwrap();
    }
    let body = b"--- a/x\n+++ b/x\n";
    fs_err::write(root.join("real.patch"), body).unwrap();
    fs_err::write(tmp.path().join("secret"), body).unwrap();
    let link = root.join("recipes/p.patch");
    fs_err::os::unix::fs::symlink("../real.patch", &link).unwrap();
    let hello = root.join("recipes/hello.kdl");
    let kdl = fs_err::read_to_string(&hello).unwrap().replace(
        "    license \"Apache-2.0\"\n",
        &format!(
            "    license \"Apache-2.0\"\n    patch \"p.patch\" sha256=\"{:x}\"\n",
            sha2::Sha256::digest(body)
        ),
    );
    fs_err::write(&hello, kdl).unwrap();
    let loaded = RecipeSet::load(&root);
    assert!(
        !loaded.diags.has_errors(),
        "{}",
        loaded.diags.render(false, 100)
    );
    let set = loaded.set;
    let plan_hello = || {
        let g = Resolver::new(&set, &host())
            .resolve(&Request::for_target(&set, set.target("hello").unwrap()))
            .unwrap();
        Planner::new(&set).plan(g)
    };
    let plan = plan_hello().expect("plans");
    let drv = plan.drvs.iter().find(|d| d.inputs.name == "hello").unwrap();
    assert_eq!(drv.patch_files, [root.join("real.patch")]);

    fs_err::remove_file(&link).unwrap();
    fs_err::os::unix::fs::symlink(tmp.path().join("secret"), &link).unwrap();
    let e = plan_hello().expect_err("a patch out of the tree");
    assert_eq!(e.code_str(), "recipe::bad-path");
    assert!(
        e.message()
            .contains("patch `p.patch` leads outside the recipe tree"),
        "{}",
        e.message()
    );
}
