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
//!   (keeping its other flags, which a user namespace locks) except the given paths (the
//!   scratch directory and the output), `/tmp` (replaced by `--tmp DIR`, the scratch
//!   directory's own `tmp`), and the kernel's `/proc`, `/dev` and `/sys`. `--ro PATH` keeps a
//!   directory the build reads (the store) reachable when it lives under `/tmp`. A build — even one running as root — cannot write outside its scratch directory
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
    /// Directories the command reads that must stay reachable (read-only, with `writable`)
    /// even where `/tmp` is replaced: the store, when it lives under `/tmp`.
    pub visible: Vec<PathBuf>,
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
    /// Sealed mounts: `writable` stays writable, a private `private_tmp` replaces `/tmp`, and
    /// `visible` stays reachable (read-only) wherever it lives — unless a writable path lies
    /// under `/tmp` (a store kept there): `/tmp` then stays the machine's, writable.
    pub fn sealed(writable: Vec<PathBuf>, private_tmp: PathBuf, visible: Vec<PathBuf>) -> Mounts {
        let under_tmp = writable.iter().any(|w| w.starts_with("/tmp"));
        let mut m = Mounts {
            writable,
            visible,
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
        for r in &self.visible {
            v.extend(["--ro".into(), r.into()]);
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
        let mounts = Mounts::sealed(vec![rw.clone()], tmp.clone(), Vec::new());
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
    // In a directory the probe keeps, as builds run in their scratch directory: forge's own
    // working directory may be hidden under the private `/tmp`.
    let cwd = mounts
        .writable
        .first()
        .map_or(Path::new("/"), PathBuf::as_path);
    let out = std::process::Command::new(forge_exe)
        .args([SHIM_ARG, "--net"])
        .args(mounts.args())
        .arg("--")
        .args(argv)
        .current_dir(cwd)
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
    // SAFETY: the shim is single-threaded and does not use `UnshareFlags::FILES`. (rustix has
    // no safe unshare.) Tested end to end: builds reach no network, see host name `forge`, and
    // are sealed on a host with locked mounts (tests/e2e/realize.rs).
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
///
/// Every mount is a recursive clone of its source, taken before anything is mounted: a mount
/// over a parent (the private `/tmp`, when the store lives under `/tmp`) hides the paths below
/// it, and a clone made first still reaches them; and the kernel refuses a plain bind of a
/// directory holding a mount it locked (in a user namespace, every mount the namespace
/// inherited) — a recursive one takes those mounts along, flags and all.
fn set_up_mounts(mounts: &Mounts) -> Result<(), String> {
    use rustix::fs::CWD;
    use rustix::mount::{
        MountPropagationFlags, MoveMountFlags, OpenTreeFlags, mount_change, move_mount, open_tree,
    };
    // Nothing mounted here may show outside.
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("making the mounts private: {e}"))?;
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
    // A visible directory needs mounting only where another mount would hide it.
    for v in &mounts.visible {
        if ops.iter().any(|(_, dst)| v.starts_with(dst) && v != dst) {
            ops.push((v, v));
        }
    }
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    let mut clones = Vec::with_capacity(ops.len());
    for (src, dst) in &ops {
        let fd =
            open_tree(CWD, *src, flags).map_err(|e| format!("cloning {}: {e}", src.display()))?;
        clones.push((fd, *src, *dst));
    }
    // The shallowest destination first, so that no later mount hides an earlier one.
    clones.sort_by_key(|(_, _, dst)| dst.components().count());
    for (fd, src, dst) in &clones {
        // Inside the private `/tmp`, the path down to a kept directory must be made again.
        let _ = fs_err::create_dir_all(dst);
        move_mount(fd, "", CWD, *dst, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(|e| format!("mounting {} over {}: {e}", src.display(), dst.display()))?;
    }
    if mounts.writable.is_empty() {
        return Ok(());
    }
    for v in &mounts.views {
        set_up_view(v)?;
    }
    let keep: Vec<PathBuf> = clones
        .iter()
        .filter(|(_, src, dst)| !mounts.visible.iter().any(|v| v == src && v == dst))
        .map(|(_, _, d)| d.to_path_buf())
        .collect();
    seal_others(&keep)?;
    // The working directory was entered before these mounts: enter it again through them, or
    // relative paths would still reach the (now read-only) mount underneath.
    let cwd = std::env::current_dir().map_err(|e| format!("the working directory: {e}"))?;
    std::env::set_current_dir(&cwd).map_err(|e| format!("re-entering {}: {e}", cwd.display()))
}

/// Replaces `v.dir` by a tmpfs holding only the listed programs (regular files mounted from
/// the real directory, symlinks copied).
fn set_up_view(v: &View) -> Result<(), String> {
    use rustix::mount::{
        MountFlags, UnmountFlags, mount, mount_bind, mount_bind_recursive, unmount,
    };
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", v.dir.display());
    let list = fs_err::read_to_string(&v.list).map_err(|e| err("reading the list for", &e))?;
    mount_bind_recursive(&v.dir, &v.staging).map_err(|e| err("staging", &e))?;
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
///
/// A remount must repeat every per-mount flag it keeps: in a user namespace the kernel locks
/// `nosuid`, `nodev`, `noexec` and the atime flags of the mounts it inherited, and refuses a
/// remount that would drop one. The flags are read from the kernel (`statvfs`, as bubblewrap
/// does), not from the table's text. A mount that another one hides (a mount under `/tmp` once
/// the build's own `/tmp` is over it, or one mounted over since the table was read) is not
/// reachable from the build and is left alone: its path now leads to another mount.
fn seal_others(keep: &[PathBuf]) -> Result<(), String> {
    use rustix::mount::mount_remount;
    let table = fs_err::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    for m in parse_mountinfo(&table) {
        let kernel = ["/proc", "/dev", "/sys"]
            .iter()
            .any(|k| m.point.starts_with(k));
        if kernel || keep.contains(&m.point) || m.read_only || !reachable(&m) {
            continue;
        }
        let flags = match rustix::fs::statvfs(&m.point) {
            Ok(st) => remount_flags(st.f_flag),
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(format!("reading the flags of {}: {e}", m.point.display())),
        };
        match mount_remount(&m.point, flags, "") {
            Ok(()) => {}
            // Gone since the table was read.
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(format!("making {} read-only: {e}", m.point.display()));
            }
        }
    }
    Ok(())
}

/// Whether `m`'s mount point leads to `m` itself (and not to a mount over it or over a parent).
fn reachable(m: &MountEntry) -> bool {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    match statx(CWD, &m.point, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID) {
        Ok(st) if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 => st.stx_mnt_id == m.id,
        // Without a mount ID from the kernel, try it: errors are reported then.
        Ok(_) => true,
        Err(_) => false,
    }
}

/// The flags of a read-only bind remount that keeps a mount's other per-mount flags.
fn remount_flags(current: rustix::fs::StatVfsMountFlags) -> rustix::mount::MountFlags {
    use rustix::fs::StatVfsMountFlags as S;
    use rustix::mount::MountFlags as M;
    let mut flags = M::BIND | M::RDONLY;
    for (have, keep) in [
        (S::NOSUID, M::NOSUID),
        (S::NODEV, M::NODEV),
        (S::NOEXEC, M::NOEXEC),
        (S::NOATIME, M::NOATIME),
        (S::NODIRATIME, M::NODIRATIME),
        (S::RELATIME, M::RELATIME),
        // `ST_NOSYMFOLLOW`, which rustix does not name.
        (S::from_bits_retain(0x2000), M::NOSYMFOLLOW),
    ] {
        if current.contains(have) {
            flags |= keep;
        }
    }
    flags
}

/// One line of `/proc/self/mountinfo`: the mount point and its per-mount options.
#[derive(Debug, PartialEq, Eq)]
struct MountEntry {
    /// The mount's ID (field 1).
    id: u64,
    point: PathBuf,
    options: Vec<String>,
    read_only: bool,
}

/// Parses `/proc/self/mountinfo` (fields 1, 5 and 6; octal escapes such as `\040` decoded).
fn parse_mountinfo(table: &str) -> Vec<MountEntry> {
    table
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?.parse().ok()?;
            let point = f.nth(3)?;
            let options: Vec<String> = f.next()?.split(',').map(str::to_owned).collect();
            Some(MountEntry {
                id,
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
    // (rustix has no call to set interface flags.) Tested end to end: a build that serves and
    // connects on 127.0.0.1 inside its namespace works (the Slurm and realize e2e tests).
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
            Some("--ro") => {
                let p = path();
                mounts.visible.push(p);
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
fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
}

/// Waits for `pid` (with `any`, reaping every other child on the way) and returns how it
/// ended, retrying on interrupts.
fn wait_for(pid: rustix::process::Pid, any: bool) -> rustix::process::WaitStatus {
    use rustix::process::{WaitOptions, wait, waitpid};
    loop {
        let r = if any {
            wait(WaitOptions::empty())
        } else {
            waitpid(Some(pid), WaitOptions::empty())
        };
        match r {
            Ok(Some((p, status))) if p == pid => return status,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::process::exit(125),
        }
    }
}

/// An exit code that tells how a wait status ended (`128 + signal` for a signal, as shells do).
fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(sig) = status.terminating_signal() {
        128 + sig
    } else {
        1
    }
}

/// Runs the command under a minimal init in the new PID namespace: process 1 forks the command,
/// reaps every orphan the build leaves, and exits with the command's status once it is done. The
/// shim mirrors that status.
fn run_as_init(prog: &OsString, args: &[&OsString]) -> ! {
    match fork() {
        Forked::Child => {
            die_with_parent();
            match fork() {
                Forked::Child => exec(prog, args),
                Forked::Parent(cmd) => std::process::exit(exit_code(wait_for(cmd, true))),
            }
        }
        Forked::Parent(init) => std::process::exit(exit_code(wait_for(init, false))),
    }
}

/// Which side of a fork this is.
enum Forked {
    Child,
    Parent(rustix::process::Pid),
}

/// Forks the shim; exits with 125 when the kernel refuses.
#[allow(unsafe_code)]
fn fork() -> Forked {
    // SAFETY: the shim is single-threaded (it runs before any thread is started and starts
    // none), so the child may run arbitrary code before it execs or exits. rustix offers fork
    // only as an unsafe runtime call with the same contract.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => Forked::Child,
        p if p > 0 => Forked::Parent(rustix::process::Pid::from_raw(p).expect("a positive pid")),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "forge sandbox: fork: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(125)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_ids_points_and_options() {
        let table = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                     30 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw\n\
                     41 22 0:40 / /mnt/with\\040space ro,nosuid,nodev - tmpfs none ro\n";
        let m = parse_mountinfo(table);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].id, m[1].id, m[2].id), (22, 30, 41));
        assert_eq!(m[0].point, Path::new("/"));
        assert!(!m[0].read_only);
        assert_eq!(m[1].options, ["rw", "nosuid", "relatime"]);
        assert_eq!(m[2].point, Path::new("/mnt/with space"));
        assert!(m[2].read_only);
    }

    #[test]
    fn remounts_keep_the_flags_the_kernel_reports() {
        use rustix::fs::StatVfsMountFlags as S;
        use rustix::mount::MountFlags as M;
        let f = remount_flags(S::NOSUID | S::NODEV | S::NOEXEC | S::RELATIME);
        assert_eq!(
            f,
            M::BIND | M::RDONLY | M::NOSUID | M::NODEV | M::NOEXEC | M::RELATIME
        );
        assert_eq!(remount_flags(S::empty()), M::BIND | M::RDONLY);
        assert!(remount_flags(S::from_bits_retain(0x2000)).contains(M::NOSYMFOLLOW));
    }

    #[test]
    fn mount_points_are_reachable_only_when_no_mount_hides_them() {
        let table = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
        let root = parse_mountinfo(&table)
            .into_iter()
            .rev()
            .find(|m| m.point == Path::new("/"))
            .expect("a root mount");
        assert!(reachable(&root), "{root:?}");
        let hidden = MountEntry {
            id: root.id + 1_000_000,
            ..root
        };
        assert!(!reachable(&hidden));
    }

    #[test]
    fn a_forked_child_reports_its_exit_status_and_signal() {
        // The shim's init waits like this; the test process is multi-threaded, so the child
        // only exits (no allocation, no locks) before anything else happens.
        for (code, want) in [(0, 0), (3, 3)] {
            match fork() {
                Forked::Child => {
                    #[allow(unsafe_code)]
                    // SAFETY: `_exit` is async-signal-safe.
                    unsafe {
                        libc::_exit(code)
                    }
                }
                Forked::Parent(pid) => assert_eq!(exit_code(wait_for(pid, false)), want),
            }
        }
        match fork() {
            Forked::Child => {
                #[allow(unsafe_code)]
                // SAFETY: `raise` and `_exit` are async-signal-safe.
                unsafe {
                    libc::raise(libc::SIGKILL);
                    libc::_exit(0)
                }
            }
            Forked::Parent(pid) => assert_eq!(exit_code(wait_for(pid, false)), 128 + 9),
        }
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
