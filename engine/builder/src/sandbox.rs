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
//! With mount options the command also gets a mount namespace of its own (private: nothing
//! mounted there shows outside):
//! - `--rw PATH` (repeatable) **seals** the filesystem: every mount is remounted read-only
//!   except the given paths (the scratch directory and the output), `/tmp` (replaced by
//!   `--tmp DIR`, the scratch directory's own `tmp`), and the kernel's `/proc`, `/dev` and
//!   `/sys`. A build — even one running as root — cannot write outside its scratch directory
//!   and its output: `make install` without `DESTDIR`, a stray `ldconfig`, or a write into
//!   another store path fails instead of changing the machine.
//! - `--view DIR STAGING LIST` (with `--rw`) shows in DIR (`/usr/bin`) only the programs named
//!   in file LIST, one per line: a tmpfs replaces DIR, and each listed program is mounted into
//!   it from the real directory (seen for a moment through STAGING, an empty directory in the
//!   scratch directory). The build finds exactly its allowed host tools, and where configure
//!   records one (`SLEEP_CMD=/usr/bin/sleep`) the path is the real one, valid at run time on
//!   any machine — not a link farm inside the scratch directory.
//! - `--bind SRC DST` mounts directory SRC over DST: `forge check` rebuilds an output at its
//!   stored path that way while the bytes land in a temporary directory, so nothing that depends
//!   on the output's own path (RUNPATHs, build IDs hashed over them) differs from the first
//!   build.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::thread::UnshareFlags;

/// The host name builds see (in their own UTS namespace).
pub const HOSTNAME: &str = "forge";

/// First argument that selects the shim in the forge binary.
pub const SHIM_ARG: &str = "__sandbox";

/// What isolation the kernel allows here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Builds run without network, and can write only to their scratch directory, their output
    /// and their own `/tmp`.
    Sealed,
    /// Builds run without network, but the kernel refused the mount namespace that would keep
    /// them from writing elsewhere; the reason.
    NetworkOnly(String),
    /// Builds can reach the network; the reason isolation failed.
    Unavailable(String),
}

impl Isolation {
    /// Whether builds run without network.
    pub fn network(&self) -> bool {
        !matches!(self, Isolation::Unavailable(_))
    }

    /// Whether builds can write only where they should.
    pub fn sealed(&self) -> bool {
        matches!(self, Isolation::Sealed)
    }
}

/// The mounts a command gets (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// Directories mounted over others: `(source, destination)`.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// When non-empty, everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// The directory mounted over `/tmp` (with `writable`).
    pub tmp: Option<PathBuf>,
    /// Directories reduced to a list of programs (with `writable`).
    pub views: Vec<View>,
}

/// A host directory of programs reduced to the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The directory (`/usr/bin`).
    pub dir: PathBuf,
    /// An empty directory where the real one is mounted while the view is assembled.
    pub staging: PathBuf,
    /// A file naming the programs to show, one per line.
    pub list: PathBuf,
}

impl Mounts {
    /// Sealed mounts: `writable` stays writable and a private `private_tmp` replaces `/tmp` —
    /// unless a writable path lies under `/tmp` (a store kept there), which the replacement
    /// would hide; `/tmp` then stays the machine's, writable.
    pub fn sealed(writable: Vec<PathBuf>, private_tmp: PathBuf) -> Mounts {
        let under_tmp = writable.iter().any(|w| w.starts_with("/tmp"));
        let mut m = Mounts {
            writable,
            ..Mounts::default()
        };
        if under_tmp {
            m.writable.push(PathBuf::from("/tmp"));
        } else {
            m.tmp = Some(private_tmp);
        }
        m
    }

    /// Whether the command needs a mount namespace at all.
    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
            && self.writable.is_empty()
            && self.tmp.is_none()
            && self.views.is_empty()
    }

    /// The shim's options for these mounts.
    pub fn args(&self) -> Vec<OsString> {
        let mut v = Vec::new();
        for (src, dst) in &self.binds {
            v.extend(["--bind".into(), src.into(), dst.into()]);
        }
        for w in &self.writable {
            v.extend(["--rw".into(), w.into()]);
        }
        if let Some(t) = &self.tmp {
            v.extend(["--tmp".into(), t.into()]);
        }
        for w in &self.views {
            v.extend([
                "--view".into(),
                (&w.dir).into(),
                (&w.staging).into(),
                (&w.list).into(),
            ]);
        }
        v
    }
}

