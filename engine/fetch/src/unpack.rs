//! Safe extraction of source archives.
//!
//! Archives come from the internet; the extractor treats them as hostile. Every entry is created
//! relative to a directory handle, walking its path one component at a time with `O_NOFOLLOW`, so
//! nothing is ever written through a symlink — not even one the archive itself created. Absolute
//! names, `..` components, symlinks whose target leaves the tree, hard links to anything but a
//! regular file already extracted, device, FIFO or socket entries, and names holding control
//! characters (which a terminal would act on) are refused with an error that names the entry,
//! escaped. Setuid, setgid and sticky bits are dropped. Sizes are bounded before any
//! data is read, and so is the metadata (long names, pax headers) the tar reader buffers in memory.
//!
//! A symlink's target may climb with leading `..` components as far as the top of the tree, then
//! name things below; a `..` after a name is refused, because that name may itself be a symlink
//! (now or by a later entry) and `link/..` would then resolve somewhere else entirely.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, Mode, OFlags};

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of regular files.
    pub max_total_bytes: u64,
    /// Bytes of any one file.
    pub max_file_bytes: u64,
    /// Number of entries.
    pub max_entries: u64,
    /// Length of an entry's path (and of a link's target), in bytes.
    pub max_path_bytes: usize,
    /// Bytes of metadata the tar reader may buffer for one entry (GNU long names and links, pax
    /// headers) and of data carried by entries that are not regular files.
    pub max_metadata_bytes: u64,
    /// Accept entry names holding control characters (a recipe's `allow-control-chars=#true`,
    /// for a source whose test data needs them). Messages still show them escaped.
    pub allow_control_chars: bool,
    /// Accept symlinks to absolute paths (binary packages link into their store). Nothing is
    /// ever written through a symlink either way; whoever uses the tree must not follow them.
    pub allow_absolute_symlinks: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 64 << 30,
            max_file_bytes: 32 << 30,
            max_entries: 2_000_000,
            max_path_bytes: 4096,
            max_metadata_bytes: 4 << 20,
            allow_control_chars: false,
            allow_absolute_symlinks: false,
        }
    }
}

/// Why an archive was refused or could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The archive could not be read (truncated, corrupt, unknown format).
    #[error("{archive}: {reason}")]
    Read {
        /// The archive.
        archive: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An entry that is not allowed.
    #[error("{archive}: refusing entry `{entry}`: {reason}")]
    Refused {
        /// The archive.
        archive: PathBuf,
        /// The entry's name as stored.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A limit was exceeded.
    #[error("{archive}: {what} exceeds the limit of {limit}")]
    TooBig {
        /// The archive.
        archive: PathBuf,
        /// What is too big.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Archive formats forge unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain tar.
    Tar,
    /// gzip'd tar.
    TarGz,
    /// bzip2'd tar.
    TarBz2,
    /// xz'd tar.
    TarXz,
    /// zstd'd tar.
    TarZst,
    /// zip.
    Zip,
}

impl Format {
    /// The format of a file, from its name, else from its first bytes.
    pub fn detect(name: &str, head: &[u8]) -> Option<Format> {
        let n = name.to_ascii_lowercase();
        let by_name = [
            (".tar.gz", Self::TarGz),
            (".tgz", Self::TarGz),
            (".tar.bz2", Self::TarBz2),
            (".tbz2", Self::TarBz2),
            (".tar.xz", Self::TarXz),
            (".txz", Self::TarXz),
            (".tar.zst", Self::TarZst),
            (".tzst", Self::TarZst),
            (".zip", Self::Zip),
            (".tar", Self::Tar),
        ];
        if let Some((_, f)) = by_name.iter().find(|(ext, _)| n.ends_with(ext)) {
            return Some(*f);
        }
        match head {
            [0x1f, 0x8b, ..] => Some(Self::TarGz),
            [b'B', b'Z', b'h', ..] => Some(Self::TarBz2),
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some(Self::TarXz),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Self::TarZst),
            [b'P', b'K', 3, 4, ..] => Some(Self::Zip),
            h if h.len() > 262 && &h[257..262] == b"ustar" => Some(Self::Tar),
            _ => None,
        }
    }
}

/// What was unpacked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries created.
    pub entries: u64,
    /// Bytes of regular files written.
    pub bytes: u64,
}

struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    root: OwnedFd,
    limits: Limits,
    report: Report,
    /// Modification time of the entry being extracted (seconds since the epoch), if the
    /// archive records one. Kept on files because build systems compare times: a release
    /// tarball's `configure` must stay as new as its `configure.ac`, or `make` regenerates it.
    mtime: Option<i64>,
    /// Times of the directories the archive has entries for, applied once everything is written
    /// (creating a file changes its directory's time, so they cannot be set as they come).
    dir_times: std::collections::HashMap<PathBuf, i64>,
    /// The newest time any entry carries: what directories without an entry of their own get,
    /// so that the tree's times depend on the archive alone, never on when it was unpacked.
    newest: Option<i64>,
}

/// A relative, `..`-free path; otherwise the reason it is refused.
fn clean_path(raw: &[u8], allow_control_chars: bool) -> Result<PathBuf, String> {
    if raw.contains(&0) {
        return Err("NUL byte in the name".into());
    }
    // A name a terminal would act on (an escape sequence, a carriage return, a bidirectional
    // override) has no place in a source tree: every listing and log of it would be rewritten.
    if !allow_control_chars
        && String::from_utf8_lossy(raw)
            .chars()
            .any(forge_core::text::is_unsafe)
    {
        return Err(
            "control character in the name (shown escaped); repack the archive without it, or allow it with `allow-control-chars=#true` on the recipe's version".into(),
        );
    }
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
            Component::ParentDir => return Err("`..` in the path".into()),
        }
    }
    Ok(out)
}

/// An entry's name for messages: as stored, with control characters escaped, and a hostile
/// megabyte-long name cut short.
fn lossy(raw: &[u8]) -> String {
    const SHOWN: usize = 1024;
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(SHOWN)]);
    let shown = forge_core::text::escape(&shown);
    if raw.len() <= SHOWN {
        return shown.into_owned();
    }
    format!("{shown}… ({} bytes)", raw.len())
}

impl<'a> Extractor<'a> {
    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> UnpackError {
        UnpackError::Refused {
            archive: self.archive.to_path_buf(),
            entry: lossy(entry),
            reason: reason.into(),
        }
    }

    fn too_big(&self, what: impl Into<String>, limit: u64) -> UnpackError {
        UnpackError::TooBig {
            archive: self.archive.to_path_buf(),
            what: what.into(),
            limit,
        }
    }

