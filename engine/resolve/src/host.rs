//! Finding tools on the host: `host "cmake"` lines of recipes.
//!
//! The resolver asks a [`HostProbe`] whether a package is available on the machine and at which
//! version. [`SystemHost`] searches `PATH` with the `which` crate and runs the version command
//! once per package per process; tests use [`FixedHost`] so that graphs do not depend on the
//! machine running them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use forge_recipe::{HostDecl, Version};

/// A tool found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTool {
    /// Its detected version.
    pub version: Version,
    /// Each executable of the `host` line and where it was found. Executables after the first
    /// that are missing are left out.
    pub executables: Vec<(String, PathBuf)>,
    /// The argument that makes the first executable print its installation prefix
    /// (`prefix-arg`), if its recipe gives one. Asked only by [`HostTool::prefix`]: planning
    /// never runs it.
    pub prefix_arg: Option<String>,
    /// Where answers to `prefix_arg` are remembered across runs (the version cache's file),
    /// under the same validity rule as versions.
    pub prefix_cache: Option<PathBuf>,
}

impl HostTool {
    /// Where the tool is installed: what it reports when its recipe says how to ask, else the
    /// directory above the `bin/` its first executable really lies in (links resolved), else
    /// `/usr`. Runs the tool in the first case (exports call this, once per tool) unless the
    /// answer is remembered in `prefix_cache` for this very executable. A shim (pyenv) keeps
    /// its size and mtime when the version behind it changes, as for versions.
    pub fn prefix(&self) -> PathBuf {
        let exe = &self.executables[0].1;
        if let Some(arg) = &self.prefix_arg {
            // Through a pyenv shim the question costs ~40 processes and 90 ms: remembered.
            let cache = self.prefix_cache.as_ref().map(|f| VersionCache {
                file: f.clone(),
                entries: Mutex::default(),
            });
            let real = fs_err::canonicalize(exe).unwrap_or_else(|_| exe.clone());
            let key = format!("prefix\0{}\0{arg}", real.display());
            let sig = forge_core::fs::signature(&real, true).map(Vec::from);
            if let (Some(c), Some(sig)) = (&cache, &sig)
                && let Some(p) = c.get(&key, sig).map(PathBuf::from)
                && p.is_dir()
            {
                return p;
            }
            if let Some(p) = query_prefix(exe, arg) {
                if let (Some(c), Some(sig)) = (&cache, sig) {
                    c.put(key, sig, p.display().to_string());
                }
                return p;
            }
        }
        let real = fs_err::canonicalize(exe).unwrap_or_else(|_| exe.clone());
        real.parent()
            .and_then(std::path::Path::parent)
            .map_or_else(|| PathBuf::from("/usr"), std::path::Path::to_path_buf)
    }
}

