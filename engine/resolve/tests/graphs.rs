//! Resolved graphs of every target of the fixture tree (`tests/fixtures/full`), against a fixed
//! host so that nothing depends on the machine running the tests.
//!
//! One snapshot per target lists every node (version, variants, context, origin, toolchain) and
//! its edges; the assertions below state the resolution rules those graphs must follow, so a
//! snapshot update that breaks a rule fails even when accepted blindly.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use forge_recipe::{RecipeSet, VariantValue};
use forge_resolve::{Context, EdgeRole, FixedHost, Graph, Origin, Request, Resolver};

#[path = "../../../tests/fixtures/support.rs"]
mod support;
use support::{fixture_root, host};

fn load() -> RecipeSet {
    let loaded = RecipeSet::load(&fixture_root());
    assert!(
        !loaded.diags.has_errors(),
        "{}",
        loaded.diags.render(false, 100)
    );
    loaded.set
}

fn resolve(set: &RecipeSet, target: &str) -> Result<Graph, Box<forge_recipe::Diag>> {
    let host = host();
    let t = set.target(target).expect("target exists");
    Resolver::new(set, &host).resolve(&Request::for_target(set, t))
}

fn variants(v: &std::collections::BTreeMap<String, VariantValue>) -> String {
    v.iter()
        .map(|(k, x)| match x {
            VariantValue::Bool(true) => format!(" +{k}"),
            VariantValue::Bool(false) => format!(" ~{k}"),
            other => format!(" {k}={other}"),
        })
        .collect()
}

/// Every node in graph order with its edges, one per line.
fn describe(g: &Graph) -> String {
    let mut out = String::new();
    let root = g.node(g.root);
    let _ = writeln!(
        out,
        "{} (arch {}, {} nodes, root {}@{})",
        g.name,
        g.arch,
        g.len(),
        root.name(),
        root.version
    );
    for i in g.topo() {
        let n = g.node(i);
        let origin = match &n.origin {
            Origin::Build => "build".to_owned(),
            Origin::Host(t) => {
                let exes: Vec<&str> = t.executables.iter().map(|(e, _)| e.as_str()).collect();
                format!("host [{}]", exes.join(" "))
            }
        };
        let _ = writeln!(
            out,
            "{}@{}{} [{}] {origin}",
            n.name(),
            n.version,
            variants(&n.variants),
            n.key.context
        );
        if let Some(t) = &n.toolchain {
            let langs: Vec<&str> = t.languages.iter().map(|l| l.as_str()).collect();
            let _ = writeln!(
                out,
                "    toolchain {} ({}@{}{}) arch {} flags [{}] languages [{}]",
                t.name,
                t.compiler,
                t.compiler_version,
                if t.host { ", host" } else { "" },
                t.arch,
                t.arch_flags.join(" "),
                langs.join(" ")
            );
        }
        for (d, e) in g.deps(i) {
            let dn = g.node(d);
            let role = match e.role {
                EdgeRole::Declared => "declared",
                EdgeRole::Compiler => "compiler",
                EdgeRole::Runtime => "runtime",
            };
            let virtuals = if e.virtuals.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.virtuals.join(","))
            };
            let _ = writeln!(
                out,
                "    -> {} [{}] {role} {}{virtuals}",
                dn.name(),
                dn.key.context,
                e.types
            );
        }
    }
    out
}

#[test]
fn every_target_resolves_as_snapshotted() {
    let set = load();
    for t in &set.targets {
        let text = match resolve(&set, &t.name.value) {
            Ok(g) => describe(&g),
            Err(d) => {
                let code = d.code_str();
                let mut ds = forge_recipe::Diagnostics::default();
                ds.push(*d);
                format!("error {code}\n{}", ds.render(false, 100))
            }
        };
        insta::assert_snapshot!(format!("graph-{}", t.name.value), text);
    }
}

