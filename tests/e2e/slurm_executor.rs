//! `forge realize --executor slurm` on a real Slurm: munged, slurmctld and slurmd (Debian's
//! `munge` and `slurm-wlm` packages, installed by `tests/run-all.sh`) started on 127.0.0.1 for
//! each test, with a configuration the test writes, and stopped after.
//!
//! The graphs are synthetic: packages whose builds are short shell scripts, so that what is
//! tested is the executor (submission, dependencies, following, failures, cancellation,
//! attaching), not compilers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::cluster::{Cluster, wait_until};
use common::*;

/// What sites add to `slurm.conf` that matters to the executor: an `Epilog` (Slurm 22.05 starts
/// the jobs a finished job frees at once only when a node reports its epilog done; without one,
/// at its next one-second background pass, whose clock many short jobs fall just behind), and
/// no batching delay before the scheduler runs.
const SITE_CONF: &str =
    "Epilog=/bin/true\nSchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n";

/// A cluster of one node with two CPUs, from the machine's Slurm and munge, configured as sites
/// run Slurm ([`SITE_CONF`]).
fn cluster(w: &World) -> Cluster {
    for bin in [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
        "/usr/bin/sbatch",
    ] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install Debian's slurmctld, slurmd, slurm-client and munge (tests/run-all.sh does)"
        );
    }
    let c = Cluster::start(
        &w.path().join("cluster"),
        Path::new("/usr"),
        Path::new("/usr"),
        SITE_CONF,
    );
    c.wait_idle();
    c
}

/// `forge` with the world's store and recipes, talking to the cluster.
fn forge(w: &World, c: &Cluster) -> Command {
    let mut cmd = w.forge();
    cmd.env("SLURM_CONF", &c.conf)
        .env("FORGE_SLURM_POLL_MS", "200")
        .arg("--recipes")
        .arg(w.recipes());
    cmd
}

/// `forge realize TARGET --executor slurm --cores 1 --json ARGS`, in the background, its events
/// written to `events`.
fn client(w: &World, c: &Cluster, target: &str, args: &[&str], events: &Path) -> Child {
    client_with(w, c, target, args, events, &[])
}

/// [`client`] with more environment variables.
fn client_with(
    w: &World,
    c: &Cluster,
    target: &str,
    args: &[&str],
    events: &Path,
    env: &[(&str, &str)],
) -> Child {
    forge(w, c)
        .envs(env.iter().copied())
        .args([
            "realize",
            target,
            "--executor",
            "slurm",
            "--cores",
            "1",
            "--json",
        ])
        .args(args)
        .stdout(fs_err::File::create(events).unwrap().into_parts().0)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The jobs in the queue: id → `scontrol show job -o` fields.
fn jobs(c: &Cluster) -> BTreeMap<String, BTreeMap<String, String>> {
    let ids = text(&c.client("squeue", &["-h", "-o", "%i"]).stdout);
    ids.split_whitespace()
        .map(|id| {
            let o = c.client("scontrol", &["show", "job", "-o", id]);
            let fields = text(&o.stdout)
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (id.to_owned(), fields)
        })
        .collect()
}

/// Waits until `n` jobs are in the queue; fails with the client's errors if it ended first.
fn wait_jobs(c: &Cluster, n: usize, client: &mut Child, events: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut ready = || {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} jobs in the queue; queue: {:?}\nclient's events: {}\n{}",
            jobs(c)
                .iter()
                .map(|(id, f)| format!("{id} {} {}", f["JobName"], f["Reason"]))
                .collect::<Vec<_>>(),
            text(&fs_err::read(events).unwrap_or_default()),
            c.ctld_log()
        );
        if let Ok(Some(status)) = client.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = client.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the client ended ({status}) before submitting {n} jobs: {err}\n{}",
                c.ctld_log()
            );
        }
        jobs(c).len() == n
    };
    while !ready() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The job ids a `Dependency=` field waits for (`afterok:12(unfulfilled),afterok:13(…)`).
