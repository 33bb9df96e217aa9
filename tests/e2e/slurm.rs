//! The real thing: Slurm 22.05.8 and its runtime closure, built from upstream sources (taken
//! byte for byte from Debian's source archive) with the host's gcc for x86-64-v3, then started
//! on 127.0.0.1 and used to run a job.
//!
//! Also the toolchain's libraries: mpc 1.3.1 and mpfr 4.2.0 (upstream's tarballs, which Debian
//! keeps byte for byte) on Debian's repack of gmp 6.2.1, declared as such.
//!
//! Needs the Debian archive reachable through apt (as CI has) and about 10 minutes on two cores.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::cluster::{Cluster, compiled_for_v3, store_path};
use common::*;

/// Debian source packages whose `.orig` tarballs are the upstream artifacts the recipes pin.
const DEBIAN_SOURCES: &[&str] = &[
    "slurm-wlm@bookworm",
    "munge@trixie",
    "openssl@bookworm",
    "bzip2@bookworm",
    "lz4@bookworm",
    "http-parser@bookworm",
    "json-c@bookworm",
    "libyaml@bookworm",
    "libevent@bookworm",
    "gmp@bookworm",
    "mpfr4@bookworm",
    "mpclib3@bookworm",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The source mirror, filled from Debian's archive once and kept with the build's other
/// temporary files.
fn mirror() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debian-mirror");
    // The marker holds the list it was filled for, so adding a source refills the mirror.
    let marker = dir.join(".complete");
    let want = DEBIAN_SOURCES.join("\n");
    if fs_err::read_to_string(&marker).ok().as_deref() != Some(want.as_str()) {
        let status = Command::new(repo().join("tests/debian-sources.sh"))
            .arg(&dir)
            .args(DEBIAN_SOURCES)
            .status()
            .expect("runs the mirror script");
        assert!(
            status.success(),
            "filling the source mirror from Debian's archive failed"
        );
        fs_err::write(&marker, &want).unwrap();
    }
    dir
}

/// `forge plan SPEC --json` over the repository's recipes.
fn plan_json(w: &World, spec: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&w.run_in(&repo(), &["plan", spec, "--json"]))).unwrap()
}

