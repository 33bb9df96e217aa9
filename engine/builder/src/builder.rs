//! Running one derivation's build: sources, patches, wrappers, environment, phases, install
//! staging. The result is the output directory at its final path, ready for the store's commit.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use forge_plan::Derivation;

use crate::env::{self, SOURCE_DATE_EPOCH};
use crate::wrapper::{self, WrapperConfig};

/// A direct dependency, with where its output is.
#[derive(Debug, Clone)]
pub struct DepPath {
    /// Package name.
    pub name: String,
    /// Virtuals (or languages) this edge satisfies.
    pub virtuals: Vec<String>,
    /// The dependency's output directory.
    pub path: PathBuf,
    /// Dependency types (`build`, `link`, `run`, `test`).
    pub types: Vec<String>,
    /// `declared`, `compiler` or `runtime`.
    pub role: String,
}

impl DepPath {
    fn has(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }
}

/// Everything one build needs.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The derivation.
    pub drv: Derivation,
    /// The output's final path (`{out}`).
    pub out: PathBuf,
    /// A fresh scratch directory on the store's filesystem (created, or emptied, by the build).
    pub scratch: PathBuf,
    /// Direct dependencies.
    pub deps: Vec<DepPath>,
    /// Extra `bin` directories for `PATH`: the run-time closure of the build tools.
    pub tool_paths: Vec<PathBuf>,
    /// Directories for the RUNPATH of everything linked (the link closure's `lib` dirs).
    pub rpaths: Vec<PathBuf>,
    /// The fetched sources, parallel to the derivation's sources.
    pub sources: Vec<PathBuf>,
    /// `{jobs}`.
    pub jobs: usize,
    /// The forge executable (compiler wrappers and the sandbox shim are forge itself).
    pub forge_exe: PathBuf,
    /// Whether commands run without network.
    pub isolate_network: bool,
    /// Whether commands may write only to the scratch directory, the output and their own
    /// `/tmp` (needs `isolate_network` and a kernel that allows mount namespaces: see
    /// [`crate::Isolation::Sealed`]). The output directory then exists, empty, when the first
    /// command starts.
    pub seal: bool,
    /// Where the output's bytes go when that is not `out` itself: an existing, empty directory
    /// that commands see at `out` (mounted over it in their own mount namespace; needs
    /// `isolate_network`). `forge check` rebuilds at the stored path this way.
    pub out_dir: Option<PathBuf>,
}

impl BuildRequest {
    /// Where the output really is on this machine's filesystem.
    pub fn real_out(&self) -> &Path {
        self.out_dir.as_deref().unwrap_or(&self.out)
    }
}

/// What a build reports as it goes.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A phase started.
    Phase(String),
    /// A line of output.
    Line(String),
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// Wall time.
    pub seconds: f64,
    /// The plain-text log in the scratch directory.
    pub log: PathBuf,
    /// Things worth telling the user (files installed outside the prefix and dropped …).
    pub notes: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A command failed.
    #[error("phase `{phase}` failed: `{command}` {status}")]
    Command {
        /// The phase.
        phase: String,
        /// The command as run.
        command: String,
        /// How it ended.
        status: String,
        /// The log.
        log: PathBuf,
        /// Its last lines.
        tail: Vec<String>,
    },
    /// Preparing the build failed (sources, patches, scratch dir …).
    #[error("{context}: {reason}")]
    Setup {
        /// What was being done.
        context: String,
        /// Why it failed.
        reason: String,
        /// The log, if one was started.
        log: Option<PathBuf>,
    },
    /// The build was interrupted.
    #[error("interrupted")]
    Cancelled,
}

fn setup(context: impl Into<String>, reason: impl ToString) -> BuildError {
    BuildError::Setup {
        context: context.into(),
        reason: reason.to_string(),
        log: None,
    }
}

/// Callback for build events.
pub type EventSink = Arc<dyn Fn(BuildEvent) + Send + Sync>;

struct Log {
    file: Mutex<fs_err::File>,
    path: PathBuf,
}

impl Log {
    fn line(&self, s: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{s}");
        }
    }
    fn tail(&self, n: usize) -> Vec<String> {
        let text = fs_err::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }
}

