//! Benchmark: export a synthetic ~1 GB prefix shaped like a GCC install and compare with
//! `tar -cf - DIR | pigz -6` on the same tree, in the same run.
//!
//! ```sh
//! cargo run --release -p forge-spack --example export_bench -- [--size-mb 1024] [--dir DIR] [--rounds 2]
//! ```
//!
//! The tree (kept in `DIR` between runs) has a few very large, binary-like files (like `cc1`,
//! `cc1plus`, `lto1`), mid-sized libraries and archives, and tens of thousands of small
//! header-like text files; some of them embed the store prefix, as real installs do. Prints
//! wall time and peak RSS for both, the output sizes, and the ratio of the wall times.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use forge_bench::content::{binary_chunk, text_chunk};
use forge_bench::synthetic::Rng;
use forge_spack::{Arch, DepTypes, ExportGraph, ExportOptions, Node, export, host};

fn write_file(path: &Path, size: usize, binary: bool, rng: &mut Rng, embed: Option<&str>) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(fs_err::File::create(path).unwrap());
    let mut left = size;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut first = true;
    while left > 0 {
        buf.clear();
        if first && binary {
            buf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        }
        let n = left.min(1 << 20);
        if binary {
            binary_chunk(rng, n, &mut buf);
        } else {
            text_chunk(rng, n, &mut buf);
        }
        if let Some(p) = embed
            && buf.len() > p.len() + 64
        {
            let at = rng.below(buf.len() - p.len() - 1);
            buf[at..at + p.len()].copy_from_slice(p.as_bytes());
            // A C string in binaries, a path (`<prefix>/…`) in text.
            buf[at + p.len()] = if binary { 0 } else { b'/' };
        }
        f.write_all(&buf).unwrap();
        left -= n;
        first = false;
    }
    f.flush().unwrap();
}

/// Creates the tree unless a finished one is there. Returns (files, bytes).
fn generate(prefix: &Path, total: usize) -> (u64, u64) {
    let marker = prefix.join(".bench-complete");
    let p = prefix.display().to_string();
    if !marker.exists() {
        let _ = fs_err::remove_dir_all(prefix);
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let libexec = prefix.join("libexec/gcc/x86_64-pc-linux-gnu/12.2.0");
        // ~55 % in three compiler binaries.
        for (name, share) in [("cc1plus", 22), ("cc1", 19), ("lto1", 14)] {
            write_file(
                &libexec.join(name),
                total * share / 100,
                true,
                &mut rng,
                Some(&p),
            );
        }
        // ~20 % in libraries and archives.
        for i in 0..16 {
            let name = format!(
                "lib/lib{}.so.{}",
                [
                    "stdc++", "gfortran", "gomp", "asan", "tsan", "ubsan", "lsan", "quadmath"
                ][i % 8],
                i
            );
            write_file(&prefix.join(name), total / 80, true, &mut rng, Some(&p));
        }
        // ~25 % in ~30,000 small header-like files, a few of them embedding the prefix.
        let mut left = total / 4;
        let mut i = 0;
        while left > 0 {
            let size = (1024 + rng.below(14 * 1024)).min(left);
            let dir = format!("include/c++/12/bits{}/sub{}", i % 37, i % 11);
            let embed = (i % 97 == 0).then_some(p.as_str());
            write_file(
                &prefix.join(dir).join(format!("h{i}.h")),
                size,
                false,
                &mut rng,
                embed,
            );
            left -= size;
            i += 1;
        }
        fs_err::write(&marker, b"").unwrap();
    }
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![prefix.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                bytes += md.len();
            }
        }
    }
    (files, bytes)
}

fn peak_rss_kb() -> u64 {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets the peak resident set size.
    let _ = fs_err::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system, all threads) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = fs_err::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks are 100 per second on Linux.
    f.iter().sum::<f64>() / 100.0
}

