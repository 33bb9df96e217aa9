//! The files of a cache directory, reached without ever following a symbolic link.
//!
//! The cache root is opened once (a symbolic link is followed there only: the user named that
//! path); every directory below it is opened component by component with `O_NOFOLLOW` (and, for
//! a writer, created with `mkdirat` when missing), and a file is opened with `O_NOFOLLOW |
//! O_NONBLOCK` and used only when `fstat` says it is a regular file. So a symbolic link placed in
//! a cache can neither send a read or a write elsewhere nor be deleted through, and a FIFO or a
//! device can neither block a reader nor feed it endless data. Every read is bounded.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Cap on manifests, the key index and key blobs (and on tarball metadata members).
pub(crate) const MAX_SMALL: u64 = 16 << 20;
/// Cap on spec blobs and the index blob (and on a spec document once decompressed).
pub(crate) const MAX_LARGE: u64 = 64 << 20;

/// The top-level entries of a cache that forge writes and manages.
pub(crate) const MANAGED: &[&str] = &["v3", "blobs", crate::repo::REPO_DIR, TMP_DIR, "README.md"];

/// Name of the directory of temporary files inside a cache.
pub(crate) const TMP_DIR: &str = ".forge-tmp";

/// What a path of the cache is (not following a symbolic link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device (described).
    Special(&'static str),
}

impl Kind {
    fn of(ft: FileType) -> Self {
        match ft {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink,
            FileType::Fifo => Self::Special("a FIFO"),
            FileType::Socket => Self::Special("a socket"),
            FileType::CharacterDevice => Self::Special("a character device"),
            FileType::BlockDevice => Self::Special("a block device"),
            FileType::Unknown => Self::Special("a file of unknown type"),
        }
    }

    /// "a regular file", "a FIFO"…
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::File => "a regular file",
            Self::Dir => "a directory",
            Self::Symlink => "a symbolic link",
            Self::Special(s) => s,
        }
    }
}

/// Why a path of the cache cannot be used. Paths are relative to the cache root.
#[derive(Debug)]
pub(crate) enum FsError {
    /// This path (the one asked for, or a directory on the way to it) is a symbolic link.
    Symlink(PathBuf),
    /// This path is not what was asked for (a FIFO where a file was wanted, a file on the way
    /// to a directory…).
    WrongKind {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: Kind,
        /// What was wanted.
        wanted: &'static str,
    },
    /// A file larger than the cap for its kind.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        limit: u64,
    },
    /// Any other failure, `NotFound` included.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl FsError {
    fn io(path: &Path, e: impl Into<io::Error>) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }
    }

    /// Whether the path (or a directory on the way) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// An I/O error naming the path below `root`.
    pub(crate) fn into_io(self, root: &Path) -> io::Error {
        let kind = match &self {
            Self::Io { source, .. } => source.kind(),
            Self::TooLarge { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, format!("in the cache `{}`: {self}", root.display()))
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symlink(p) => write!(
                f,
                "`{}` is a symbolic link, which forge does not follow in a cache: remove it",
                p.display()
            ),
            Self::WrongKind { path, kind, wanted } => write!(
                f,
                "`{}` is {}, not {wanted}",
                path.display(),
                kind.describe()
            ),
            Self::TooLarge { path, limit } => {
                write!(f, "`{}` is larger than {} MiB", path.display(), limit >> 20)
            }
            Self::Io { path, source } => write!(f, "`{}`: {source}", path.display()),
        }
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

/// The components of a relative path inside the cache; anything but plain names is refused.
fn components(rel: &Path) -> Result<Vec<&OsStr>, FsError> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(FsError::io(
                rel,
                io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path"),
            )),
        })
        .collect()
}

/// A cache directory, opened.
#[derive(Debug)]
pub(crate) struct CacheDir {
    root: PathBuf,
    fd: OwnedFd,
}

