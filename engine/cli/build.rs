//! Records the commit forge is built from, for `forge --version` (a bug report then names the
//! exact sources). Outside a git checkout (a source tarball) it says `unknown commit`.

use std::path::Path;
use std::process::Command;

/// `git ARGS` in this package's directory, trimmed, if git runs and succeeds.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    // Rebuild when HEAD moves: a checkout changes `HEAD`, a commit the branch's ref (loose, or
    // in `packed-refs`). Git says where each lives, which also covers worktrees. Only files
    // that exist are named: cargo reruns a script every build for a missing one.
    println!("cargo:rerun-if-changed=build.rs");
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(r);
    }
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && Path::new(&path).is_file()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit =
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo:rustc-env=FORGE_GIT_COMMIT={commit}");
}