/// (wall s, pigz peak RSS KiB, output bytes, CPU s of tar + pigz)
fn run_pigz(store: &Path, name: &str, out: &Path) -> (f64, u64, u64, f64) {
    let stats = out.with_extension("stats");
    let tar_stats = out.with_extension("tarstats");
    let script = format!(
        "/usr/bin/time -f '%U %S' -o '{}' tar -cf - -C '{}' '{}' | /usr/bin/time -f '%M %U %S' -o '{}' pigz -6 > '{}'",
        tar_stats.display(),
        store.display(),
        name,
        stats.display(),
        out.display()
    );
    let t = Instant::now();
    let o = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh, tar, pigz and /usr/bin/time are needed");
    let wall = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let nums = |p: &Path| -> Vec<f64> {
        let v = fs_err::read_to_string(p)
            .ok()
            .and_then(|t| t.lines().last().map(str::to_owned))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let _ = fs_err::remove_file(p);
        v
    };
    let p = nums(&stats);
    let t = nums(&tar_stats);
    let rss = p.first().copied().unwrap_or(0.0) as u64;
    let cpu = p.iter().skip(1).sum::<f64>() + t.iter().sum::<f64>();
    (wall, rss, fs_err::metadata(out).unwrap().len(), cpu)
}

fn main() {
    let mut size_mb = 1024usize;
    let mut dir = std::env::temp_dir().join("forge-export-bench");
    let mut rounds = 2;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-mb" => size_mb = args.next().unwrap().parse().unwrap(),
            "--dir" => dir = PathBuf::from(args.next().unwrap()),
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut store = dir.join("store").display().to_string();
    store.push_str("/__forge_padding");
    while store.len() < 200 {
        store.push('_');
    }
    let store = PathBuf::from(store);
    let name = "4k0b2a1c9d8e7f6g5h4i3j2k1l0m9n8p-gcc-12.2.0";
    let prefix = store.join(name);
    eprintln!("generating {size_mb} MB below {} …", dir.display());
    let (files, bytes) = generate(&prefix, size_mb << 20);

    let arch = Arch::linux("debian12", "x86_64_v3");
    let mut g = ExportGraph::new(&store);
    let libc = g.add(host::glibc_node("2.36", arch.clone()));
    let gcc = g.add(Node::built("gcc", "12.2.0", arch, &prefix).namespace("builtin"));
    g.depend(gcc, libc, DepTypes::LINK, &["libc"]);
    let opts = ExportOptions::default();

    // Warm the page cache so both sides read from memory.
    let _ = Command::new("sh")
        .args([
            "-c",
            &format!("tar -cf - -C '{}' '{name}' > /dev/null", store.display()),
        ])
        .status();

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let (mut our_size, mut pigz_size, mut our_rss) = (0, 0, 0);
    let mut pigz_rss = 0;
    let (mut our_cpu, mut pigz_cpu) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let out = dir.join("pigz.tar.gz");
        let (w, rss, size, cpu) = run_pigz(&store, name, &out);
        pigz_cpu.push(cpu);
        fs_err::remove_file(&out).unwrap();
        theirs.push(w);
        pigz_rss = pigz_rss.max(rss);
        pigz_size = size;

        let cache = dir.join("cache");
        let _ = fs_err::remove_dir_all(&cache);
        reset_peak_rss();
        let c = cpu_seconds();
        let t = Instant::now();
        let report = export(&g, &[gcc], &cache, None, &opts).unwrap();
        ours.push(t.elapsed().as_secs_f64());
        our_cpu.push(cpu_seconds() - c);
        our_rss = our_rss.max(peak_rss_kb());
        our_size = report.specs[0].tarball.content_length;
        eprintln!("round {r}: pigz {:.2} s, forge {:.2} s", theirs[r], ours[r]);
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (o, p) = (best(&ours), best(&theirs));
    println!("tree:   {files} files, {:.1} MiB", bytes as f64 / 1048576.0);
    println!(
        "pigz:   {p:.2} s wall (best of {rounds}), peak RSS {:.1} MiB (pigz), {:.1} MiB out (tar -cf - | pigz -6)",
        pigz_rss as f64 / 1024.0,
        pigz_size as f64 / 1048576.0
    );
    println!(
        "forge:  {o:.2} s wall (best of {rounds}), peak RSS {:.1} MiB, {:.1} MiB tarball (export incl. scan, sha256, fsync)",
        our_rss as f64 / 1024.0,
        our_size as f64 / 1048576.0
    );
    println!("ratio:  {:.2}× pigz wall", o / p);
    println!("all rounds: pigz {theirs:.2?}, forge {ours:.2?}");
    println!("CPU s (user+sys): tar+pigz {pigz_cpu:.2?}, forge {our_cpu:.2?}");
}
