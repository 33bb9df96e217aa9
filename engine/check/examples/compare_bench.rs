//! Benchmark: `forge_check::compare` on a ~1 GB pair of trees against `b3sum` over the same
//! files, in the same run.
//!
//! ```sh
//! cargo run --release -p forge-check --example compare_bench -- [--size-mb 1024] [--dir DIR] [--rounds 3]
//! ```
//!
//! The stored tree (kept in `DIR/stored` between runs) is shaped like an installed prefix: a few
//! large binaries, mid-sized libraries, and tens of thousands of small header-like files in
//! nested directories. The rebuilt tree (`DIR/rebuilt`) is a copy with a few planted
//! differences (an embedded time, a build path, a reordered list, an executable bit), so the
//! comparison walks and explains as it would for a real non-reproducible node.
//!
//! After one warm-up pass of each (so both read from the page cache), every round times
//! `compare` and each way of running `b3sum` over both trees; the best time of each counts.
//! b3sum runs as `find … -print0 | xargs -0 b3sum` (one process; b3sum itself uses every core
//! for large files) and with `xargs -P <cores>` (several processes, for the small files); the
//! faster of the two is b3sum's figure. Prints both throughputs (bytes of both trees per
//! second) and the ratio.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use forge_bench::content::text_chunk;
use forge_bench::synthetic::Rng;
use forge_check::{CompareContext, compare};

fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    text_chunk(rng, len, &mut out);
    out
}

fn binary(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill(&mut out);
    out
}

struct Args {
    size_mb: u64,
    dir: PathBuf,
    rounds: u32,
}

fn args() -> Args {
    let mut a = Args {
        size_mb: 1024,
        dir: std::env::temp_dir().join("forge-compare-bench"),
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--size-mb" => a.size_mb = value().parse().expect("--size-mb N"),
            "--dir" => a.dir = PathBuf::from(value()),
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs_err::create_dir_all(p).unwrap();
    }
    fs_err::write(path, data).unwrap();
}

/// Generates the stored tree: ~35 % of the bytes in 4 large files, ~25 % in mid-sized files
/// (64 KiB – 4 MiB), ~40 % in small files (256 B – 32 KiB, 200 per directory).
fn generate(root: &Path, size: u64) -> (u64, u64) {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut files, mut bytes) = (0u64, 0u64);
    let large = size * 35 / 100 / 4;
    for i in 0..4 {
        let data = binary(&mut rng, large as usize);
        write(&root.join(format!("libexec/gcc/tool{i}")), &data);
        files += 1;
        bytes += large;
    }
    let mut mid_total = 0;
    let mut n = 0;
    while mid_total < size * 25 / 100 {
        let len = 65_536 + rng.below(4 << 20);
        let data = binary(&mut rng, len);
        write(&root.join(format!("lib/lib{n}.so")), &data);
        mid_total += len as u64;
        n += 1;
        files += 1;
    }
    bytes += mid_total;
    let mut small_total = 0;
    let mut n = 0u64;
    while small_total < size * 40 / 100 {
        let len = 256 + rng.below(32 * 1024 - 256);
        let data = if n.is_multiple_of(3) {
            binary(&mut rng, len)
        } else {
            text(&mut rng, len)
        };
        let dir = format!("include/d{}/s{}", n / 2000, (n / 200) % 10);
        let data = if n == 1 {
            let mut d = b"/* generated on Tue Mar  3 14:02:11 UTC 2026 */\n".to_vec();
            d.extend_from_slice(&data);
            d
        } else {
            data
        };
        write(&root.join(format!("{dir}/h{n}.h")), &data);
        small_total += len as u64;
        n += 1;
        files += 1;
    }
    bytes += small_total;
    (files, bytes)
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
}

