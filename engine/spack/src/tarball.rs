//! What an install tarball says about itself, read as a stream (never extracted).
//!
//! `cache verify` checks that a manifest's tarball is the package its spec names: the root node
//! of the tarball's `.spack/spec.json`, and the prefix its members live under as
//! `.spack/binary_distribution`'s `hash_to_prefix` records it. The prefix is found as Spack finds
//! it when installing: the grand-parent of the shortest member ending in
//! `.spack/binary_distribution`; every member must lie below it, or be a directory above it, and
//! the prefix directory itself must be a member.
//!
//! The tar stream is walked block by block (headers parsed by the `tar` crate) so that every
//! piece kept in memory is bounded: GNU long names and pax headers at 1 MiB, the two metadata
//! members at the cache's caps, directory names at 64 MiB in all. File contents are skipped.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde_json::Value;

use crate::buildinfo::hash_to_prefix_of;
use crate::cachefs::{MAX_LARGE, MAX_SMALL};

/// Cap on a GNU long name or a pax extended header.
const MAX_EXTENSION: u64 = 1 << 20;
/// Cap on the directory names kept until the prefix is known.
const MAX_DIR_NAMES: usize = 64 << 20;

const BLOCK: u64 = 512;
const SPEC_JSON: &[u8] = b".spack/spec.json";
const BUILD_INFO: &[u8] = b".spack/binary_distribution";

/// What a tarball holds about its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TarballFacts {
    /// The prefix its members live under (absolute: `/` and the members' common directory).
    pub(crate) prefix: String,
    /// Name of the root node of `<prefix>/.spack/spec.json`.
    pub(crate) name: String,
    /// DAG hash of that node.
    pub(crate) hash: String,
    /// `hash_to_prefix` of `<prefix>/.spack/binary_distribution`.
    pub(crate) hash_to_prefix: BTreeMap<String, String>,
}

