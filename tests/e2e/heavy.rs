//! The heavy suite: the headline graph really built, from a cold store, on this machine.
//!
//! - `toolchain`: gcc 13.4.0 from Debian's wrapper of its GFDL-free repack, with its own
//!   closure at the versions Debian serves, then gmp +cxx compiled by it for x86-64-v3, linking
//!   the gcc-runtime taken from that build (target `gcc-13.4.0-deb`);
//! - `closure`: Slurm 24.11.5 and its whole closure, compiled by that gcc
//!   (`slurm-24.11-gcc13-deb`); the built munged, slurmctld and slurmd run a job and a PMIx job
//!   on 127.0.0.1.
//!
//! Each realizes with `--jobs 2 --cores 2`, prints a table per node (build time, size,
//! bit-identical in `forge check`) and the schedule's efficiency, and `forge check`s its graph.
//! Hours on two cores, so not part of CI: `tests/heavy/run.sh toolchain|closure|all` runs them
//! (its README section says how). Sources come from Debian's archive through
//! `tests/sources/debian-mirror.py`; the store and mirror live in `$HEAVY_DIR`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::cluster::{Cluster, compiled_for_v3, node_path, store_path};
use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where the heavy suite keeps its store, mirror and caches.
struct Heavy {
    dir: PathBuf,
}

