//! The scrubbed build environment and the minimal set of host tools a build may use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forge_plan::{DepType, EdgeRole};

use crate::phases::{fill, write_views};
use crate::request::{BuildError, BuildRequest, setup};
use crate::wrapper::{self, WrapperConfig};

/// `SOURCE_DATE_EPOCH` for every build: 1980-01-01, the earliest date zip can store.
pub const SOURCE_DATE_EPOCH: &str = "315532800";

/// Host programs every build may call without declaring them: a POSIX shell and utilities, GNU
/// make, archivers, `patch`, and the binutils the host compiler drives. Anything else (cmake,
/// perl, python, autotools, pkg-config, bison …) must be a declared dependency, usually a host
/// package whose version is part of the hash.
pub const HOST_TOOLS: &[&str] = &[
    // shells
    "sh",
    "bash",
    "dash",
    // coreutils
    "[",
    "basename",
    "cat",
    "chgrp",
    "chmod",
    "chown",
    "cksum",
    "comm",
    "cp",
    "csplit",
    "cut",
    "date",
    "dd",
    "df",
    "dirname",
    "du",
    "echo",
    "env",
    "expand",
    "expr",
    "factor",
    "false",
    "fmt",
    "fold",
    "head",
    "id",
    "install",
    "join",
    "link",
    "ln",
    "logname",
    "ls",
    "md5sum",
    "mkdir",
    "mkfifo",
    "mknod",
    "mktemp",
    "mv",
    "nice",
    "nl",
    "nohup",
    "nproc",
    "numfmt",
    "od",
    "paste",
    "pathchk",
    "pr",
    "printenv",
    "printf",
    "ptx",
    "pwd",
    "readlink",
    "realpath",
    "rm",
    "rmdir",
    "seq",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
    "shred",
    "shuf",
    "sleep",
    "sort",
    "split",
    "stat",
    "stdbuf",
    "sum",
    "sync",
    "tac",
    "tail",
    "tee",
    "test",
    "timeout",
    "touch",
    "tr",
    "true",
    "truncate",
    "tsort",
    "tty",
    "uname",
    "unexpand",
    "uniq",
    "unlink",
    "wc",
    "whoami",
    "yes",
    // text and files
    "sed",
    "grep",
    "egrep",
    "fgrep",
    "awk",
    "gawk",
    "mawk",
    "find",
    "xargs",
    "diff",
    "diff3",
    "cmp",
    "sdiff",
    "patch",
    "file",
    "which",
    "hostname",
    "getconf",
    "locale",
    "iconv",
    "ldd",
    "cpio",
    // archives
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "bzip2",
    "bunzip2",
    "xz",
    "unxz",
    "xzcat",
    "zstd",
    "unzip",
    // make
    "make",
    // binutils used by the host gcc and by makefiles
    "ar",
    "as",
    "ld",
    "ld.bfd",
    "nm",
    "objcopy",
    "objdump",
    "ranlib",
    "readelf",
    "size",
    "strings",
    "strip",
    "addr2line",
    "c++filt",
    "elfedit",
];

/// Where host tools are looked up (not the caller's `PATH`, which may hold anything).
pub const HOST_TOOL_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// The host directories of programs a build's `PATH` ends with. In a sealed build each shows
/// only the allowed programs ([`allowed_host_programs`]); a directory that is a symlink (`/bin`
/// on a merged-`/usr` system) shows what its target shows.
pub const HOST_PROGRAM_DIRS: &[&str] = &["/usr/bin", "/bin"];

