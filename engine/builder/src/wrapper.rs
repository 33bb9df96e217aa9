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

/// The arguments to pass to the real compiler, and the flags added.
pub fn rewrite(config: &WrapperConfig, mode: Mode, args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut added = Vec::new();
    if mode != Mode::Query {
        added.extend(config.arch_flags.iter().cloned());
        added.extend(config.prefix_map.iter().cloned());
    }
    let mut out = added.clone();
    out.extend(args.iter().cloned());
    if mode == Mode::Link {
        for r in &config.rpaths {
            let f = format!("-Wl,-rpath,{}", r.display());
            out.push(f.clone());
            added.push(f);
        }
    }
    (out, added)
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
    let (new_args, added) = rewrite(&config, mode, &args);
    let record = Record {
        tool: tool.to_owned(),
        mode,
        added,
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
            log: PathBuf::new(),
        };
        let (args, added) = rewrite(&c, Mode::Compile, &s(&["-c", "x.c"]));
        assert_eq!(
            args[..3],
            s(&[
                "-march=x86-64-v3",
                "-mtune=generic",
                "-ffile-prefix-map=/scratch=/forge-build"
            ])
        );
        assert!(!args.iter().any(|a| a.contains("rpath")));
        assert_eq!(added.len(), 3);
        let (args, added) = rewrite(&c, Mode::Link, &s(&["x.o", "-o", "x"]));
        assert_eq!(args.last().unwrap(), "-Wl,-rpath,/store/abc-z-1/lib");
        assert!(added.contains(&"-march=x86-64-v3".to_owned()));
        let (args, added) = rewrite(&c, Mode::Query, &s(&["--version"]));
        assert_eq!(args, s(&["--version"]));
        assert!(added.is_empty());
    }
}
