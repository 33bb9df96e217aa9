//! Running a build: the scratch directory and its log, patches, then each phase's commands
//! through the sandbox shim, with the staged install collected into the output.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use forge_plan::{Arg, EdgeRole, Piece};

use crate::env::{self, environment};
use crate::fs::{collect_destdir, remove_dir_all_forced};
use crate::request::{
    BuildError, BuildEvent, BuildRequest, BuildResult, DepPath, EventSink, setup,
};
use crate::sources::prepare_sources;

/// The plain-text build log in the scratch directory.
pub(crate) struct Log {
    file: Mutex<fs_err::File>,
    path: PathBuf,
}

impl Log {
    /// Empties (or creates) the scratch directory with its sub-directories and starts the log.
    fn create(scratch: &Path) -> Result<Self, BuildError> {
        remove_dir_all_forced(scratch).map_err(|e| setup("clearing the scratch directory", e))?;
        for d in ["src", "home", "tmp", "bin", "destdir"] {
            fs_err::create_dir_all(scratch.join(d))
                .map_err(|e| setup("creating the scratch directory", e))?;
        }
        let path = scratch.join("build.log");
        let file = fs_err::File::create(&path).map_err(|e| setup("creating the build log", e))?;
        Ok(Self {
            file: Mutex::new(file),
            path,
        })
    }

    /// Writes a set-up error into the log and names the log in it.
    pub(crate) fn attach(&self, e: BuildError) -> BuildError {
        match e {
            BuildError::Setup {
                context, reason, ..
            } => {
                self.line(&format!("forge: {context}: {reason}"));
                BuildError::Setup {
                    context,
                    reason,
                    log: Some(self.path.clone()),
                }
            }
            other => other,
        }
    }

    pub(crate) fn line(&self, s: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{s}");
        }
    }
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        forge_core::fs::tail_lines(&self.path, n)
    }
}

/// The text of argument `arg` for `req`, whose unpacked source is at `src`: `{out}`, `{src}`,
/// `{jobs}` and `{dep:NAME}` filled in. `{dep:NAME}` names a dependency other than the compiler
/// first, then any dependency or virtual of that name.
pub(crate) fn fill(arg: &Arg, req: &BuildRequest, src: &Path) -> Result<String, String> {
    fill_with(arg, &req.out, src, req.jobs, &req.deps)
}

fn fill_with(
    arg: &Arg,
    out: &Path,
    src: &Path,
    jobs: usize,
    deps: &[DepPath],
) -> Result<String, String> {
    arg.fill(|p| {
        Ok(match p {
            Piece::Out => out.to_string_lossy(),
            Piece::Src => src.to_string_lossy(),
            Piece::Jobs => Cow::Owned(jobs.to_string()),
            Piece::Dep(name) => deps
                .iter()
                .find(|d| &d.name == name && d.role != EdgeRole::Compiler)
                .or_else(|| {
                    deps.iter()
                        .find(|d| &d.name == name || d.virtuals.iter().any(|v| v == name))
                })
                .ok_or_else(|| format!("`{{dep:{name}}}`: no such dependency"))?
                .path
                .to_string_lossy(),
            Piece::Lit(s) => Cow::Borrowed(s.as_str()),
        })
    })
}