impl CacheDir {
    /// Opens the directory `root` (following a symbolic link there only).
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(
                e.kind(),
                format!("cannot open the cache directory `{}`: {e}", root.display()),
            )
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            fd,
        })
    }

    /// The handle of the cache's directory.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The root, as given.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The directory `rel` (`""` is the root), opened without following a symbolic link at any
    /// component; missing components are created when `create`.
    pub(crate) fn dir(&self, rel: &Path, create: bool) -> Result<OwnedFd, FsError> {
        let mut fd = rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| FsError::io(Path::new(""), e))?;
        let mut at = PathBuf::new();
        for name in components(rel)? {
            at.push(name);
            let next = match rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(FsError::io(&at, e)),
                    }
                    rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty())
                }
                r => r,
            };
            fd = match next {
                Ok(d) => d,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(match kind_at(&fd, name) {
                        Ok(Kind::Symlink) => FsError::Symlink(at),
                        Ok(kind) => FsError::WrongKind {
                            path: at,
                            kind,
                            wanted: "a directory",
                        },
                        Err(e) => FsError::io(&at, e),
                    });
                }
                Err(e) => return Err(FsError::io(&at, e)),
            };
        }
        Ok(fd)
    }

    /// The directory holding `rel`, and `rel`'s last component.
    fn parent<'a>(&self, rel: &'a Path, create: bool) -> Result<(OwnedFd, &'a OsStr), FsError> {
        let comps = components(rel)?;
        let Some((last, _)) = comps.split_last() else {
            return Err(FsError::io(
                rel,
                io::Error::new(io::ErrorKind::InvalidInput, "empty path"),
            ));
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.dir(parent, create)?, last))
    }

    /// What `rel` is, `None` if it (or a directory on the way) does not exist.
    pub(crate) fn kind(&self, rel: &Path) -> Result<Option<Kind>, FsError> {
        let (dir, name) = match self.parent(rel, false) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        match kind_at(&dir, name) {
            Ok(k) => Ok(Some(k)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(FsError::io(rel, e)),
        }
    }

    /// Opens the regular file `rel` for reading; returns it and its size.
    pub(crate) fn open_file(&self, rel: &Path) -> Result<(fs_err::File, u64), FsError> {
        let (dir, name) = self.parent(rel, false)?;
        // Looked at first, so that a FIFO or a device is never even opened…
        match kind_at(&dir, name) {
            Ok(Kind::File) => {}
            Ok(Kind::Symlink) => return Err(FsError::Symlink(rel.to_path_buf())),
            Ok(kind) => {
                return Err(FsError::WrongKind {
                    path: rel.to_path_buf(),
                    kind,
                    wanted: "a regular file",
                });
            }
            Err(e) => return Err(FsError::io(rel, e)),
        }
        // …and checked again on the descriptor, which is what counts.
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => FsError::Symlink(rel.to_path_buf()),
            e => FsError::io(rel, e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io(rel, e))?;
        let kind = Kind::of(FileType::from_raw_mode(st.st_mode));
        if kind != Kind::File {
            return Err(FsError::WrongKind {
                path: rel.to_path_buf(),
                kind,
                wanted: "a regular file",
            });
        }
        #[allow(clippy::disallowed_types)] // wrapped at once into fs_err's, which names the path
        let file = std::fs::File::from(fd);
        Ok((
            fs_err::File::from_parts(file, self.root.join(rel)),
            u64::try_from(st.st_size).unwrap_or(0),
        ))
    }

    /// The bytes of the regular file `rel`, at most `limit` of them.
    pub(crate) fn read(&self, rel: &Path, limit: u64) -> Result<Vec<u8>, FsError> {
        let (f, size) = self.open_file(rel)?;
        let too_large = || FsError::TooLarge {
            path: rel.to_path_buf(),
            limit,
        };
        if size > limit {
            return Err(too_large());
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&f).take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| FsError::io(rel, e))?;
        if out.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(out)
    }

    /// The entries of the directory `rel`, sorted by name, with what each is.
    pub(crate) fn list(&self, rel: &Path) -> Result<Vec<(OsString, Kind)>, FsError> {
        list_fd(self.dir(rel, false)?, rel)
    }

    /// The first symbolic link, FIFO, socket or device below the cache's managed entries (and
    /// those entries themselves), with what it is.
    pub(crate) fn find_foreign(&self) -> Result<Option<(PathBuf, Kind)>, FsError> {
        let mut found = Vec::new();
        self.foreign(&mut found, 1)?;
        Ok(found.into_iter().next())
    }

    /// Every symbolic link, FIFO, socket or device below the managed entries (at most `max`).
    pub(crate) fn foreign(
        &self,
        out: &mut Vec<(PathBuf, Kind)>,
        max: usize,
    ) -> Result<(), FsError> {
        let mut stack: Vec<PathBuf> = Vec::new();
        for top in MANAGED.iter().rev() {
            match self.kind(Path::new(top))? {
                None | Some(Kind::File) => {}
                Some(Kind::Dir) => stack.push(PathBuf::from(top)),
                Some(k) => out.push((PathBuf::from(top), k)),
            }
        }
        while let Some(d) = stack.pop() {
            if out.len() >= max {
                break;
            }
            let entries = match self.list(&d) {
                Ok(e) => e,
                // Removed meanwhile (a concurrent export's temporary files).
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for (name, kind) in entries.into_iter().rev() {
                let p = d.join(name);
                match kind {
                    Kind::File => {}
                    Kind::Dir => stack.push(p),
                    k => out.push((p, k)),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.truncate(max);
        Ok(())
    }
}

/// What `name` in the directory `dir` is, not following a symbolic link.
pub(crate) fn kind_at(dir: impl AsFd, name: &OsStr) -> Result<Kind, Errno> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(Kind::of(FileType::from_raw_mode(st.st_mode)))
}

/// The entries of an open directory (`rel` names it in errors), sorted by name.
pub(crate) fn list_fd(fd: OwnedFd, rel: &Path) -> Result<Vec<(OsString, Kind)>, FsError> {
    let mut dir = rustix::fs::Dir::new(fd).map_err(|e| FsError::io(rel, e))?;
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let e = e.map_err(|e| FsError::io(rel, e))?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_os_string();
        let kind = match e.file_type() {
            FileType::Unknown => {
                let d = dir.fd().map_err(|e| FsError::io(rel, e))?;
                match kind_at(d, &name) {
                    Ok(k) => k,
                    Err(Errno::NOENT) => continue,
                    Err(err) => return Err(FsError::io(&rel.join(&name), err)),
                }
            }
            t => Kind::of(t),
        };
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