/// Finds out how far build commands can be isolated, by running the shim: sealed (in two empty
/// directories made under `scratch`, checking that `/` refuses writes), else without network
/// only.
pub fn probe(forge_exe: &Path, scratch: &Path) -> Isolation {
    let sealed = (|| -> Result<(), String> {
        let base = scratch.join(format!("sandbox-probe.{}", std::process::id()));
        let (rw, tmp) = (base.join("rw"), base.join("tmp"));
        for d in [&rw, &tmp] {
            fs_err::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let mounts = Mounts::sealed(vec![rw.clone()], tmp.clone());
        let r = run_probe(
            forge_exe,
            &mounts,
            &[
                "sh",
                "-c",
                // Writable: the given dir and /tmp; not writable: `/`.
                "touch \"$1/ok\" && test -w /tmp && ! test -w /",
                "probe",
                &rw.to_string_lossy(),
            ],
        );
        let _ = fs_err::remove_dir_all(&base);
        r
    })();
    match sealed {
        Ok(()) => Isolation::Sealed,
        Err(why_not_sealed) => match run_probe(forge_exe, &Mounts::default(), &["true"]) {
            Ok(()) => Isolation::NetworkOnly(why_not_sealed),
            Err(e) => Isolation::Unavailable(e),
        },
    }
}

fn run_probe(forge_exe: &Path, mounts: &Mounts, argv: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(forge_exe)
        .args([SHIM_ARG, "--net"])
        .args(mounts.args())
        .arg("--")
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            Err(if err.is_empty() {
                format!("the probe exited with {}", o.status)
            } else {
                err
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

fn write_file(path: &str, data: &str) -> Result<(), String> {
    fs_err::write(path, data).map_err(|e| e.to_string())
}

/// Enters new network and PID (and, unprivileged, user) namespaces, and a mount namespace when
/// there is something to mount. The PID namespace applies to the children forked afterwards.
#[allow(unsafe_code)]
fn isolate(mounts: &Mounts) -> Result<(), String> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut flags = if uid == 0 {
        UnshareFlags::NEWNET | UnshareFlags::NEWPID | UnshareFlags::NEWUTS
    } else {
        UnshareFlags::NEWNET | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWUSER
    };
    if !mounts.is_empty() {
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
    if !mounts.is_empty() {
        set_up_mounts(mounts)?;
    }
    loopback_up()
}

/// Makes the mount namespace private, mounts the binds, and seals the rest read-only.
fn set_up_mounts(mounts: &Mounts) -> Result<(), String> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    // Nothing mounted here may show outside.
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("making the mounts private: {e}"))?;
    // Every mount, the shallowest destination first: a later mount over a parent (`/tmp`, when
    // the store lives there) would hide the ones below it — and a write meant for a redirected
    // output would reach the directory underneath.
    let mut ops: Vec<(&Path, &Path)> = Vec::new();
    if let Some(t) = &mounts.tmp {
        ops.push((t, Path::new("/tmp")));
    }
    for w in &mounts.writable {
        // Its own mount, so that sealing its parent leaves it writable.
        ops.push((w, w));
    }
    for (src, dst) in &mounts.binds {
        ops.push((src, dst));
    }
    ops.sort_by_key(|(_, dst)| dst.components().count());
    for (src, dst) in &ops {
        mount_bind(*src, *dst)
            .map_err(|e| format!("mounting {} over {}: {e}", src.display(), dst.display()))?;
    }
    if mounts.writable.is_empty() {
        return Ok(());
    }
    for v in &mounts.views {
        set_up_view(v)?;
    }
    let keep: Vec<PathBuf> = ops.iter().map(|(_, d)| d.to_path_buf()).collect();
    seal_others(&keep)?;
    // The working directory was entered before these mounts: enter it again through them, or
    // relative paths would still reach the (now read-only) mount underneath.
    let cwd = std::env::current_dir().map_err(|e| format!("the working directory: {e}"))?;
    std::env::set_current_dir(&cwd).map_err(|e| format!("re-entering {}: {e}", cwd.display()))
}

/// Replaces `v.dir` by a tmpfs holding only the listed programs (regular files mounted from
/// the real directory, symlinks copied).
fn set_up_view(v: &View) -> Result<(), String> {
    use rustix::mount::{MountFlags, UnmountFlags, mount, mount_bind, unmount};
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", v.dir.display());
    let list = fs_err::read_to_string(&v.list).map_err(|e| err("reading the list for", &e))?;
    mount_bind(&v.dir, &v.staging).map_err(|e| err("staging", &e))?;
    mount(
        "tmpfs",
        &v.dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=755"),
    )
    .map_err(|e| err("mounting a tmpfs over", &e))?;
    for name in list.lines().filter(|l| !l.is_empty() && !l.contains('/')) {
        let real = v.staging.join(name);
        let shown = v.dir.join(name);
        let Ok(meta) = fs_err::symlink_metadata(&real) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = fs_err::read_link(&real).map_err(|e| err("reading a link in", &e))?;
            fs_err::os::unix::fs::symlink(&target, &shown).map_err(|e| err("linking in", &e))?;
        } else if meta.is_file() {
            fs_err::write(&shown, b"").map_err(|e| err("creating a mount point in", &e))?;
            mount_bind(&real, &shown).map_err(|e| err(&format!("mounting `{name}` into"), &e))?;
        }
    }
    unmount(&v.staging, UnmountFlags::DETACH).map_err(|e| err("unstaging", &e))
}

/// Remounts read-only every mount but `keep` and the kernel's `/proc`, `/dev` and `/sys`.
fn seal_others(keep: &[PathBuf]) -> Result<(), String> {
    use rustix::mount::{MountFlags, mount_remount};
    let table = fs_err::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    for m in parse_mountinfo(&table) {
        let kernel = ["/proc", "/dev", "/sys"]
            .iter()
            .any(|k| m.point.starts_with(k));
        if kernel || keep.contains(&m.point) || m.read_only {
            continue;
        }
        // A remount must repeat the flags it keeps (the kernel refuses to drop locked ones).
        let mut flags = MountFlags::BIND | MountFlags::RDONLY;
        for (opt, f) in [
            ("nosuid", MountFlags::NOSUID),
            ("nodev", MountFlags::NODEV),
            ("noexec", MountFlags::NOEXEC),
            ("noatime", MountFlags::NOATIME),
            ("nodiratime", MountFlags::NODIRATIME),
            ("relatime", MountFlags::RELATIME),
        ] {
            if m.options.iter().any(|o| o == opt) {
                flags |= f;
            }
        }
        match mount_remount(&m.point, flags, "") {
            Ok(()) => {}
            // Gone, or hidden under another mount since the table was read.
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(format!("making {} read-only: {e}", m.point.display()));
            }
        }
    }
    Ok(())
}