/// Runs the build of `req`. The output ends up at `req.out`.
pub async fn build(
    req: &BuildRequest,
    events: EventSink,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<BuildResult, BuildError> {
    let start = Instant::now();
    if (req.out_dir.is_some() || req.seal) && !req.isolate_network {
        return Err(setup(
            "isolating the build",
            "redirected and sealed builds need forge's namespaces, which this kernel refuses",
        ));
    }
    let log = Arc::new(Log::create(&req.scratch)?);
    let inputs = &req.drv.inputs;
    log.line(&format!(
        "forge: building {}-{} into {}",
        inputs.name,
        inputs.version,
        req.out.display()
    ));
    let src_root = prepare_sources(req, &log).map_err(|e| log.attach(e))?;
    apply_patches(req, &src_root, &log, &events)?;
    let env = environment(req, &src_root).map_err(|e| log.attach(e))?;
    if req.seal && fs_err::symlink_metadata(req.real_out()).is_err() {
        // A sealed build can write only to mounts that exist before it starts.
        fs_err::create_dir(req.real_out())
            .map_err(|e| log.attach(setup("creating the output directory", e)))?;
    }
    let notes = run_phases(req, &src_root, &env, &log, &events, &mut cancel).await?;
    check_installed(req).map_err(|e| log.attach(e))?;
    log.line(&format!(
        "forge: built in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    Ok(BuildResult {
        seconds: start.elapsed().as_secs_f64(),
        log: log.path.clone(),
        notes,
    })
}

/// Applies the derivation's patches in order, each checked against its sha256 first.
fn apply_patches(
    req: &BuildRequest,
    src_root: &Path,
    log: &Log,
    events: &EventSink,
) -> Result<(), BuildError> {
    let inputs = &req.drv.inputs;
    for (p, file) in inputs.patches.iter().zip(&req.drv.patch_files) {
        events(BuildEvent::Phase("patch".into()));
        let actual = forge_fetch::sha256_file(file)
            .map_err(|e| log.attach(setup(format!("reading patch `{}`", p.name), e)))?;
        if actual != p.sha256 {
            return Err(log.attach(setup(
                format!("patch `{}`", file.display()),
                format!("sha256 is {actual}, the derivation expects {}", p.sha256),
            )));
        }
        let out = std::process::Command::new("patch")
            .arg(format!("-p{}", p.level))
            .args(["--batch", "--forward", "--no-backup-if-mismatch", "-i"])
            .arg(file)
            .current_dir(src_root)
            .env_clear()
            .env("PATH", env::HOST_TOOL_PATH)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| log.attach(setup("running patch", e)))?;
        log.line(&format!("$ patch -p{} -i {}", p.level, p.name));
        log.line(&String::from_utf8_lossy(&out.stdout));
        log.line(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(BuildError::Command {
                phase: "patch".into(),
                command: format!("patch -p{} -i {}", p.level, p.name),
                status: format!("exited with {}", out.status),
                log: log.path.clone(),
                tail: log.tail(30),
            });
        }
    }
    Ok(())
}

/// Runs every phase's commands in order; an install phase's staged files are moved into the
/// output. Returns notes about what an install tried to put elsewhere.
async fn run_phases(
    req: &BuildRequest,
    src_root: &Path,
    env: &BTreeMap<String, String>,
    log: &Arc<Log>,
    events: &EventSink,
    cancel: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<String>, BuildError> {
    let Some(build) = &req.drv.inputs.build else {
        return Err(log.attach(setup("building", "the derivation has no build steps")));
    };
    let mut notes = Vec::new();
    let destdir = req.scratch.join("destdir");
    for phase in &build.phases {
        events(BuildEvent::Phase(phase.name.clone()));
        log.line(&format!("==> {}", phase.name));
        let mut phase_env = env.clone();
        if phase.destdir {
            phase_env.insert("DESTDIR".into(), destdir.to_string_lossy().into_owned());
        }
        for cmd in &phase.commands {
            let cwd = if cmd.cwd.is_empty() {
                src_root.to_path_buf()
            } else {
                src_root.join(&cmd.cwd)
            };
            fs_err::create_dir_all(&cwd)
                .map_err(|e| log.attach(setup("creating the working directory", e)))?;
            let argv: Vec<String> = match (&cmd.argv, &cmd.sh) {
                (Some(a), _) => a
                    .iter()
                    .map(|x| fill(x, req, src_root))
                    .collect::<Result<_, _>>()
                    .map_err(|e| log.attach(setup(format!("phase `{}`", phase.name), e)))?,
                (None, Some(sh)) => vec!["sh".into(), "-ec".into(), sh.clone()],
                (None, None) => continue,
            };
            let shown = shell_words(&argv);
            log.line(&format!("$ {shown}"));
            let status = run(req, &argv, &cwd, &phase_env, log, events, cancel)
                .await
                .map_err(|e| log.attach(e))?;
            if let Some(status) = status {
                return Err(BuildError::Command {
                    phase: phase.name.clone(),
                    command: shown,
                    status,
                    log: log.path.clone(),
                    tail: log.tail(30),
                });
            }
        }
        if phase.destdir {
            let moved = collect_destdir(&destdir, &req.out, req.real_out())
                .map_err(|e| log.attach(setup("moving the staged install into the output", e)))?;
            for n in &moved {
                log.line(&format!("forge: {n}"));
            }
            notes.extend(moved);
        }
    }
    Ok(notes)
}

/// Fails unless the build put something at its output.
fn check_installed(req: &BuildRequest) -> Result<(), BuildError> {
    let installed = if req.seal || req.out_dir.is_some() {
        fs_err::read_dir(req.real_out()).is_ok_and(|mut e| e.next().is_some())
    } else {
        fs_err::symlink_metadata(&req.out).is_ok()
    };
    if installed {
        return Ok(());
    }
    Err(setup(
        "installing",
        format!(
            "the build put nothing at `{}` (`{{out}}`)",
            req.out.display()
        ),
    ))
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one command through the sandbox shim; `Ok(None)` on success, `Ok(Some(status))` when it
/// failed.
async fn run(
    req: &BuildRequest,
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    log: &Arc<Log>,
    events: &EventSink,
    cancel: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Option<String>, BuildError> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| setup("creating a pipe", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| setup("creating a pipe", e))?;
    let mut cmd = tokio::process::Command::new(&req.forge_exe);
    cmd.arg(crate::sandbox::SHIM_ARG);
    if req.isolate_network {
        cmd.arg("--net").args(mounts(req).args());
    }
    cmd.arg("--")
        .args(argv)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| setup(format!("starting `{}`", argv[0]), e))?;
    // The parent's copies of the write ends are closed now (moved into the Command), so the
    // reader sees EOF when the command and its children are done.
    drop(cmd);
    let pid = child.id();
    let log2 = Arc::clone(log);
    let events2 = Arc::clone(events);
    let reader_thread = std::thread::spawn(move || {
        // A pipe, not a named file: fs_err has nothing to add here.
        #[allow(clippy::disallowed_types)]
        let r = std::io::BufReader::new(std::fs::File::from(reader));
        for line in r.split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).into_owned();
            log2.line(&text);
            events2(BuildEvent::Line(text));
        }
    });
    let status = tokio::select! {
        s = child.wait() => s.map_err(|e| setup("waiting for a command", e))?,
        () = async { let _ = cancel.wait_for(|c| *c).await; } => {
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait().await;
            return Err(BuildError::Cancelled);
        }
    };
    // Daemons a command leaves behind may keep the pipe open; do not wait for them forever.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while !reader_thread.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if status.success() {
        Ok(None)
    } else {
        use std::os::unix::process::ExitStatusExt;
        Ok(Some(match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".into(),
        }))
    }
}