    fn read_error(&self, reason: impl Into<String>) -> UnpackError {
        UnpackError::Read {
            archive: self.archive.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Maps a system error on the entry `rel` to an error naming where it would have gone.
    fn io(&self, rel: &Path) -> impl FnOnce(rustix::io::Errno) -> UnpackError + use<> {
        let path = self.dest.join(rel);
        move |e| UnpackError::Io {
            path,
            source: e.into(),
        }
    }

    fn count(&mut self, raw: &[u8]) -> Result<(), UnpackError> {
        self.report.entries += 1;
        if self.report.entries > self.limits.max_entries {
            return Err(self.too_big("the number of entries", self.limits.max_entries));
        }
        if raw.len() > self.limits.max_path_bytes {
            return Err(self.refuse(
                raw,
                format!("name longer than {} bytes", self.limits.max_path_bytes),
            ));
        }
        Ok(())
    }

    fn open_root(&self) -> Result<OwnedFd, UnpackError> {
        rustix::fs::openat(
            self.root.as_fd(),
            ".",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(self.io(Path::new("")))
    }

    /// Opens (creating as needed) the directory that will hold `rel`, never following symlinks,
    /// and returns it with the last component.
    fn parent(&self, raw: &[u8], rel: &Path) -> Result<(OwnedFd, OsString), UnpackError> {
        let comps: Vec<&OsStr> = rel.iter().collect();
        let Some((last, dirs)) = comps.split_last() else {
            return Err(self.refuse(raw, "empty name"));
        };
        let mut fd = self.open_root()?;
        let mut at = PathBuf::new();
        for d in dirs {
            at.push(d);
            fd = self.open_dir(raw, &fd, d, &at, true)?;
        }
        Ok((fd, (*last).to_owned()))
    }

    /// Opens the directory `name` in `at` without following a symlink; creates it if missing
    /// and `create`, else refuses the entry (`rel` is the directory's path, for messages).
    fn open_dir(
        &self,
        raw: &[u8],
        at: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        create: bool,
    ) -> Result<OwnedFd, UnpackError> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
        match rustix::fs::openat(at.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(rustix::io::Errno::NOENT) if create => {
                rustix::fs::mkdirat(at.as_fd(), name, Mode::from_raw_mode(0o755))
                    .map_err(self.io(rel))?;
                rustix::fs::openat(at.as_fd(), name, flags, Mode::empty()).map_err(self.io(rel))
            }
            Err(rustix::io::Errno::NOENT) => Err(self.refuse(
                raw,
                format!("`{}` is not in the archive before it", rel.display()),
            )),
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => Err(self.refuse(
                raw,
                format!(
                    "`{}` is a symlink or a file, not a directory (nothing is written through a symlink)",
                    rel.display()
                ),
            )),
            Err(e) => Err(self.io(rel)(e)),
        }
    }

    /// Removes whatever an earlier entry put at `name` (archives may repeat names; the last one
    /// wins), but never a directory.
    fn clear(&self, at: &OwnedFd, name: &OsStr) {
        let _ = rustix::fs::unlinkat(at.as_fd(), name, AtFlags::empty());
    }

    fn dir(&mut self, raw: &[u8], rel: &Path, mode: u32) -> Result<(), UnpackError> {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let (parent, name) = self.parent(raw, rel)?;
        let fd = self.open_dir(raw, &parent, &name, rel, true)?;
        // Owner keeps rwx so the rest of the archive can be written; no special bits.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode((mode & 0o755) | 0o700))
            .map_err(self.io(rel))?;
        if let Some(t) = self.mtime.take() {
            self.dir_times.insert(rel.to_path_buf(), t);
        }
        Ok(())
    }

    /// Notes the time the next entry carries.
    fn set_time(&mut self, t: Option<i64>) {
        self.mtime = t;
        if let Some(t) = t {
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }

    /// Gives every directory of the tree its time, as tar does after the last entry: its own
    /// entry's, else the archive's newest. Build systems and archivers (meson's zipapp, for one)
    /// record directory times; left at the time of unpacking, they differ from one build to the
    /// next. Walks directory handles without following symlinks.
    fn finish_dir_times(&mut self) -> Result<(), UnpackError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        let root = self.open_root()?;
        self.stamp_dir(root, PathBuf::new(), newest)
    }

    fn stamp_dir(&self, fd: OwnedFd, rel: PathBuf, newest: i64) -> Result<(), UnpackError> {
        let mut subdirs = Vec::new();
        {
            let dir = rustix::fs::Dir::read_from(&fd).map_err(self.io(&rel))?;
            for entry in dir {
                let entry = entry.map_err(self.io(&rel))?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let is_dir = match entry.file_type() {
                    rustix::fs::FileType::Directory => true,
                    // Some file systems leave the type out of directory entries: ask, without
                    // following a symlink.
                    rustix::fs::FileType::Unknown => {
                        rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                            .map(|st| {
                                rustix::fs::FileType::from_raw_mode(st.st_mode)
                                    == rustix::fs::FileType::Directory
                            })
                            .map_err(self.io(&rel))?
                    }
                    _ => false,
                };
                if is_dir {
                    subdirs.push(OsStr::from_bytes(name).to_os_string());
                }
            }
        }
        for name in subdirs {
            let child_rel = rel.join(&name);
            let child = rustix::fs::openat(
                fd.as_fd(),
                &name,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(self.io(&child_rel))?;
            self.stamp_dir(child, child_rel, newest)?;
        }
        let t = self.dir_times.get(&rel).copied().unwrap_or(newest);
        set_times(&fd, t).map_err(self.io(&rel))
    }

    fn file(
        &mut self,
        raw: &[u8],
        rel: &Path,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), UnpackError> {
        if size > self.limits.max_file_bytes {
            return Err(self.too_big(
                format!("entry `{}` ({size} bytes)", lossy(raw)),
                self.limits.max_file_bytes,
            ));
        }
        if self.report.bytes.saturating_add(size) > self.limits.max_total_bytes {
            return Err(self.too_big("the unpacked size", self.limits.max_total_bytes));
        }
        if rel.as_os_str().is_empty() {
            return Err(self.refuse(raw, "a file named like the archive root"));
        }
        let (parent, name) = self.parent(raw, rel)?;
        self.clear(&parent, &name);
        let perm = (mode & 0o755) | 0o600;
        let fd = rustix::fs::openat(
            parent.as_fd(),
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(perm),
        )
        .map_err(self.io(rel))?;
        // Opened relative to a directory handle; errors are mapped with the entry's name below.
        #[allow(clippy::disallowed_types)]
        let mut f = std::fs::File::from(fd);
        // Copy at most `size` bytes: a header that lies about its size cannot make us write more.
        let mut limited = (&mut *data).take(size);
        let copied = std::io::copy(&mut limited, &mut f)
            .map_err(|e| self.read_error(format!("reading `{}`: {e}", lossy(raw))))?;
        if copied != size {
            return Err(self.read_error(format!(
                "`{}` is truncated ({copied} of {size} bytes)",
                lossy(raw)
            )));
        }
        // One more read must find the end: it is also where zip checks the entry's CRC.
        let mut probe = [0u8; 1];
        match data.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => {
                return Err(self.read_error(format!(
                    "`{}` holds more data than its declared {size} bytes",
                    lossy(raw)
                )));
            }
            Err(e) => return Err(self.read_error(format!("reading `{}`: {e}", lossy(raw)))),
        }
        f.flush().map_err(|e| UnpackError::Io {
            path: self.dest.join(rel),
            source: e,
        })?;
        // umask may have cleared bits; set exactly (minus special bits).
        rustix::fs::fchmod(&f, Mode::from_raw_mode(perm)).map_err(self.io(rel))?;
        if let Some(t) = self.mtime.take() {
            set_times(&f, t).map_err(self.io(rel))?;
        }
        self.report.bytes += size;
        Ok(())
    }

    fn symlink(&mut self, raw: &[u8], rel: &Path, target: &[u8]) -> Result<(), UnpackError> {
        if target.is_empty() || target.contains(&0) {
            return Err(self.refuse(raw, "symlink with an empty or invalid target"));
        }
        if target.len() > self.limits.max_path_bytes {
            return Err(self.refuse(
                raw,
                format!(
                    "symlink target longer than {} bytes",
                    self.limits.max_path_bytes
                ),
            ));
        }
        let t = Path::new(OsStr::from_bytes(target));
        if t.is_absolute() && self.limits.allow_absolute_symlinks && !rel.as_os_str().is_empty() {
            let (parent, name) = self.parent(raw, rel)?;
            self.clear(&parent, &name);
            rustix::fs::symlinkat(t, parent.as_fd(), &name).map_err(self.io(rel))?;
            return Ok(());
        }
        if t.is_absolute() {
            return Err(self.refuse(
                raw,
                format!("symlink to the absolute path `{}`", t.display()),
            ));
        }
        // The link's own directories are real ones (they were opened without following links),
        // so leading `..` climbs lexically; count that it stays inside the tree.
        let mut up_allowed: i64 = rel.components().count() as i64 - 1;
        let mut seen_name = false;
        for c in t.components() {
            match c {
                Component::ParentDir if seen_name => {
                    return Err(self.refuse(
                        raw,
                        format!(
                            "symlink to `{}`: `..` after a name could leave the source tree through another symlink",
                            t.display()
                        ),
                    ));
                }
                Component::ParentDir => {
                    up_allowed -= 1;
                    if up_allowed < 0 {
                        return Err(self.refuse(
                            raw,
                            format!("symlink to `{}` leaves the source tree", t.display()),
                        ));
                    }
                }
                Component::Normal(_) => seen_name = true,
                _ => {}
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(self.refuse(raw, "a symlink named like the archive root"));
        }
        let (parent, name) = self.parent(raw, rel)?;
        self.clear(&parent, &name);
        rustix::fs::symlinkat(t, parent.as_fd(), &name).map_err(self.io(rel))?;
        Ok(())
    }

    fn hardlink(&mut self, raw: &[u8], rel: &Path, target_raw: &[u8]) -> Result<(), UnpackError> {
        let target = clean_path(target_raw, self.limits.allow_control_chars)
            .map_err(|r| self.refuse(raw, format!("hard link target: {r}")))?;
        let comps: Vec<&OsStr> = target.iter().collect();
        let Some((tname, tdirs)) = comps.split_last() else {
            return Err(self.refuse(raw, "hard link with an empty target"));
        };
        // Walk to the target without creating anything: it must already be in the tree.
        let mut tparent = self.open_root()?;
        let mut at = PathBuf::new();
        for d in tdirs {
            at.push(d);
            tparent = self
                .open_dir(raw, &tparent, d, &at, false)
                .map_err(|e| match e {
                    UnpackError::Refused { reason, .. } => {
                        self.refuse(raw, format!("hard link target: {reason}"))
                    }
                    other => other,
                })?;
        }
        let st = rustix::fs::statat(tparent.as_fd(), *tname, AtFlags::SYMLINK_NOFOLLOW).map_err(
            |_| {
                self.refuse(
                    raw,
                    format!(
                        "hard link to `{}`, which is not in the archive before it",
                        target.display()
                    ),
                )
            },
        )?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(self.refuse(
                raw,
                format!(
                    "hard link to `{}`, which is not a regular file",
                    target.display()
                ),
            ));
        }
        if rel.as_os_str().is_empty() {
            return Err(self.refuse(raw, "a hard link named like the archive root"));
        }
        if rel == target {
            // A link to itself: the file is already there.
            return Ok(());
        }
        let (parent, name) = self.parent(raw, rel)?;
        self.clear(&parent, &name);
        rustix::fs::linkat(
            tparent.as_fd(),
            *tname,
            parent.as_fd(),
            &name,
            AtFlags::empty(),
        )
        .map_err(self.io(rel))?;
        Ok(())
    }
}

/// Unpacks `archive` (its format detected from `name` or its first bytes) into the existing,
/// empty directory `dest`.
pub fn unpack(
    archive: &Path,
    name: &str,
    dest: &Path,
    limits: Limits,
) -> Result<Report, UnpackError> {
    let read_err = |e: std::io::Error| UnpackError::Read {
        archive: archive.to_path_buf(),
        reason: e.to_string(),
    };
    let mut head = [0u8; 512];
    let n = {
        let mut f = fs_err::File::open(archive).map_err(|e| UnpackError::Io {
            path: archive.to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(read_err(e)),
            }
        }
        n
    };
    let format = Format::detect(name, &head[..n]).ok_or_else(|| UnpackError::Read {
        archive: archive.to_path_buf(),
        reason: "not an archive forge can unpack (tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip)"
            .into(),
    })?;
    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let mut x = Extractor {
        archive,
        dest,
        root,
        limits,
        report: Report::default(),
        mtime: None,
        dir_times: Default::default(),
        newest: None,
    };
    let file = fs_err::File::open(archive).map_err(|e| UnpackError::Io {
        path: archive.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    match format {
        Format::Zip => unpack_zip(&mut x, archive)?,
        Format::Tar => unpack_tar(&mut x, reader)?,
        Format::TarGz => unpack_tar(&mut x, flate2::read::MultiGzDecoder::new(reader))?,
        Format::TarBz2 => unpack_tar(&mut x, bzip2::read::MultiBzDecoder::new(reader))?,
        Format::TarXz => unpack_tar(&mut x, liblzma::read::XzDecoder::new_multi_decoder(reader))?,
        Format::TarZst => unpack_tar(
            &mut x,
            zstd::stream::read::Decoder::with_buffer(reader).map_err(read_err)?,
        )?,
    }
    x.finish_dir_times()?;
    Ok(x.report)
}

/// A reader with a byte budget that can be re-armed: the tar reader buffers GNU long names and
/// pax headers in memory while it looks for the next entry, and only the budget bounds them.
struct Metered<R> {
    inner: R,
    budget: Rc<Cell<u64>>,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.budget.get();
        if left == 0 && !buf.is_empty() {
            self.exceeded.set(true);
            return Err(std::io::Error::other(
                "the metadata of an entry exceeds its limit",
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.set(left - n as u64);
        Ok(n)
    }
}

fn unpack_tar(x: &mut Extractor<'_>, reader: impl Read) -> Result<(), UnpackError> {
    let archive = x.archive.to_path_buf();
    let read_err = |e: std::io::Error| UnpackError::Read {
        archive: archive.clone(),
        reason: e.to_string(),
    };
    let budget = Rc::new(Cell::new(u64::MAX));
    let exceeded = Rc::new(Cell::new(false));
    let metered = Metered {
        inner: reader,
        budget: Rc::clone(&budget),
        exceeded: Rc::clone(&exceeded),
    };
    // Between two entries the reader skips padding and reads headers plus their extensions.
    let between = x.limits.max_metadata_bytes.saturating_add(8 << 10);
    let mut ar = tar::Archive::new(metered);
    let mut entries = ar.entries().map_err(read_err)?;
    loop {
        budget.set(between);
        let next = entries.next();
        budget.set(u64::MAX);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| {
            if exceeded.get() {
                x.too_big(
                    "the metadata of one entry (long names, pax headers)",
                    x.limits.max_metadata_bytes,
                )
            } else {
                read_err(e)
            }
        })?;
        let raw: Vec<u8> = entry.path_bytes().into_owned();
        x.count(&raw)?;
        let ty = entry.header().entry_type();
        // The pax size, when there is one, overrides the header's.
        let size = entry.size();
        let is_file = matches!(
            ty,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        );
        if !is_file && size > x.limits.max_metadata_bytes {
            return Err(x.too_big(
                format!(
                    "data of the non-file entry `{}` ({size} bytes)",
                    lossy(&raw)
                ),
                x.limits.max_metadata_bytes,
            ));
        }
        if matches!(
            ty,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(read_err)?;
            continue;
        }
        let rel = clean_path(&raw, x.limits.allow_control_chars).map_err(|r| x.refuse(&raw, r))?;
        let mode = entry.header().mode().map_err(read_err)?;
        x.set_time(
            entry
                .header()
                .mtime()
                .ok()
                .and_then(|t| i64::try_from(t).ok()),
        );
        match ty {
            tar::EntryType::Directory => x.dir(&raw, &rel, mode)?,
            // Pre-POSIX archives mark directories with a trailing slash on a regular entry.
            tar::EntryType::Regular if raw.ends_with(b"/") && size == 0 => {
                x.dir(&raw, &rel, mode)?
            }
            tar::EntryType::GNUSparse => {
                return Err(x.refuse(&raw, "sparse files are not supported"));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                x.file(&raw, &rel, mode, size, &mut entry)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                x.symlink(&raw, &rel, &target)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                x.hardlink(&raw, &rel, &target)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(x.refuse(&raw, "device and FIFO entries are not allowed"));
            }
            other => return Err(x.refuse(&raw, format!("unsupported entry type {other:?}"))),
        }
        if !is_file {
            // Whatever a non-file entry carries is skipped here, under the limit checked above.
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(read_err)?;
        }
    }
    Ok(())
}

fn unpack_zip(x: &mut Extractor<'_>, path: &Path) -> Result<(), UnpackError> {
    let read_err = |e: zip::result::ZipError| UnpackError::Read {
        archive: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = fs_err::File::open(path).map_err(|e| UnpackError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })?;
    let mut ar = zip::ZipArchive::new(file.into_parts().0).map_err(read_err)?;
    if ar.len() as u64 > x.limits.max_entries {
        return Err(x.too_big("the number of entries", x.limits.max_entries));
    }
    for i in 0..ar.len() {
        let mut f = ar.by_index(i).map_err(read_err)?;
        let raw = f.name_raw().to_vec();
        x.count(&raw)?;
        let rel = clean_path(&raw, x.limits.allow_control_chars).map_err(|r| x.refuse(&raw, r))?;
        let mode = f
            .unix_mode()
            .unwrap_or(if f.is_dir() { 0o755 } else { 0o644 });
        x.set_time(f.last_modified().map(zip_time));
        match mode & 0o170000 {
            0o120000 => {
                let limit = x.limits.max_path_bytes as u64 + 1;
                let mut target = Vec::new();
                (&mut f)
                    .take(limit)
                    .read_to_end(&mut target)
                    .map_err(|e| x.read_error(format!("reading `{}`: {e}", lossy(&raw))))?;
                x.symlink(&raw, &rel, &target)?;
            }
            0o040000 => x.dir(&raw, &rel, mode)?,
            _ if f.is_dir() => x.dir(&raw, &rel, mode)?,
            0 | 0o100000 => {
                let size = f.size();
                x.file(&raw, &rel, mode, size, &mut f)?;
            }
            _ => return Err(x.refuse(&raw, "device, FIFO and socket entries are not allowed")),
        }
    }
    Ok(())
}

/// Sets a file's access and modification times to `t` seconds since the epoch.
fn set_times(fd: impl AsFd, t: i64) -> rustix::io::Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: t,
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        fd,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
    )
}

/// Seconds since the epoch of a zip entry's DOS time, read as UTC (zip stores no zone; what
/// matters is that the same archive always gives the same times).
fn zip_time(t: zip::DateTime) -> i64 {
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let (y, m, d) = (
        i64::from(t.year()),
        i64::from(t.month()),
        i64::from(t.day()),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second())
}

/// The directory to build in after unpacking into `dest`: the single top-level directory most
/// archives have, else `dest` itself.
pub fn source_root(dest: &Path) -> std::io::Result<PathBuf> {
    let entries: Vec<_> = fs_err::read_dir(dest)?.collect::<Result<_, _>>()?;
    if let [only] = entries.as_slice()
        && only.file_type()?.is_dir()
    {
        return Ok(only.path());
    }
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod mtime_tests {
    use super::*;

    #[test]
    fn file_times_come_from_the_archive() {
        let d = tempfile::tempdir().unwrap();
        let tar_path = d.path().join("a.tar");
        {
            let f = fs_err::File::create(&tar_path).unwrap();
            let mut b = tar::Builder::new(f);
            for (name, mtime) in [
                ("p/configure.ac", 1_000_000_000u64),
                ("p/configure", 1_000_000_500),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(1);
                h.set_mode(0o644);
                h.set_mtime(mtime);
                h.set_cksum();
                b.append_data(&mut h, name, &b"x"[..]).unwrap();
            }
            b.finish().unwrap();
        }
        let dest = d.path().join("dest");
        fs_err::create_dir(&dest).unwrap();
        unpack(&tar_path, "a.tar", &dest, Limits::default()).unwrap();
        use std::os::unix::fs::MetadataExt;
        let ac = fs_err::metadata(dest.join("p/configure.ac"))
            .unwrap()
            .mtime();
        let c = fs_err::metadata(dest.join("p/configure")).unwrap().mtime();
        assert_eq!((ac, c), (1_000_000_000, 1_000_000_500));
    }

    fn mtime(p: &Path) -> i64 {
        use std::os::unix::fs::MetadataExt;
        fs_err::symlink_metadata(p).unwrap().mtime()
    }

    #[test]
    fn directory_times_come_from_the_archive_whatever_is_written_into_them() {
        let d = tempfile::tempdir().unwrap();
        let tar_path = d.path().join("a.tar");
        {
            let f = fs_err::File::create(&tar_path).unwrap();
            let mut b = tar::Builder::new(f);
            let mut dir = |name: &str, mtime: u64| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_mtime(mtime);
                h.set_cksum();
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            };
            dir("p/", 1_100_000_000);
            dir("p/sub/", 1_200_000_000);
            let mut file = |name: &str, mtime: u64| {
                let mut h = tar::Header::new_gnu();
                h.set_size(1);
                h.set_mode(0o644);
                h.set_mtime(mtime);
                h.set_cksum();
                b.append_data(&mut h, name, &b"x"[..]).unwrap();
            };
            // Written after their directories' entries: unpacking them touches the directories.
            file("p/sub/a", 1_300_000_000);
            // `p/implicit/` has no entry of its own: it gets the archive's newest time.
            file("p/implicit/b", 1_400_000_000);
            b.finish().unwrap();
        }
        let times =
            |dest: &Path| ["p", "p/sub", "p/implicit", "p/sub/a"].map(|r| mtime(&dest.join(r)));
        let first = d.path().join("one");
        fs_err::create_dir(&first).unwrap();
        unpack(&tar_path, "a.tar", &first, Limits::default()).unwrap();
        assert_eq!(
            times(&first),
            [1_100_000_000, 1_200_000_000, 1_400_000_000, 1_300_000_000]
        );
        assert_eq!(mtime(&first), 1_400_000_000, "the destination itself too");
    }

    #[test]
    fn zip_entries_keep_their_times() {
        let d = tempfile::tempdir().unwrap();
        let zip_path = d.path().join("a.zip");
        {
            let f = fs_err::File::create(&zip_path).unwrap();
            let mut w = zip::ZipWriter::new(f.into_parts().0);
            let t = zip::DateTime::from_date_and_time(2001, 9, 9, 1, 46, 40).unwrap();
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(t);
            // The directory is older than its file: its own time is restored, not the newest
            // entry's.
            let older = zip::DateTime::from_date_and_time(2001, 9, 9, 1, 30, 0).unwrap();
            w.add_directory("p/", opts.last_modified_time(older))
                .unwrap();
            w.start_file("p/f", opts).unwrap();
            w.write_all(b"x").unwrap();
            w.finish().unwrap();
        }
        let dest = d.path().join("dest");
        fs_err::create_dir(&dest).unwrap();
        unpack(&zip_path, "a.zip", &dest, Limits::default()).unwrap();
        // 2001-09-09 01:46:40 UTC is 1,000,000,000 s after the epoch.
        assert_eq!(mtime(&dest.join("p/f")), 1_000_000_000);
        assert_eq!(mtime(&dest.join("p")), 1_000_000_000 - 1000);
    }
}
