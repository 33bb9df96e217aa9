//! Optional `diffoscope`: when installed and asked for, its text output for a pair of files (or
//! trees) goes into the report. Never required: every explanation in this crate stands without it.
//!
//! diffoscope starts helpers of its own, so it runs in its own process group, and the whole group
//! is killed when it overruns its time.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::context::DiffoscopeOptions;
use crate::error::CheckError;

/// What a run of diffoscope said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffoscopeOutcome {
    /// Exit status 0: no difference.
    Same,
    /// Exit status 1: its text report (cut at the output limit).
    Differences(String),
    /// Killed at the timeout: what it had written by then.
    TimedOut(String),
    /// Any other exit: the status (`None` when killed by a signal) and its error output.
    Failed {
        /// The exit status.
        code: Option<i32>,
        /// What it wrote to stderr (cut at the output limit).
        stderr: String,
    },
}

/// Whether `diffoscope` is installed (found in `PATH`).
pub fn diffoscope_available() -> bool {
    resolve(Path::new("diffoscope")).is_some()
}

/// The program to run: a path as given, or a name looked up in `PATH`.
pub(crate) fn resolve(program: &Path) -> Option<PathBuf> {
    which::which(program).ok()
}

/// Runs diffoscope on two files or two trees (stored first), as `opts` says.
pub fn run_diffoscope(
    stored: &Path,
    rebuilt: &Path,
    opts: &DiffoscopeOptions,
) -> Result<DiffoscopeOutcome, CheckError> {
    let program = resolve(&opts.program).ok_or_else(|| CheckError::Diffoscope {
        program: opts.program.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not installed"),
    })?;
    run_on(&program, stored, rebuilt, opts.timeout, opts.max_output)
}

pub(crate) fn run_on(
    program: &Path,
    stored: &Path,
    rebuilt: &Path,
    timeout: Duration,
    max_output: usize,
) -> Result<DiffoscopeOutcome, CheckError> {
    let err = |source| CheckError::Diffoscope {
        program: program.to_path_buf(),
        source,
    };
    let mut child = Command::new(program)
        .arg("--text")
        .arg("-")
        .arg(stored)
        .arg(rebuilt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(err)?;
    let stdout = reader(child.stdout.take().expect("piped"), max_output);
    let stderr = reader(child.stderr.take().expect("piped"), max_output);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(err)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Not reaped yet, so the group id is still this child's: safe to signal.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            child.wait().map_err(err)?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Helpers that outlive diffoscope could hold the pipes open: wait a little, not forever.
    let grace = Duration::from_secs(2);
    let out = stdout.recv_timeout(grace).unwrap_or_default();
    let err_text = stderr.recv_timeout(grace).unwrap_or_default();
    Ok(match status {
        None => DiffoscopeOutcome::TimedOut(out),
        Some(s) => match s.code() {
            Some(0) => DiffoscopeOutcome::Same,
            Some(1) => DiffoscopeOutcome::Differences(out),
            code => DiffoscopeOutcome::Failed {
                code,
                stderr: err_text,
            },
        },
    })
}

/// Reads a pipe to its end on a thread, keeping the first `max` bytes (lossy UTF-8).
fn reader(mut pipe: impl Read + Send + 'static, max: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut cut = false;
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    cut |= n > room;
                }
            }
        }
        let mut s = String::from_utf8_lossy(&kept).into_owned();
        if cut {
            s.push_str("\n[output cut]");
        }
        let _ = tx.send(s);
    });
    rx
}