/// The mounts a command of `req` gets: the redirected output over `out`, and when sealed, the
/// scratch directory and the output writable (and the scratch `tmp` as `/tmp`), all else
/// read-only.
fn mounts(req: &BuildRequest) -> crate::sandbox::Mounts {
    let mut m = if req.seal {
        let mut writable = vec![req.scratch.clone()];
        if req.out_dir.is_none() {
            writable.push(req.out.clone());
        }
        // The compiler wrappers are links to forge itself.
        let mut visible = req.visible.clone();
        visible.extend(req.forge_exe.parent().map(Path::to_path_buf));
        crate::sandbox::Mounts::sealed(writable, req.scratch.join("tmp"), visible)
    } else {
        crate::sandbox::Mounts::default()
    };
    if let Some(d) = &req.out_dir {
        m.binds.push((d.clone(), req.out.clone()));
    }
    if req.seal {
        m.views = views(req);
    }
    m
}

/// The host program directories a sealed build sees reduced (real directories only: a symlink
/// such as `/bin` → `usr/bin` shows the view of its target), with their staging directories and
/// lists in the scratch directory.
fn views(req: &BuildRequest) -> Vec<crate::sandbox::View> {
    env::HOST_PROGRAM_DIRS
        .iter()
        .enumerate()
        .filter(|(_, d)| fs_err::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
        .map(|(i, d)| crate::sandbox::View {
            dir: PathBuf::from(d),
            staging: req.scratch.join(format!("host-view-{i}")),
            list: req.scratch.join(format!("host-view-{i}.txt")),
        })
        .collect()
}

/// Writes the list of allowed programs of each view (see [`env::allowed_host_programs`]) and
/// makes its staging directory.
pub(crate) fn write_views(req: &BuildRequest, dep_bins: &[PathBuf]) -> std::io::Result<()> {
    for v in views(req) {
        let names = env::allowed_host_programs(&v.dir, dep_bins);
        fs_err::write(&v.list, names.join("\n") + "\n")?;
        fs_err::create_dir_all(&v.staging)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use forge_plan::{DepType, DepTypes};

    #[test]
    fn placeholders_are_filled() {
        let deps = vec![DepPath {
            name: "openmpi".into(),
            virtuals: vec!["mpi".into()],
            path: PathBuf::from("/s/abc-openmpi-5"),
            types: DepTypes::NONE.with(DepType::Build).with(DepType::Link),
            role: EdgeRole::Declared,
        }];
        let arg = Arg::parse("--with-mpi={dep:mpi} -j{jobs} {{x}} {out}").unwrap();
        let s = fill_with(&arg, Path::new("/s/o"), Path::new("/src"), 4, &deps).unwrap();
        assert_eq!(s, "--with-mpi=/s/abc-openmpi-5 -j4 {x} /s/o");
        let nope = Arg::parse("{dep:nope}").unwrap();
        assert!(fill_with(&nope, Path::new("/o"), Path::new("/s"), 1, &deps).is_err());
    }
}
