//! Isolation of build commands: no network during the build.
//!
//! Every build command runs through a small shim, `forge __sandbox [--net] -- PROGRAM ARGS…`, a
//! fresh single-threaded process that sets `umask 022`, moves into new network, PID and UTS namespaces (the host name becomes `forge`)
//! (with a new user namespace when not root, mapping the user to itself), brings up the loopback
//! interface so builds that talk to `127.0.0.1` still work, and forks the command as process 1 of
//! the new PID namespace. Both the shim and that process die with their parent
//! (`PR_SET_PDEATHSIG`), and when process 1 of a PID namespace dies the kernel kills everything
//! else in it: so when forge is killed, even with `kill -9`, no build process survives to write
//! into the store behind its back. Doing this in a separate process, rather than between `fork`
//! and `exec` of a multi-threaded forge, keeps it free of allocation hazards. Whether the kernel
//! allows it is probed once per run ([`probe`]); when it does not, builds run with a clear note
//! instead.
//!
//! `--bind SRC DST` (with `--net`) also gives the command its own mount namespace, private to
//! it, in which directory SRC is mounted over DST: `forge check` rebuilds an output at its
//! stored path that way while the bytes land in a temporary directory, so nothing that depends
//! on the output's own path (RUNPATHs, build IDs hashed over them) differs from the first build.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;

use rustix::thread::UnshareFlags;

/// The host name builds see (in their own UTS namespace).
pub const HOSTNAME: &str = "forge";

/// First argument that selects the shim in the forge binary.
pub const SHIM_ARG: &str = "__sandbox";

/// What isolation the kernel allows here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Builds run without network.
    Network,
    /// Builds can reach the network; the reason isolation failed.
    Unavailable(String),
}

