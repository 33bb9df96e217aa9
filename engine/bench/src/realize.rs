//! `forge-bench realize-noop`, `forge-bench scheduler` and `forge-bench hash`: the realize
//! stage's performance targets, each measured next to a baseline in the same run.
//!
//! - no-op realize: a synthetic graph whose nodes are all valid; the wall time of a whole `forge
//!   realize` process, next to `forge --version` (process start-up, the floor);
//! - scheduler: a synthetic graph of sleep-only builds with known durations; the wall time of a
//!   realize next to the ideal, `max(critical path, total work / job slots)`;
//! - output tree hashing: `forge-treehash` over a tree shaped like a compiler install, next to
//!   `b3sum` over the same files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::measure::{min_median, ms};
use crate::synthetic::Rng;

/// The `forge` binary: `FORGE_BIN`, else the one next to this benchmark.
pub fn forge_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FORGE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name("forge");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "no `forge` next to {}; build it (`cargo build --release -p forge-cli`) or set FORGE_BIN",
            me.display()
        ))
    }
}

/// One synthetic package: its dependencies (indices of earlier packages) and build time.
#[derive(Debug, Clone)]
pub struct Node {
    /// Dependencies, by index.
    pub deps: Vec<usize>,
    /// Seconds its build sleeps.
    pub seconds: f64,
}

