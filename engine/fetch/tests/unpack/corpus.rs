//! Archive bytes written by hand, hostile ones included: the tar crate's `Builder` refuses to
//! write `..` or absolute names through its path setters, so names and link targets go into the
//! raw header fields (with GNU long-name entries when they do not fit).

use std::io::{Cursor, Write};

use tar::{EntryType, Header};

/// One tar entry, exactly as it will be written.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    File {
        name: Vec<u8>,
        mode: u32,
        data: Vec<u8>,
    },
    Dir {
        name: Vec<u8>,
        mode: u32,
    },
    Symlink {
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Hardlink {
        name: Vec<u8>,
        target: Vec<u8>,
    },
    /// Any other type (device, FIFO), no data.
    Special {
        name: Vec<u8>,
        kind: EntryType,
    },
    /// A header claiming `size` bytes, followed by only `data`.
    Lying {
        name: Vec<u8>,
        size: u64,
        data: Vec<u8>,
    },
    /// A pax extended header for the next entry.
    Pax {
        records: Vec<(String, String)>,
    },
    /// A GNU long-name entry whose header claims `size` bytes, followed by `data`.
    LongNameRaw {
        size: u64,
        data: Vec<u8>,
    },
}

pub(crate) fn file(name: &str, mode: u32, data: &[u8]) -> Entry {
    Entry::File {
        name: name.as_bytes().to_vec(),
        mode,
        data: data.to_vec(),
    }
}

pub(crate) fn dir(name: &str, mode: u32) -> Entry {
    Entry::Dir {
        name: name.as_bytes().to_vec(),
        mode,
    }
}

pub(crate) fn symlink(name: &str, target: &str) -> Entry {
    Entry::Symlink {
        name: name.as_bytes().to_vec(),
        target: target.as_bytes().to_vec(),
    }
}

pub(crate) fn hardlink(name: &str, target: &str) -> Entry {
    Entry::Hardlink {
        name: name.as_bytes().to_vec(),
        target: target.as_bytes().to_vec(),
    }
}

pub(crate) fn special(name: &str, kind: EntryType) -> Entry {
    Entry::Special {
        name: name.as_bytes().to_vec(),
        kind,
    }
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(1000);
    h.set_gid(1000);
    h
}

fn put_long(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, bytes: &[u8]) {
    let mut data = bytes.to_vec();
    data.push(0);
    let mut h = header(kind, 0o644, data.len() as u64);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    b.append(&h, data.as_slice()).unwrap();
}

/// Writes `name` (and `link`) into the header's raw fields, after long-name entries if needed.
fn append(
    b: &mut tar::Builder<Vec<u8>>,
    mut h: Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: &[u8],
) {
    if name.len() > 100 {
        put_long(b, EntryType::GNULongName, name);
    }
    if let Some(l) = link
        && l.len() > 100
    {
        put_long(b, EntryType::GNULongLink, l);
    }
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    if let Some(l) = link {
        let n = l.len().min(100);
        h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// A pax record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// A complete tar archive (with its end-of-archive blocks).
pub(crate) fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            Entry::File { name, mode, data } => {
                let h = header(EntryType::Regular, *mode, data.len() as u64);
                append(&mut b, h, name, None, data);
            }
            Entry::Dir { name, mode } => {
                append(
                    &mut b,
                    header(EntryType::Directory, *mode, 0),
                    name,
                    None,
                    &[],
                );
            }
            Entry::Symlink { name, target } => {
                let h = header(EntryType::Symlink, 0o777, 0);
                append(&mut b, h, name, Some(target), &[]);
            }
            Entry::Hardlink { name, target } => {
                let h = header(EntryType::Link, 0o644, 0);
                append(&mut b, h, name, Some(target), &[]);
            }
            Entry::Special { name, kind } => {
                append(&mut b, header(*kind, 0o644, 0), name, None, &[]);
            }
            Entry::Lying { name, size, data } => {
                // `append` pads the data it is given; the header keeps its lie.
                let mut h = header(EntryType::Regular, 0o644, 0);
                let n = name.len().min(100);
                h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
                h.set_size(*size);
                h.set_cksum();
                let mut hbytes = h.as_bytes().to_vec();
                hbytes.extend_from_slice(data);
                b.get_mut().extend_from_slice(&hbytes);
            }
            Entry::Pax { records } => {
                let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
                let h = header(EntryType::XHeader, 0o644, data.len() as u64);
                append(&mut b, h, b"./PaxHeaders/x", None, &data);
            }
            Entry::LongNameRaw { size, data } => {
                let mut h = header(EntryType::GNULongName, 0o644, 0);
                h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                h.set_size(*size);
                h.set_cksum();
                b.get_mut().extend_from_slice(h.as_bytes());
                b.get_mut().extend_from_slice(data);
            }
        }
    }
    b.into_inner().unwrap()
}