#[test]
fn slurm_22_05_from_upstream_sources_builds_runs_and_schedules_a_job() {
    let mirror = mirror();
    let w = World::new();
    let realize = |extra: &[&str]| {
        let mut c = w.forge();
        c.arg("--recipes")
            .arg(repo())
            .arg("--mirror")
            .arg(format!("file://{}", mirror.display()));
        c.args(["realize", "slurm-22.05-host", "--jobs", "2", "--cores", "2"])
            .args(extra);
        c.output().unwrap()
    };
    let started = Instant::now();
    let o = realize(&[]);
    let stdout = ok(&o);
    // Shown with `--nocapture`: how long the cold build took.
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "slurm-22.05-host realized in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    let slurm = PathBuf::from(stdout.lines().last().unwrap().trim());
    let plan = plan_json(&w, "slurm-22.05-host");
    let path_of = |name: &str| store_path(&plan, name);
    let munge = path_of("munge");

    // The binaries run from the store with an empty environment: RUNPATH finds every library.
    for (bin, arg, want) in [
        (slurm.join("sbin/slurmd"), "-V", "slurm 22.05.8"),
        (munge.join("sbin/munged"), "--version", "munge-0.5.16"),
    ] {
        let o = Command::new(&bin).arg(arg).env_clear().output().unwrap();
        let out = text(&o.stdout) + &text(&o.stderr);
        assert!(
            o.status.success() && out.contains(want),
            "{} {arg}: {out}",
            bin.display()
        );
    }
    // Slurm 22.05's clients read their configuration before their options, so `sinfo
    // --version` needs one (it is run again below, with the test cluster's); with none it fails
    // for that reason, not for a library.
    let o = Command::new(slurm.join("bin/sinfo"))
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        !out.contains("error while loading shared libraries"),
        "{out}"
    );
    // RUNPATH points into the store.
    let slurmctld = runpath(&slurm.join("sbin/slurmctld"));
    assert!(
        slurmctld.contains(&w.store().display().to_string()),
        "{slurmctld}"
    );
    // Every compile and link of every built node got the x86-64-v3 flags.
    let mut compiles = 0;
    for n in plan["nodes"].as_array().unwrap() {
        if n["origin"] != "build" || n["toolchain"].is_null() {
            continue;
        }
        compiles += compiled_for_v3(w.forge(), Path::new(n["store_path"].as_str().unwrap()));
    }
    assert!(
        compiles > 500,
        "only {compiles} compiler calls were recorded"
    );

    // Start munged, slurmctld and slurmd on 127.0.0.1 and run a job through them.
    let cluster = Cluster::start(&w.path().join("cluster"), &slurm, &munge, "");
    let version = cluster.client("sinfo", &["--version"]);
    assert_eq!(
        text(&version.stdout).trim(),
        "slurm 22.05.8",
        "{}",
        text(&version.stderr)
    );
    cluster.wait_idle();
    let job = cluster.client("srun", &["-n", "2", "hostname"]);
    assert!(
        job.status.success(),
        "srun failed: {}\n{}",
        text(&job.stderr),
        cluster.ctld_log()
    );
    let lines: Vec<String> = text(&job.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.trim() == cluster.host), "{lines:?}");
    drop(cluster);

    // A second realize builds nothing.
    let again = realize(&["--json"]);
    ok(&again);
    let ev = events(&again.stdout);
    assert_eq!(ev[0]["to_build"], 0, "{ev:?}");
    // The store is intact.
    ok(&w
        .forge()
        .args(["verify", "--check-contents"])
        .output()
        .unwrap());

    // The graph substituted into a fresh store from a signed cache: nothing is built (there is
    // no source mirror: a build would fail to fetch), and its munged and slurmd run a job.
    let keys = w.path().join("keys");
    let cache = w.path().join("slurm-cache");
    let with_keys = |c: &mut Command| {
        c.env("FORGE_KEYS", &keys).arg("--recipes").arg(repo());
    };
    let mut c = w.forge();
    with_keys(&mut c);
    ok(&c
        .args(["key", "generate", "CI <ci@example.org>"])
        .output()
        .unwrap());
    let mut c = w.forge();
    with_keys(&mut c);
    ok(&c
        .args(["export", "slurm-22.05-host", "--sign", "--to"])
        .arg(&cache)
        .output()
        .unwrap());
    let fresh = w.path().join("store-substituted");
    let mut c = w.forge();
    with_keys(&mut c);
    let o = c
        .env("FORGE_STORE", &fresh)
        .args(["realize", "slurm-22.05-host", "--json", "--substituter"])
        .arg(&cache)
        .output()
        .unwrap();
    ok(&o);
    let ev = events(&o.stdout);
    let built: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "finished" && e["how"] == "built")
        .collect();
    assert!(built.is_empty(), "built instead of substituted: {built:?}");
    let substituted = ev.iter().filter(|e| e["event"] == "substituted").count();
    assert!(
        substituted >= 9,
        "{substituted} substituted: {}",
        text(&o.stderr)
    );
    let name_of = |p: &Path| p.file_name().unwrap().to_owned();
    let in_fresh = |p: &Path| {
        let paths = fs_err::read_dir(&fresh)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("__forge_padding")
            })
            .unwrap_or_else(|| fresh.clone());
        paths.join(name_of(p))
    };
    let (slurm_b, munge_b) = (in_fresh(&slurm), in_fresh(&munge));
    assert!(runpath(&slurm_b.join("sbin/slurmctld")).contains(&fresh.display().to_string()));
    let cluster = Cluster::start(&w.path().join("cluster-b"), &slurm_b, &munge_b, "");
    cluster.wait_idle();
    let job = cluster.client("srun", &["-n", "2", "hostname"]);
    assert!(
        job.status.success(),
        "srun from the substituted store failed: {}\n{}",
        text(&job.stderr),
        cluster.ctld_log()
    );
    assert_eq!(text(&job.stdout).lines().count(), 2);
    drop(cluster);

    // libevent 2.1.12 (Slurm without PMIx does not link it) is the target's extra root: built
    // in the same realize, sharing its openssl.
    let libevent = path_of("libevent");
    assert!(
        fs_err::read_dir(libevent.join("lib")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("libevent_openssl-2.1.so")),
        "{}",
        libevent.display()
    );
    assert!(
        runpath(&libevent.join("lib/libevent_openssl.so"))
            .contains(&path_of("openssl").display().to_string())
    );

    // Every built node of the graph rebuilds bit for bit (the reproducibility issue's goal is
    // 95 %; with 9 built nodes that means all of them).
    check_reproducible(&w, &mirror, "slurm-22.05-host", 1.0);
}