fn after(dep: &str) -> BTreeSet<String> {
    dep.split(',')
        .filter_map(|d| d.strip_prefix("afterok:"))
        .map(|d| d.split('(').next().unwrap().to_owned())
        .collect()
}

fn events_of(path: &Path) -> Vec<serde_json::Value> {
    events(&fs_err::read(path).unwrap_or_default())
}

/// `<pkg>` from a store name `<hash>-<pkg>-1.0`.
fn pkg(name: &str) -> &str {
    name[33..].trim_end_matches("-1.0")
}

/// For each node, the `how` of every job result file in the store's Slurm directory.
fn results(w: &World) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dir = w.store().join(".forge/slurm");
    for e in fs_err::read_dir(&dir).unwrap().flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = f.strip_suffix(".json") {
            let name = stem.rsplit_once('.').unwrap().0;
            let v: serde_json::Value =
                serde_json::from_slice(&fs_err::read(e.path()).unwrap()).unwrap();
            out.entry(pkg(name).to_owned())
                .or_default()
                .push(v["how"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// A chain of `n` packages `c0 ← c1 ← … `, each sleeping `secs`.
fn chain(prefix: &str, n: usize, secs: &str) -> Vec<(String, Vec<String>, String)> {
    (0..n)
        .map(|k| {
            let deps = if k == 0 {
                vec![]
            } else {
                vec![format!("{prefix}{}", k - 1)]
            };
            (
                format!("{prefix}{k}"),
                deps,
                format!("sleep {secs}; mkdir -p \"$out\"; echo {prefix}{k} > \"$out/id\""),
            )
        })
        .collect()
}

fn write(w: &World, pkgs: &[(String, Vec<String>, String)], targets: &[(&str, &str)]) {
    let deps: Vec<Vec<&str>> = pkgs
        .iter()
        .map(|p| p.1.iter().map(String::as_str).collect())
        .collect();
    let pkgs: Vec<Pkg<'_>> = pkgs
        .iter()
        .zip(&deps)
        .map(|(p, d)| Pkg {
            name: &p.0,
            deps: d,
            script: p.2.clone(),
        })
        .collect();
    write_tree(&w.recipes(), &pkgs, targets);
}

#[test]
fn a_20_node_graph_and_the_example_build_as_one_job_per_node_chained_like_the_dag() {
    let w = World::new();
    let c = cluster(&w);
    // Node k needs k-2 and k-3: branches that run side by side on the two CPUs; `top` needs
    // the last two.
    let mut pkgs: Vec<(String, Vec<String>, String)> = (0..19)
        .map(|k: usize| {
            let deps = [k.checked_sub(2), k.checked_sub(3)]
                .into_iter()
                .flatten()
                .map(|d| format!("n{d:02}"))
                .collect();
            (
                format!("n{k:02}"),
                deps,
                format!("sleep 0.2; mkdir -p \"$out\"; echo n{k:02} > \"$out/id\""),
            )
        })
        .collect();
    pkgs.push((
        "top".to_owned(),
        vec!["n17".to_owned(), "n18".to_owned()],
        "mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
    ));
    write(&w, &pkgs, &[("all", "top")]);
    // Held, so that every job is in the queue with its dependencies when the test reads them.
    // The queue is read once, at the start: the client submits each layer right after the one
    // below, and learns of each success from the job's result file, not from a later read.
    let ev = w.path().join("events.json");
    let mut child = client_with(
        &w,
        &c,
        "all",
        &["--sbatch-arg=--hold"],
        &ev,
        &[("FORGE_SLURM_POLL_MS", "600000")],
    );
    wait_jobs(&c, 20, &mut child, &ev);
    let queued = jobs(&c);
    let id_of: BTreeMap<String, String> = queued
        .iter()
        .map(|(id, f)| (pkg(&f["JobName"]).to_owned(), id.clone()))
        .collect();
    assert_eq!(id_of.len(), 20, "one job per node: {queued:?}");
    for (name, deps, _) in &pkgs {
        let job = &queued[&id_of[name]];
        let want: BTreeSet<String> = deps.iter().map(|d| id_of[d].clone()).collect();
        assert_eq!(after(&job["Dependency"]), want, "{name}: {job:?}");
        assert_eq!(job["NumCPUs"], "1", "{name}: --cores 1 → one CPU");
    }
    let ids: Vec<&str> = id_of.values().map(String::as_str).collect();
    let r = c.client("scontrol", &["release", &ids.join(",")]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{}\n{:?}",
        text(&o.stderr),
        events_of(&ev)
            .iter()
            .filter(|e| e["event"] == "failed")
            .collect::<Vec<_>>()
    );
    // Every node built once, by its job.
    let built: Vec<String> = events_of(&ev)
        .iter()
        .filter(|e| e["event"] == "finished" && e["how"] == "built")
        .map(|e| pkg(e["node"].as_str().unwrap()).to_owned())
        .collect();
    assert_eq!(built.len(), 20, "{built:?}");
    assert_eq!(built.iter().collect::<BTreeSet<_>>().len(), 20);
    for (name, how) in results(&w) {
        assert_eq!(how, ["built"], "{name}");
    }
    // The client ends once the last job's result is in; the job leaves the queue just after.
    wait_until("the last job to leave the queue", 30, || {
        jobs(&c).is_empty()
    });

    // The same store paths with the same contents as the local executor's, in another store.
    let local = w.path().join("local-store");
    let o = w
        .forge()
        .env("FORGE_STORE", &local)
        .arg("--recipes")
        .arg(w.recipes())
        .args(["realize", "all", "--json"])
        .output()
        .unwrap();
    ok(&o);
    let info = |store: &Path| -> BTreeMap<String, String> {
        let o = w
            .forge()
            .env("FORGE_STORE", store)
            .arg("--recipes")
            .arg(w.recipes())
            .args(["path-info", "--json", "all"])
            .output()
            .unwrap();
        let _ = ok(&o);
        let mut out = BTreeMap::new();
        for e in events_of(&ev)
            .iter()
            .filter(|e| e["event"] == "finished")
            .map(|e| e["node"].as_str().unwrap().to_owned())
        {
            let o = w
                .forge()
                .env("FORGE_STORE", store)
                .args(["path-info", "--json", &e])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
            out.insert(e, v[0]["content_hash"].as_str().unwrap().to_owned());
        }
        out
    };
    assert_eq!(info(&w.store()), info(&local));

    // The example: its host compiler is linked by the client, the rest built by jobs, and the
    // program runs.
    let ev = w.path().join("example.json");
    let o = w
        .forge()
        .env("SLURM_CONF", &c.conf)
        .env("FORGE_SLURM_POLL_MS", "200")
        .args([
            "--example",
            "realize",
            "--executor",
            "slurm",
            "--cores",
            "1",
            "--json",
        ])
        .stdout(fs_err::File::create(&ev).unwrap().into_parts().0)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let evs = events_of(&ev);
    let done = evs.last().unwrap();
    assert_eq!(done["event"], "done", "{done}");
    assert_hello_runs(Path::new(done["path"].as_str().unwrap()));
    let hows: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| e["how"].as_str().unwrap())
        .collect();
    assert_eq!(hows, BTreeSet::from(["built", "host"]), "{evs:?}");
}

#[test]
fn a_failing_job_skips_its_dependents_keep_going_finishes_the_rest_and_ctrl_c_cancels() {
    let w = World::new();
    let c = cluster(&w);
    let mut pkgs = vec![
        (
            "broken".to_owned(),
            vec![],
            "echo broken-build-says-hello; exit 3".to_owned(),
        ),
        (
            "above".to_owned(),
            vec!["broken".to_owned()],
            "mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
        ),
        (
            "fine".to_owned(),
            vec![],
            "sleep 1; mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
        ),
        (
            "top".to_owned(),
            vec!["above".to_owned(), "fine".to_owned()],
            "mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
        ),
    ];
    pkgs.extend(chain("h", 3, "0.1"));
    write(&w, &pkgs, &[("top", "top"), ("h", "h2")]);
    // `fine` is built by the client, not in a job (mixed mode).
    let fine = w.recipes().join("recipes/fine.kdl");
    let kdl = fs_err::read_to_string(&fine).unwrap();
    fs_err::write(
        &fine,
        kdl.replacen("    languages\n", "    languages\n    local-only\n", 1),
    )
    .unwrap();
    let ev = w.path().join("events.json");
    let o = client(&w, &c, "top", &["--keep-going"], &ev)
        .wait_with_output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let evs = events_of(&ev);
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(pkg(failed["node"].as_str().unwrap()), "broken");
    let log = PathBuf::from(failed["log"].as_str().unwrap());
    assert!(
        fs_err::read_to_string(&log)
            .unwrap()
            .contains("broken-build-says-hello"),
        "{}",
        log.display()
    );
    assert!(
        failed["tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("broken-build-says-hello")),
        "{failed}"
    );
    // Its dependents never started; the independent branch was built.
    let started: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| pkg(e["node"].as_str().unwrap()))
        .collect();
    assert!(
        !started.contains("above") && !started.contains("top"),
        "{started:?}"
    );
    let skipped: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["event"] == "skipped")
        .map(|e| pkg(e["node"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped, BTreeSet::from(["above", "top"]));
    assert!(
        evs.iter()
            .any(|e| e["event"] == "finished" && pkg(e["node"].as_str().unwrap()) == "fine"),
        "{evs:?}"
    );
    let submitted: BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["event"] == "job" && e["state"] == "submitted")
        .map(|e| pkg(e["node"].as_str().unwrap()))
        .collect();
    // (`top` waits for `fine` to be valid before it is submitted: whether it was depends on
    // which of `fine` and `broken` ended first.)
    assert!(
        !submitted.contains("fine") && submitted.contains("broken") && submitted.contains("above"),
        "`fine` is local-only: {submitted:?}"
    );
    assert!(
        err.contains("1 failed") && err.contains("2 skipped"),
        "{err}"
    );
    assert!(jobs(&c).is_empty(), "the dependents' jobs were cancelled");

    // Ctrl-C cancels every job the run submitted.
    let ev = w.path().join("ctrl-c.json");
    let mut child = client(&w, &c, "h", &["--sbatch-arg=--hold"], &ev);
    wait_jobs(&c, 3, &mut child, &ev);
    let s = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(s.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    wait_until("the queue to empty", 30, || jobs(&c).is_empty());
}

#[test]
fn a_killed_client_is_attached_to_again_and_two_clients_build_each_node_once() {
    let w = World::new();
    let c = cluster(&w);
    let mut pkgs = chain("k", 3, "0.1");
    pkgs.extend(chain("s", 4, "0.5"));
    pkgs.push((
        "other".to_owned(),
        vec!["s2".to_owned()],
        "mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
    ));
    write(&w, &pkgs, &[("k", "k2"), ("s", "s3"), ("other", "other")]);

    // kill -9 of the client while its jobs wait; the rerun attaches to them.
    let first_ev = w.path().join("first.json");
    let mut first = client(&w, &c, "k", &["--sbatch-arg=--hold"], &first_ev);
    wait_jobs(&c, 3, &mut first, &first_ev);
    // Killed once each submission is recorded (the record is written when sbatch answers).
    wait_until("3 submissions recorded", 60, || {
        events_of(&first_ev)
            .iter()
            .filter(|e| e["event"] == "job" && e["state"] == "submitted")
            .count()
            == 3
    });
    first.kill().unwrap();
    let _ = first.wait();
    let before: BTreeSet<String> = jobs(&c).into_keys().collect();
    let ev = w.path().join("rerun.json");
    let rerun = client(&w, &c, "k", &[], &ev);
    wait_until("the rerun to attach to the 3 jobs", 60, || {
        events_of(&ev)
            .iter()
            .filter(|e| e["event"] == "job" && e["state"] == "attached")
            .count()
            == 3
    });
    let now: BTreeSet<String> = jobs(&c).into_keys().collect();
    assert_eq!(now, before, "nothing submitted twice");
    let ids: Vec<&str> = now.iter().map(String::as_str).collect();
    let r = c.client("scontrol", &["release", &ids.join(",")]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let o = rerun.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Two clients at once on graphs that share s0..s2.
    let (ea, eb) = (w.path().join("a.json"), w.path().join("b.json"));
    let a = client(&w, &c, "s", &[], &ea);
    let b = client(&w, &c, "other", &[], &eb);
    for (name, child) in [("s", a), ("other", b)] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
    }
    // Each node was built by exactly one job; a second job, if any, found it valid.
    for (name, hows) in results(&w) {
        assert_eq!(
            hows.iter().filter(|h| *h == "built").count(),
            1,
            "{name}: {hows:?}"
        );
    }
    let built_by_clients: usize = [&ea, &eb]
        .iter()
        .flat_map(|p| events_of(p))
        .filter(|e| e["event"] == "finished" && e["how"] == "built")
        .count();
    assert_eq!(
        built_by_clients, 5,
        "s0..s3 and other, each reported built once"
    );
}

/// The Slurm executor's cost, for `engine/bench/slurm-bench.sh` (ignored by the test runs): a
/// 70-node graph of one-second builds realized with the local executor at two slots, then
/// through a cluster of two CPUs (one per job) configured as Slurm ships, then through one
/// configured as sites run it (an `Epilog`, no scheduling delays: [`SITE_CONF`]), in fresh
/// stores. Prints each makespan against the local one and where the time went; asserts only
/// that every run succeeds.
#[test]
#[ignore = "benchmark: engine/bench/slurm-bench.sh"]
fn bench_submission_overhead_of_a_70_node_graph() {
    let w = World::new();
    let secs: f64 = std::env::var("FORGE_BENCH_NODE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    // Ten layers of seven: each node needs two of the layer below.
    let pkgs: Vec<(String, Vec<String>, String)> = (0..70)
        .map(|k: usize| {
            let (layer, pos) = (k / 7, k % 7);
            let deps = if layer == 0 {
                vec![]
            } else {
                let below = (layer - 1) * 7;
                vec![
                    format!("b{:02}", below + pos),
                    format!("b{:02}", below + (pos + 3) % 7),
                ]
            };
            (
                format!("b{k:02}"),
                deps,
                format!("sleep {secs}; mkdir -p \"$out\"; echo b{k:02} > \"$out/id\""),
            )
        })
        .collect();
    // One root above the top layer.
    let mut all = pkgs.clone();
    all.push((
        "top".to_owned(),
        (63..70).map(|k| format!("b{k:02}")).collect(),
        "mkdir -p \"$out\"; echo ok > \"$out/id\"".to_owned(),
    ));
    write(&w, &all, &[("top", "top")]);
    // Runs `forge realize top` into `store` (through `cluster` when given): its makespan, its
    // events, and when it started (Unix seconds).
    let run = |store: &Path, cluster: Option<&Cluster>| -> (f64, Vec<serde_json::Value>, f64) {
        let ev = store.with_extension("json");
        let mut cmd = match cluster {
            // Following the jobs as users do, at the default interval.
            Some(c) => {
                let mut cmd = forge(&w, c);
                cmd.env_remove("FORGE_SLURM_POLL_MS");
                cmd
            }
            None => {
                let mut cmd = w.forge();
                cmd.arg("--recipes").arg(w.recipes());
                cmd
            }
        };
        cmd.env("FORGE_STORE", store)
            .args(["realize", "top", "--cores", "1", "--json"])
            .args(match cluster {
                Some(_) => ["--executor", "slurm"],
                None => ["--jobs", "2"],
            })
            .stdout(fs_err::File::create(&ev).unwrap().into_parts().0);
        let began = forge_realize::unix_now();
        let t = std::time::Instant::now();
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        (t.elapsed().as_secs_f64(), events_of(&ev), began)
    };
    let (local, _, _) = run(&w.path().join("local"), None);
    let mut report = format!(
        "a 70-node graph (ten layers of seven, and a root), {secs} s builds, 2 slots:\n  \
         local executor (--jobs 2): {local:.1} s"
    );
    for (label, conf) in [
        ("Slurm as shipped", ""),
        ("Slurm as sites run it", SITE_CONF),
    ] {
        let dir = w.path().join(label.replace(' ', "-"));
        let c = Cluster::start(
            &dir.join("cluster"),
            Path::new("/usr"),
            Path::new("/usr"),
            conf,
        );
        c.wait_idle();
        // A controller that has been up for a while: one job run through it first, so that its
        // scheduler has read its parameters (until then, Slurm 22.05 waits the default 3 s
        // between scheduling passes).
        let warm = c.client("sbatch", &["--wait", "-o", "/dev/null", "--wrap", "true"]);
        assert!(warm.status.success(), "{}", text(&warm.stderr));
        let store = dir.join("store");
        let (slurm, evs, began) = run(&store, Some(&c));
        drop(c);
        report.push_str(&breakdown(label, slurm, local, &evs, began, &store));
    }
    say(&report);
}

/// The lines of `bench_submission_overhead_of_a_70_node_graph` for one Slurm run: its makespan
/// against the local executor's, and where the time went, from the jobs' result files (when each
/// `forge build-node` started and ended) and the client's events.
fn breakdown(
    label: &str,
    slurm: f64,
    local: f64,
    evs: &[serde_json::Value],
    began: f64,
    store: &Path,
) -> String {
    let mut jobs: Vec<(f64, f64, f64)> = Vec::new();
    for e in fs_err::read_dir(store.join(".forge/slurm"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value =
                serde_json::from_slice(&fs_err::read(e.path()).unwrap()).unwrap();
            let f = |k: &str| v[k].as_f64().unwrap();
            jobs.push((f("started") - began, f("ended") - began, f("seconds")));
        }
    }
    let n = jobs.len().max(1) as f64;
    let first_start = jobs.iter().map(|j| j.0).fold(f64::INFINITY, f64::min);
    let last_end = jobs.iter().map(|j| j.1).fold(0.0, f64::max);
    let busy: f64 = jobs.iter().map(|j| j.1 - j.0).sum();
    let beyond: f64 = jobs.iter().map(|j| j.1 - j.0 - j.2).sum();
    // Two slots over the jobs' span, less the time a job ran in them: the slots' idle time,
    // which Slurm spends releasing a finished job and starting the next.
    let idle = 2.0 * (last_end - first_start) - busy;
    let submitted: Vec<f64> = evs
        .iter()
        .filter(|e| e["event"] == "job" && e["state"] == "submitted")
        .map(|e| e["elapsed"].as_f64().unwrap())
        .collect();
    let first_submit = submitted.iter().copied().fold(f64::INFINITY, f64::min);
    let last_submit = submitted.iter().copied().fold(0.0, f64::max);
    format!(
        "\n  {label}: {slurm:.1} s, {:.2}x the local executor (goal <= 1.1x), {:+.1} s\n    \
         the client: first job submitted {first_submit:.2} s into the run, all {} by \
         {last_submit:.2} s; the run over {:.2} s after the last job ended\n    \
         Slurm: first job started {first_start:.2} s into the run; the slots stood idle \
         {:.2} s per job between jobs\n    \
         each job: forge build-node took {:.3} s beyond its build ({} jobs)\n    \
         submitting and following (the run less the jobs' span): {:.2} s (goal <= 2 s)",
        slurm / local,
        slurm - local,
        submitted.len(),
        slurm - last_end,
        idle / n,
        beyond / n,
        jobs.len(),
        slurm - (last_end - first_start),
    )
}

#[allow(clippy::print_stderr)]
fn say(s: &str) {
    eprintln!("{s}");
}
