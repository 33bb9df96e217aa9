//! Safe extraction of source archives.
//!
//! Archives come from the internet; the extractor treats them as hostile. Every entry is created
//! relative to a directory handle, walking its path one component at a time with `O_NOFOLLOW`, so
//! nothing is ever written through a symlink — not even one the archive itself created. Absolute
//! names, `..` components, symlinks whose target leaves the tree, hard links to anything but a
//! regular file already extracted, and device, FIFO or socket entries are refused with an error
//! that names the entry. Setuid, setgid and sticky bits are dropped. Sizes are bounded before any
//! data is read.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    /// Length of an entry's path, in bytes.
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 64 << 30,
            max_file_bytes: 32 << 30,
            max_entries: 2_000_000,
            max_path_bytes: 4096,
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
}

fn rx(path: &Path) -> impl FnOnce(rustix::io::Errno) -> UnpackError + '_ {
    move |e| UnpackError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// A relative, `..`-free path; otherwise the reason it is refused.
fn clean_path(raw: &[u8]) -> Result<PathBuf, String> {
    if raw.contains(&0) {
        return Err("NUL byte in the name".into());
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

impl<'a> Extractor<'a> {
    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> UnpackError {
        UnpackError::Refused {
            archive: self.archive.to_path_buf(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn count(&mut self, raw: &[u8]) -> Result<(), UnpackError> {
        self.report.entries += 1;
        if self.report.entries > self.limits.max_entries {
            return Err(UnpackError::TooBig {
                archive: self.archive.to_path_buf(),
                what: "the number of entries".into(),
                limit: self.limits.max_entries,
            });
        }
        if raw.len() > self.limits.max_path_bytes {
            return Err(self.refuse(
                raw,
                format!("name longer than {} bytes", self.limits.max_path_bytes),
            ));
        }
        Ok(())
    }

    /// Opens (creating as needed) the directory that will hold `rel`, never following symlinks,
    /// and returns it with the last component.
    fn parent(&self, raw: &[u8], rel: &Path) -> Result<(OwnedFd, OsString), UnpackError> {
        let comps: Vec<&OsStr> = rel.iter().collect();
        let Some((last, dirs)) = comps.split_last() else {
            return Err(self.refuse(raw, "empty name"));
        };
        let mut fd = rustix::fs::openat(
            self.root.as_fd(),
            ".",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(rx(self.dest))?;
        for d in dirs {
            fd = self.open_dir(raw, &fd, d)?;
        }
        Ok((fd, (*last).to_owned()))
    }

    fn open_dir(&self, raw: &[u8], at: &OwnedFd, name: &OsStr) -> Result<OwnedFd, UnpackError> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
        match rustix::fs::openat(at.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(at.as_fd(), name, Mode::from_raw_mode(0o755))
                    .map_err(rx(self.dest))?;
                rustix::fs::openat(at.as_fd(), name, flags, Mode::empty()).map_err(rx(self.dest))
            }
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                Err(self.refuse(raw, "a parent directory is a symlink or a file"))
            }
            Err(e) => Err(rx(self.dest)(e)),
        }
    }

    /// Removes whatever an earlier entry put at `name` (archives may repeat names; the last one
    /// wins), but never a directory with contents.
    fn clear(&self, at: &OwnedFd, name: &OsStr) {
        let _ = rustix::fs::unlinkat(at.as_fd(), name, AtFlags::empty());
    }

    fn dir(&mut self, raw: &[u8], rel: &Path, mode: u32) -> Result<(), UnpackError> {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let (parent, name) = self.parent(raw, rel)?;
        let fd = self.open_dir(raw, &parent, &name)?;
        // Owner keeps rwx so the rest of the archive can be written; no special bits.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode((mode & 0o755) | 0o700))
            .map_err(rx(self.dest))?;
        Ok(())
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
            return Err(UnpackError::TooBig {
                archive: self.archive.to_path_buf(),
                what: format!("entry `{}` ({size} bytes)", String::from_utf8_lossy(raw)),
                limit: self.limits.max_file_bytes,
            });
        }
        if self.report.bytes + size > self.limits.max_total_bytes {
            return Err(UnpackError::TooBig {
                archive: self.archive.to_path_buf(),
                what: "the unpacked size".into(),
                limit: self.limits.max_total_bytes,
            });
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
        .map_err(rx(self.dest))?;
        // Opened relative to a directory handle; errors are mapped with the entry's name below.
        #[allow(clippy::disallowed_types)]
        let mut f = std::fs::File::from(fd);
        // Copy at most `size` bytes: a header that lies about its size cannot make us write more.
        let mut limited = data.take(size);
        let copied = std::io::copy(&mut limited, &mut f).map_err(|e| UnpackError::Read {
            archive: self.archive.to_path_buf(),
            reason: format!("reading `{}`: {e}", String::from_utf8_lossy(raw)),
        })?;
        if copied != size {
            return Err(UnpackError::Read {
                archive: self.archive.to_path_buf(),
                reason: format!(
                    "`{}` is truncated ({copied} of {size} bytes)",
                    String::from_utf8_lossy(raw)
                ),
            });
        }
        f.flush().map_err(|e| UnpackError::Io {
            path: self.dest.join(rel),
            source: e,
        })?;
        // umask may have cleared bits; set exactly (minus special bits).
        rustix::fs::fchmod(&f, Mode::from_raw_mode(perm)).map_err(rx(self.dest))?;
        self.report.bytes += size;
        Ok(())
    }

    fn symlink(&mut self, raw: &[u8], rel: &Path, target: &[u8]) -> Result<(), UnpackError> {
        let t = Path::new(OsStr::from_bytes(target));
        if target.is_empty() || target.contains(&0) {
            return Err(self.refuse(raw, "symlink with an empty or invalid target"));
        }
        if t.is_absolute() {
            return Err(self.refuse(
                raw,
                format!("symlink to the absolute path `{}`", t.display()),
            ));
        }
        // Resolve lexically from the link's directory: it must stay inside the tree.
        let mut depth: i64 = rel.components().count() as i64 - 1;
        for c in t.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(self.refuse(
                    raw,
                    format!("symlink to `{}` leaves the source tree", t.display()),
                ));
            }
        }
        let (parent, name) = self.parent(raw, rel)?;
        self.clear(&parent, &name);
        rustix::fs::symlinkat(t, parent.as_fd(), &name).map_err(rx(self.dest))?;
        Ok(())
    }

    fn hardlink(&mut self, raw: &[u8], rel: &Path, target_raw: &[u8]) -> Result<(), UnpackError> {
        let target = clean_path(target_raw)
            .map_err(|r| self.refuse(raw, format!("hard link target: {r}")))?;
        let (tparent, tname) = self.parent(target_raw, &target)?;
        let st = rustix::fs::statat(tparent.as_fd(), &tname, AtFlags::SYMLINK_NOFOLLOW).map_err(
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
        let (parent, name) = self.parent(raw, rel)?;
        self.clear(&parent, &name);
        rustix::fs::linkat(
            tparent.as_fd(),
            &tname,
            parent.as_fd(),
            &name,
            AtFlags::empty(),
        )
        .map_err(rx(self.dest))?;
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
    .map_err(rx(dest))?;
    let mut x = Extractor {
        archive,
        dest,
        root,
        limits,
        report: Report::default(),
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
    Ok(x.report)
}

fn unpack_tar(x: &mut Extractor<'_>, reader: impl Read) -> Result<(), UnpackError> {
    let archive = x.archive.to_path_buf();
    let read_err = |e: std::io::Error| UnpackError::Read {
        archive: archive.clone(),
        reason: e.to_string(),
    };
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw: Vec<u8> = entry.path_bytes().into_owned();
        x.count(&raw)?;
        let ty = entry.header().entry_type();
        if matches!(
            ty,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let rel = clean_path(&raw).map_err(|r| x.refuse(&raw, r))?;
        let mode = entry.header().mode().map_err(read_err)?;
        match ty {
            tar::EntryType::Directory => x.dir(&raw, &rel, mode)?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                if ty == tar::EntryType::GNUSparse {
                    return Err(x.refuse(&raw, "sparse files are not supported"));
                }
                if rel.as_os_str().is_empty() {
                    return Err(x.refuse(&raw, "a file named like the archive root"));
                }
                let size = entry.header().entry_size().map_err(read_err)?;
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
    for i in 0..ar.len() {
        let mut f = ar.by_index(i).map_err(read_err)?;
        let raw = f.name_raw().to_vec();
        x.count(&raw)?;
        let rel = clean_path(&raw).map_err(|r| x.refuse(&raw, r))?;
        let mode = f
            .unix_mode()
            .unwrap_or(if f.is_dir() { 0o755 } else { 0o644 });
        if mode & 0o170000 == 0o120000 {
            let mut target = Vec::new();
            f.read_to_end(&mut target).map_err(|e| UnpackError::Read {
                archive: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            x.symlink(&raw, &rel, &target)?;
        } else if f.is_dir() {
            x.dir(&raw, &rel, mode)?;
        } else if mode & 0o170000 == 0 || mode & 0o170000 == 0o100000 {
            let size = f.size();
            x.file(&raw, &rel, mode, size, &mut f)?;
        } else {
            return Err(x.refuse(&raw, "device and FIFO entries are not allowed"));
        }
    }
    Ok(())
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