/// Removes a directory tree that may contain read-only directories.
pub fn remove_dir_all_forced(p: &Path) -> std::io::Result<()> {
    fn writable(p: &Path) {
        if let Ok(m) = fs_err::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = fs_err::read_dir(p) {
                for e in rd.flatten() {
                    writable(&e.path());
                }
            }
        }
    }
    if fs_err::symlink_metadata(p).is_err() {
        return Ok(());
    }
    writable(p);
    fs_err::remove_dir_all(p)
}

/// Copies a directory tree (files, symlinks, directories, executable bits).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs_err::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let t = fs_err::read_link(from)?;
        fs_err::os::unix::fs::symlink(t, to)?;
    } else if meta.is_dir() {
        fs_err::create_dir_all(to)?;
        let mut entries: Vec<_> = fs_err::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        fs_err::copy(from, to)?;
        let mode = if meta.permissions().mode() & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        fs_err::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Links a host tool's executables into `out/bin` (the realization of a host package).
pub fn realize_host(drv: &Derivation, out: &Path) -> Result<(), BuildError> {
    let bin = out.join("bin");
    fs_err::create_dir_all(&bin).map_err(|e| setup("creating the host tool's directory", e))?;
    let names = drv
        .inputs
        .host
        .as_ref()
        .map(|h| h.executables.clone())
        .unwrap_or_default();
    for (name, f) in names.iter().zip(&drv.fetch) {
        let Some(target) = &f.path else { continue };
        fs_err::os::unix::fs::symlink(target, bin.join(name))
            .map_err(|e| setup(format!("linking host `{name}`"), e))?;
    }
    Ok(())
}

fn substitute(
    arg: &str,
    out: &Path,
    src: &Path,
    jobs: usize,
    deps: &[DepPath],
) -> Result<String, String> {
    let t = forge_recipe_template(arg)?;
    let mut s = String::with_capacity(arg.len() + 64);
    for piece in t {
        match piece {
            Piece::Lit(l) => s.push_str(&l),
            Piece::Var(v) => match v.as_str() {
                "out" => s.push_str(&out.to_string_lossy()),
                "src" => s.push_str(&src.to_string_lossy()),
                "jobs" => s.push_str(&jobs.to_string()),
                other => {
                    let Some(name) = other.strip_prefix("dep:") else {
                        return Err(format!("unknown placeholder `{{{other}}}`"));
                    };
                    let d = deps
                        .iter()
                        .find(|d| d.name == name && d.role != "compiler")
                        .or_else(|| {
                            deps.iter()
                                .find(|d| d.name == name || d.virtuals.iter().any(|v| v == name))
                        })
                        .ok_or_else(|| format!("`{{dep:{name}}}`: no such dependency"))?;
                    s.push_str(&d.path.to_string_lossy());
                }
            },
        }
    }
    Ok(s)
}

enum Piece {
    Lit(String),
    Var(String),
}

/// Splits a derivation argument into literal text and the symbolic placeholders the planner left
/// (`{out}`, `{src}`, `{jobs}`, `{dep:NAME}`); `{{`/`}}` are literal braces.
fn forge_recipe_template(arg: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let b = arg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                lit.push('{');
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                lit.push('}');
                i += 2;
            }
            b'{' => {
                let end = arg[i..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` in `{arg}`"))?;
                if !lit.is_empty() {
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                out.push(Piece::Var(arg[i + 1..i + end].to_owned()));
                i += end + 1;
            }
            _ => {
                let ch = arg[i..].chars().next().unwrap_or('\0');
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
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
    let scratch = &req.scratch;
    remove_dir_all_forced(scratch).map_err(|e| setup("clearing the scratch directory", e))?;
    for d in ["src", "home", "tmp", "bin", "destdir"] {
        fs_err::create_dir_all(scratch.join(d))
            .map_err(|e| setup("creating the scratch directory", e))?;
    }
    let log_path = scratch.join("build.log");
    let log = Arc::new(Log {
        file: Mutex::new(
            fs_err::File::create(&log_path).map_err(|e| setup("creating the build log", e))?,
        ),
        path: log_path.clone(),
    });
    let with_log = |e: BuildError| match e {
        BuildError::Setup {
            context, reason, ..
        } => {
            log.line(&format!("forge: {context}: {reason}"));
            BuildError::Setup {
                context,
                reason,
                log: Some(log_path.clone()),
            }
        }
        other => other,
    };
    let inputs = &req.drv.inputs;
    log.line(&format!(
        "forge: building {}-{} into {}",
        inputs.name,
        inputs.version,
        req.out.display()
    ));
    // Sources.
    let src_root = prepare_sources(req, &log).map_err(with_log)?;
    // Patches.
    for (p, file) in inputs.patches.iter().zip(&req.drv.patch_files) {
        events(BuildEvent::Phase("patch".into()));
        let actual = forge_fetch::sha256_file(file)
            .map_err(|e| with_log(setup(format!("reading patch `{}`", p.name), e)))?;
        if actual != p.sha256 {
            return Err(with_log(setup(
                format!("patch `{}`", file.display()),
                format!("sha256 is {actual}, the derivation expects {}", p.sha256),
            )));
        }
        let out = std::process::Command::new("patch")
            .arg(format!("-p{}", p.level))
            .args(["--batch", "--forward", "--no-backup-if-mismatch", "-i"])
            .arg(file)
            .current_dir(&src_root)
            .env_clear()
            .env("PATH", env::HOST_TOOL_PATH)
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| with_log(setup("running patch", e)))?;
        log.line(&format!("$ patch -p{} -i {}", p.level, p.name));
        log.line(&String::from_utf8_lossy(&out.stdout));
        log.line(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(BuildError::Command {
                phase: "patch".into(),
                command: format!("patch -p{} -i {}", p.level, p.name),
                status: format!("exited with {}", out.status),
                log: log_path.clone(),
                tail: log.tail(30),
            });
        }
    }
    let env = environment(req, &src_root).map_err(with_log)?;
    if req.seal && fs_err::symlink_metadata(req.real_out()).is_err() {
        // A sealed build can write only to mounts that exist before it starts.
        fs_err::create_dir(req.real_out())
            .map_err(|e| with_log(setup("creating the output directory", e)))?;
    }
    let mut notes = Vec::new();
    let Some(build) = &inputs.build else {
        return Err(with_log(setup(
            "building",
            "the derivation has no build steps",
        )));
    };
    for phase in &build.phases {
        events(BuildEvent::Phase(phase.name.clone()));
        log.line(&format!("==> {}", phase.name));
        let mut phase_env = env.clone();
        let destdir = scratch.join("destdir");
        if phase.destdir {
            phase_env.insert("DESTDIR".into(), destdir.to_string_lossy().into_owned());
        }
        for cmd in &phase.commands {
            let cwd = if cmd.cwd.is_empty() {
                src_root.clone()
            } else {
                src_root.join(&cmd.cwd)
            };
            fs_err::create_dir_all(&cwd)
                .map_err(|e| with_log(setup("creating the working directory", e)))?;
            let argv: Vec<String> = match (&cmd.argv, &cmd.sh) {
                (Some(a), _) => a
                    .iter()
                    .map(|x| substitute(x, &req.out, &src_root, req.jobs, &req.deps))
                    .collect::<Result<_, _>>()
                    .map_err(|e| with_log(setup(format!("phase `{}`", phase.name), e)))?,
                (None, Some(sh)) => vec!["sh".into(), "-ec".into(), sh.clone()],
                (None, None) => continue,
            };
            let shown = shell_words(&argv);
            log.line(&format!("$ {shown}"));
            let status = run(req, &argv, &cwd, &phase_env, &log, &events, &mut cancel)
                .await
                .map_err(with_log)?;
            if let Some(status) = status {
                return Err(BuildError::Command {
                    phase: phase.name.clone(),
                    command: shown,
                    status,
                    log: log_path.clone(),
                    tail: log.tail(30),
                });
            }
        }
        if phase.destdir {
            notes.extend(
                collect_destdir(&destdir, &req.out, req.real_out())
                    .map_err(|e| with_log(setup("moving the staged install into the output", e)))?,
            );
            for n in &notes {
                log.line(&format!("forge: {n}"));
            }
        }
    }
    let installed = if req.seal || req.out_dir.is_some() {
        fs_err::read_dir(req.real_out()).is_ok_and(|mut e| e.next().is_some())
    } else {
        fs_err::symlink_metadata(&req.out).is_ok()
    };
    if !installed {
        return Err(with_log(setup(
            "installing",
            format!(
                "the build put nothing at `{}` (`{{out}}`)",
                req.out.display()
            ),
        )));
    }
    log.line(&format!(
        "forge: built in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    Ok(BuildResult {
        seconds: start.elapsed().as_secs_f64(),
        log: log_path,
        notes,
    })
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

fn prepare_sources(req: &BuildRequest, log: &Log) -> Result<PathBuf, BuildError> {
    let src_dir = req.scratch.join("src");
    let mut root = src_dir.clone();
    for (i, (s, path)) in req.drv.inputs.sources.iter().zip(&req.sources).enumerate() {
        let dest = if i == 0 {
            src_dir.clone()
        } else {
            req.scratch.join(format!("src-{i}"))
        };
        fs_err::create_dir_all(&dest).map_err(|e| setup("creating the source directory", e))?;
        if s.tree.is_some() {
            let target = dest.join(&s.name);
            copy_tree(path, &target)
                .map_err(|e| setup(format!("copying source `{}`", path.display()), e))?;
            if i == 0 {
                root = target;
            }
        } else if s.unpack {
            log.line(&format!("forge: unpacking {}", s.name));
            forge_fetch::unpack(path, &s.name, &dest, forge_fetch::Limits::default())
                .map_err(|e| setup(format!("unpacking `{}`", s.name), e))?;
            if i == 0 {
                root = forge_fetch::source_root(&dest)
                    .map_err(|e| setup("finding the source root", e))?;
            }
        } else {
            let target = dest.join(&s.name);
            fs_err::copy(path, &target)
                .map_err(|e| setup(format!("copying source `{}`", s.name), e))?;
        }
    }
    Ok(root)
}

fn environment(
    req: &BuildRequest,
    src_root: &Path,
) -> Result<BTreeMap<String, String>, BuildError> {
    let scratch = &req.scratch;
    let inputs = &req.drv.inputs;
    let mut env = BTreeMap::new();
    let bin = scratch.join("bin");
    // Compiler wrappers.
    if let Some(tc) = &inputs.toolchain {
        let compiler = req
            .deps
            .iter()
            .find(|d| d.role == "compiler")
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
            log: scratch.join("wrapper.log"),
        };
        let cfg_path = scratch.join("wrapper.json");
        fs_err::write(
            &cfg_path,
            serde_json::to_vec_pretty(&config).expect("serializes"),
        )
        .map_err(|e| setup("writing the wrapper configuration", e))?;
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
    }
    // PATH: wrappers, dependencies' bin dirs, build tools' run closures, host tools.
    let mut path: Vec<PathBuf> = vec![bin];
    for d in &req.deps {
        if d.has("build") || d.has("run") {
            path.push(d.path.join("bin"));
        }
    }
    path.extend(req.tool_paths.iter().cloned());
    if req.seal {
        write_views(req, &path[1..]).map_err(|e| setup("listing the host tools", e))?;
    }
    path.extend(env::HOST_PROGRAM_DIRS.iter().map(PathBuf::from));
    path.dedup();
    env.insert(
        "PATH".into(),
        std::env::join_paths(&path)
            .map_err(|e| setup("composing PATH", e))?
            .to_string_lossy()
            .into_owned(),
    );
    for d in &req.deps {
        if d.role == "compiler" {
            continue;
        }
        if d.has("build") || d.has("link") {
            env::push_existing(&mut env, "CPATH", &d.path.join("include"));
            env::push_existing(&mut env, "LIBRARY_PATH", &d.path.join("lib"));
            env::push_existing(&mut env, "LIBRARY_PATH", &d.path.join("lib64"));
            env::push_existing(&mut env, "PKG_CONFIG_PATH", &d.path.join("lib/pkgconfig"));
            env::push_existing(&mut env, "PKG_CONFIG_PATH", &d.path.join("lib64/pkgconfig"));
            env::push_existing(&mut env, "PKG_CONFIG_PATH", &d.path.join("share/pkgconfig"));
            env::push_existing(&mut env, "ACLOCAL_PATH", &d.path.join("share/aclocal"));
            let entry = env.entry("CMAKE_PREFIX_PATH".into()).or_default();
            if !entry.is_empty() {
                entry.push(':');
            }
            entry.push_str(&d.path.to_string_lossy());
        }
        env.insert(env::dep_var(&d.name), d.path.to_string_lossy().into_owned());
        for v in &d.virtuals {
            env.insert(env::dep_var(v), d.path.to_string_lossy().into_owned());
        }
    }
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
            let v = substitute(v, &req.out, src_root, req.jobs, &req.deps)
                .map_err(|e| setup(format!("environment variable `{k}`"), e))?;
            env.insert(k.clone(), v);
        }
    }
    Ok(env)
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
        crate::sandbox::Mounts::sealed(writable, req.scratch.join("tmp"))
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
fn write_views(req: &BuildRequest, dep_bins: &[PathBuf]) -> std::io::Result<()> {
    for v in views(req) {
        let names = env::allowed_host_programs(&v.dir, dep_bins);
        fs_err::write(&v.list, names.join("\n") + "\n")?;
        fs_err::create_dir_all(&v.staging)?;
    }
    Ok(())
}

/// Moves what an install staged under `destdir/<out>` into `out` and reports anything it tried
/// to install elsewhere (which is dropped: a build must not touch the machine).
/// Moves what an install staged under `destdir` for `out` into `real_out` (which is `out`
/// unless the build is redirected), noting what it installed elsewhere.
fn collect_destdir(destdir: &Path, out: &Path, real_out: &Path) -> std::io::Result<Vec<String>> {
    let rel = out.strip_prefix("/").unwrap_or(out);
    let staged = destdir.join(rel);
    let mut notes = Vec::new();
    if fs_err::symlink_metadata(&staged).is_ok() {
        if fs_err::symlink_metadata(real_out).is_err() {
            fs_err::rename(&staged, real_out)?;
        } else {
            merge_into(&staged, real_out)?;
        }
    }
    // Whatever is left besides the path down to `out` was installed outside the prefix.
    let mut stray = Vec::new();
    let mut stack = vec![destdir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let inside = Path::new("/").join(p.strip_prefix(destdir).unwrap_or(&p));
            if out.starts_with(&inside) && e.file_type()?.is_dir() {
                stack.push(p);
            } else if !inside.starts_with(out) {
                stray.push(inside.display().to_string());
            }
        }
    }
    stray.sort();
    if !stray.is_empty() {
        notes.push(format!(
            "dropped what the install wrote outside the prefix: {}",
            stray.join(", ")
        ));
    }
    remove_dir_all_forced(destdir)?;
    fs_err::create_dir_all(destdir)?;
    Ok(notes)
}

fn merge_into(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in fs_err::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        let is_dir = e.file_type()?.is_dir();
        match fs_err::symlink_metadata(&target) {
            Ok(m) if m.is_dir() && is_dir => merge_into(&e.path(), &target)?,
            Ok(m) => {
                if m.is_dir() {
                    remove_dir_all_forced(&target)?;
                } else {
                    fs_err::remove_file(&target)?;
                }
                fs_err::rename(e.path(), &target)?;
            }
            Err(_) => fs_err::rename(e.path(), &target)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let deps = vec![DepPath {
            name: "openmpi".into(),
            virtuals: vec!["mpi".into()],
            path: PathBuf::from("/s/abc-openmpi-5"),
            types: vec!["build".into(), "link".into()],
            role: "declared".into(),
        }];
        let s = substitute(
            "--with-mpi={dep:mpi} -j{jobs} {{x}} {out}",
            Path::new("/s/o"),
            Path::new("/src"),
            4,
            &deps,
        )
        .unwrap();
        assert_eq!(s, "--with-mpi=/s/abc-openmpi-5 -j4 {x} /s/o");
        assert!(substitute("{dep:nope}", Path::new("/o"), Path::new("/s"), 1, &deps).is_err());
    }

    #[test]
    fn destdir_install_moves_the_prefix_and_reports_strays() {
        let d = tempfile::tempdir().unwrap();
        let destdir = d.path().join("destdir");
        let out = d.path().join("store/abc-munge-1");
        fs_err::create_dir_all(d.path().join("store")).unwrap();
        let staged = destdir.join(out.strip_prefix("/").unwrap());
        fs_err::create_dir_all(staged.join("bin")).unwrap();
        fs_err::write(staged.join("bin/munged"), "x").unwrap();
        fs_err::create_dir_all(destdir.join("var/lib/munge")).unwrap();
        let notes = collect_destdir(&destdir, &out, &out).unwrap();
        assert!(out.join("bin/munged").is_file());
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("/var"), "{notes:?}");
        assert!(!notes[0].contains("abc-munge"), "{notes:?}");
    }
}
