//! Synthetic recipe trees of any size, for measuring how the pipeline scales.
//!
//! The shape follows a real HPC recipe set: a base layer of common libraries (compression,
//! crypto, build tools) that everything uses, and stacks of packages that depend within their
//! stack and on the base. Packages have several versions, a few variants of every kind, version
//! constraints, conditional dependencies and arguments, virtuals with two providers, host tools,
//! and all five build systems; a tenth of the targets use a compiler built from source. The
//! tree is a pure function of the package count and the seed, and every target resolves.

use std::fmt::Write as _;
use std::path::Path;

/// A small, seeded pseudo-random generator (SplitMix64): no dependency, same numbers everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn hex64(&mut self) -> String {
        (0..4)
            .map(|_| format!("{:016x}", self.next_u64()))
            .collect()
    }
}

/// Size of the shared base layer and of each stack.
const BASE: usize = 30;
const STACK: usize = 50;

/// What was generated.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Packages (recipes), not counting the toolchain's compiler and runtime.
    pub packages: usize,
    /// Targets in `recipes/targets.kdl`.
    pub targets: usize,
}

struct Pkg {
    name: String,
    /// Versions, newest first, as (major, minor, patch).
    versions: Vec<(u32, u32, u32)>,
    /// Whether the package is a host tool (a `host` line; built when the host lacks it).
    host_tool: bool,
    /// Virtual it provides, if any.
    provides: Option<String>,
}

fn name(i: usize) -> String {
    format!("p{i:04}")
}

/// Writes a tree of `packages` recipes under `root` (which must exist and be empty).
pub fn generate(root: &Path, packages: usize, seed: u64) -> std::io::Result<Summary> {
    let mut rng = Rng::new(seed);
    let packages = packages.max(BASE + 10);
    let virtuals = (packages / 50).max(1);
    let mut pkgs: Vec<Pkg> = (0..packages)
        .map(|i| {
            let n = 1 + rng.below(4);
            let major = 1 + rng.below(4) as u32;
            // Newest first; minors differ, so versions are distinct.
            let versions = (0..n)
                .map(|k| {
                    let k = k as u32;
                    (major + 1 - k.min(major), (7 * k + 3) % 10, k)
                })
                .collect::<Vec<_>>();
            Pkg {
                name: name(i),
                versions,
                host_tool: i < BASE && i % 6 == 5,
                provides: None,
            }
        })
        .collect();
    // Two providers per virtual, in the base layer.
    for v in 0..virtuals {
        for k in 0..2 {
            let i = (v * 2 + k + 1) % BASE;
            if pkgs[i].provides.is_none() && !pkgs[i].host_tool {
                pkgs[i].provides = Some(format!("virt{v}"));
            }
        }
    }
    let virtuals: Vec<String> = (0..virtuals)
        .map(|v| format!("virt{v}"))
        .filter(|v| {
            pkgs.iter()
                .filter(|p| p.provides.as_deref() == Some(v.as_str()))
                .count()
                > 0
        })
        .collect();
    fs_err::create_dir_all(root.join("toolchains"))?;
    fs_err::create_dir_all(root.join("recipes"))?;
    write_toolchains(root, &pkgs)?;
    for i in 0..packages {
        let text = recipe(&mut rng, &pkgs, i, &virtuals);
        fs_err::write(
            root.join("recipes").join(format!("{}.kdl", pkgs[i].name)),
            text,
        )?;
    }
    let targets = write_targets(root, &mut rng, &pkgs, &virtuals)?;
    Ok(Summary { packages, targets })
}

fn write_toolchains(root: &Path, pkgs: &[Pkg]) -> std::io::Result<()> {
    fs_err::write(
        root.join("toolchains/arch.kdl"),
        "arch \"x86-64-v3\" {\n    spack \"x86_64_v3\"\n    flags compiler=\"gcc\" versions=\"11.1:\" \"-march=x86-64-v3\" \"-mtune=generic\"\n    flags compiler=\"gcc\" versions=\"4.8:11.0\" \"-march=x86-64\" \"-mavx2\"\n}\n",
    )?;
    fs_err::write(
        root.join("toolchains/toolchains.kdl"),
        "toolchain \"host-gcc\" {\n    compiler \"gcc\" host=#true\n    runtime \"gcc-runtime\"\n}\n\ntoolchain \"gcc\" {\n    compiler \"gcc\"\n    runtime \"gcc-runtime\"\n    bootstrap \"host-gcc\"\n}\n",
    )?;
    // The compiler built from source depends on three base libraries, like gcc on gmp, mpfr, mpc.
    let deps: Vec<String> = pkgs
        .iter()
        .filter(|p| !p.host_tool)
        .take(3)
        .map(|p| format!("\"{}\"", p.name))
        .collect();
    fs_err::write(
        root.join("toolchains/gcc.kdl"),
        format!(
            "package \"gcc\" {{\n    host \"gcc\" \"g++\" version-arg=\"-dumpfullversion\"\n    url \"https://example.org/gcc/gcc-{{version}}.tar.xz\"\n    version \"13.4.0\" sha256=\"{}\"\n    version \"10.5.0\" sha256=\"{}\"\n    languages \"c\" \"cxx\"\n    depends {}\n    build \"autotools\" {{\n        build-dir \"forge-build\"\n        configure \"--disable-multilib\" \"--enable-languages=c,c++\"\n    }}\n}}\n",
            "ab".repeat(32),
            "cd".repeat(32),
            deps.join(" ")
        ),
    )?;
    fs_err::write(
        root.join("toolchains/gcc-runtime.kdl"),
        "package \"gcc-runtime\" {\n    runtime-for \"gcc\"\n    build \"custom\" {\n        phase \"install\" {\n            sh \"mkdir -p \\\"$out/lib\\\"\"\n        }\n    }\n}\n",
    )
}