#[test]
fn graphs_are_ordered_dependencies_first_with_the_root_last() {
    let set = load();
    for t in &set.targets {
        let Ok(g) = resolve(&set, &t.name.value) else {
            continue;
        };
        let order: Vec<_> = g.topo().collect();
        assert_eq!(
            *order.last().expect("non-empty"),
            g.root,
            "{}",
            t.name.value
        );
        for (pos, i) in order.iter().enumerate() {
            for (d, _) in g.deps(*i) {
                let dpos = order.iter().position(|x| *x == d).expect("dep in graph");
                assert!(
                    dpos < pos,
                    "{}: a dependency comes after its dependent",
                    t.name.value
                );
            }
        }
        // One node per package and context.
        let keys: BTreeSet<_> = g.topo().map(|i| g.node(i).key.clone()).collect();
        assert_eq!(keys.len(), g.len());
    }
}

#[test]
fn resolution_is_deterministic_and_independent_of_file_order() {
    let root = fixture_root();
    let files = forge_recipe::set::kdl_files(&root).expect("fixture is listable");
    let texts: Vec<(String, PathBuf, String)> = files
        .iter()
        .map(|p| {
            let name = p
                .strip_prefix(&root)
                .expect("under root")
                .display()
                .to_string();
            (
                name,
                p.clone(),
                fs_err::read_to_string(p).expect("readable"),
            )
        })
        .collect();
    let forward = RecipeSet::load_texts(&root, texts.clone(), Default::default()).set;
    let mut reversed_texts = texts;
    reversed_texts.reverse();
    let reversed = RecipeSet::load_texts(&root, reversed_texts, Default::default()).set;
    for t in &forward.targets {
        let a = resolve(&forward, &t.name.value).map(|g| describe(&g));
        let again = resolve(&forward, &t.name.value).map(|g| describe(&g));
        let b = resolve(&reversed, &t.name.value).map(|g| describe(&g));
        match (a, again, b) {
            (Ok(a), Ok(again), Ok(b)) => {
                assert_eq!(a, again);
                assert_eq!(a, b);
            }
            (Err(a), Err(again), Err(b)) => {
                assert_eq!(a.message(), again.message());
                assert_eq!(a.message(), b.message());
            }
            _ => panic!("{}: outcome depends on file order", t.name.value),
        }
    }
}

fn node<'g>(g: &'g Graph, package: &str) -> &'g forge_resolve::Node {
    let found = g.find(package);
    assert_eq!(found.len(), 1, "exactly one `{package}` in {}", g.name);
    g.node(found[0])
}

fn provider_of(g: &Graph, virt: &str) -> String {
    let root = g.root;
    g.deps(root)
        .into_iter()
        .find(|(_, e)| e.virtuals.iter().any(|v| v == virt))
        .map(|(d, _)| g.node(d).name().to_owned())
        .unwrap_or_else(|| panic!("the root has no `{virt}` edge"))
}

#[test]
fn providers_come_from_defaults_targets_and_caret_clauses() {
    let set = load();
    let g = resolve(&set, "sched-host").expect("resolves");
    assert_eq!(provider_of(&g, "mpi"), "openmpi", "from `defaults`");
    assert_eq!(provider_of(&g, "zlib-api"), "zlib", "from `defaults`");
    let g = resolve(&set, "sched-generic").expect("resolves");
    assert_eq!(provider_of(&g, "mpi"), "mpich", "the target's `provider`");
    assert_eq!(
        provider_of(&g, "zlib-api"),
        "zlib-ng",
        "the target's `provider`"
    );
    let g = resolve(&set, "sched-mpich").expect("resolves");
    assert_eq!(
        provider_of(&g, "mpi"),
        "mpich",
        "a `^mpich` clause beats `defaults`"
    );
    assert_eq!(
        node(&g, "mpich").variants["device"],
        VariantValue::Single("ch3".into()),
        "the `^` clause's variant reaches the provider"
    );
}