/// A random DAG of `n` packages in which every package but the first few depends on one to
/// three earlier ones, plus a root depending on every package no one else depends on.
pub fn dag(n: usize, seed: u64, min_s: f64, max_s: f64) -> Vec<Node> {
    let mut rng = Rng::new(seed);
    let mut nodes = Vec::with_capacity(n + 1);
    for i in 0..n {
        let mut deps = Vec::new();
        if i >= 3 {
            let k = 1 + rng.below(3);
            for _ in 0..k {
                let d = rng.below(i);
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        let seconds = min_s + (max_s - min_s) * (rng.below(1000) as f64 / 1000.0);
        nodes.push(Node {
            deps,
            seconds: (seconds * 100.0).round() / 100.0,
        });
    }
    let mut needed = vec![false; n];
    for node in &nodes {
        for d in &node.deps {
            needed[*d] = true;
        }
    }
    let tops: Vec<usize> = (0..n).filter(|i| !needed[*i]).collect();
    nodes.push(Node {
        deps: tops,
        seconds: 0.0,
    });
    nodes
}

/// The longest chain of build times (seconds), ending at any node.
pub fn critical_path(nodes: &[Node]) -> f64 {
    let mut longest = vec![0.0f64; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let before = n.deps.iter().map(|d| longest[*d]).fold(0.0, f64::max);
        longest[i] = before + n.seconds;
    }
    longest.into_iter().fold(0.0, f64::max)
}

/// Writes the DAG as a recipe tree of uncompiled packages (no compiler needed) whose install
/// sleeps for the node's time, with one target `top`. `generation` goes into every source, so
/// a new generation gives every node a new hash while the packages keep their names (and the
/// store its build-time history for them).
pub fn write_tree(root: &Path, nodes: &[Node], generation: u32) -> std::io::Result<()> {
    fs_err::create_dir_all(root.join("recipes"))?;
    fs_err::create_dir_all(root.join("toolchains"))?;
    // The host toolchain (resolution needs one, though nothing here is compiled).
    fs_err::write(
        root.join("toolchains/gcc.kdl"),
        "package \"gcc\" {\n    host \"gcc\" version-arg=\"-dumpfullversion\"\n}\n",
    )?;
    fs_err::write(
        root.join("toolchains/toolchains.kdl"),
        "toolchain \"host-gcc\" {\n    compiler \"gcc\" host=#true\n}\n",
    )?;
    fs_err::write(
        root.join("toolchains/arch.kdl"),
        "arch \"x86-64-v3\" {\n    flags compiler=\"gcc\" versions=\"11.1:\" \"-march=x86-64-v3\"\n}\n",
    )?;
    let last = nodes.len() - 1;
    for (i, n) in nodes.iter().enumerate() {
        let name = if i == last {
            "top".to_owned()
        } else {
            format!("n{i:03}")
        };
        let src = root.join("src").join(&name);
        fs_err::create_dir_all(&src)?;
        fs_err::write(src.join("README"), format!("{name} {generation}\n"))?;
        let mut kdl = format!(
            "package \"{name}\" {{\n    version \"1.0\" path=\"../src/{name}\"\n    languages\n"
        );
        if !n.deps.is_empty() {
            let deps: Vec<String> = n.deps.iter().map(|d| format!("\"n{d:03}\"")).collect();
            let _ = writeln!(kdl, "    depends {} type=\"build,link\"", deps.join(" "));
        }
        let sleep = if n.seconds > 0.0 {
            format!("sleep {}; ", n.seconds)
        } else {
            String::new()
        };
        let _ = write!(
            kdl,
            "    build \"custom\" {{\n        phase \"install\" {{ sh \"{sleep}mkdir -p $out && echo {name} > $out/{name}\" }}\n    }}\n}}\n"
        );
        fs_err::write(root.join("recipes").join(format!("{name}.kdl")), kdl)?;
    }
    fs_err::write(
        root.join("recipes/targets.kdl"),
        "defaults {\n    arch \"x86-64-v3\"\n    toolchain \"host-gcc\"\n}\ntarget \"top\" {\n    spec \"top\"\n}\n",
    )?;
    Ok(())
}

fn forge(forge: &Path, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(forge);
    c.env("FORGE_STORE", work.join("store"))
        .env("XDG_CACHE_HOME", work.join("cache"))
        .env_remove("FORGE_RECIPES")
        .env("NO_COLOR", "1")
        .arg("--recipes")
        .arg(work.join("tree"))
        .args(args);
    c
}

fn timed(mut c: Command) -> Result<Duration, String> {
    let t = Instant::now();
    let o = c.output().map_err(|e| e.to_string())?;
    let d = t.elapsed();
    if !o.status.success() {
        return Err(format!(
            "forge failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(d)
}

/// `forge-bench realize-noop`.
pub fn noop(nodes: usize, runs: usize) -> Result<String, String> {
    let bin = forge_bin()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dag = dag(nodes, 7, 0.0, 0.0);
    write_tree(&work.path().join("tree"), &dag, 0).map_err(|e| e.to_string())?;
    timed(forge(&bin, work.path(), &["realize", "top", "--jobs", "2"]))?;
    let plans = work.path().join("cache/forge/plans");
    let mut realize = Vec::new();
    let mut cold = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..runs.max(3) {
        baseline.push(timed(forge(&bin, work.path(), &["--version"]))?);
        realize.push(timed(forge(&bin, work.path(), &["realize", "top"]))?);
        forget_plans(&plans)?;
        cold.push(timed(forge(&bin, work.path(), &["realize", "top"]))?);
    }
    Ok(noop_report(
        &format!(
            "{} nodes, all valid, {} runs ({})",
            dag.len(),
            runs.max(3),
            bin.display()
        ),
        "top",
        realize,
        cold,
        baseline,
    ))
}

/// Empties the plan cache, so that the next realize plans from the recipes (and fills it again).
fn forget_plans(plans: &Path) -> Result<(), String> {
    match fs_err::remove_dir_all(plans) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// The lines both no-op benchmarks print: the realize (its plan remembered, and planned from
/// the recipes with the plan cache empty) next to `forge --version`, and the ratio to the 20 ms
/// budget.
fn noop_report(
    what: &str,
    target: &str,
    realize: Vec<Duration>,
    cold: Vec<Duration>,
    baseline: Vec<Duration>,
) -> String {
    let (rmin, rmed) = min_median(realize);
    let (cmin, cmed) = min_median(cold);
    let (bmin, bmed) = min_median(baseline);
    let mut out = String::new();
    let _ = writeln!(out, "forge-bench realize-noop: {what}");
    let _ = writeln!(
        out,
        "  forge realize {target}:  min {} ms, median {} ms   (target: <= 20 ms)",
        ms(rmin),
        ms(rmed)
    );
    let _ = writeln!(
        out,
        "  the same, plan cache empty (parses the recipes): min {} ms, median {} ms   ({:.1}x the cached run)",
        ms(cmin),
        ms(cmed),
        cmed.as_secs_f64() / rmed.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        out,
        "  forge --version:    min {} ms, median {} ms   (process start-up)",
        ms(bmin),
        ms(bmed)
    );
    let _ = writeln!(
        out,
        "  ratio to the 20 ms budget: {:.2}",
        rmed.as_secs_f64() / 0.020
    );
    out
}

/// `forge-bench realize-noop --target T --recipes DIR --store DIR`: a no-op realize of a real
/// target whose every node is already valid in an existing store (realized beforehand, e.g. by
/// the heavy suite), next to `forge --version`.
pub fn noop_real(
    target: &str,
    recipes: &Path,
    store: &Path,
    runs: usize,
) -> Result<String, String> {
    let bin = forge_bin()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let run = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.env("FORGE_STORE", store)
            .env("XDG_CACHE_HOME", work.path().join("cache"))
            .env_remove("FORGE_RECIPES")
            .env("NO_COLOR", "1")
            .arg("--recipes")
            .arg(recipes)
            .args(args);
        c
    };
    // The first run fills the host-version cache and must find nothing to build.
    let o = run(&["realize", target, "--json"])
        .output()
        .map_err(|e| e.to_string())?;
    let first = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() || !first.contains("\"to_build\":0") {
        return Err(format!(
            "`{target}` is not fully realized in {}: realize it first",
            store.display()
        ));
    }
    let plans = work.path().join("cache/forge/plans");
    let mut realize = Vec::new();
    let mut cold = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..runs.max(3) {
        baseline.push(timed(run(&["--version"]))?);
        realize.push(timed(run(&["realize", target]))?);
        forget_plans(&plans)?;
        cold.push(timed(run(&["realize", target]))?);
    }
    Ok(noop_report(
        &format!(
            "`{target}`, all valid in {}, {} runs",
            store.display(),
            runs.max(3)
        ),
        target,
        realize,
        cold,
        baseline,
    ))
}

/// The wall time of list scheduling `nodes` on `slots` with exact durations and no overhead:
/// whenever a slot is free, the ready node with the longest chain of work above it starts.
/// This is the policy forge's scheduler follows when it knows every build's duration; the
/// benchmark uses it to separate forge's own overhead from what the policy itself costs on
/// graphs where no list schedule reaches `max(critical path, work / slots)`.
pub fn list_schedule(nodes: &[Node], slots: usize) -> f64 {
    let n = nodes.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for d in &node.deps {
            dependents[*d].push(i);
        }
    }
    // Nodes come dependencies first, so a reverse walk sees every dependent before its deps.
    let mut prio = vec![0.0f64; n];
    for i in (0..n).rev() {
        let above = dependents[i].iter().map(|d| prio[*d]).fold(0.0, f64::max);
        prio[i] = nodes[i].seconds + above;
    }
    let mut missing: Vec<usize> = nodes.iter().map(|x| x.deps.len()).collect();
    let mut ready: Vec<usize> = (0..n).filter(|i| missing[*i] == 0).collect();
    // (finish time, node) of the running builds.
    let mut running: Vec<(f64, usize)> = Vec::new();
    let mut now = 0.0f64;
    let mut done = 0;
    while done < n {
        // Highest priority last; ties by index so that the result is deterministic.
        ready.sort_by(|a, b| prio[*a].total_cmp(&prio[*b]).then(b.cmp(a)));
        while running.len() < slots.max(1) {
            let Some(i) = ready.pop() else { break };
            running.push((now + nodes[i].seconds, i));
        }
        let (k, &(t, i)) = running
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .expect("a build is running while nodes remain");
        running.swap_remove(k);
        now = t;
        done += 1;
        for d in &dependents[i] {
            missing[*d] -= 1;
            if missing[*d] == 0 {
                ready.push(*d);
            }
        }
    }
    now
}

/// `forge-bench scheduler`: for each job-slot count, a realize of the graph with no build
/// history (forge's estimate is one unit per build) and one of the same graph under new hashes,
/// with the first run's build times as estimates ("known durations").
pub fn scheduler(
    nodes: usize,
    jobs: &[usize],
    min_s: f64,
    max_s: f64,
    seed: u64,
) -> Result<String, String> {
    let bin = forge_bin()?;
    let dag = dag(nodes, seed, min_s, max_s);
    let total: f64 = dag.iter().map(|n| n.seconds).sum();
    let cp = critical_path(&dag);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forge-bench scheduler: {} nodes of sleep-only builds ({min_s}-{max_s} s, seed {seed})",
        dag.len()
    );
    let _ = writeln!(
        out,
        "  total work {total:.2} s, critical path {cp:.2} s\n  \
         bound = max(critical path, work / slots); list = CP-first list schedule with exact \
         durations and zero overhead (simulated)\n  \
         cold = no build history; known = durations known from a previous build"
    );
    let _ = writeln!(
        out,
        "  {:>5} {:>7} {:>7} {:>7} {:>7} {:>11} {:>11} {:>11}",
        "slots", "bound", "list", "cold", "known", "cold/bound", "known/bound", "known/list"
    );
    for &j in jobs {
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let slots = j.to_string();
        let args = ["realize", "top", "--jobs", &slots, "--cores", "1"];
        let mut walls = Vec::new();
        for generation in 0..2 {
            write_tree(&work.path().join("tree"), &dag, generation).map_err(|e| e.to_string())?;
            // Plan first so that host probing and tree hashing are not part of the measurement.
            timed(forge(&bin, work.path(), &["plan", "top"]))?;
            walls.push(timed(forge(&bin, work.path(), &args))?.as_secs_f64());
        }
        let bound = cp.max(total / j as f64);
        let list = list_schedule(&dag, j);
        let _ = writeln!(
            out,
            "  {j:>5} {bound:>7.2} {list:>7.2} {:>7.2} {:>7.2} {:>11.3} {:>11.3} {:>11.3}",
            walls[0],
            walls[1],
            walls[0] / bound,
            walls[1] / bound,
            walls[1] / list
        );
    }
    let _ = writeln!(
        out,
        "  target: wall <= 1.05 x bound; where even `list` exceeds the bound, no list scheduler \
         can meet it and known/list is forge's own overhead"
    );
    Ok(out)
}

/// A tree shaped like a compiler install: many small files (headers) in nested directories and
/// a few large binaries, `total_mb` in all.
pub fn install_like_tree(root: &Path, total_mb: u64, seed: u64) -> std::io::Result<(u64, u64)> {
    let mut rng = Rng::new(seed);
    let mut files = 0;
    let mut bytes = 0u64;
    let target = total_mb << 20;
    let mut buf = vec![0u8; 1 << 20];
    rng.fill(&mut buf);
    // 70% in a few big files, the rest in small ones.
    let big = target * 7 / 10;
    let mut big_done = 0;
    let mut k = 0;
    while big_done < big {
        let size = (big / 4).min(big - big_done);
        let p = root.join(format!("libexec/cc1-{k}"));
        fs_err::create_dir_all(p.parent().expect("parent"))?;
        let mut f = fs_err::File::create(&p)?;
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            std::io::Write::write_all(&mut f, &buf[..n])?;
            left -= n as u64;
        }
        big_done += size;
        bytes += size;
        files += 1;
        k += 1;
        rng.fill(&mut buf);
    }
    while bytes < target {
        let dir = root.join(format!(
            "include/d{:02}/s{:02}",
            rng.below(40),
            rng.below(20)
        ));
        fs_err::create_dir_all(&dir)?;
        let size = 512 + rng.below(24_000) as u64;
        let off = rng.below(buf.len() - 32_000);
        fs_err::write(
            dir.join(format!("h{files}.h")),
            &buf[off..off + size as usize],
        )?;
        bytes += size;
        files += 1;
    }
    Ok((files, bytes))
}

fn b3sum_tree(root: &Path) -> Result<Duration, String> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).map_err(|e| e.to_string())? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let t = Instant::now();
    // In batches, as xargs would, with b3sum's own threads on each large file.
    for chunk in paths.chunks(2000) {
        let o = Command::new("b3sum")
            .args(chunk)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("running b3sum (Debian package `b3sum`): {e}"))?;
        if !o.success() {
            return Err("b3sum failed".into());
        }
    }
    Ok(t.elapsed())
}