/// The tar formats forge unpacks, with the file name each is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tarball {
    Tar,
    Gz,
    Bz2,
    Xz,
    Zst,
}

pub(crate) const TARBALLS: [Tarball; 5] = [
    Tarball::Tar,
    Tarball::Gz,
    Tarball::Bz2,
    Tarball::Xz,
    Tarball::Zst,
];

impl Tarball {
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Tarball::Tar => "src.tar",
            Tarball::Gz => "src.tar.gz",
            Tarball::Bz2 => "src.tar.bz2",
            Tarball::Xz => "src.tar.xz",
            Tarball::Zst => "src.tar.zst",
        }
    }

    pub(crate) fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Tarball::Tar => tar.to_vec(),
            Tarball::Gz => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(tar).unwrap();
                e.finish().unwrap()
            }
            Tarball::Bz2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(tar).unwrap();
                e.finish().unwrap()
            }
            Tarball::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(tar).unwrap();
                e.finish().unwrap()
            }
            Tarball::Zst => zstd::encode_all(tar, 1).unwrap(),
        }
    }
}

/// Bytes that do not compress away, so a cut archive is cut in its data.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One zip entry.
#[derive(Debug, Clone)]
pub(crate) enum ZipEntry {
    File {
        name: String,
        mode: u32,
        data: Vec<u8>,
    },
    Dir {
        name: String,
    },
    Symlink {
        name: String,
        target: String,
    },
}

pub(crate) fn zfile(name: &str, mode: u32, data: &[u8]) -> ZipEntry {
    ZipEntry::File {
        name: name.into(),
        mode,
        data: data.to_vec(),
    }
}

pub(crate) fn zip(entries: &[ZipEntry]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for e in entries {
        match e {
            ZipEntry::File { name, mode, data } => {
                w.start_file(name.as_str(), opts.unix_permissions(*mode))
                    .unwrap();
                w.write_all(data).unwrap();
            }
            ZipEntry::Dir { name } => w.add_directory(name.as_str(), opts).unwrap(),
            ZipEntry::Symlink { name, target } => {
                w.add_symlink(name.as_str(), target.as_str(), opts).unwrap()
            }
        }
    }
    w.finish().unwrap().into_inner()
}

/// The central-directory record of `name`: its offset in `zip`.
fn central_record(zip: &[u8], name: &str) -> usize {
    let mut i = 0;
    while let Some(off) = zip[i..].windows(4).position(|w| w == b"PK\x01\x02") {
        let at = i + off;
        let name_len = u16::from_le_bytes([zip[at + 28], zip[at + 29]]) as usize;
        if &zip[at + 46..at + 46 + name_len] == name.as_bytes() {
            return at;
        }
        i = at + 4;
    }
    panic!("no central directory record for `{name}`")
}

/// Sets the full unix mode (type and special bits included) the central directory records for
/// `name`: the zip crate's writer masks modes to 0o777.
pub(crate) fn zip_set_mode(zip: &mut [u8], name: &str, mode: u32) {
    let at = central_record(zip, name);
    zip[at + 5] = 3; // made by: unix
    let old = u32::from_le_bytes([zip[at + 38], zip[at + 39], zip[at + 40], zip[at + 41]]);
    let attrs = (mode << 16) | (old & 0xffff);
    zip[at + 38..at + 42].copy_from_slice(&attrs.to_le_bytes());
}

/// Sets the uncompressed size the central directory records for `name`.
pub(crate) fn zip_set_size(zip: &mut [u8], name: &str, size: u32) {
    let at = central_record(zip, name);
    zip[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
}