/// Dependencies of package `i`: earlier packages of its own stack, and the base layer.
fn pick_deps(rng: &mut Rng, pkgs: &[Pkg], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if i == 0 {
        return out;
    }
    let (lo, hi) = if i < BASE {
        (0, i)
    } else {
        let stack_start = BASE + (i - BASE) / STACK * STACK;
        (stack_start, i)
    };
    // Two to five dependencies: the closure of a stack's top is most of the stack plus some of
    // the base, tens of nodes as in the real recipe set.
    let n = 2 + rng.below(4);
    for _ in 0..n {
        let d = if hi > lo && rng.chance(70) {
            // Mostly recent packages of the stack: deep chains, like real stacks.
            let window = (hi - lo).min(12);
            hi - 1 - rng.below(window)
        } else {
            rng.below(BASE.min(i))
        };
        if d != i && !out.contains(&d) && pkgs[d].provides.is_none() {
            out.push(d);
        }
    }
    out
}

fn recipe(rng: &mut Rng, pkgs: &[Pkg], i: usize, virtuals: &[String]) -> String {
    let p = &pkgs[i];
    let mut s = String::new();
    let _ = writeln!(s, "// Synthetic package {i}.");
    let _ = writeln!(s, "package \"{}\" {{", p.name);
    let _ = writeln!(s, "    description \"synthetic package number {i}\"");
    let _ = writeln!(s, "    license \"Apache-2.0\"");
    if p.host_tool {
        let _ = writeln!(s, "    host \"tool-{}\"", p.name);
    }
    let _ = writeln!(
        s,
        "    url \"https://example.org/{0}/{0}-{{version}}.tar.gz\"",
        p.name
    );
    let _ = writeln!(
        s,
        "    mirror \"https://mirror.example.org/{0}/{0}-{{version.dashed}}.tar.gz\"",
        p.name
    );
    for (k, (a, b, c)) in p.versions.iter().enumerate() {
        let deprecated = if k > 0 && k + 1 == p.versions.len() && rng.chance(30) {
            " deprecated=#true"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "    version \"{a}.{b}.{c}\" sha256=\"{}\"{deprecated}",
            rng.hex64()
        );
    }
    // Every package has `v0`, so dependents can ask for `+v0`.
    let v0 = rng.chance(50);
    let _ = writeln!(
        s,
        "    variant \"v0\" default=#{v0} description=\"an on/off feature\""
    );
    let has_mode = rng.chance(40);
    if has_mode {
        let _ = writeln!(
            s,
            "    variant \"mode\" default=\"a\" {{\n        values \"a\" \"b\" \"c\"\n    }}"
        );
    }
    let has_feat = rng.chance(25);
    if has_feat {
        let _ = writeln!(
            s,
            "    variant \"feat\" multi=#true default=\"x\" {{\n        values \"x\" \"y\" \"z\"\n    }}"
        );
    }
    let langs = match rng.below(10) {
        0 => "languages \"c\" \"cxx\" \"fortran\"",
        1..=3 => "languages \"c\" \"cxx\"",
        4 if !p.host_tool => "languages",
        _ => "languages \"c\"",
    };
    let _ = writeln!(s, "    {langs}");
    if let Some(v) = &p.provides {
        let _ = writeln!(s, "    provides \"{v}\"");
    }
    let deps = pick_deps(rng, pkgs, i);
    let mut dep_names = Vec::new();
    for (k, d) in deps.iter().enumerate() {
        let dp = &pkgs[*d];
        let oldest_major = dp.versions.iter().map(|v| v.0).min().unwrap_or(1);
        let constraint = if rng.chance(40) {
            format!("@{oldest_major}:")
        } else {
            String::new()
        };
        // A host tool cannot honour a variant, so only built packages are asked for one.
        let variant = if !dp.host_tool && rng.chance(15) {
            " +v0"
        } else {
            ""
        };
        let when = match k % 4 {
            1 if rng.chance(40) => " when=\"+v0\"".to_owned(),
            2 if rng.chance(30) && p.versions.len() > 1 => {
                format!(" when=\"@{}:\"", p.versions[0].0)
            }
            _ => String::new(),
        };
        let unconditional = when.is_empty();
        let kind = if dp.host_tool || rng.chance(15) {
            " type=\"build\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "    depends \"{}{constraint}{variant}\"{kind}{when}",
            dp.name
        );
        if unconditional {
            dep_names.push(dp.name.clone());
        }
    }
    if !virtuals.is_empty() && i >= BASE && rng.chance(10) {
        let v = &virtuals[rng.below(virtuals.len())];
        let _ = writeln!(s, "    depends \"{v}\"");
        dep_names.push(v.clone());
    }
    if p.versions.len() > 1 && rng.chance(10) {
        let _ = writeln!(
            s,
            "    conflicts \"+v0\" when=\"@:{}\" message=\"v0 needs a newer release\"",
            p.versions.last().map_or(0, |v| v.0)
        );
    }
    let _ = writeln!(s, "    spack namespace=\"builtin\"");
    let dep_arg = |flag: &str| -> String {
        dep_names
            .first()
            .map(|d| format!(" \"{flag}={{dep:{d}}}\""))
            .unwrap_or_default()
    };
    match rng.below(5) {
        0 | 1 => {
            let _ = writeln!(s, "    build \"autotools\" {{");
            if rng.chance(20) {
                let _ = writeln!(s, "        autoreconf when=\"@{}:\"", p.versions[0].0);
            }
            let _ = writeln!(
                s,
                "        configure \"--disable-static\"{}",
                dep_arg("--with-dep")
            );
            let _ = writeln!(s, "        configure \"--enable-v0\" when=\"+v0\"");
            if has_mode {
                let _ = writeln!(s, "        configure \"--mode={{variant:mode}}\"");
            }
            if rng.chance(30) {
                let _ = writeln!(s, "        build-dir \"build\"");
            }
            let _ = writeln!(s, "        env \"CFLAGS\" \"-O2 -g\" when=\"%gcc@10:\"");
            let _ = writeln!(s, "    }}");
        }
        2 => {
            let _ = writeln!(s, "    build \"cmake\" {{");
            let _ = writeln!(s, "        define \"BUILD_SHARED_LIBS\" #true");
            let _ = writeln!(s, "        define \"WITH_V0\" #true when=\"+v0\"");
            if let Some(d) = dep_names.first() {
                let _ = writeln!(s, "        define \"DEP_ROOT\" \"{{dep:{d}}}\"");
            }
            let _ = writeln!(s, "        generator \"Ninja\"");
            let _ = writeln!(s, "    }}");
        }
        3 => {
            let _ = writeln!(s, "    build \"meson\" {{");
            let _ = writeln!(s, "        option \"v0\" #true when=\"+v0\"");
            let _ = writeln!(s, "        option \"tests\" #false");
            let _ = writeln!(s, "    }}");
        }
        _ if rng.chance(50) => {
            let _ = writeln!(s, "    build \"make\" {{");
            let _ = writeln!(s, "        build-args \"PREFIX={{out}}\"{}", dep_arg("DEP"));
            let _ = writeln!(s, "        install-args \"PREFIX={{out}}\"");
            let _ = writeln!(s, "    }}");
        }
        _ => {
            let _ = writeln!(s, "    build \"custom\" {{");
            let _ = writeln!(
                s,
                "        phase \"build\" {{\n            run \"make\" \"-j{{jobs}}\"{}\n        }}",
                dep_arg("DEP")
            );
            let _ = writeln!(
                s,
                "        phase \"install\" {{\n            sh \"make install PREFIX=\\\"$out\\\"\"\n        }}"
            );
            let _ = writeln!(s, "    }}");
        }
    }
    let _ = writeln!(s, "}}");
    s
}

