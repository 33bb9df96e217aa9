//! Finding runtime references: which other store paths an output mentions.
//!
//! Like Nix, forge looks for the 32-character hash parts of candidate paths (the build's inputs)
//! anywhere in the output's bytes and symlink targets. A reference that is found is recorded, so
//! the garbage collector keeps it and an export ships it.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::{HASH_LEN, Result, StoreError};

use forge_core::nixbase32::is_char as is_b32;

/// Every 32-byte window of a base32 run that is a candidate hash.
fn scan_bytes(
    data: &[u8],
    candidates: &HashMap<[u8; HASH_LEN], String>,
    found: &mut BTreeSet<String>,
) {
    let mut i = 0;
    let n = data.len();
    while i < n {
        if !is_b32(data[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && is_b32(data[i]) {
            i += 1;
        }
        if i - start >= HASH_LEN {
            for w in data[start..i].windows(HASH_LEN) {
                let key: [u8; HASH_LEN] = w.try_into().expect("window size");
                if let Some(name) = candidates.get(&key) {
                    found.insert(name.clone());
                }
            }
        }
    }
}

fn walk(root: &Path) -> Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs_err::symlink_metadata(&p).map_err(|e| StoreError::Io {
            path: p.clone(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            for e in fs_err::read_dir(&p).map_err(|e| StoreError::Io {
                path: p.clone(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            })? {
                let e = e.map_err(|e| StoreError::Io {
                    path: p.clone(),
                    source: e,
                })?;
                stack.push(e.path());
            }
        } else if ft.is_symlink() {
            out.push((p, true));
        } else if ft.is_file() {
            out.push((p, false));
        }
    }
    Ok(out)
}

/// Scans the tree at `root` for the hash parts of `candidates` (store names) and returns the
/// names found.
pub fn scan_references(root: &Path, candidates: &[String]) -> Result<BTreeSet<String>> {
    Ok(scan(root, candidates, None)?.references)
}

/// What one pass over an output finds.
pub(crate) struct Scan {
    /// Candidate store names whose hash part occurs.
    pub(crate) references: BTreeSet<String>,
    /// Files (relative to the root, sorted) whose bytes or symlink target contain the needle.
    pub(crate) containing: Vec<PathBuf>,
}

/// One parallel pass over the tree at `root`: the candidates' hash parts, and which files
/// contain `needle`.
pub(crate) fn scan(root: &Path, candidates: &[String], needle: Option<&[u8]>) -> Result<Scan> {
    let table: HashMap<[u8; HASH_LEN], String> = candidates
        .iter()
        .filter_map(|n| {
            let h: [u8; HASH_LEN] = n.as_bytes().get(..HASH_LEN)?.try_into().ok()?;
            Some((h, n.clone()))
        })
        .collect();
    if table.is_empty() && needle.is_none() {
        return Ok(Scan {
            references: BTreeSet::new(),
            containing: Vec::new(),
        });
    }
    let finder = needle.map(memchr::memmem::Finder::new);
    let entries = walk(root)?;
    let found: Vec<(BTreeSet<String>, bool)> = entries
        .par_iter()
        .map(|(p, is_link)| -> Result<(BTreeSet<String>, bool)> {
            let mut found = BTreeSet::new();
            let data = if *is_link {
                fs_err::read_link(p)
                    .map(|t| t.into_os_string().into_vec())
                    .map_err(|e| StoreError::Io {
                        path: p.clone(),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    })?
            } else {
                fs_err::read(p).map_err(|e| StoreError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                })?
            };
            scan_bytes(&data, &table, &mut found);
            let contains = finder.as_ref().is_some_and(|f| f.find(&data).is_some());
            Ok((found, contains))
        })
        .collect::<Result<_>>()?;
    let mut references = BTreeSet::new();
    let mut containing = Vec::new();
    for ((set, contains), (p, _)) in found.into_iter().zip(&entries) {
        references.extend(set);
        if contains {
            containing.push(p.strip_prefix(root).unwrap_or(p).to_path_buf());
        }
    }
    containing.sort();
    Ok(Scan {
        references,
        containing,
    })
}

/// The first file under `root` whose bytes (or symlink target) contain `needle`, with the byte
/// offset and some context around it — the evidence `forge why-depends` prints.
pub fn find_reference(root: &Path, needle: &str) -> Result<Option<(PathBuf, usize, String)>> {
    let mut entries = walk(root)?;
    entries.sort();
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    for (p, is_link) in entries {
        let data = if is_link {
            fs_err::read_link(&p)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .map_err(|e| StoreError::Io {
                    path: p.clone(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                })?
        } else {
            fs_err::read(&p).map_err(|e| StoreError::Io {
                path: p.clone(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            })?
        };
        if let Some(off) = finder.find(&data) {
            let start = off.saturating_sub(24);
            let end = (off + needle.len() + 40).min(data.len());
            let context: String = data[start..end]
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            return Ok(Some((p, off, context)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hashes_in_files_and_links_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let a = "0123456789abcdfghijklmnpqrsvwxyz-a-1".to_owned();
        let b = "zyxwvsrqpnmlkjihgfdcba9876543210-b-2".to_owned();
        let c = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-c-3".to_owned();
        fs_err::create_dir_all(d.path().join("lib")).unwrap();
        fs_err::write(
            d.path().join("lib/x.so"),
            format!("\0\0/store/{a}/lib\0junk").as_bytes(),
        )
        .unwrap();
        fs_err::os::unix::fs::symlink(format!("/store/{b}/bin/tool"), d.path().join("tool"))
            .unwrap();
        // A longer base32 run that contains c's hash is still a reference (Nix does the same).
        fs_err::write(d.path().join("y"), format!("xx{}yy", &c[..32])).unwrap();
        let found = scan_references(
            d.path(),
            &[a.clone(), b.clone(), c.clone(), "not-a-store-name".into()],
        )
        .unwrap();
        assert_eq!(found, BTreeSet::from([a, b, c]));
        let none = scan_references(
            d.path(),
            &["gggggggggggggggggggggggggggggggg-g-1".to_owned()],
        )
        .unwrap();
        assert!(none.is_empty());
    }
}
