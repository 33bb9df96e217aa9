//! The compiler wrappers: every compile gets the target flags, every link the RUNPATH entries.
//!
//! The builder puts `cc`, `gcc`, `c++`, `g++`, `cpp` and `gfortran` links to the forge binary
//! first on the build's `PATH`; invoked under one of those names with `FORGE_WRAPPER_CONFIG` set,
//! forge runs [`main`] instead of its command line. The wrapper decides what the invocation does
//! (query, preprocess, compile, link), adds what the derivation says, appends a record to the
//! wrapper log (the proof that every compile got the flags), and `exec`s the real compiler. It
//! reads one small JSON file and does nothing else, so it costs about a millisecond per call.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Environment variable naming the wrapper configuration file.
pub const CONFIG_ENV: &str = "FORGE_WRAPPER_CONFIG";

/// Names under which forge acts as a compiler wrapper, and the real tool each stands for.
pub const TOOLS: &[(&str, &str)] = &[
    ("cc", "gcc"),
    ("gcc", "gcc"),
    ("c++", "g++"),
    ("g++", "g++"),
    ("cpp", "cpp"),
    ("gfortran", "gfortran"),
    ("f77", "gfortran"),
    ("f95", "gfortran"),
];

/// What the builder tells the wrappers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrapperConfig {
    /// Real tool (`gcc`, `g++`, `cpp`, `gfortran`) → its path.
    pub tools: std::collections::BTreeMap<String, PathBuf>,
    /// Target flags added to every compile, preprocess and link.
    pub arch_flags: Vec<String>,
    /// Flags that map build paths away (`-ffile-prefix-map=…`), added likewise.
    pub prefix_map: Vec<String>,
    /// Directories put on the RUNPATH of everything linked.
    pub rpaths: Vec<PathBuf>,
    /// Run paths the build passes that point under these prefixes are dropped: the compiler's
    /// own store path, whose libraries reach outputs through `gcc-runtime` instead (a run path
    /// into the compiler would make the whole compiler a runtime dependency).
    #[serde(default)]
    pub drop_rpaths_under: Vec<PathBuf>,
    /// Where records are appended (JSON lines).
    pub log: PathBuf,
}

/// What an invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Asks the compiler something (`--version`, `-print-file-name=…`): passed through untouched.
    Query,
    /// Preprocesses only (`-E`, or `cpp`).
    Preprocess,
    /// Compiles without linking (`-c`, `-S`).
    Compile,
    /// Links (possibly compiling too).
    Link,
}

/// One line of the wrapper log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The name the wrapper was called by.
    pub tool: String,
    /// What the call did.
    pub mode: Mode,
    /// Flags the wrapper added.
    pub added: Vec<String>,
    /// Run path entries of the build's own arguments the wrapper dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// The arguments as the build gave them.
    pub args: Vec<String>,
}

/// Classifies a compiler invocation by its arguments.
pub fn mode_of(tool: &str, args: &[String]) -> Mode {
    let queries = [
        "--version",
        "-v",
        "-V",
        "-dumpversion",
        "-dumpfullversion",
        "-dumpmachine",
        "-dumpspecs",
        "--help",
        "-qversion",
    ];
    let has_input = args.iter().any(|a| !a.starts_with('-') || a == "-");
    if args.is_empty()
        || args
            .iter()
            .any(|a| a.starts_with("-print-") || a.starts_with("--print-"))
        || (!has_input && args.iter().any(|a| queries.contains(&a.as_str())))
    {
        return Mode::Query;
    }
    if tool == "cpp" || args.iter().any(|a| a == "-E" || a == "-M" || a == "-MM") {
        return Mode::Preprocess;
    }
    if args.iter().any(|a| a == "-c" || a == "-S") {
        return Mode::Compile;
    }
    Mode::Link
}

/// What the wrapper does to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The arguments for the real compiler.
    pub args: Vec<String>,
    /// Flags the wrapper added.
    pub added: Vec<String>,
    /// Run path entries of the build's arguments that were dropped.
    pub dropped: Vec<String>,
}

