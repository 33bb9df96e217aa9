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

/// Fills `dir` with links to the host tools that exist.
pub fn link_host_tools(dir: &Path) -> std::io::Result<Vec<String>> {
    fs_err::create_dir_all(dir)?;
    let cwd = PathBuf::from("/");
    let mut missing = Vec::new();
    for t in HOST_TOOLS {
        match which::which_in(t, Some(HOST_TOOL_PATH), &cwd) {
            Ok(p) => {
                let link = dir.join(t);
                if !link.exists() {
                    fs_err::os::unix::fs::symlink(&p, &link)?;
                }
            }
            Err(_) => missing.push((*t).to_owned()),
        }
    }
    Ok(missing)
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
