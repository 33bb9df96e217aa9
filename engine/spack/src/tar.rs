//! A deterministic tar writer: POSIX ustar headers with pax extended headers for long or
//! non-ASCII names, normalized metadata (uid/gid 0, no user or group names, mtime 0, modes
//! `0755`/`0644`), archive padded to 10240-byte records — the shape of Python's `tarfile` in
//! PAX format, which Spack reads. File contents are streamed.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
const RECORD: u64 = 10240;
const MAX_OCTAL_11: u64 = 0o777_7777_7777;

/// Entry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    HardLink,
    Symlink,
    Dir,
    Pax,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Self::File => b'0',
            Self::HardLink => b'1',
            Self::Symlink => b'2',
            Self::Dir => b'5',
            Self::Pax => b'x',
        }
    }
}

/// Writes a tar stream into `W`.
#[derive(Debug)]
pub(crate) struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

fn octal(field: &mut [u8], value: u64) {
    // `width - 1` digits and a NUL, as Python's `itn` writes them.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    let s = s.as_bytes();
    field[..digits].copy_from_slice(&s[s.len() - digits..]);
    field[digits] = 0;
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "<len> <key>=<value>\n" where <len> counts the whole record, itself included.
    let base = 1 + key.len() + 1 + value.len() + 1;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl<W: Write> TarWriter<W> {
    /// A writer into `out`.
    pub(crate) fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn raw_header(
        &mut self,
        name: &[u8],
        kind: Kind,
        mode: u32,
        size: u64,
        link: &[u8],
    ) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], if size > MAX_OCTAL_11 { 0 } else { size });
        octal(&mut h[136..148], 0);
        h[156] = kind.flag();
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.put(&h)
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: Kind,
        mode: u32,
        size: u64,
        link: &[u8],
    ) -> io::Result<()> {
        let mut pax = Vec::new();
        if name.len() > 100 || !name.is_ascii() {
            pax_record(&mut pax, "path", name);
        }
        if link.len() > 100 || !link.is_ascii() {
            pax_record(&mut pax, "linkpath", link);
        }
        if size > MAX_OCTAL_11 {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        if !pax.is_empty() {
            self.raw_header(b"././@PaxHeader", Kind::Pax, 0o644, pax.len() as u64, b"")?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.raw_header(name, kind, mode, size, link)
    }

    /// A directory; `name` should end in `/`.
    pub(crate) fn dir(&mut self, name: &[u8]) -> io::Result<()> {
        self.header(name, Kind::Dir, 0o755, 0, b"")
    }

    /// A symbolic link.
    pub(crate) fn symlink(&mut self, name: &[u8], target: &[u8]) -> io::Result<()> {
        self.header(name, Kind::Symlink, 0o755, 0, target)
    }

    /// A hard link to an earlier member.
    pub(crate) fn hardlink(&mut self, name: &[u8], target: &[u8]) -> io::Result<()> {
        self.header(name, Kind::HardLink, 0o644, 0, target)
    }

    /// A regular file from bytes in memory.
    pub(crate) fn file_bytes(
        &mut self,
        name: &[u8],
        executable: bool,
        data: &[u8],
    ) -> io::Result<()> {
        self.header(
            name,
            Kind::File,
            if executable { 0o755 } else { 0o644 },
            data.len() as u64,
            b"",
        )?;
        self.put(data)?;
        self.pad(data.len() as u64)
    }

    /// A regular file of `size` bytes streamed from `reader`; `on_chunk` sees every chunk.
    /// Fails if the reader yields more or fewer bytes than `size` (a file that changed).
    pub(crate) fn file_stream(
        &mut self,
        name: &[u8],
        executable: bool,
        size: u64,
        reader: &mut impl Read,
        buf: &mut [u8],
        mut on_chunk: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        self.header(
            name,
            Kind::File,
            if executable { 0o755 } else { 0o644 },
            size,
            b"",
        )?;
        let mut left = size;
        loop {
            let n = match reader.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            if n as u64 > left {
                return Err(io::Error::other("file grew while it was archived"));
            }
            on_chunk(&buf[..n]);
            self.put(&buf[..n])?;
            left -= n as u64;
        }
        if left != 0 {
            return Err(io::Error::other("file shrank while it was archived"));
        }
        self.pad(size)
    }

    /// Ends the archive (two zero blocks, padding to a 10240-byte record) and returns the inner
    /// writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        let rem = self.written % RECORD;
        if rem != 0 {
            let pad = vec![0u8; (RECORD - rem) as usize];
            self.put(&pad)?;
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_crate_reads_what_we_write() {
        let long = "d/".repeat(80) + "file-with-a-long-name";
        let mut w = TarWriter::new(Vec::new());
        w.dir(b"d/").unwrap();
        w.file_bytes(b"d/a", true, b"hello").unwrap();
        let mut src: &[u8] = &[7u8; 1000];
        let mut buf = [0u8; 64];
        let mut seen = 0;
        w.file_stream(long.as_bytes(), false, 1000, &mut src, &mut buf, |c| {
            seen += c.len()
        })
        .unwrap();
        w.symlink(b"d/l", ("/x/".repeat(60)).as_bytes()).unwrap();
        w.hardlink(b"d/h", b"d/a").unwrap();
        let data = w.finish().unwrap();
        assert_eq!(seen, 1000);
        assert_eq!(data.len() % 10240, 0);
        let mut ar = tar::Archive::new(&data[..]);
        let entries: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0].0, "d/");
        assert_eq!(entries[1].2, 0o755);
        assert_eq!(entries[2].0, long);
        assert_eq!(entries[2].2, 0o644);
        assert_eq!(entries[2].6, 1000);
        assert_eq!(entries[3].5.as_deref(), Some("/x/".repeat(60).as_str()));
        assert_eq!(entries[4].1, tar::EntryType::Link);
        assert!(entries.iter().all(|e| e.3 == 0 && e.4 == 0));
    }

    #[test]
    fn refuses_a_file_that_changes_size() {
        let mut w = TarWriter::new(Vec::new());
        let mut src: &[u8] = b"abc";
        let mut buf = [0u8; 8];
        assert!(
            w.file_stream(b"f", false, 5, &mut src, &mut buf, |_| ())
                .is_err()
        );
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'a'; 95]);
        let text = String::from_utf8(v.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), v.len());
    }
}