/// The arguments to pass to the real compiler: target flags on everything but queries; on links,
/// the build's run paths into the compiler dropped, then forge's RUNPATH entries, written as
/// `DT_RUNPATH` whatever the linker's default (a forge-built binutils defaults to `DT_RPATH`).
pub fn rewrite(config: &WrapperConfig, mode: Mode, args: &[String]) -> Rewritten {
    let mut added = Vec::new();
    if mode != Mode::Query {
        added.extend(config.arch_flags.iter().cloned());
        added.extend(config.prefix_map.iter().cloned());
    }
    let mut out = added.clone();
    let mut dropped = Vec::new();
    if mode == Mode::Link {
        let (kept, gone) = drop_rpaths(args, &config.drop_rpaths_under);
        out.extend(kept);
        dropped = gone;
        let mut link = vec!["-Wl,--enable-new-dtags".to_owned()];
        link.extend(
            config
                .rpaths
                .iter()
                .map(|r| format!("-Wl,-rpath,{}", r.display())),
        );
        out.extend(link.iter().cloned());
        added.extend(link);
    } else {
        out.extend(args.iter().cloned());
    }
    Rewritten {
        args: out,
        added,
        dropped,
    }
}

/// One argument as the linker sees it.
enum Slot {
    /// Not for the linker.
    Plain(String),
    /// `-Wl,a,b,…`: its comma-separated linker arguments (`None` once dropped).
    Wl(Vec<Option<String>>),
    /// `-Xlinker X`: the linker argument X (`None` once dropped).
    Xlinker(Option<String>),
}

/// The linker argument at (slot, index within the slot).
fn token(slots: &mut [Slot], (s, k): (usize, usize)) -> Option<&mut Option<String>> {
    match &mut slots[s] {
        Slot::Plain(_) => None,
        Slot::Wl(t) => t.get_mut(k),
        Slot::Xlinker(x) => Some(x),
    }
}

/// Removes run path entries under `prefixes` from the linker arguments (`-Wl,-rpath,DIR`,
/// `-Wl,-rpath -Wl,DIR`, `-Wl,-rpath=DIR`, `-Wl,-R,DIR`, `-Xlinker -rpath -Xlinker DIR`, and
/// colon-separated lists in any of them). Returns the arguments and the entries removed.
fn drop_rpaths(args: &[String], prefixes: &[PathBuf]) -> (Vec<String>, Vec<String>) {
    if prefixes.is_empty() {
        return (args.to_vec(), Vec::new());
    }
    let mut slots = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(rest) = a.strip_prefix("-Wl,") {
            slots.push(Slot::Wl(
                rest.split(',').map(|t| Some(t.to_owned())).collect(),
            ));
        } else if a == "-Xlinker" {
            match it.next() {
                Some(x) => slots.push(Slot::Xlinker(Some(x.clone()))),
                None => slots.push(Slot::Plain(a.clone())),
            }
        } else {
            slots.push(Slot::Plain(a.clone()));
        }
    }
    // Every linker argument, in order, by (slot, index within the slot).
    let tokens: Vec<(usize, usize)> = slots
        .iter()
        .enumerate()
        .flat_map(|(s, slot)| {
            let n = match slot {
                Slot::Plain(_) => 0,
                Slot::Wl(t) => t.len(),
                Slot::Xlinker(_) => 1,
            };
            (0..n).map(move |k| (s, k))
        })
        .collect();
    let under = |dir: &str| {
        prefixes
            .iter()
            .any(|p| std::path::Path::new(dir).starts_with(p))
    };
    let mut dropped = Vec::new();
    let filter = |list: &str, dropped: &mut Vec<String>| -> Option<String> {
        let (gone, kept): (Vec<&str>, Vec<&str>) = list.split(':').partition(|d| under(d));
        dropped.extend(gone.iter().map(|d| (*d).to_owned()));
        (!kept.is_empty()).then(|| kept.join(":"))
    };
    let mut i = 0;
    while i < tokens.len() {
        let Some(Some(t)) = token(&mut slots, tokens[i]).map(|t| t.clone()) else {
            i += 1;
            continue;
        };
        if let Some((flag, list)) = t
            .split_once('=')
            .filter(|(f, _)| *f == "-rpath" || *f == "--rpath")
        {
            let new = filter(list, &mut dropped).map(|l| format!("{flag}={l}"));
            *token(&mut slots, tokens[i]).expect("token") = new;
        } else if matches!(t.as_str(), "-rpath" | "--rpath" | "-R") && i + 1 < tokens.len() {
            let list = token(&mut slots, tokens[i + 1])
                .and_then(|t| t.clone())
                .unwrap_or_default();
            match filter(&list, &mut dropped) {
                Some(l) => *token(&mut slots, tokens[i + 1]).expect("token") = Some(l),
                None => {
                    *token(&mut slots, tokens[i]).expect("token") = None;
                    *token(&mut slots, tokens[i + 1]).expect("token") = None;
                }
            }
            i += 1;
        }
        i += 1;
    }
    let mut out = Vec::new();
    for slot in slots {
        match slot {
            Slot::Plain(a) => out.push(a),
            Slot::Wl(t) => {
                let kept: Vec<String> = t.into_iter().flatten().collect();
                if !kept.is_empty() {
                    out.push(format!("-Wl,{}", kept.join(",")));
                }
            }
            Slot::Xlinker(Some(x)) => out.extend(["-Xlinker".to_owned(), x]),
            Slot::Xlinker(None) => {}
        }
    }
    (out, dropped)
}