/// `forge-bench hash`.
pub fn hash(total_mb: u64, runs: usize) -> Result<String, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = work.path().join("tree");
    let (files, bytes) = install_like_tree(&root, total_mb, 11).map_err(|e| e.to_string())?;
    // Warm the page cache for both, then alternate.
    forge_core::treehash::hash_tree(&root).map_err(|e| e.to_string())?;
    b3sum_tree(&root)?;
    let mut forge = Vec::new();
    let mut b3 = Vec::new();
    for _ in 0..runs.max(3) {
        let t = Instant::now();
        forge_core::treehash::hash_tree(&root).map_err(|e| e.to_string())?;
        forge.push(t.elapsed());
        b3.push(b3sum_tree(&root)?);
    }
    let (_, fmed) = min_median(forge);
    let (_, bmed) = min_median(b3);
    let mbps = |d: Duration| bytes as f64 / 1_048_576.0 / d.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forge-bench hash: {files} files, {:.0} MiB (page cache warm), median of {} runs",
        bytes as f64 / 1_048_576.0,
        runs.max(3)
    );
    let _ = writeln!(
        out,
        "  forge-treehash: {} ms ({:.0} MiB/s)",
        ms(fmed),
        mbps(fmed)
    );
    let _ = writeln!(
        out,
        "  b3sum:          {} ms ({:.0} MiB/s)",
        ms(bmed),
        mbps(bmed)
    );
    let _ = writeln!(
        out,
        "  throughput ratio forge / b3sum: {:.2}   (target: >= 0.80)",
        bmed.as_secs_f64() / fmed.as_secs_f64()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(deps: &[usize], seconds: f64) -> Node {
        Node {
            deps: deps.to_vec(),
            seconds,
        }
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let nodes = vec![
            node(&[], 1.0),
            node(&[], 5.0),
            node(&[0], 1.0),
            node(&[1, 2], 2.0),
        ];
        assert_eq!(critical_path(&nodes), 7.0);
    }

    #[test]
    fn list_schedule_runs_the_longest_chain_first() {
        // Two slots; a 3 s chain (0 -> 2) and two independent 2 s builds (1, 3). Starting
        // the chain first finishes at 4 s; starting the two short builds first would need 5 s.
        let nodes = vec![
            node(&[], 1.0),
            node(&[], 2.0),
            node(&[0], 2.0),
            node(&[], 2.0),
        ];
        assert_eq!(list_schedule(&nodes, 2), 4.0);
        assert_eq!(list_schedule(&nodes, 1), 7.0);
        assert_eq!(list_schedule(&nodes, 8), 3.0);
    }

    #[test]
    fn dag_has_one_root_over_everything() {
        let d = dag(60, 3, 0.1, 0.2);
        assert_eq!(d.len(), 61);
        let root = d.last().unwrap();
        let mut reach = vec![false; d.len()];
        let mut stack = root.deps.clone();
        while let Some(x) = stack.pop() {
            if !reach[x] {
                reach[x] = true;
                stack.extend(d[x].deps.iter().copied());
            }
        }
        assert!(
            reach[..60].iter().all(|r| *r),
            "every node is under the root"
        );
    }
}