#[test]
fn host_tools_are_used_unless_ruled_out() {
    let set = load();
    let g = resolve(&set, "sched-host").expect("resolves");
    let perl = node(&g, "perl");
    assert_eq!(perl.key.context, Context::Host);
    assert_eq!(perl.version.as_str(), "5.36.0");
    assert!(matches!(perl.origin, Origin::Host(_)));
    // `from-source "m4"`: built although the host has it.
    let g = resolve(&set, "sched-generic").expect("resolves");
    let m4s: Vec<_> = g.find("m4").into_iter().map(|i| g.node(i)).collect();
    assert!(!m4s.is_empty());
    assert!(
        m4s.iter()
            .all(|n| n.origin == Origin::Build && n.version.as_str() == "1.4.20")
    );
    // `^m4@1.4.20:` rules out the host's 1.4.19: m4 is built instead.
    let g = resolve(&set, "datatool").expect("resolves");
    let m4 = node(&g, "m4");
    assert_eq!(m4.origin, Origin::Build);
    assert_eq!(m4.version.as_str(), "1.4.20");
    // The host's cmake satisfies `cmake@3.20:`.
    let cmake = node(&g, "cmake");
    assert_eq!(cmake.key.context, Context::Host);
}

#[test]
fn a_host_tool_rejected_for_a_revised_choice_is_taken_back() {
    let set = load();
    let g = resolve(&set, "tokens-revised").expect("resolves");
    assert_eq!(node(&g, "tokens").version.as_str(), "1.17");
    let m4 = node(&g, "m4");
    assert_eq!(
        m4.key.context,
        Context::Host,
        "the stale rejection is undone"
    );
    assert!(matches!(m4.origin, Origin::Host(_)));
    let g = resolve(&set, "tokens-old").expect("resolves");
    assert_eq!(node(&g, "tokens").version.as_str(), "1.15");
    let m4 = node(&g, "m4");
    assert_eq!(m4.origin, Origin::Build, "still ruled out by tokens 1.15");
    assert_eq!(m4.version.as_str(), "1.4.20");
}

#[test]
fn the_requests_pins_hold_from_the_first_pass() {
    let set = load();
    let g = resolve(&set, "tokens-pinned").unwrap_or_else(|d| panic!("resolves: {d:?}"));
    assert_eq!(node(&g, "tokens").version.as_str(), "1.17");
    assert_eq!(node(&g, "tokgen").version.as_str(), "2.0");
    assert_eq!(node(&g, "m4").key.context, Context::Host);
}

#[test]
fn versions_variants_and_conditions_follow_the_request() {
    let set = load();
    let g = resolve(&set, "sched-host").expect("resolves");
    let sched = g.node(g.root);
    assert_eq!(sched.version.as_str(), "25.11.2", "the newest 25.11.x");
    assert_eq!(sched.variants["pmix"], VariantValue::Bool(true));
    assert_eq!(
        sched.variants["plugins"],
        VariantValue::Multi(vec!["cgroup".into()]),
        "default of a multi-valued variant"
    );
    assert_eq!(
        node(&g, "pmix").variants["debug"],
        VariantValue::Bool(false)
    );
    assert_eq!(
        node(&g, "hwloc").version.as_str(),
        "2.11.2",
        "deprecated 1.11.13 is never picked"
    );
    assert!(g.find("nvml").is_empty(), "`+nvml` is off");
    let g = resolve(&set, "sched-mpich").expect("resolves");
    assert!(
        g.find("pmix").is_empty(),
        "`~pmix` drops the conditional dependency"
    );
    let g = resolve(&set, "sched-generic").expect("resolves");
    assert_eq!(
        g.node(g.root).variants["plugins"],
        VariantValue::Multi(vec!["cgroup".into(), "lua".into()])
    );
    assert_eq!(
        g.node(g.root).variants["sysconfdir"],
        VariantValue::Single("/etc/sched-generic".into())
    );
    assert_eq!(g.arch, "x86-64", "the target's arch overrides `defaults`");
}