fn write_targets(
    root: &Path,
    rng: &mut Rng,
    pkgs: &[Pkg],
    virtuals: &[String],
) -> std::io::Result<usize> {
    let mut s = String::from("defaults {\n    arch \"x86-64-v3\"\n    toolchain \"host-gcc\"\n");
    for v in virtuals {
        if let Some(p) = pkgs
            .iter()
            .find(|p| p.provides.as_deref() == Some(v.as_str()))
        {
            let _ = writeln!(s, "    provider \"{v}\" \"{}\"", p.name);
        }
    }
    s.push_str("}\n");
    // About 36 targets per 100 packages, as in the real recipe set.
    let count = (pkgs.len() * 36 / 100).max(4);
    let stacks = (pkgs.len() - BASE).div_ceil(STACK).max(1);
    for t in 0..count {
        // Roots near the top of a stack: the biggest closures.
        let stack = rng.below(stacks);
        let start = BASE + stack * STACK;
        let end = (start + STACK).min(pkgs.len());
        let i = if end > start + 10 {
            end - 1 - rng.below(10)
        } else {
            BASE - 1 - rng.below(5)
        };
        let p = &pkgs[i];
        let version = p.versions[0];
        let mut spec = format!("{}@{}.{}", p.name, version.0, version.1);
        if rng.chance(30) {
            spec.push_str(" ~v0");
        }
        if t % 10 == 9 {
            spec.push_str(" %gcc@13.4.0");
        }
        let _ = writeln!(s, "\ntarget \"t{t:04}\" {{\n    spec \"{spec}\"\n}}");
    }
    fs_err::write(root.join("recipes/targets.kdl"), s)?;
    Ok(count)
}