/// One line of `/proc/self/mountinfo`: the mount point and its per-mount options.
#[derive(Debug, PartialEq, Eq)]
struct MountEntry {
    point: PathBuf,
    options: Vec<String>,
    read_only: bool,
}

/// Parses `/proc/self/mountinfo` (fields 5 and 6; octal escapes such as `\040` decoded).
fn parse_mountinfo(table: &str) -> Vec<MountEntry> {
    table
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let point = f.nth(4)?;
            let options: Vec<String> = f.next()?.split(',').map(str::to_owned).collect();
            Some(MountEntry {
                point: PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(point))),
                read_only: options.iter().any(|o| o == "ro"),
                options,
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
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
    let mut mounts = Mounts::default();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        let mut path = || -> PathBuf {
            match rest.next() {
                Some(p) => PathBuf::from(p),
                None => fail(format!("`{}` takes a path", a.to_string_lossy())),
            }
        };
        match a.to_str() {
            Some("--net") => net = true,
            Some("--bind") => {
                let src = path();
                let dst = path();
                mounts.binds.push((src, dst));
            }
            Some("--rw") => {
                let p = path();
                mounts.writable.push(p);
            }
            Some("--tmp") => {
                let p = path();
                mounts.tmp = Some(p);
            }
            Some("--view") => {
                let dir = path();
                let staging = path();
                let list = path();
                mounts.views.push(View { dir, staging, list });
            }
            Some("--") => break,
            _ => fail(format!("unknown option `{}`", a.to_string_lossy())),
        }
    }
    if !mounts.is_empty() && !net {
        fail("mount options need `--net` (the build's own namespaces)".into());
    }
    let argv: Vec<&OsString> = rest.collect();
    let Some((prog, prog_args)) = argv.split_first() else {
        fail("no command given".into())
    };
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    die_with_parent();
    if net {
        if let Err(e) = isolate(&mounts) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_points_and_options() {
        let table = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                     30 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw\n\
                     41 22 0:40 / /mnt/with\\040space ro,nosuid,nodev - tmpfs none ro\n";
        let m = parse_mountinfo(table);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].point, Path::new("/"));
        assert!(!m[0].read_only);
        assert_eq!(m[1].options, ["rw", "nosuid", "relatime"]);
        assert_eq!(m[2].point, Path::new("/mnt/with space"));
        assert!(m[2].read_only);
    }

    #[test]
    fn shim_options_round_trip() {
        let m = Mounts {
            binds: vec![("/a".into(), "/b".into())],
            writable: vec!["/w".into()],
            tmp: Some("/t".into()),
            ..Mounts::default()
        };
        let args: Vec<String> = m
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(args, ["--bind", "/a", "/b", "--rw", "/w", "--tmp", "/t"]);
        assert!(Mounts::default().is_empty());
    }
}
