//! Records the commit forge is built from, for `forge --version` (a bug report then names the
//! exact sources). Outside a git checkout (a source tarball) it says `unknown commit`.

use std::path::Path;
use std::process::Command;

// A missing `.git/HEAD` is an expected outcome here, not an error to report.
#[allow(clippy::disallowed_methods)]
fn main() {
    let git_dir = Path::new("../../.git");
    // Rebuild when HEAD moves: a checkout changes `HEAD`, a commit the branch's ref.
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
        && let Some(r) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=../../.git/{r}");
        println!("cargo:rerun-if-changed=../../.git/packed-refs");
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo:rustc-env=FORGE_GIT_COMMIT={commit}");
}