/// Differences a real rebuild could have.
fn plant(rebuilt: &Path) {
    let p = rebuilt.join("include/d0/s0/h1.h");
    let mut data = fs_err::read(&p).unwrap();
    data[..47].copy_from_slice(b"/* generated on Tue Mar  3 15:12:40 UTC 2026 */");
    fs_err::write(&p, &data).unwrap();
    let p = rebuilt.join("lib/lib3.so");
    let mut data = fs_err::read(&p).unwrap();
    data[1000..1025].copy_from_slice(b"/tmp/forge-build-XYZ1234/");
    fs_err::write(&p, &data).unwrap();
    let p = rebuilt.join("include/d1/s3/h2605.h");
    let data = fs_err::read(&p).unwrap();
    let mut lines: Vec<&[u8]> = data.split(|&c| c == b'\n').collect();
    lines.reverse();
    fs_err::write(&p, lines.join(&b'\n')).unwrap();
    let p = rebuilt.join("include/d2/s0/h4001.h");
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn b3sum(dirs: &[&Path], parallel: Option<(usize, usize)>) -> Duration {
    let xargs = match parallel {
        Some((procs, per)) => format!("xargs -0 -P{procs} -n{per} b3sum"),
        None => "xargs -0 b3sum".to_string(),
    };
    let script = format!("find \"$@\" -type f -print0 | {xargs} > /dev/null");
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg("sh")
        .args(dirs)
        .status()
        .expect("sh runs");
    let t = start.elapsed();
    assert!(status.success(), "`{script}` failed (is b3sum installed?)");
    t
}

fn main() {
    let a = args();
    let stored = a.dir.join("stored");
    let rebuilt = a.dir.join("rebuilt");
    let marker = a.dir.join(format!("complete-v2-{}", a.size_mb));
    if !marker.exists() {
        if a.dir.exists() {
            fs_err::remove_dir_all(&a.dir).unwrap();
        }
        eprintln!("generating {} MB in {} …", a.size_mb, a.dir.display());
        let (files, bytes) = generate(&stored, a.size_mb << 20);
        copy_tree(&stored, &rebuilt);
        plant(&rebuilt);
        eprintln!("{files} files, {bytes} bytes per tree");
        fs_err::write(&marker, b"").unwrap();
    }
    let ctx = CompareContext::default();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let files = {
        let out = Command::new("find")
            .arg(&stored)
            .arg(&rebuilt)
            .args(["-type", "f"])
            .output()
            .unwrap();
        out.stdout.iter().filter(|&&c| c == b'\n').count()
    };
    let per = files.div_ceil(cores * 8).max(1);
    // Warm-up: both read every byte once.
    let warm = compare(&stored, &rebuilt, &ctx).unwrap();
    let _ = b3sum(&[&stored, &rebuilt], None);
    let bytes = warm.stats.bytes_hashed;
    eprintln!(
        "{} + {} files, {bytes} bytes in both trees; {} differences; {cores} cores",
        warm.stored.files,
        warm.rebuilt.files,
        warm.differences.len()
    );
    for d in &warm.differences {
        eprintln!("  {}  {}", d.path, d.classification);
    }
    let mut best_compare = Duration::MAX;
    let mut best_hashing = Duration::MAX;
    let mut best_serial = Duration::MAX;
    let mut best_parallel = Duration::MAX;
    for round in 1..=a.rounds {
        let start = Instant::now();
        let c = compare(&stored, &rebuilt, &ctx).unwrap();
        let t = start.elapsed();
        best_compare = best_compare.min(t);
        best_hashing = best_hashing.min(c.stats.hashing);
        let s = b3sum(&[&stored, &rebuilt], None);
        best_serial = best_serial.min(s);
        let p = b3sum(&[&stored, &rebuilt], Some((cores, per)));
        best_parallel = best_parallel.min(p);
        eprintln!(
            "round {round}: compare {:.3} s (hashing {:.3} s), b3sum {:.3} s, b3sum -P{cores} {:.3} s",
            t.as_secs_f64(),
            c.stats.hashing.as_secs_f64(),
            s.as_secs_f64(),
            p.as_secs_f64()
        );
    }
    let mbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    let b3 = best_serial.min(best_parallel);
    println!("bytes compared (both trees): {bytes}");
    println!(
        "forge-check compare: {:.3} s, {:.0} MB/s (hashing alone {:.0} MB/s)",
        best_compare.as_secs_f64(),
        mbps(best_compare),
        mbps(best_hashing)
    );
    println!(
        "b3sum (xargs -0 b3sum): {:.3} s, {:.0} MB/s",
        best_serial.as_secs_f64(),
        mbps(best_serial)
    );
    println!(
        "b3sum (xargs -0 -P{cores} -n{per} b3sum): {:.3} s, {:.0} MB/s",
        best_parallel.as_secs_f64(),
        mbps(best_parallel)
    );
    println!(
        "ratio compare / best b3sum: {:.2} (target >= 0.80)",
        b3.as_secs_f64() / best_compare.as_secs_f64()
    );
}