/// Why a host tool could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The first executable is not on `PATH`.
    #[error("`{exe}` is not on PATH")]
    NotFound {
        /// The executable looked for.
        exe: String,
    },
    /// The version command failed or printed nothing recognizable.
    #[error("could not read the version of `{path}`: {reason}")]
    NoVersion {
        /// The executable.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Answers "is this package on the host, at which version?".
pub trait HostProbe: Sync + std::fmt::Debug {
    /// Probes `package` as described by its recipe's `host` line.
    fn probe(&self, package: &str, decl: &HostDecl) -> Result<HostTool, HostError>;
}

/// The real machine: `PATH` lookup and version commands, cached per package.
#[derive(Debug, Default)]
pub struct SystemHost {
    cache: Mutex<BTreeMap<String, Result<HostTool, HostError>>>,
    versions: Option<VersionCache>,
}

/// Versions detected in earlier runs, keyed by executable, version command and pattern, and
/// valid while the executable's size, mtime, inode and device are unchanged. Running `gcc
/// -dumpfullversion` and friends costs a few milliseconds each; a no-op `forge realize` must not
/// pay that on every run.
#[derive(Debug)]
struct VersionCache {
    file: PathBuf,
    entries: Mutex<Option<VersionMap>>,
}

/// Key → (executable signature, version).
type VersionMap = BTreeMap<String, (Vec<u64>, String)>;

impl VersionCache {
    fn with<R>(&self, f: impl FnOnce(&mut VersionMap) -> R) -> R {
        let mut guard = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = guard.get_or_insert_with(|| {
            fs_err::read(&self.file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        });
        f(map)
    }

    fn get(&self, key: &str, sig: &[u64]) -> Option<String> {
        self.with(|m| m.get(key).filter(|(s, _)| s == sig).map(|(_, v)| v.clone()))
    }

    fn put(&self, key: String, sig: Vec<u64>, version: String) {
        let text = self.with(|m| {
            m.insert(key, (sig, version));
            serde_json::to_vec(m).ok()
        });
        // Best effort: a cache that cannot be written only costs time.
        if let (Some(text), Some(dir)) = (text, self.file.parent()) {
            let _ = fs_err::create_dir_all(dir);
            let tmp = self
                .file
                .with_extension(format!("tmp{}", std::process::id()));
            if fs_err::write(&tmp, text).is_ok() {
                let _ = fs_err::rename(&tmp, &self.file);
            }
        }
    }
}

impl SystemHost {
    /// Probes the current `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers detected versions in `file` across runs (see [`VersionCache`]).
    pub fn with_version_cache(mut self, file: PathBuf) -> Self {
        self.versions = Some(VersionCache {
            file,
            entries: Mutex::default(),
        });
        self
    }

    fn find(&self, exe: &str) -> Option<PathBuf> {
        which::which(exe).ok()
    }

    fn detect(&self, decl: &HostDecl) -> Result<HostTool, HostError> {
        let first = &decl.executables[0].value;
        let path = self
            .find(first)
            .ok_or_else(|| HostError::NotFound { exe: first.clone() })?;
        let real = fs_err::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let key = format!(
            "{}\0{}\0{}",
            real.display(),
            decl.version_arg,
            decl.version_regex.value
        );
        let sig = forge_core::fs::signature(&real, true).map(Vec::from);
        if let (Some(vc), Some(sig)) = (&self.versions, &sig)
            && let Some(v) = vc.get(&key, sig).and_then(|v| Version::parse(&v).ok())
        {
            return Ok(self.tool(decl, path, v));
        }
        let version = self.run_version_command(decl, &path)?;
        if let (Some(vc), Some(sig)) = (&self.versions, sig) {
            vc.put(key, sig, version.to_string());
        }
        Ok(self.tool(decl, path, version))
    }

    fn tool(&self, decl: &HostDecl, first_path: PathBuf, version: Version) -> HostTool {
        let mut executables = vec![(decl.executables[0].value.clone(), first_path)];
        for exe in &decl.executables[1..] {
            if let Some(p) = self.find(&exe.value) {
                executables.push((exe.value.clone(), p));
            }
        }
        HostTool {
            version,
            executables,
            prefix_arg: decl.prefix_arg.clone(),
            prefix_cache: self.versions.as_ref().map(|v| v.file.clone()),
        }
    }

    fn run_version_command(
        &self,
        decl: &HostDecl,
        path: &std::path::Path,
    ) -> Result<Version, HostError> {
        let path = path.to_path_buf();
        let out = Command::new(&path)
            .arg(&decl.version_arg)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HostError::NoVersion {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Some tools print their version on stderr (e.g. older `bison --version` wrappers).
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let re =
            regex::Regex::new(&decl.version_regex.value).map_err(|e| HostError::NoVersion {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let raw = re
            .captures(&text)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
            .ok_or_else(|| HostError::NoVersion {
                path: path.clone(),
                reason: format!(
                    "`{} {}` printed nothing matching `{}`",
                    path.display(),
                    decl.version_arg,
                    decl.version_regex.value
                ),
            })?;
        Version::parse(&raw).map_err(|e| HostError::NoVersion {
            path: path.clone(),
            reason: format!("`{raw}` is not a version: {e}"),
        })
    }
}

/// Runs `exe arg` and takes the first line of its output as the prefix, if it is an absolute
/// path to a directory.
fn query_prefix(exe: &std::path::Path, arg: &str) -> Option<PathBuf> {
    let out = Command::new(exe)
        .arg(arg)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(text.lines().next()?.trim());
    (out.status.success() && p.is_absolute() && p.is_dir()).then_some(p)
}

impl HostProbe for SystemHost {
    fn probe(&self, package: &str, decl: &HostDecl) -> Result<HostTool, HostError> {
        if let Some(hit) = self.cache.lock().expect("host cache poisoned").get(package) {
            return hit.clone();
        }
        let found = self.detect(decl);
        self.cache
            .lock()
            .expect("host cache poisoned")
            .insert(package.to_owned(), found.clone());
        found
    }
}

/// A host described by a table, for tests and for planning on another machine's behalf.
#[derive(Debug, Clone, Default)]
pub struct FixedHost {
    tools: BTreeMap<String, Version>,
}

impl FixedHost {
    /// A host with these packages at these versions (executables under `/usr/bin`).
    pub fn new<'a>(tools: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            tools: tools
                .into_iter()
                .map(|(n, v)| (n.to_owned(), Version::parse(v).expect("valid version")))
                .collect(),
        }
    }
}

impl HostProbe for FixedHost {
    fn probe(&self, package: &str, decl: &HostDecl) -> Result<HostTool, HostError> {
        let version = self.tools.get(package).ok_or_else(|| HostError::NotFound {
            exe: decl.executables[0].value.clone(),
        })?;
        Ok(HostTool {
            version: version.clone(),
            executables: decl
                .executables
                .iter()
                .map(|e| (e.value.clone(), PathBuf::from("/usr/bin").join(&e.value)))
                .collect(),
            prefix_arg: None,
            prefix_cache: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(path: &std::path::Path, runs: &std::path::Path, prints: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt as _;
        fs_err::write(
            path,
            format!(
                "#!/bin/sh\necho run >> '{}'\necho '{}'\n",
                runs.display(),
                prints.display()
            ),
        )
        .unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn runs(path: &std::path::Path) -> usize {
        fs_err::read_to_string(path).map_or(0, |s| s.lines().count())
    }

    #[test]
    fn prefix_answers_are_remembered_while_the_executable_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("p1"), dir.path().join("p2"));
        fs_err::create_dir_all(&p1).unwrap();
        fs_err::create_dir_all(&p2).unwrap();
        let exe = dir.path().join("tool");
        let log = dir.path().join("runs");
        script(&exe, &log, &p1);
        let mut tool = HostTool {
            version: Version::parse("1.0").unwrap(),
            executables: vec![("tool".to_owned(), exe.clone())],
            prefix_arg: Some("--prefix".to_owned()),
            prefix_cache: Some(dir.path().join("cache.json")),
        };
        assert_eq!(tool.prefix(), p1);
        assert_eq!(tool.prefix(), p1);
        assert_eq!(runs(&log), 1, "the second answer comes from the cache");

        // Another executable (its size changes here) is asked again.
        script(&exe, &log, &dir.path().join("p2/."));
        assert_eq!(tool.prefix(), dir.path().join("p2/."));
        assert_eq!(runs(&log), 2);

        // A remembered prefix that is gone is asked again too.
        script(&exe, &log, &p2);
        assert_eq!(tool.prefix(), p2);
        let n = runs(&log);
        fs_err::remove_dir(&p2).unwrap();
        assert_ne!(
            tool.prefix(),
            p2,
            "an answer naming no directory is not used"
        );
        assert_eq!(runs(&log), n + 1);

        // Without a cache every call asks.
        fs_err::create_dir_all(&p2).unwrap();
        tool.prefix_cache = None;
        tool.prefix();
        tool.prefix();
        assert_eq!(runs(&log), n + 3);
    }
}