/// The names, in `dir`, of the host programs a build may see: [`HOST_TOOLS`], the programs its
/// dependencies' `bin` directories link to (declared host tools, the host compiler), and every
/// program those names lead to through symlinks (`awk` → `/etc/alternatives/awk` → `mawk`).
pub fn allowed_host_programs(dir: &Path, dep_bins: &[PathBuf]) -> Vec<String> {
    let mut wanted: Vec<String> = HOST_TOOLS.iter().map(|t| (*t).to_owned()).collect();
    for b in dep_bins {
        let Ok(rd) = fs_err::read_dir(b) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(t) = fs_err::read_link(e.path()) {
                let t = if t.is_absolute() { t } else { b.join(t) };
                if let Some(name) = program_in(dir, &t) {
                    wanted.push(name);
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = wanted.pop() {
        let p = dir.join(&name);
        if fs_err::symlink_metadata(&p).is_err() || !seen.insert(name) {
            continue;
        }
        // Follow the chain of links, keeping every step that lands in `dir`.
        let mut cur = p;
        for _ in 0..16 {
            let Ok(t) = fs_err::read_link(&cur) else {
                break;
            };
            let next = if t.is_absolute() {
                t
            } else {
                cur.parent().unwrap_or(Path::new("/")).join(t)
            };
            if let Some(n) = program_in(dir, &next) {
                wanted.push(n);
            }
            cur = next;
        }
        // A script needs its interpreter (`autoreconf` is perl, `gunzip` is sh), and the
        // programs it names by absolute path (`aclocal` runs `/usr/bin/autom4te`).
        let (interps, named) = script_needs(&cur, dir);
        for interp in interps {
            let interp = if interp.is_absolute() {
                program_in(dir, &interp)
            } else {
                interp.to_str().map(str::to_owned)
            };
            wanted.extend(interp);
        }
        wanted.extend(named.iter().filter_map(|p| program_in(dir, p)));
    }
    seen.into_iter().collect()
}

/// What a script needs: the programs its `#!` line runs (the interpreter, and for
/// `#!/usr/bin/env NAME` the name as well), and the host programs it names by absolute path
/// in `dir` (or `/usr/bin`, `/bin`). Nothing for a file that is not a script.
fn script_needs(path: &Path, dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use std::io::Read;
    let mut text = Vec::new();
    let read = fs_err::File::open(path).and_then(|f| f.take(1 << 20).read_to_end(&mut text));
    if read.is_err() || !text.starts_with(b"#!") {
        return (Vec::new(), Vec::new());
    }
    let line = text[2..].split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let mut interps = Vec::new();
    if let Some(first) = words.next() {
        interps.push(PathBuf::from(first));
        if first.ends_with("/env")
            && let Some(name) = words.find(|w| !w.starts_with('-'))
        {
            interps.push(PathBuf::from(name));
        }
    }
    let mut dirs: Vec<PathBuf> = vec![dir.to_path_buf(), "/usr/bin".into(), "/bin".into()];
    dirs.extend(fs_err::canonicalize(dir));
    dirs.sort();
    dirs.dedup();
    let mut named = Vec::new();
    for d in &dirs {
        let mut prefix = d.as_os_str().as_encoded_bytes().to_vec();
        prefix.push(b'/');
        for at in memchr::memmem::find_iter(&text, &prefix) {
            let rest = &text[at + prefix.len()..];
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || b"._+-".contains(b))
                .count();
            if len > 0 {
                named.push(d.join(&*String::from_utf8_lossy(&rest[..len])));
            }
        }
    }
    named.sort();
    named.dedup();
    (interps, named)
}

/// The name of `path` if it is a program directly in `dir` (through `dir`'s own symlinks: on a
/// merged-`/usr` system `/bin/sh` is in `/usr/bin`).
fn program_in(dir: &Path, path: &Path) -> Option<String> {
    let canon_dir = fs_err::canonicalize(dir).ok()?;
    let parent = fs_err::canonicalize(path.parent()?).ok()?;
    let name = path.file_name()?.to_str()?;
    (parent == canon_dir).then(|| name.to_owned())
}

/// The environment variable a dependency's path is exported as: `FORGE_DEP_<NAME>`.
pub fn dep_var(name: &str) -> String {
    let up: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FORGE_DEP_{up}")
}

/// Appends `dir` to a `:`-list in `env` if it exists.
pub(crate) fn push_existing(env: &mut BTreeMap<String, String>, var: &str, dir: &Path) {
    if dir.is_dir() {
        let entry = env.entry(var.to_owned()).or_default();
        if !entry.is_empty() {
            entry.push(':');
        }
        entry.push_str(&dir.to_string_lossy());
    }
}

/// The environment every command of `req` runs with: compiler wrappers, `PATH`, the search paths
/// of its dependencies, the fixed variables, and the derivation's own.
pub(crate) fn environment(
    req: &BuildRequest,
    src_root: &Path,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut env = BTreeMap::new();
    if req.drv.inputs.toolchain.is_some() {
        compiler_wrappers(req, &mut env)?;
    }
    search_paths(req, &mut env)?;
    let inputs = &req.drv.inputs;
    let scratch = &req.scratch;
    let fixed = [
        ("HOME", scratch.join("home").to_string_lossy().into_owned()),
        ("TMPDIR", scratch.join("tmp").to_string_lossy().into_owned()),
        ("TZ", "UTC".into()),
        ("LC_ALL", "C".into()),
        ("LANG", "C".into()),
        ("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.into()),
        ("ZERO_AR_DATE", "1".into()),
        ("TERM", "dumb".into()),
        ("SHELL", "/bin/sh".into()),
        ("USER", "forge".into()),
        ("LOGNAME", "forge".into()),
        ("out", req.out.to_string_lossy().into_owned()),
        ("src", src_root.to_string_lossy().into_owned()),
        ("FORGE_JOBS", req.jobs.to_string()),
        ("FORGE_NAME", inputs.name.clone()),
        ("FORGE_VERSION", inputs.version.clone()),
    ];
    for (k, v) in fixed {
        env.insert(k.to_owned(), v);
    }
    if let Some(b) = &inputs.build {
        for (k, v) in &b.env {
            let v = fill(v, req, src_root)
                .map_err(|e| setup(format!("environment variable `{k}`"), e))?;
            env.insert(k.clone(), v);
        }
    }
    Ok(env)
}

/// The compiler wrappers (forge itself under the compilers' names) in the scratch `bin`, their
/// configuration, and `CC`, `CXX`, `FC`, `F77`.
fn compiler_wrappers(
    req: &BuildRequest,
    env: &mut BTreeMap<String, String>,
) -> Result<(), BuildError> {
    let Some(tc) = &req.drv.inputs.toolchain else {
        return Ok(());
    };
    let scratch = &req.scratch;
    let compiler = req
        .deps
        .iter()
        .find(|d| d.role == EdgeRole::Compiler)
        .ok_or_else(|| {
            setup(
                "setting up the compiler",
                "the derivation has a toolchain but no compiler dependency",
            )
        })?;
    let mut tools = BTreeMap::new();
    for t in ["gcc", "g++", "cpp", "gfortran"] {
        let p = compiler.path.join("bin").join(t);
        if fs_err::symlink_metadata(&p).is_ok() {
            tools.insert(t.to_owned(), p);
        }
    }
    let mut rpaths: Vec<PathBuf> = vec![req.out.join("lib"), req.out.join("lib64")];
    rpaths.extend(req.rpaths.iter().cloned());
    let config = WrapperConfig {
        tools,
        arch_flags: tc.flags.clone(),
        prefix_map: vec![format!(
            "-ffile-prefix-map={}=/forge-build",
            scratch.display()
        )],
        rpaths,
        drop_rpaths_under: vec![compiler.path.clone()],
        log: scratch.join("wrapper.log"),
    };
    let cfg_path = scratch.join("wrapper.json");
    fs_err::write(
        &cfg_path,
        serde_json::to_vec_pretty(&config).expect("serializes"),
    )
    .map_err(|e| setup("writing the wrapper configuration", e))?;
    let bin = scratch.join("bin");
    for (name, _) in wrapper::TOOLS {
        fs_err::os::unix::fs::symlink(&req.forge_exe, bin.join(name))
            .map_err(|e| setup("creating compiler wrappers", e))?;
    }
    env.insert(
        wrapper::CONFIG_ENV.into(),
        cfg_path.to_string_lossy().into_owned(),
    );
    env.insert("CC".into(), "cc".into());
    env.insert("CXX".into(), "c++".into());
    env.insert("FC".into(), "gfortran".into());
    env.insert("F77".into(), "gfortran".into());
    Ok(())
}

/// `PATH` (wrappers, dependencies' `bin` dirs, build tools' run closures, host tools) and the
/// search paths of the dependencies a build compiles and links against, with a
/// `FORGE_DEP_<NAME>` variable for each.
fn search_paths(req: &BuildRequest, env: &mut BTreeMap<String, String>) -> Result<(), BuildError> {
    let mut path: Vec<PathBuf> = vec![req.scratch.join("bin")];
    for d in &req.deps {
        if d.has(DepType::Build) || d.has(DepType::Run) {
            path.push(d.path.join("bin"));
        }
    }
    path.extend(req.tool_paths.iter().cloned());
    if req.seal {
        write_views(req, &path[1..]).map_err(|e| setup("listing the host tools", e))?;
    }
    path.extend(HOST_PROGRAM_DIRS.iter().map(PathBuf::from));
    path.dedup();
    env.insert(
        "PATH".into(),
        std::env::join_paths(&path)
            .map_err(|e| setup("composing PATH", e))?
            .to_string_lossy()
            .into_owned(),
    );
    for d in &req.deps {
        if d.role == EdgeRole::Compiler {
            continue;
        }
        if d.has(DepType::Build) || d.has(DepType::Link) {
            push_existing(env, "CPATH", &d.path.join("include"));
            push_existing(env, "LIBRARY_PATH", &d.path.join("lib"));
            push_existing(env, "LIBRARY_PATH", &d.path.join("lib64"));
            push_existing(env, "PKG_CONFIG_PATH", &d.path.join("lib/pkgconfig"));
            push_existing(env, "PKG_CONFIG_PATH", &d.path.join("lib64/pkgconfig"));
            push_existing(env, "PKG_CONFIG_PATH", &d.path.join("share/pkgconfig"));
            push_existing(env, "ACLOCAL_PATH", &d.path.join("share/aclocal"));
            let entry = env.entry("CMAKE_PREFIX_PATH".into()).or_default();
            if !entry.is_empty() {
                entry.push(':');
            }
            entry.push_str(&d.path.to_string_lossy());
        }
        env.insert(dep_var(&d.name), d.path.to_string_lossy().into_owned());
        for v in &d.virtuals {
            env.insert(dep_var(v), d.path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_bring_their_interpreters_and_links_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = |name: &str, text: &str| fs_err::write(d.join(name), text).unwrap();
        w("tool", "#!/usr/bin/env -S perlish -w\nprint\n");
        w("perlish", "binary");
        w(
            "runner",
            &format!(
                "#!{}/shell\nexec {}/helper \"$@\"\n",
                d.display(),
                d.display()
            ),
        );
        w("helper", "binary");
        w("shell", "binary");
        w("unrelated", "binary");
        fs_err::os::unix::fs::symlink("tool", d.join("tool-alias")).unwrap();
        let deps = tempfile::tempdir().unwrap();
        fs_err::os::unix::fs::symlink(d.join("tool-alias"), deps.path().join("tool")).unwrap();
        fs_err::os::unix::fs::symlink(d.join("runner"), deps.path().join("runner")).unwrap();
        let got = allowed_host_programs(d, &[deps.path().to_path_buf()]);
        for name in ["tool-alias", "tool", "perlish", "runner", "shell", "helper"] {
            assert!(got.contains(&name.to_owned()), "{name} in {got:?}");
        }
        assert!(!got.contains(&"unrelated".to_owned()), "{got:?}");
    }
}