/// Runs as the wrapper called `tool` and never returns: execs the real compiler, or exits 1 with
/// a message when the configuration is missing.
pub fn main(tool: &str, args: Vec<OsString>) -> ! {
    let fail = |msg: String| -> ! {
        let _ = writeln!(std::io::stderr(), "forge compiler wrapper `{tool}`: {msg}");
        std::process::exit(1)
    };
    let Some(config_path) = std::env::var_os(CONFIG_ENV) else {
        fail(format!(
            "{CONFIG_ENV} is not set; the wrappers only work inside a forge build"
        ))
    };
    let config: WrapperConfig = match fs_err::read(&config_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => fail(format!("cannot read the wrapper configuration: {e}")),
    };
    let real_name = TOOLS
        .iter()
        .find(|(n, _)| *n == tool)
        .map_or(tool, |(_, r)| r);
    let Some(real) = config.tools.get(real_name) else {
        fail(format!(
            "this toolchain has no `{real_name}` (the package does not declare that language)"
        ))
    };
    let args: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect();
    let mode = mode_of(real_name, &args);
    let Rewritten {
        args: new_args,
        added,
        dropped,
    } = rewrite(&config, mode, &args);
    let record = Record {
        tool: tool.to_owned(),
        mode,
        added,
        dropped,
        args,
    };
    if let Ok(mut line) = serde_json::to_vec(&record) {
        line.push(b'\n');
        // One write with O_APPEND: records of parallel compiles do not interleave.
        if let Ok(mut f) = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log)
        {
            let _ = f.write_all(&line);
        }
    }
    let err = std::process::Command::new(real).args(&new_args).exec();
    fail(format!("cannot run `{}`: {err}", real.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn modes() {
        assert_eq!(mode_of("gcc", &s(&["--version"])), Mode::Query);
        assert_eq!(
            mode_of("gcc", &s(&["-print-file-name=libstdc++.so.6"])),
            Mode::Query
        );
        assert_eq!(mode_of("gcc", &s(&["-dumpfullversion"])), Mode::Query);
        assert_eq!(mode_of("gcc", &s(&["-v", "x.c"])), Mode::Link);
        assert_eq!(mode_of("gcc", &s(&["-E", "x.c"])), Mode::Preprocess);
        assert_eq!(mode_of("cpp", &s(&["x.c"])), Mode::Preprocess);
        assert_eq!(
            mode_of("gcc", &s(&["-c", "x.c", "-o", "x.o"])),
            Mode::Compile
        );
        assert_eq!(mode_of("gcc", &s(&["x.o", "-o", "x"])), Mode::Link);
    }

    #[test]
    fn flags_are_added_where_they_belong() {
        let c = WrapperConfig {
            tools: Default::default(),
            arch_flags: s(&["-march=x86-64-v3", "-mtune=generic"]),
            prefix_map: s(&["-ffile-prefix-map=/scratch=/forge-build"]),
            rpaths: vec![PathBuf::from("/store/abc-z-1/lib")],
            drop_rpaths_under: Vec::new(),
            log: PathBuf::new(),
        };
        let r = rewrite(&c, Mode::Compile, &s(&["-c", "x.c"]));
        assert_eq!(
            r.args[..3],
            s(&[
                "-march=x86-64-v3",
                "-mtune=generic",
                "-ffile-prefix-map=/scratch=/forge-build"
            ])
        );
        assert!(!r.args.iter().any(|a| a.contains("rpath")));
        assert_eq!(r.added.len(), 3);
        let r = rewrite(&c, Mode::Link, &s(&["x.o", "-o", "x"]));
        assert_eq!(
            r.args[r.args.len() - 2..],
            s(&["-Wl,--enable-new-dtags", "-Wl,-rpath,/store/abc-z-1/lib"])
        );
        assert!(r.added.contains(&"-march=x86-64-v3".to_owned()));
        let r = rewrite(&c, Mode::Query, &s(&["--version"]));
        assert_eq!(r.args, s(&["--version"]));
        assert!(r.added.is_empty());
    }

    #[test]
    fn run_paths_into_the_compiler_are_dropped_in_every_spelling() {
        let c = WrapperConfig {
            tools: Default::default(),
            arch_flags: Vec::new(),
            prefix_map: Vec::new(),
            rpaths: Vec::new(),
            drop_rpaths_under: vec![PathBuf::from("/store/cc-gcc-13")],
            log: PathBuf::new(),
        };
        let link = |args: &[&str]| {
            let r = rewrite(&c, Mode::Link, &s(args));
            let n = r.args.len() - 1; // the new-dtags flag closes every link
            (r.args[..n].to_vec(), r.dropped)
        };
        let gcc = "/store/cc-gcc-13/lib/../lib64";
        // libtool's spelling: the flag and the directory in two arguments.
        let (args, dropped) = link(&[
            "-shared",
            "x.o",
            "-Wl,-rpath",
            &format!("-Wl,{gcc}"),
            "-Wl,-rpath",
            "-Wl,/store/z-1/lib",
            "-o",
            "x.so",
        ]);
        assert_eq!(
            args,
            s(&[
                "-shared",
                "x.o",
                "-Wl,-rpath",
                "-Wl,/store/z-1/lib",
                "-o",
                "x.so"
            ])
        );
        assert_eq!(dropped, s(&[gcc]));
        // One argument, `=`, -R, -Xlinker, and a colon list that keeps its other entry.
        let (args, dropped) = link(&[
            &format!("-Wl,-O1,-rpath,{gcc},--as-needed"),
            &format!("-Wl,--rpath={gcc}"),
            &format!("-Wl,-R,{gcc}"),
            "-Xlinker",
            "-rpath",
            "-Xlinker",
            gcc,
            &format!("-Wl,-rpath,/store/z-1/lib:{gcc}"),
        ]);
        assert_eq!(
            args,
            s(&["-Wl,-O1,--as-needed", "-Wl,-rpath,/store/z-1/lib"])
        );
        assert_eq!(dropped.len(), 5);
        // A directory that only shares a name prefix is kept, and so is everything else.
        let other = s(&[
            "-Wl,-rpath,/store/cc-gcc-13x/lib",
            "-L/store/cc-gcc-13/lib",
            "-lm",
        ]);
        let (args, dropped) = link(&other.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(args, other);
        assert!(dropped.is_empty());
        // Compiles are left alone.
        let r = rewrite(
            &c,
            Mode::Compile,
            &s(&["-c", "x.c", &format!("-Wl,-rpath,{gcc}")]),
        );
        assert!(r.dropped.is_empty());
    }
}