/// Reads exactly `buf.len()` bytes; `false` at a clean end of input before the first byte.
fn read_block(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads the `size` bytes of a member, keeping them only if at most `limit`.
fn read_member(r: &mut impl Read, size: u64, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut take = r.take(size);
    if size > limit {
        io::copy(&mut take, &mut io::sink())?;
        return Ok(None);
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    take.read_to_end(&mut out)?;
    if (out.len() as u64) < size {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"));
    }
    Ok(Some(out))
}

fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let got = io::copy(&mut r.take(n), &mut io::sink())?;
    if got < n {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"));
    }
    Ok(())
}

fn components(name: &[u8]) -> Vec<&[u8]> {
    name.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

fn starts_with(path: &[&[u8]], prefix: &[&[u8]]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The members of interest, gathered in one pass.
#[derive(Default)]
struct Walk {
    /// Shortest `…/.spack/binary_distribution` file: name and content (if within the cap).
    build_info: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// Shortest `…/.spack/spec.json` file: name and content (if within the cap).
    spec_json: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// Common leading components of every non-directory member.
    common: Option<Vec<Vec<u8>>>,
    /// Directory members (without trailing `/`).
    dirs: Vec<Vec<u8>>,
    dir_bytes: usize,
}

impl Walk {
    fn member(
        &mut self,
        name: Vec<u8>,
        is_dir: bool,
        is_file: bool,
        size: u64,
        r: &mut impl Read,
    ) -> Result<(), String> {
        let io = |e: io::Error| e.to_string();
        if is_dir {
            let mut name = name;
            while name.last() == Some(&b'/') {
                name.pop();
            }
            self.dir_bytes += name.len();
            if self.dir_bytes > MAX_DIR_NAMES {
                return Err(format!(
                    "more than {} MiB of directory names",
                    MAX_DIR_NAMES >> 20
                ));
            }
            self.dirs.push(name);
            return skip(r, size).map_err(io);
        }
        let comps = components(&name);
        self.common = Some(match self.common.take() {
            None => comps.iter().map(|c| c.to_vec()).collect(),
            Some(mut c) => {
                let n = c
                    .iter()
                    .zip(&comps)
                    .take_while(|(a, b)| a.as_slice() == **b)
                    .count();
                c.truncate(n);
                c
            }
        });
        let slot = if !is_file {
            None
        } else if name.ends_with(BUILD_INFO) {
            Some((&mut self.build_info, MAX_SMALL))
        } else if name.ends_with(SPEC_JSON) {
            Some((&mut self.spec_json, MAX_LARGE))
        } else {
            None
        };
        match slot {
            Some((slot, limit)) if slot.as_ref().is_none_or(|(n, _)| name.len() < n.len()) => {
                let data = read_member(r, size, limit).map_err(io)?;
                *slot = Some((name, data));
                Ok(())
            }
            _ => skip(r, size).map_err(io),
        }
    }

    fn finish(self) -> Result<TarballFacts, String> {
        let (bd_name, bd) = self
            .build_info
            .ok_or("no `.spack/binary_distribution` member: not a Spack package")?;
        let bd_comps = components(&bd_name);
        let prefix: Vec<&[u8]> = bd_comps[..bd_comps.len().saturating_sub(2)].to_vec();
        if prefix.is_empty() {
            return Err(format!("`{}` leaves no package prefix", show(&bd_name)));
        }
        let prefix_s = show(&prefix.join(&b'/'));
        let common = self.common.unwrap_or_default();
        let common: Vec<&[u8]> = common.iter().map(Vec::as_slice).collect();
        if !starts_with(&common, &prefix) {
            return Err(format!(
                "members lie outside the prefix `{prefix_s}` (their common directory is `{}`)",
                show(&common.join(&b'/'))
            ));
        }
        let mut has_prefix = false;
        for d in &self.dirs {
            let c = components(d);
            has_prefix |= c == prefix;
            if !starts_with(&c, &prefix) && !starts_with(&prefix, &c) {
                return Err(format!(
                    "directory `{}` lies outside the prefix `{prefix_s}`",
                    show(d)
                ));
            }
        }
        if !has_prefix {
            return Err(format!(
                "the prefix directory `{prefix_s}/` is not a member"
            ));
        }
        let bd = bd.ok_or("`.spack/binary_distribution` is too large")?;
        let spec_name = [prefix.clone(), components(SPEC_JSON)].concat();
        let spec = match self.spec_json {
            Some((n, data)) if components(&n) == spec_name => {
                data.ok_or("`.spack/spec.json` is too large")?
            }
            _ => return Err(format!("no `{prefix_s}/.spack/spec.json` member")),
        };
        let doc: Value = serde_json::from_slice(&spec)
            .map_err(|e| format!("`.spack/spec.json` does not parse: {e}"))?;
        let root = doc
            .pointer("/spec/nodes/0")
            .ok_or("`.spack/spec.json` has no `spec.nodes`")?;
        let field = |k: &str| {
            root.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(format!("the root node of `.spack/spec.json` has no `{k}`"))
        };
        let text = std::str::from_utf8(&bd)
            .map_err(|_| "`.spack/binary_distribution` is not UTF-8".to_string())?;
        Ok(TarballFacts {
            prefix: format!("/{prefix_s}"),
            name: field("name")?,
            hash: field("hash")?,
            hash_to_prefix: hash_to_prefix_of(text)
                .map_err(|e| format!("`.spack/binary_distribution` does not parse: {e}"))?,
        })
    }
}

/// Reads a gzip'd tar from `r` up to its end-of-archive blocks.
pub(crate) fn read_tarball(r: impl Read) -> Result<TarballFacts, String> {
    let mut gz = flate2::read::MultiGzDecoder::new(r);
    let mut walk = Walk::default();
    walk_tar(&mut gz, &mut walk).map_err(|e| format!("not a gzip'd tar: {e}"))??;
    walk.finish()
}

/// Reads an uncompressed tar (for the fuzz target).
pub(crate) fn read_plain_tar(mut r: impl Read) -> Result<TarballFacts, String> {
    let mut walk = Walk::default();
    walk_tar(&mut r, &mut walk).map_err(|e| format!("not a tar: {e}"))??;
    walk.finish()
}

/// Walks the members; the outer error is the stream's, the inner the content's.
fn walk_tar(r: &mut impl Read, walk: &mut Walk) -> io::Result<Result<(), String>> {
    let mut block = [0u8; BLOCK as usize];
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        if !read_block(r, &mut block)? || block.iter().all(|&b| b == 0) {
            return Ok(Ok(()));
        }
        let h = tar::Header::from_byte_slice(&block);
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum::<u32>()
            + 8 * 32;
        if h.cksum()? != sum {
            return Ok(Err("a tar header's checksum is wrong".into()));
        }
        let t = h.entry_type();
        let extension = t.is_gnu_longname()
            || t.is_gnu_longlink()
            || t.is_pax_local_extensions()
            || t.is_pax_global_extensions();
        let mut size = h.entry_size()?;
        if !extension && let Some(s) = pax_size.take() {
            size = s;
        }
        let padding = size.next_multiple_of(BLOCK) - size;
        if t.is_gnu_longname() || t.is_pax_local_extensions() {
            let Some(mut data) = read_member(r, size, MAX_EXTENSION)? else {
                return Ok(Err(format!(
                    "a tar extension header is larger than {} MiB",
                    MAX_EXTENSION >> 20
                )));
            };
            if t.is_gnu_longname() {
                while data.last() == Some(&0) {
                    data.pop();
                }
                long_name = Some(data);
            } else {
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext?;
                    match ext.key() {
                        Ok("path") => pax_path = Some(ext.value_bytes().to_vec()),
                        Ok("size") => {
                            pax_size = std::str::from_utf8(ext.value_bytes())
                                .ok()
                                .and_then(|v| v.parse().ok());
                        }
                        _ => {}
                    }
                }
            }
        } else if extension {
            skip(r, size)?;
        } else {
            let name = pax_path
                .take()
                .or(long_name.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            long_name = None;
            let is_file = t.is_file() || t.is_contiguous();
            if let Err(e) = walk.member(name, t.is_dir(), is_file, size, r) {
                return Ok(Err(e));
            }
        }
        skip(r, padding)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildinfo::hash_to_prefix_of;

    fn tarball(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            if name.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, name, &[][..]).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
        crate::gzip::gzip_bytes(&b.into_inner().unwrap(), 6).unwrap()
    }

    const SPEC: &[u8] =
        br#"{"spec":{"_meta":{"version":5},"nodes":[{"name":"zlib","hash":"abc"}]}}"#;
    const BD: &[u8] = b"{buildpath: /opt/spack, hash_to_prefix: {abc: /opt/spack/zlib-abc},\n  relocate_links: []}\n";

    #[test]
    fn reads_the_facts_of_a_spack_style_tarball() {
        let long = format!("opt/spack/zlib-abc/share/{}/x", "d".repeat(150));
        let t = tarball(&[
            ("opt/", b""),
            ("opt/spack/", b""),
            ("opt/spack/zlib-abc/", b""),
            (&long, b"data"),
            ("opt/spack/zlib-abc/.spack/spec.json", SPEC),
            ("opt/spack/zlib-abc/.spack/binary_distribution", BD),
        ]);
        let f = read_tarball(&t[..]).unwrap();
        assert_eq!(f.prefix, "/opt/spack/zlib-abc");
        assert_eq!((f.name.as_str(), f.hash.as_str()), ("zlib", "abc"));
        assert_eq!(f.hash_to_prefix["abc"], "/opt/spack/zlib-abc");
    }

    #[test]
    fn reads_spacks_own_metadata() {
        // The real `binary_distribution` and `.spack/spec.json` of Spack's forge-hello, in a tar
        // laid out as Spack lays it out (parent directories, then the prefix).
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spack-v1.0");
        let bd = fs_err::read(format!(
            "{fixtures}/tarballs/forge-hello.binary_distribution.yaml"
        ))
        .unwrap();
        let spec = fs_err::read(format!(
            "{fixtures}/spec/installed-prefix.forge-hello.spec.json"
        ))
        .unwrap();
        let hash = "il42sm5f3rapnx54lvrsedacuu7lfd33";
        let prefix = hash_to_prefix_of(std::str::from_utf8(&bd).unwrap()).unwrap()[hash].clone();
        let rel = prefix.trim_start_matches('/');
        let mut names: Vec<String> = Vec::new();
        let mut acc = String::new();
        for c in rel.split('/') {
            acc.push_str(c);
            acc.push('/');
            names.push(acc.clone());
        }
        let files = [
            (format!("{rel}/bin/forge-hello"), b"\x7fELF".to_vec()),
            (format!("{rel}/.spack/spec.json"), spec),
            (format!("{rel}/.spack/binary_distribution"), bd),
        ];
        let mut members: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let bin = format!("{rel}/bin/");
        let dot = format!("{rel}/.spack/");
        members.push((&bin, b""));
        members.push((&dot, b""));
        members.extend(files.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
        let f = read_tarball(&tarball(&members)[..]).unwrap();
        assert_eq!((f.name.as_str(), f.hash.as_str()), ("forge-hello", hash));
        assert_eq!(f.prefix, prefix);
        assert_eq!(f.hash_to_prefix[hash], prefix);
    }

    #[test]
    fn refuses_members_outside_the_prefix() {
        let t = tarball(&[
            ("opt/spack/zlib-abc/", b""),
            ("etc/passwd", b"x"),
            ("opt/spack/zlib-abc/.spack/spec.json", SPEC),
            ("opt/spack/zlib-abc/.spack/binary_distribution", BD),
        ]);
        let e = read_tarball(&t[..]).unwrap_err();
        assert!(e.contains("outside the prefix"), "{e}");
        let t = tarball(&[("opt/spack/zlib-abc/.spack/spec.json", SPEC)]);
        assert!(
            read_tarball(&t[..])
                .unwrap_err()
                .contains("binary_distribution")
        );
        assert!(read_tarball(&b"not gzip"[..]).is_err());
    }
}