/// Finds out whether build commands can run without network, by running the shim once.
pub fn probe(forge_exe: &Path) -> Isolation {
    let out = std::process::Command::new(forge_exe)
        .args([SHIM_ARG, "--net", "--", "true"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Isolation::Network,
        Ok(o) => Isolation::Unavailable(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Isolation::Unavailable(e.to_string()),
    }
}

fn write_file(path: &str, data: &str) -> Result<(), String> {
    fs_err::write(path, data).map_err(|e| e.to_string())
}

/// Whether the shim can also mount a directory over another in a private mount namespace
/// (`--bind`), by trying it once on two empty directories under `scratch`.
pub fn probe_bind(forge_exe: &Path, scratch: &Path) -> Result<(), String> {
    let (src, dst) = (
        scratch.join("bind-probe-src"),
        scratch.join("bind-probe-dst"),
    );
    for d in [&src, &dst] {
        fs_err::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    fs_err::write(src.join("mark"), b"").map_err(|e| e.to_string())?;
    let out = std::process::Command::new(forge_exe)
        .arg(SHIM_ARG)
        .arg("--net")
        .arg("--bind")
        .arg(&src)
        .arg(&dst)
        .arg("--")
        .args(["test", "-e"])
        .arg(dst.join("mark"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .output();
    let _ = fs_err::remove_dir_all(&src);
    let _ = fs_err::remove_dir_all(&dst);
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Enters new network and PID (and, unprivileged, user) namespaces, and a mount namespace when
/// there is something to mount. The PID namespace applies to the children forked afterwards.
#[allow(unsafe_code)]
fn isolate(binds: &[(OsString, OsString)]) -> Result<(), String> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut flags = if uid == 0 {
        UnshareFlags::NEWNET | UnshareFlags::NEWPID | UnshareFlags::NEWUTS
    } else {
        UnshareFlags::NEWNET | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWUSER
    };
    if !binds.is_empty() {
        flags |= UnshareFlags::NEWNS;
    }
    // SAFETY: the shim is single-threaded and does not use `UnshareFlags::FILES`.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| format!("unshare: {e}"))?;
    if uid != 0 {
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
        write_file("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    }
    // The machine's name must not leak into outputs (`hostname` in configure scripts, banners).
    rustix::system::sethostname(HOSTNAME.as_bytes()).map_err(|e| format!("sethostname: {e}"))?;
    if !binds.is_empty() {
        // Nothing mounted here may show outside.
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::REC
                | rustix::mount::MountPropagationFlags::PRIVATE,
        )
        .map_err(|e| format!("making the mounts private: {e}"))?;
        for (src, dst) in binds {
            rustix::mount::mount_bind(src.as_os_str(), dst.as_os_str()).map_err(|e| {
                format!(
                    "mounting {} over {}: {e}",
                    src.to_string_lossy(),
                    dst.to_string_lossy()
                )
            })?;
        }
    }
    loopback_up()
}

/// `ip link set lo up`, with one ioctl.
#[allow(unsafe_code)]
fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket/ioctl calls on a zero-initialised `ifreq` whose name is NUL-terminated.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("reading lo flags: {e}"));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(format!("bringing lo up: {e}"));
        }
    }
    Ok(())
}

/// The shim's entry point: `args` are the arguments after [`SHIM_ARG`]. Never returns.
pub fn shim_main(args: &[OsString]) -> ! {
    let fail = |msg: String| -> ! {
        let _ = writeln!(std::io::stderr(), "forge sandbox: {msg}");
        std::process::exit(125)
    };
    let mut net = false;
    let mut binds = Vec::new();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.to_str() {
            Some("--net") => net = true,
            Some("--bind") => match (rest.next(), rest.next()) {
                (Some(src), Some(dst)) => binds.push((src.clone(), dst.clone())),
                _ => fail("`--bind` takes a source and a destination".into()),
            },
            Some("--") => break,
            _ => fail(format!("unknown option `{}`", a.to_string_lossy())),
        }
    }
    if !binds.is_empty() && !net {
        fail("`--bind` needs `--net` (its own namespaces)".into());
    }
    let argv: Vec<&OsString> = rest.collect();
    let Some((prog, prog_args)) = argv.split_first() else {
        fail("no command given".into())
    };
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    die_with_parent();
    if net {
        if let Err(e) = isolate(&binds) {
            fail(format!("cannot isolate the build: {e}"));
        }
        run_as_init(prog, prog_args)
    }
    exec(prog, prog_args)
}

fn exec(prog: &OsString, args: &[&OsString]) -> ! {
    let err = std::process::Command::new(prog).args(args.iter()).exec();
    // Like a shell: 127 for a missing command.
    let _ = writeln!(
        std::io::stderr(),
        "forge sandbox: cannot run `{}`: {err}",
        prog.to_string_lossy()
    );
    std::process::exit(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Asks the kernel to kill this process when its parent dies.
#[allow(unsafe_code)]
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
}

/// Waits for `pid`, retrying on interrupts, and returns its wait status.
#[allow(unsafe_code)]
fn wait_for(pid: libc::pid_t, any: bool) -> libc::c_int {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes only into `status`.
        let r = unsafe { libc::waitpid(if any { -1 } else { pid }, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            std::process::exit(125);
        }
    }
}

/// An exit code that tells how a wait status ended (`128 + signal` for a signal, as shells do).
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

/// Runs the command under a minimal init in the new PID namespace: process 1 forks the command,
/// reaps every orphan the build leaves, and exits with the command's status once it is done. The
/// shim mirrors that status.
#[allow(unsafe_code)]
fn run_as_init(prog: &OsString, args: &[&OsString]) -> ! {
    // SAFETY: the shim is single-threaded, so the child may run arbitrary code before exec.
    let init = unsafe { libc::fork() };
    if init < 0 {
        let _ = writeln!(
            std::io::stderr(),
            "forge sandbox: fork: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(125);
    }
    if init == 0 {
        die_with_parent();
        // SAFETY: as above; this process is single-threaded too.
        let cmd = unsafe { libc::fork() };
        if cmd < 0 {
            std::process::exit(125);
        }
        if cmd == 0 {
            exec(prog, args);
        }
        std::process::exit(exit_code(wait_for(cmd, true)));
    }
    std::process::exit(exit_code(wait_for(init, false)))
}