#[test]
fn built_toolchains_are_bootstrapped_and_contexts_kept_apart() {
    let set = load();
    let g = resolve(&set, "sched-25.11-gcc13").expect("resolves");
    let root = g.node(g.root);
    let tc = root.toolchain.as_ref().expect("compiled");
    assert_eq!(
        (tc.name.as_str(), tc.compiler_version.as_str()),
        ("gcc", "13.4.0")
    );
    assert_eq!(tc.arch_flags, ["-march=x86-64-v3", "-mtune=generic"]);
    // The compiler itself is built by the host toolchain, and gmp exists once per context.
    let built: Vec<_> = g
        .find("gcc")
        .into_iter()
        .map(|i| g.node(i))
        .filter(|n| n.origin == Origin::Build)
        .collect();
    let [gcc] = built.as_slice() else {
        panic!("one built gcc, found {}", built.len());
    };
    assert_eq!(gcc.version.as_str(), "13.4.0");
    assert_eq!(gcc.key.context.to_string(), "host-gcc@12.2.0");
    let runtimes: BTreeSet<String> = g
        .find("gcc-runtime")
        .into_iter()
        .map(|i| g.node(i).version.to_string())
        .collect();
    assert_eq!(runtimes, BTreeSet::from(["12.2.0".into(), "13.4.0".into()]));
    // gcc 10 gets the spelled-out flags of the target table and the older mpfr.
    let g = resolve(&set, "sched-25.11-gcc10").expect("resolves");
    let tc = g.node(g.root).toolchain.clone().expect("compiled");
    assert_eq!(
        tc.arch_flags,
        [
            "-march=x86-64",
            "-mtune=generic",
            "-mavx2",
            "-mfma",
            "-mbmi2"
        ]
    );
    assert_eq!(node(&g, "mpfr").version.as_str(), "3.1.6");
    // Nodes that compile nothing get no toolchain.
    let g = resolve(&set, "site-config").expect("resolves");
    assert_eq!(g.len(), 1);
    assert!(g.node(g.root).toolchain.is_none());
}

#[test]
fn declared_conflicts_stop_resolution_with_the_recipes_message() {
    let set = load();
    for name in ["sched-25.11-gcc10-gpu", "sched-24.11-gcc10-gpu"] {
        let err = resolve(&set, name).expect_err("conflict");
        assert_eq!(err.code_str(), "resolve::conflict");
        assert!(
            err.message()
                .contains("the NVML plugin needs gcc 11 or newer")
        );
        let loc = err.location().expect("points at the recipe");
        assert_eq!(loc.file, "recipes/sched.kdl");
    }
    assert!(resolve(&set, "sched-25.11-gcc13-gpu").is_ok());
}

#[test]
fn compiler_edges_carry_languages_and_runtime_edges_link() {
    let set = load();
    let g = resolve(&set, "lapack").expect("resolves");
    let root = g.root;
    let deps = g.deps(root);
    let compiler = deps
        .iter()
        .find(|(_, e)| e.role == EdgeRole::Compiler)
        .expect("compiler edge");
    assert_eq!(compiler.1.virtuals, ["c", "fortran"]);
    assert_eq!(compiler.1.types.to_string(), "build");
    let runtime = deps
        .iter()
        .find(|(_, e)| e.role == EdgeRole::Runtime)
        .expect("runtime edge");
    assert_eq!(runtime.1.types.to_string(), "link");
    assert_eq!(g.node(runtime.0).version.as_str(), "13.4.0");
}

#[test]
fn a_built_toolchain_builds_its_compiler_even_when_the_host_has_that_version() {
    let set = load();
    let host = FixedHost::new([
        ("gcc", "13.4.0"),
        ("m4", "1.4.19"),
        ("cmake", "3.25.1"),
        ("perl", "5.36.0"),
    ]);
    let t = set.target("sched-25.11-gcc13").expect("target exists");
    let g = Resolver::new(&set, &host)
        .resolve(&Request::for_target(&set, t))
        .expect("resolves");
    let (compiler, _) = g
        .deps(g.root)
        .into_iter()
        .find(|(_, e)| e.role == EdgeRole::Compiler)
        .expect("compiler edge");
    let compiler = g.node(compiler);
    assert_eq!(
        compiler.origin,
        Origin::Build,
        "toolchain `gcc` is built by forge"
    );
    assert_eq!(compiler.version.as_str(), "13.4.0");
    assert_eq!(compiler.key.context.to_string(), "host-gcc@13.4.0");
}