/// Runs `forge check TARGET` and asserts that at least `share` of its nodes are reproducible,
/// showing the report's differences otherwise.
fn check_reproducible(w: &World, mirror: &Path, target: &str, share: f64) {
    let report = w.path().join("check-report.json");
    let o = w
        .forge()
        .arg("--recipes")
        .arg(repo())
        .arg("--mirror")
        .arg(format!("file://{}", mirror.display()))
        .args(["check", target, "--cores", "2", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(
        &fs_err::read(&report)
            .unwrap_or_else(|_| panic!("forge check wrote no report: {}", text(&o.stderr))),
    )
    .unwrap();
    let (nodes, same) = (
        r["summary"]["nodes"].as_u64().unwrap(),
        r["summary"]["reproducible"].as_u64().unwrap(),
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("forge check {target}: {same}/{nodes} nodes bit-identical");
    }
    assert!(nodes > 0, "{r}");
    assert!(
        same as f64 >= share * nodes as f64,
        "{same}/{nodes} reproducible:\n{}\n{}",
        text(&o.stdout),
        serde_json::to_string_pretty(&r["nodes"]).unwrap()
    );
    assert_eq!(o.status.code(), Some(if same == nodes { 0 } else { 1 }));
}

/// The same as `spec`'s realize, with the repository's recipes and the Debian mirror.
fn realize_spec(w: &World, mirror: &Path, spec: &str) -> PathBuf {
    let mut c = w.forge();
    c.arg("--recipes")
        .arg(repo())
        .arg("--mirror")
        .arg(format!("file://{}", mirror.display()))
        .args(["realize", spec, "--jobs", "2", "--cores", "2"]);
    PathBuf::from(ok(&c.output().unwrap()).lines().last().unwrap().trim())
}

#[test]
fn toolchain_libraries_mpc_and_mpfr_build_on_the_gmp_repack_and_work() {
    let mirror = mirror();
    let w = World::new();
    let spec = "mpc@1.3.1 %host-gcc target=x86-64-v3 ^mpfr@4.2.0 ^gmp@6.2.1-dfsg1";
    let mpc = realize_spec(&w, &mirror, spec);
    let plan = plan_json(&w, spec);
    let path_of = |name: &str| store_path(&plan, name);
    let (mpfr, gmp) = (path_of("mpfr"), path_of("gmp"));
    assert_eq!(mpc, path_of("mpc"));
    assert!(
        gmp.to_string_lossy().ends_with("-gmp-6.2.1-dfsg1"),
        "{}",
        gmp.display()
    );

    // libmpc finds mpfr and gmp in the store by its RUNPATH.
    let runpath = runpath(&mpc.join("lib/libmpc.so"));
    for dep in [&mpfr, &gmp] {
        assert!(
            runpath.contains(&format!("{}/lib", dep.display())),
            "{runpath} names {}",
            dep.display()
        );
    }

    // ... and the dynamic loader follows it there, not to the host's copies.
    let ldd = text(
        &Command::new("/usr/bin/ldd")
            .arg(mpc.join("lib/libmpc.so"))
            .env_clear()
            .output()
            .unwrap()
            .stdout,
    );
    for (lib, dep) in [("libmpfr.so.6", &mpfr), ("libgmp.so.10", &gmp)] {
        let line = ldd
            .lines()
            .find(|l| l.contains(lib))
            .unwrap_or_else(|| panic!("{lib} in\n{ldd}"));
        assert!(
            line.contains(&dep.display().to_string()),
            "{line} resolves into {}",
            dep.display()
        );
    }

    // A program computing with all three runs with an empty environment and prints the right
    // value: exp(i*pi) = -1.
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("t.c"),
        r#"#include <stdio.h>
#include <mpc.h>
int main(void) {
    mpc_t z;
    mpc_init2(z, 128);
    mpc_set_ui(z, 0, MPC_RNDNN);
    mpfr_const_pi(mpc_imagref(z), MPFR_RNDN);
    mpc_exp(z, z, MPC_RNDNN);
    mpfr_abs(mpc_imagref(z), mpc_imagref(z), MPFR_RNDN);
    mpfr_printf("%.6Rf %s %s %s\n", mpc_realref(z),
                mpfr_cmp_d(mpc_imagref(z), 1e-30) < 0 ? "real" : "complex",
                mpc_get_version(), gmp_version);
    return 0;
}
"#,
    )
    .unwrap();
    let mut cc = Command::new("gcc");
    cc.current_dir(dir.path()).args(["-O2", "t.c", "-o", "t"]);
    for p in [&mpc, &mpfr, &gmp] {
        cc.arg(format!("-I{}/include", p.display()))
            .arg(format!("-L{}/lib", p.display()))
            .arg(format!("-Wl,-rpath,{}/lib", p.display()));
    }
    let o = cc.args(["-lmpc", "-lmpfr", "-lgmp"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = Command::new(dir.path().join("t"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        text(&o.stdout).trim(),
        "-1.000000 real 1.3.1 6.2.1",
        "{}",
        text(&o.stderr)
    );
    check_reproducible(&w, &mirror, spec, 1.0);
}