impl Heavy {
    fn new() -> Self {
        let dir = std::env::var_os("HEAVY_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("heavy"),
            PathBuf::from,
        );
        fs_err::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn mirror(&self) -> PathBuf {
        self.dir.join("mirror")
    }

    /// `forge` with this suite's store, caches, the repository's recipes and the mirror.
    fn forge(&self) -> Command {
        let mut c = Command::new(forge_bin());
        c.env_remove("FORGE_RECIPES")
            .env_remove("FORGE_MIRRORS")
            .env_remove("FORGE_PADDED_LENGTH")
            .env("FORGE_STORE", self.store())
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("FORGE_SOURCE_CACHE", self.dir.join("cache/sources"))
            .env("NO_COLOR", "1")
            .arg("--recipes")
            .arg(repo())
            .arg("--mirror")
            .arg(format!("file://{}", self.mirror().display()));
        c
    }

    /// Files every source of `target` that Debian's archive serves under the mirror.
    fn fill_mirror(&self, target: &str) {
        let o = Command::new("python3")
            .arg(repo().join("tests/sources/debian-mirror.py"))
            .arg("--mirror")
            .arg(self.mirror())
            .arg("--forge")
            .arg(forge_bin())
            .arg("--recipes")
            .arg(repo())
            .arg(target)
            .output()
            .unwrap();
        say(&format!(
            "sources of {target} (tests/sources/debian-mirror.py):\n{}",
            text(&o.stdout)
        ));
        assert!(o.status.success(), "{}", text(&o.stderr));
    }

    fn plan(&self, target: &str) -> serde_json::Value {
        let o = self
            .forge()
            .args(["plan", target, "--json"])
            .output()
            .unwrap();
        serde_json::from_str(&ok(&o)).unwrap()
    }

    /// Realizes `target` and returns its root path and the build events.
    fn realize(&self, target: &str) -> Realized {
        let started = Instant::now();
        // GNU time reports the peak RSS of the biggest process of the run (a compiler).
        let time = Path::new("/usr/bin/time");
        let rss_file = self.dir.join(format!("{target}.rss"));
        let mut c = if time.exists() {
            let mut c = Command::new(time);
            c.arg("-f").arg("%M").arg("-o").arg(&rss_file);
            let f = self.forge();
            c.arg(f.get_program());
            c.args(f.get_args());
            for (k, v) in f.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            c
        } else {
            self.forge()
        };
        c.args(["realize", target, "--jobs", "2", "--cores", "2", "--json"]);
        let o = c.output().unwrap();
        let wall = started.elapsed().as_secs_f64();
        let ev = events(&o.stdout);
        for e in ev.iter().filter(|e| e["event"] == "failed") {
            say(&format!(
                "FAILED {}: {}\n  {}",
                e["node"],
                e["message"],
                e["tail"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .map(|l| l.as_str().unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                        .join("\n  "))
                    .unwrap_or_default()
            ));
        }
        ok(&o);
        // With --json, stdout holds only events: the root's path comes from the plan.
        let plan = self.plan(target);
        let root = node_path(&plan, |n| n["hash"] == plan["root"]).expect("the root in the plan");
        let peak_kib = fs_err::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        Realized {
            root,
            plan,
            wall,
            events: ev,
            peak_kib,
        }
    }

    /// `forge check TARGET` with a JSON report.
    fn check(&self, target: &str) -> serde_json::Value {
        let report = self.dir.join(format!("{target}.check.json"));
        let o = self
            .forge()
            .args(["check", target, "--cores", "2", "--report"])
            .arg(&report)
            .output()
            .unwrap();
        say(&text(&o.stderr));
        serde_json::from_slice(
            &fs_err::read(&report)
                .unwrap_or_else(|_| panic!("forge check wrote no report: {}", text(&o.stderr))),
        )
        .unwrap()
    }

    /// Size of a store path's files, in bytes.
    fn size(&self, path: &str) -> u64 {
        let o = self
            .forge()
            .args(["path-info", "--json", path])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
        v[0]["size"].as_u64().unwrap_or(0)
    }
}

struct Realized {
    root: PathBuf,
    /// `forge plan --json` of the target.
    plan: serde_json::Value,
    wall: f64,
    events: Vec<serde_json::Value>,
    peak_kib: Option<u64>,
}

/// Shown with `--nocapture` (the heavy script passes it).
#[allow(clippy::print_stderr)]
fn say(s: &str) {
    eprintln!("{s}");
}

/// The per-node table and the schedule's efficiency, with the reproducibility summary when
/// the graph was checked.
fn report(h: &Heavy, target: &str, r: &Realized, check: Option<&serde_json::Value>) {
    let plan = &r.plan;
    let sched = Schedule::from_run(plan, &r.events, 2);
    let identical: BTreeMap<String, bool> = check
        .and_then(|c| c["nodes"].as_array())
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap_or_default().to_owned(),
                        n["reproducible"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let built = sched.nodes.iter().filter(|n| n.built).count();
    let mut out = format!(
        "\n{target}: {} nodes, {built} built here\n{:<44} {:>8} {:>8} {:>9} {:>10}  {}\n",
        plan["nodes"].as_array().unwrap().len(),
        "node",
        "ready s",
        "start s",
        "build s",
        "size MiB",
        "bit-identical"
    );
    let mut total_bytes = 0;
    for (n, t) in plan["nodes"].as_array().unwrap().iter().zip(&sched.nodes) {
        if n["origin"] != "build" {
            continue;
        }
        let path = n["store_path"].as_str().unwrap();
        let label = &t.name[33..];
        let bytes = h.size(path);
        total_bytes += bytes;
        let (ready, start, secs) = match t.span {
            Some((start, _)) if t.built => (
                format!("{:.0}", sched.ready(t)),
                format!("{start:.0}"),
                format!("{:.1}", t.own),
            ),
            _ => ("-".to_owned(), "-".to_owned(), "(valid)".to_owned()),
        };
        let same = match identical.get(label) {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        out.push_str(&format!(
            "{label:<44} {ready:>8} {start:>8} {secs:>9} {:>10.1}  {same}\n",
            bytes as f64 / 1048576.0
        ));
    }
    let work = sched.work();
    let critical = sched.critical_path();
    let bound = sched.lower_bound();
    let idle = sched.idle_while_ready();
    out.push_str(&format!(
        "total: {:.1} MiB; wall {:.0} s; sum of build times {:.0} s; critical path {:.0} s{}\n\
         schedule: lower bound {bound:.0} s (no schedule on 2 slots is shorter: the longest of the critical \
         path, the work spread over both slots, and any node's earliest finish plus the work that needs it \
         spread over both slots)\n\
         wall / lower bound = {:.3} (target <= 1.10); wall / max(critical path, sum / 2) = {:.3}; \
         wall / (sum / 2) = {:.3}\n\
         slots idle while a node was ready: {idle:.1} slot-seconds ({:.2} % of 2 slots x wall)\n",
        total_bytes as f64 / 1048576.0,
        r.wall,
        work,
        critical,
        r.peak_kib.map_or_else(String::new, |k| format!(
            "; peak RSS {:.0} MiB",
            k as f64 / 1024.0
        )),
        ratio(r.wall, bound),
        ratio(r.wall, critical.max(work / 2.0)),
        ratio(r.wall, work / 2.0),
        100.0 * ratio(idle, 2.0 * r.wall),
    ));
    if let Some(check) = check {
        out.push_str(&format!(
            "forge check: {}/{} built nodes bit-identical\n",
            check["summary"]["reproducible"], check["summary"]["nodes"]
        ));
    }
    say(&out);
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// One node of a realized plan, as the schedule analysis sees it.
#[derive(Debug, Clone, Default)]
struct Timed {
    /// Store name.
    name: String,
    /// Indices of its dependencies in the plan.
    deps: Vec<usize>,
    /// Whether this run built it (rather than finding it valid or linking a host tool).
    built: bool,
    /// Its build time in this run, 0 when it was not built.
    own: f64,
    /// When it started and finished, seconds into the run, if it ran.
    span: Option<(f64, f64)>,
}

/// A realization's schedule, read back from its plan and its `--json` events (each carries
/// `elapsed`, seconds into the run).
#[derive(Debug)]
struct Schedule {
    nodes: Vec<Timed>,
    slots: usize,
}

impl Schedule {
    fn from_run(plan: &serde_json::Value, events: &[serde_json::Value], slots: usize) -> Self {
        let plan_nodes = plan["nodes"].as_array().unwrap();
        let index: BTreeMap<&str, usize> = plan_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n["hash"].as_str().unwrap(), i))
            .collect();
        let mut started: BTreeMap<&str, f64> = BTreeMap::new();
        let mut finished: BTreeMap<&str, (f64, f64, bool)> = BTreeMap::new();
        for e in events {
            let (Some(node), Some(at)) = (e["node"].as_str(), e["elapsed"].as_f64()) else {
                continue;
            };
            match e["event"].as_str() {
                Some("started") => {
                    started.insert(node, at);
                }
                Some("finished") => {
                    let secs = e["seconds"].as_f64().unwrap_or(0.0);
                    finished.insert(node, (at, secs, e["how"] == "built"));
                }
                _ => {}
            }
        }
        let nodes = plan_nodes
            .iter()
            .map(|n| {
                let name = n["store_path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned();
                let deps = n["deps"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .filter_map(|d| d["hash"].as_str().and_then(|h| index.get(h).copied()))
                    .collect();
                let (span, own, built) = match finished.get(name.as_str()) {
                    // Host tools are linked without a `started` event.
                    Some(&(end, secs, built)) => (
                        Some((
                            started.get(name.as_str()).copied().unwrap_or(end - secs),
                            end,
                        )),
                        if built { secs } else { 0.0 },
                        built,
                    ),
                    None => (None, 0.0, false),
                };
                Timed {
                    name,
                    deps,
                    built,
                    own,
                    span,
                }
            })
            .collect();
        Self { nodes, slots }
    }

    /// The sum of the build times.
    fn work(&self) -> f64 {
        self.nodes.iter().map(|n| n.own).sum()
    }

    /// When `n` could start: when the last of its dependencies this run produced finished.
    fn ready(&self, n: &Timed) -> f64 {
        n.deps
            .iter()
            .filter_map(|&d| self.nodes[d].span.map(|(_, end)| end))
            .fold(0.0, f64::max)
    }

    /// Per node, the earliest it can finish: its build time after the longest chain of build
    /// times below it.
    fn earliest_finish(&self) -> Vec<f64> {
        fn visit(s: &Schedule, i: usize, memo: &mut Vec<Option<f64>>) -> f64 {
            if let Some(t) = memo[i] {
                return t;
            }
            let before = s.nodes[i]
                .deps
                .iter()
                .map(|&d| visit(s, d, memo))
                .fold(0.0, f64::max);
            let t = before + s.nodes[i].own;
            memo[i] = Some(t);
            t
        }
        let mut memo = vec![None; self.nodes.len()];
        (0..self.nodes.len())
            .map(|i| visit(self, i, &mut memo))
            .collect()
    }

    /// The longest chain of build times through the dependency edges.
    fn critical_path(&self) -> f64 {
        self.earliest_finish().into_iter().fold(0.0, f64::max)
    }

    /// The shortest wall any schedule on `slots` slots can reach with these build times: the
    /// longest of the work spread over the slots and, for every node, its earliest finish plus
    /// the work of everything that needs it (which cannot start before it ends) spread over the
    /// slots. The critical path is the case of a node nothing needs.
    fn lower_bound(&self) -> f64 {
        let slots = self.slots.max(1) as f64;
        let mut dependents = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.deps {
                dependents[d].push(i);
            }
        }
        let finish = self.earliest_finish();
        let mut bound = self.work() / slots;
        for (v, f) in finish.iter().enumerate() {
            let mut seen = std::collections::BTreeSet::new();
            let mut stack = dependents[v].clone();
            while let Some(u) = stack.pop() {
                if seen.insert(u) {
                    stack.extend(dependents[u].iter().copied());
                }
            }
            let above: f64 = seen.iter().map(|&u| self.nodes[u].own).sum();
            bound = bound.max(f + above / slots);
        }
        bound
    }

    /// Slot-seconds during which a slot was free while a node was ready and not yet started:
    /// what a work-conserving scheduler never leaves.
    fn idle_while_ready(&self) -> f64 {
        let waits: Vec<(f64, f64)> = self
            .nodes
            .iter()
            .filter_map(|n| n.span.map(|(start, _)| (self.ready(n), start)))
            .collect();
        let mut times: Vec<f64> = waits
            .iter()
            .chain(self.nodes.iter().filter_map(|n| n.span.as_ref()))
            .flat_map(|&(a, b)| [a, b])
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        times
            .windows(2)
            .map(|w| {
                let mid = (w[0] + w[1]) / 2.0;
                let inside = |(a, b): (f64, f64)| a <= mid && mid < b;
                let running = self
                    .nodes
                    .iter()
                    .filter_map(|n| n.span)
                    .filter(|s| inside(*s))
                    .count();
                let waiting = waits.iter().filter(|s| inside(**s)).count();
                self.slots.saturating_sub(running).min(waiting) as f64 * (w[1] - w[0])
            })
            .sum()
    }
}

#[cfg(test)]
mod schedule {
    use super::*;

    /// A node built over `span` with dependencies `deps`.
    fn node(deps: &[usize], span: (f64, f64)) -> Timed {
        Timed {
            name: String::new(),
            deps: deps.to_vec(),
            built: true,
            own: span.1 - span.0,
            span: Some(span),
        }
    }

    #[test]
    fn a_bottleneck_raises_the_bound_above_critical_path_and_half_the_work() {
        // A 100 s compiler that four 10 s libraries need: no schedule on two slots finishes
        // before 100 + 40 / 2, though the critical path is 110 and half the work 70.
        let mut nodes = vec![node(&[], (0.0, 100.0))];
        for k in 0..4 {
            let at = 100.0 + 10.0 * f64::from(k / 2);
            nodes.push(node(&[0], (at, at + 10.0)));
        }
        let s = Schedule { nodes, slots: 2 };
        assert_eq!(s.work(), 140.0);
        assert_eq!(s.critical_path(), 110.0);
        assert_eq!(s.lower_bound(), 120.0);
        assert_eq!(s.idle_while_ready(), 0.0);
    }

    #[test]
    fn a_free_slot_while_a_node_waits_is_counted_and_nothing_else() {
        // a -> b on one slot; c then d on the other, but d (ready at 0) starts only at 7,
        // two seconds after c ended; from 12 to 20 the free slot has nothing ready.
        let s = Schedule {
            nodes: vec![
                node(&[], (0.0, 10.0)),
                node(&[0], (10.0, 20.0)),
                node(&[], (0.0, 5.0)),
                node(&[], (7.0, 12.0)),
            ],
            slots: 2,
        };
        assert_eq!(s.lower_bound(), 20.0);
        assert!((s.idle_while_ready() - 2.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.ready(&s.nodes[1]), 10.0);
    }
}

/// `ldd FILE` with an empty environment: every library found, none from the host's compiler.
fn ldd(file: &Path) -> String {
    let o = Command::new("/usr/bin/ldd")
        .arg(file)
        .env_clear()
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(!out.contains("not found"), "{}:\n{out}", file.display());
    out
}

#[test]
#[ignore = "heavy (hours on two cores): tests/heavy/run.sh toolchain"]
fn toolchain_gcc_13_from_debian_sources_builds_and_compiles_for_x86_64_v3() {
    let h = Heavy::new();
    let target = "gcc-13.4.0-deb";
    h.fill_mirror(target);
    let r = h.realize(target);
    let plan = &r.plan;
    // The plan also holds the machine's gcc 12 (it compiles gcc 13): pick by version.
    let built = |name: &str| {
        node_path(plan, |n| n["name"] == name && n["version"] == "13.4.0-deb")
            .unwrap_or_else(|| panic!("{name} 13.4.0-deb in the plan"))
    };
    let gcc = built("gcc");
    let gmp = r.root.clone();
    let runtime = built("gcc-runtime");
    // The compiler runs from the store with an empty environment.
    let o = Command::new(gcc.join("bin/gcc"))
        .arg("-dumpfullversion")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), "13.4.0", "{}", text(&o.stderr));
    // The runtime was taken from that compiler.
    for lib in ["libstdc++.so.6", "libgcc_s.so.1", "libgfortran.so.5"] {
        assert!(
            runtime.join("lib").join(lib).exists(),
            "{lib} in {}",
            runtime.display()
        );
    }
    // gmp's C++ library links that runtime through its RUNPATH, and the loader agrees.
    let gmpxx = gmp.join("lib/libgmpxx.so");
    let rp = runpath(&gmpxx);
    assert!(rp.contains(&runtime.display().to_string()), "{rp}");
    assert!(!rp.contains(&gcc.display().to_string()), "{rp}");
    // …and the compiler is no runtime dependency of what it compiled.
    let o = h
        .forge()
        .arg("why-depends")
        .args([&gmp, &gcc])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stdout).contains("does not depend on"),
        "{}",
        text(&o.stdout)
    );
    let deps = ldd(&gmpxx);
    let libstdcxx = deps
        .lines()
        .find(|l| l.contains("libstdc++.so.6"))
        .unwrap_or_else(|| panic!("libstdc++ in\n{deps}"));
    assert!(
        libstdcxx.contains(&runtime.display().to_string()),
        "{libstdcxx}"
    );
    assert!(
        compiled_for_v3(h.forge(), &gmp) > 50,
        "gmp's compiles were recorded"
    );
    // The forge-built g++ compiles a program against gmpxx that runs with an empty environment.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("fact.cc");
    fs_err::write(
        &src,
        "#include <gmpxx.h>\n#include <iostream>\nint main() { mpz_class f = 1; for (int i = 2; i <= 30; ++i) f *= i; std::cout << f << std::endl; }\n",
    )
    .unwrap();
    let exe = work.path().join("fact");
    let o = Command::new(gcc.join("bin/g++"))
        .args(["-O2", "-march=x86-64-v3"])
        .arg(&src)
        .arg(format!("-I{}/include", gmp.display()))
        .arg(format!("-L{}/lib", gmp.display()))
        .arg(format!("-Wl,-rpath,{}/lib", gmp.display()))
        .arg(format!("-Wl,-rpath,{}/lib", runtime.display()))
        .args(["-lgmpxx", "-lgmp", "-o"])
        .arg(&exe)
        .env_clear()
        .env("PATH", format!("{}/bin:/usr/bin:/bin", gcc.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "g++: {}", text(&o.stderr));
    let o = Command::new(&exe).env_clear().output().unwrap();
    assert_eq!(
        text(&o.stdout).trim(),
        "265252859812191058636308480000000",
        "{}",
        text(&o.stderr)
    );
    let check = h.check(target);
    report(&h, target, &r, Some(&check));
    assert_eq!(
        check["summary"]["reproducible"], check["summary"]["nodes"],
        "every built node rebuilds bit for bit"
    );
}

#[test]
#[ignore = "heavy (hours on two cores): tests/heavy/run.sh closure"]
fn closure_slurm_24_11_from_debian_sources_builds_runs_jobs_and_pmix() {
    let h = Heavy::new();
    let target = "slurm-24.11-gcc13-deb";
    h.fill_mirror(target);
    let r = h.realize(target);
    let plan = &r.plan;
    let slurm = r.root.clone();
    let munge = store_path(plan, "munge");
    for (bin, arg, want) in [
        (slurm.join("sbin/slurmd"), "-V", "slurm 24.11.5"),
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
    for lib in ["lib/libslurmfull.so", "lib/slurm/libslurmfull.so"] {
        let p = slurm.join(lib);
        if p.exists() {
            ldd(&p);
        }
    }
    assert!(
        compiled_for_v3(h.forge(), &slurm) > 500,
        "slurm's compiles were recorded"
    );
    let cluster = Cluster::start(
        &h.dir.join("cluster"),
        &slurm,
        &munge,
        "MpiParams=ports=20000-20100\n",
    );
    cluster.wait_idle();
    let job = cluster.client("srun", &["-n", "2", "hostname"]);
    assert!(
        job.status.success(),
        "srun: {}\n{}",
        text(&job.stderr),
        cluster.ctld_log()
    );
    assert_eq!(
        text(&job.stdout).lines().count(),
        2,
        "{}",
        text(&job.stdout)
    );
    let pmix = cluster.client("srun", &["--mpi=pmix", "-n", "2", "printenv", "PMIX_RANK"]);
    let mut ranks: Vec<String> = text(&pmix.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    ranks.sort();
    assert_eq!(
        ranks,
        ["0", "1"],
        "srun --mpi=pmix: {}\n{}",
        text(&pmix.stderr),
        cluster.ctld_log()
    );
    drop(cluster);
    say(&format!(
        "functional checks passed: munged, slurmctld and slurmd on 127.0.0.1; `srun -n 2 hostname`: {:?}; `srun --mpi=pmix -n 2 printenv PMIX_RANK`: {ranks:?}",
        text(&job.stdout).lines().collect::<Vec<_>>()
    ));
    // The whole closure exports as a Spack buildcache: no file of it names a path only the
    // building machine has (the relocation check refused 7 of its packages before their
    // recipes were fixed).
    let cache = h.dir.join("export");
    let _ = fs_err::remove_dir_all(&cache);
    let o = h
        .forge()
        .args(["-q", "export", target, "--to"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "forge export: {}", text(&o.stderr));
    let manifests: usize = fs_err::read_dir(cache.join("v3/manifests/spec"))
        .unwrap()
        .map(|d| fs_err::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    say(&format!(
        "forge export {target}: {manifests} packages, relocation check passed"
    ));
    assert!(manifests >= 40, "{manifests} packages exported");
    if std::env::var_os("FORGE_HEAVY_NO_CHECK").is_some() {
        // While iterating on recipes, or measuring the schedule: the check rebuilds the whole
        // graph (hours).
        report(&h, target, &r, None);
        say(
            "FORGE_HEAVY_NO_CHECK is set: not checking the graph; this run proves nothing about reproducibility",
        );
        return;
    }
    let check = h.check(target);
    report(&h, target, &r, Some(&check));
    assert_eq!(
        check["summary"]["reproducible"], check["summary"]["nodes"],
        "every built node rebuilds bit for bit"
    );
}
