//! The scrubbed build environment and the minimal set of host tools a build may use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
