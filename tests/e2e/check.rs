//! `forge check` end to end: real rebuilds compared with the store, planted non-determinism
//! detected and classified, no false alarms, the exit codes, `--keep` and the garbage
//! collector, and byte-identical exports.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The classifications of a node's differences in a JSON report, by path.
fn classes(report: &serde_json::Value, node: &str) -> BTreeMap<String, String> {
    let n = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str().unwrap().starts_with(&format!("{node}-")))
        .unwrap_or_else(|| panic!("no node {node} in {report:#}"));
    n["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["classification"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn report_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n--- stdout\n{}\n--- stderr\n{}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

#[test]
fn the_example_is_reproducible_in_two_consecutive_runs() {
    let w = World::new();
    ok(&w.forge().args(["realize", "--example"]).output().unwrap());
    let first = w
        .forge()
        .args(["check", "--example", "--json"])
        .output()
        .unwrap();
    let r1 = report_of(&first);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(r1["schema"], "forge-check-report/1");
    assert_eq!(r1["summary"]["nodes"], 3, "{r1:#}");
    assert_eq!(r1["summary"]["reproducible"], 3, "{r1:#}");
    for n in r1["nodes"].as_array().unwrap() {
        assert_eq!(n["stored_hash"], n["rebuilt_hash"], "{n:#}");
        assert!(n["stored_files"].as_u64().unwrap() > 0);
    }
    // A second run (another time, another scratch directory) agrees, and so does its report,
    // byte for byte.
    let second = w
        .forge()
        .args(["check", "--example", "--json", "--rounds", "2"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let r2 = report_of(&second);
    for n in r2["nodes"].as_array().unwrap() {
        assert_eq!(n["rounds"], 2);
    }
    let strip_rounds = |r: &serde_json::Value| {
        let mut r = r.clone();
        for n in r["nodes"].as_array_mut().unwrap() {
            n["rounds"] = 0.into();
        }
        r
    };
    assert_eq!(strip_rounds(&r1), strip_rounds(&r2));
}

#[test]
fn keep_leaves_the_rebuild_beside_the_path_until_gc_removes_both() {
    let w = World::new();
    let out = ok(&w
        .forge()
        .args(["realize", "--example", "--no-root"])
        .output()
        .unwrap());
    let hello = std::path::PathBuf::from(out.lines().last().unwrap().trim());
    let log_dir = w.path().join("check-logs");
    let report_file = w.path().join("reports/check.json");
    let o = w
        .forge()
        .args(["check", "--example", "--keep", "--node", "hello"])
        .arg("--log-dir")
        .arg(&log_dir)
        .arg("--report")
        .arg(&report_file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Only the named node was rebuilt; its log and the report were written.
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(report["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(report["nodes"][0]["name"], "hello-1.0");
    let log = fs_err::read_to_string(log_dir.join("hello-1.0.check.log")).unwrap();
    assert!(log.contains("forge: built in"), "{log}");
    // The kept rebuild is the same program, at `<path>.check`.
    let kept = std::path::PathBuf::from(format!("{}.check", hello.display()));
    assert_eq!(
        fs_err::read(kept.join("bin/hello")).unwrap(),
        fs_err::read(hello.join("bin/hello")).unwrap()
    );
    // Nothing else was left in the store: no temporary output, no scratch directory.
    let paths_dir = hello.parent().unwrap();
    let mut entries: Vec<String> = fs_err::read_dir(paths_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".drv"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 5, "{entries:?}");
    let build_dir = w.store().join(".forge/build");
    let scratch: Vec<_> = fs_err::read_dir(&build_dir)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(scratch.is_empty(), "{scratch:?}");
    // `forge verify` does not take the kept rebuild for a leftover …
    let v = w.forge().args(["verify"]).output().unwrap();
    assert!(v.status.success());
    assert!(!text(&v.stderr).contains(".check"), "{}", text(&v.stderr));
    // … and the garbage collector removes it with its path (no roots: everything goes).
    let gc = ok(&w.forge().args(["gc", "--json"]).output().unwrap());
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert!(
        gc["leftovers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().ends_with("-hello-1.0.check")),
        "{gc:#}"
    );
    assert!(!kept.exists());
    assert!(!hello.exists());
}

/// Packages whose builds plant one kind of non-determinism each, and two that are
/// reproducible although they embed their own output path and read the clock through
/// `SOURCE_DATE_EPOCH`.
fn planted(w: &World) {
    let twenty: Vec<String> = (1..=20).map(|i| format!("member{i:02}")).collect();
    let members = twenty.join(" ");
    write_tree(
        &w.recipes(),
        &[
            Pkg {
                name: "clock",
                deps: &[],
                script: r#"mkdir -p "$out/share"; date -u > "$out/share/built-at"; echo fixed > "$out/share/other""#.into(),
            },
            Pkg {
                name: "whereami",
                deps: &[],
                // A fresh temporary directory of the build: another name in each build.
                script: r#"mkdir -p "$out/share"; printf 'built in %s\n' "$(mktemp -d)" > "$out/share/where""#.into(),
            },
            Pkg {
                name: "shuffled",
                deps: &[],
                script: format!(
                    r#"mkdir -p "$out/share"; for m in $(shuf -e {members}); do echo "$m"; done > "$out/share/list""#
                ),
            },
            Pkg {
                name: "archive",
                deps: &[],
                script: format!(
                    r#"mkdir -p "$out/lib" objs; for m in {members}; do echo "object $m" > objs/$m.o; done; cd objs; ar rcD "$out/lib/libmembers.a" $(shuf -e {members} | sed 's/$/.o/')"#
                ),
            },
            Pkg {
                name: "steady",
                deps: &[],
                // The scratch directory's own path is the same in a check's rebuild.
                script: r#"mkdir -p "$out/share"; echo "$out" > "$out/share/self"; echo "$PWD" > "$out/share/pwd"; date -u -d "@$SOURCE_DATE_EPOCH" > "$out/share/date"; ln -s "$out/share/self" "$out/share/link""#.into(),
            },
        ],
        &[
            ("clock", "clock"),
            ("whereami", "whereami"),
            ("shuffled", "shuffled"),
            ("archive", "archive"),
            ("steady", "steady"),
        ],
    );
    for t in ["clock", "whereami", "shuffled", "archive", "steady"] {
        ok(&w.run(&["realize", t]));
    }
}

#[test]
fn planted_non_determinism_is_detected_and_classified() {
    let w = World::new();
    planted(&w);
    let expect = [
        ("clock", "share/built-at", "embedded-timestamp"),
        ("whereami", "share/where", "embedded-build-path"),
        ("shuffled", "share/list", "file-order"),
        ("archive", "lib/libmembers.a", "file-order"),
    ];
    for (target, path, class) in expect {
        let o = w.run(&["check", target, "--json"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{target}: exit 1 for a difference\n{}",
            text(&o.stderr)
        );
        let r = report_of(&o);
        assert_eq!(r["summary"]["not_reproducible"], 1, "{r:#}");
        let c = classes(&r, target);
        assert_eq!(c.len(), 1, "{target}: only {path} differs: {c:?}");
        assert_eq!(
            c.get(path).map(String::as_str),
            Some(class),
            "{target}: {c:?}"
        );
        // The text report names the file and the cause too.
        let err = text(&o.stderr);
        assert!(err.contains(path) && err.contains(class), "{err}");
        let d = &r["nodes"][0]["differences"][0];
        assert!(
            d["offset"].is_u64() || !d["members"].as_array().unwrap().is_empty(),
            "{d:#}"
        );
    }
    // The own output path, the build directory and SOURCE_DATE_EPOCH are no false alarms, two
    // runs in a row.
    for _ in 0..2 {
        let o = w.run(&["check", "steady", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(report_of(&o)["summary"]["reproducible"], 1);
    }
}

#[test]
fn failures_and_missing_paths_exit_2() {
    let w = World::new();
    let marker = w.path().join("fail-now");
    write_tree(
        &w.recipes(),
        &[Pkg {
            name: "flaky",
            deps: &[],
            script: format!(
                r#"if [ -e '{}' ]; then echo 'the second build breaks' >&2; exit 3; fi; mkdir -p "$out"; echo ok > "$out/ok""#,
                marker.display()
            ),
        }],
        &[("flaky", "flaky")],
    );
    // Not realized yet: nothing to compare with.
    let o = w.run(&["check", "flaky"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("not in the store") && err.contains("forge realize flaky"),
        "{err}"
    );
    ok(&w.run(&["realize", "flaky"]));
    fs_err::write(&marker, "").unwrap();
    let o = w.run(&["check", "flaky", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("the rebuild failed") && err.contains("the second build breaks"),
        "{err}"
    );
    // The stored path is untouched and still valid, and no temporary output is left.
    let v = w
        .forge()
        .args(["verify", "--check-contents"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert!(text(&v.stderr).contains("all good"), "{}", text(&v.stderr));
    assert!(!text(&v.stderr).contains("warning"), "{}", text(&v.stderr));
    // A node that is not in the graph is an error too.
    let o = w.run(&["check", "flaky", "--node", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn two_exports_are_byte_identical() {
    let w = World::new();
    ok(&w.forge().args(["realize", "--example"]).output().unwrap());
    let o = w
        .forge()
        .args(["check", "--example", "--export", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = report_of(&o);
    let n = &r["nodes"][0];
    assert_eq!(n["name"], "buildcache");
    assert_eq!(n["reproducible"], true);
    // Tarballs, spec files, manifests, the index, the key directory and the package repo.
    assert!(n["stored_files"].as_u64().unwrap() >= 10, "{n:#}");
    assert!(text(&o.stderr).contains("byte-identical"));
    // Nothing is left in the store's temporary directory.
    let tmp: Vec<_> = fs_err::read_dir(w.store().join(".forge/tmp"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn the_ci_script_realizes_checks_and_archives() {
    let w = World::new();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ci/check.sh");
    let artifacts = w.path().join("artifacts");
    let run = |target: &str| {
        let c = w.forge();
        let program = c.get_program().to_owned();
        let mut sh = std::process::Command::new("bash");
        sh.arg(&script).arg(target).arg(&artifacts);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.env("FORGE", program)
            .env("FORGE_ARGS", "--example")
            .current_dir(w.path());
        sh.output().unwrap()
    };
    let o = run("hello");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(artifacts.join("check-report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["reproducible"], 3);
    let export: serde_json::Value = serde_json::from_str(
        &fs_err::read_to_string(artifacts.join("export-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(export["nodes"][0]["reproducible"], true);
    let summary = fs_err::read_to_string(artifacts.join("summary.txt")).unwrap();
    assert_eq!(summary, "realize 0\ncheck 0\nexport 0\n");
    // Each rebuild's log, and the stored build's log beside it.
    for node in ["hello-1.0", "libgreet-1.0", "gcc-runtime-12.2.0"] {
        let rebuilt =
            fs_err::read_to_string(artifacts.join(format!("logs/{node}.check.log"))).unwrap();
        let stored = fs_err::read_to_string(artifacts.join(format!("logs/{node}.log"))).unwrap();
        assert!(
            rebuilt.contains("forge: built in") && stored.contains("forge: built in"),
            "{node}"
        );
    }
    assert!(
        fs_err::read_to_string(artifacts.join("check-report.txt"))
            .unwrap()
            .contains("hello-1.0")
    );
    // A target that cannot be realized: exit 2, and the summary says where it stopped.
    let o = run("nosuch");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        fs_err::read_to_string(artifacts.join("summary.txt"))
            .unwrap()
            .starts_with("realize ")
    );
}

/// An output that names its build directory is flagged when it is committed (it will differ in
/// any other store); one that names only its own output path is not.
#[test]
fn outputs_that_embed_the_build_directory_get_a_note() {
    let w = World::new();
    let leak = r#"mkdir -p "$out/share"; printf 'built in %s\n' "$PWD" > "$out/share/where"; echo ok > "$out/share/fine""#;
    write_tree(
        &w.recipes(),
        &[
            Pkg {
                name: "whereami",
                deps: &[],
                script: leak.into(),
            },
            Pkg {
                name: "whereami-too",
                deps: &[],
                script: leak.into(),
            },
            Pkg {
                name: "steady",
                deps: &[],
                script: r#"mkdir -p "$out/share"; echo "$out" > "$out/share/self""#.into(),
            },
        ],
        &[
            ("whereami", "whereami"),
            ("whereami-too", "whereami-too"),
            ("steady", "steady"),
        ],
    );
    let notes = |target: &str| -> Vec<String> {
        let o = w.run(&["realize", target, "--json"]);
        ok(&o);
        events(&o.stdout)
            .into_iter()
            .filter(|e| e["event"] == "note")
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let leaky = notes("whereami");
    assert_eq!(leaky.len(), 1, "{leaky:?}");
    assert!(
        leaky[0].starts_with("share/where embeds the build directory"),
        "{leaky:?}"
    );
    assert_eq!(notes("steady"), Vec::<String>::new());
    // On a terminal the warning names the node.
    let o = w.run(&["realize", "whereami-too"]);
    ok(&o);
    let err = text(&o.stderr);
    assert!(
        err.contains("whereami-too-1.0: share/where embeds the build directory"),
        "{err}"
    );
}

/// SIGTERM and SIGHUP stop a `forge check` like Ctrl-C: the rebuild is killed, its scratch
/// directory removed, the store path it checks untouched, and the exit status 128 + the signal.
#[test]
fn sigterm_and_sighup_stop_a_check_cleanly() {
    for (signal, number) in [("TERM", 15), ("HUP", 1)] {
        let w = World::new();
        // A sleep no other process on the machine uses, only in the check's rebuild (which
        // alone sees a second `slow-1.0` directory in the paths dir: its temporary output).
        let marker = format!("0.{}{number}", std::process::id());
        let pkgs = [Pkg {
            name: "slow",
            deps: &[],
            script: format!(
                "mkdir -p \"$out\"; echo same > \"$out/f\"; \
                 n=$(ls \"$(dirname \"$out\")\" | grep -c -- '-slow-1.0$'); \
                 if [ \"$n\" -ge 2 ]; then sleep 600{marker}; fi"
            ),
        }];
        write_tree(&w.recipes(), &pkgs, &[("slow", "slow")]);
        let o = w.run(&["realize", "slow"]);
        let out = PathBuf::from(ok(&o).lines().last().unwrap().trim());
        let before = fs_err::read(out.join("f")).unwrap();
        let child = w
            .forge()
            .arg("--recipes")
            .arg(w.recipes())
            .args(["check", "slow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let long = format!("600{marker}");
        wait_for(|| process_running(&long), "the check's rebuild to sleep");
        assert_eq!(scratch_dirs(&w).len(), 1, "{:?}", scratch_dirs(&w));
        let s = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(s.success());
        let started = Instant::now();
        let o = child.wait_with_output().unwrap();
        let err = text(&o.stderr);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(o.status.code(), Some(128 + number), "SIG{signal}: {err}");
        assert!(
            err.contains(&format!("interrupted by SIG{signal}")),
            "{err}"
        );
        wait_for(
            || !process_running(&long),
            "the rebuild's sleep to be killed",
        );
        assert!(scratch_dirs(&w).is_empty(), "{:?}", scratch_dirs(&w));
        assert_eq!(fs_err::read(out.join("f")).unwrap(), before);
        ok(&w
            .forge()
            .args(["verify", "--check-contents"])
            .output()
            .unwrap());
    }
}