#[test]
fn require_reaches_every_context_where_a_caret_clause_does_not() {
    // The fixture tree with one more target: gmp is pinned by `^` in one, by `require` in
    // the other. The gmp that gcc 13.4.0 is built with lives in the bootstrap context.
    let mut files = support::texts(&fixture_root());
    let targets = files
        .iter_mut()
        .find(|(name, _, _)| name == "recipes/targets.kdl")
        .expect("targets.kdl");
    targets.2.push_str(
        r#"
target "sched-caret" {
    spec "sched@25.11 %gcc@13.4.0 ^gmp@6.2.1"
}
target "sched-require" {
    spec "sched@25.11 %gcc@13.4.0"
    require "gmp@6.2.1" "mpfr@4.2.1"
}
"#,
    );
    let set = support::load_with(files);
    let gmps = |target: &str| -> Vec<String> {
        let g = resolve(&set, target).expect("resolves");
        let mut v: Vec<String> = g
            .find("gmp")
            .into_iter()
            .map(|i| {
                let n = g.node(i);
                format!("{}@{}", n.key.context, n.version)
            })
            .collect();
        v.sort();
        v
    };
    // `^gmp` constrains the root's context only: the compiler's gmp keeps the newest version.
    assert_eq!(gmps("sched-caret"), ["host-gcc@12.2.0@6.3.0"]);
    assert_eq!(gmps("sched-require"), ["host-gcc@12.2.0@6.2.1"]);
    // A requirement no version meets is an error that names it.
    let mut files = support::texts(&fixture_root());
    let t = files
        .iter_mut()
        .find(|(name, _, _)| name == "recipes/targets.kdl")
        .expect("targets.kdl");
    t.2.push_str("target \"bad\" {\n    spec \"sched@25.11\"\n    require \"gmp@9\"\n}\n");
    let loaded = RecipeSet::load_texts(&fixture_root(), files, Default::default());
    let text = loaded.diags.render(false, 100);
    assert!(text.contains("`gmp@9` matches no version"), "{text}");
}

#[test]
fn a_preferred_version_wins_over_newer_ones_unless_ruled_out() {
    let with = |targets: &str| {
        let mut files = support::texts(&fixture_root());
        for (name, _, text) in &mut files {
            if name == "recipes/hwloc.kdl" {
                *text = text.replacen(
                    "version \"2.10.0\" sha256=\"0ce13d1480082b24284414da7c8fa523eeed3efe85106f3e20b685f154be85a4\"",
                    "version \"2.10.0\" sha256=\"0ce13d1480082b24284414da7c8fa523eeed3efe85106f3e20b685f154be85a4\" preferred=#true",
                    1,
                );
                assert!(text.contains("preferred=#true"));
            }
            if name == "recipes/targets.kdl" {
                text.push_str(targets);
            }
        }
        support::load_with(files)
    };
    let set = with(
        "target \"newest\" {\n    spec \"sched@25.11 ^hwloc@=2.11.2\"\n}\ntarget \"ruled-out\" {\n    spec \"sched@25.11 ^hwloc@2.11:\"\n}\n",
    );
    let hwloc = |target: &str| -> String {
        let g = resolve(&set, target).expect("resolves");
        node(&g, "hwloc").version.to_string()
    };
    // The preferred 2.10.0, though 2.11.2 is newer; 2.11.2 when asked for or when 2.10 is ruled out.
    assert_eq!(hwloc("sched-host"), "2.10.0");
    assert_eq!(hwloc("newest"), "2.11.2");
    assert_eq!(hwloc("ruled-out"), "2.11.2");
}
