//! The apply side: Spack's install-time relocation of an extracted prefix.

use std::path::{Path, PathBuf};

use crate::buildinfo::BuildInfo;
use forge_core::elf;

/// Why [`relocate_prefix`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RelocateError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An ELF string would have to grow (Spack calls `patchelf` then; forge does not).
    #[error("`{}`: `{old}` cannot become the longer `{new}` in place", file.display())]
    ElfStringGrows {
        /// The file.
        file: PathBuf,
        /// The old string.
        old: String,
        /// The new string.
        new: String,
    },
    /// Spack's `CannotGrowString`.
    #[error("`{}`: cannot replace `{old}` with the longer `{new}`", file.display())]
    CannotGrowString {
        /// The file.
        file: PathBuf,
        /// The old prefix.
        old: String,
        /// The new prefix.
        new: String,
    },
    /// Spack's `CannotShrinkCString`.
    #[error("`{}`: cannot replace `{old}` with `{new}` in a C string ending right after it", file.display())]
    CannotShrinkCString {
        /// The file.
        file: PathBuf,
        /// The old prefix.
        old: String,
        /// The new prefix.
        new: String,
    },
    /// A listed file is not an ELF file.
    #[error("`{}` is listed as a binary but is not ELF", file.display())]
    NotElf {
        /// The file.
        file: PathBuf,
    },
}

/// Spack's ordered old → new prefix map for installing a package: `sbang`, then each prefix of
/// `hash_to_prefix` whose hash is in `new_prefixes`, then the build path to `new_root`. Identity
/// mappings are dropped.
pub fn relocation_map(
    info: &BuildInfo,
    new_prefixes: &[(String, String)],
    new_root: &str,
    new_sbang: &str,
) -> Vec<(String, String)> {
    let mut map = Vec::new();
    if let Some(s) = &info.sbang_install_path {
        map.push((s.clone(), new_sbang.to_string()));
    }
    for (hash, new) in new_prefixes {
        if let Some(old) = info.hash_to_prefix.get(hash) {
            map.push((old.clone(), new.clone()));
        }
    }
    map.push((info.buildpath.clone(), new_root.to_string()));
    map.retain(|(a, b)| a != b);
    map
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Replaces the old prefix at the start of `s` (the first that matches, in map order).
fn replace_start(s: &[u8], map: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    map.iter()
        .find(|(old, _)| s.starts_with(old))
        .map(|(old, new)| {
            let mut v = new.clone();
            v.extend_from_slice(&s[old.len()..]);
            v
        })
}

fn relocate_elf(
    file: &Path,
    data: &mut [u8],
    map: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), RelocateError> {
    let strings = elf::relocatable_strings(data).ok_or_else(|| RelocateError::NotElf {
        file: file.to_path_buf(),
    })?;
    let mut edits = Vec::new();
    for rp in &strings.rpaths {
        let parts: Vec<Vec<u8>> = rp
            .value
            .split(|b| *b == b':')
            .map(|e| replace_start(e, map).unwrap_or_else(|| e.to_vec()))
            .collect();
        let new = parts.join(&b':');
        if new != rp.value {
            edits.push((rp.clone(), new));
        }
    }
    if let Some(interp) = &strings.interp
        && let Some(new) = replace_start(&interp.value, map)
    {
        edits.push((interp.clone(), new));
    }
    for (old, new) in edits {
        if new.len() > old.value.len() {
            return Err(RelocateError::ElfStringGrows {
                file: file.to_path_buf(),
                old: lossy(&old.value),
                new: lossy(&new),
            });
        }
        let region = &mut data[old.offset..old.offset + old.value.len()];
        region.fill(0);
        region[..new.len()].copy_from_slice(&new);
    }
    Ok(())
}

/// Spack's binary-string replacement (`BinaryFilePrefixReplacer`, suffix safety size 7).
fn relocate_binary_strings(
    file: &Path,
    data: &mut [u8],
    map: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), RelocateError> {
    const SAFETY: usize = 7;
    let original = data.to_vec();
    let mut i = 0;
    while i < original.len() {
        let Some((old, new)) = map.iter().find(|(old, _)| original[i..].starts_with(old)) else {
            i += 1;
            continue;
        };
        let end = i + old.len();
        // A NUL within the next SAFETY + 1 bytes, with no NUL before it.
        let tail = &original[end..original.len().min(end + SAFETY + 1)];
        let nul = memchr::memchr(0, tail);
        let match_end = nul.map_or(end, |k| end + k + 1);
        if new.len() > old.len() {
            return Err(RelocateError::CannotGrowString {
                file: file.to_path_buf(),
                old: lossy(old),
                new: lossy(new),
            });
        }
        let shorter = old.len() - new.len();
        let replacement = match nul {
            Some(suffix_len)
                if suffix_len < SAFETY
                    && old[old.len() - (SAFETY - suffix_len)..]
                        != new[new.len().saturating_sub(SAFETY - suffix_len)..] =>
            {
                if shorter > SAFETY {
                    let mut r = new.clone();
                    r.extend_from_slice(&original[end..match_end]);
                    r
                } else {
                    return Err(RelocateError::CannotShrinkCString {
                        file: file.to_path_buf(),
                        old: lossy(old),
                        new: lossy(new),
                    });
                }
            }
            _ => {
                let mut r = vec![b'/'; shorter];
                r.extend_from_slice(new);
                r
            }
        };
        data[i..i + replacement.len()].copy_from_slice(&replacement);
        i = match_end.max(i + 1);
    }
    Ok(())
}

/// Spack's text replacement: an old prefix is replaced where it starts a path, i.e. unless the
/// run of word characters (`[A-Za-z0-9_-]`) right before it is preceded by `/`.
fn relocate_text(data: &[u8], map: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let hit = map.iter().find(|(old, _)| data[i..].starts_with(old));
        let allowed = || {
            let mut j = i;
            while j > 0 && is_word(data[j - 1]) {
                j -= 1;
            }
            j == 0 || data[j - 1] != b'/'
        };
        match hit {
            Some((old, new)) if allowed() => {
                out.extend_from_slice(new);
                i += old.len();
                // The rest of the path token is consumed with the match.
                while i < data.len() && (is_word(data[i]) || data[i] == b'/') {
                    out.push(data[i]);
                    i += 1;
                }
            }
            _ => {
                out.push(data[i]);
                i += 1;
            }
        }
    }
    out
}

/// Relocates an extracted prefix as Spack v1.0 does after extracting a tarball: ELF run paths
/// and interpreters, links, text files, then binary strings, with `map` from
/// [`relocation_map`].
pub fn relocate_prefix(
    prefix: &Path,
    info: &BuildInfo,
    map: &[(String, String)],
) -> Result<(), RelocateError> {
    if map.is_empty() {
        return Ok(());
    }
    let map: Vec<(Vec<u8>, Vec<u8>)> = map
        .iter()
        .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
        .collect();
    for rel in &info.relocate_binaries {
        let path = prefix.join(rel);
        let mut data = fs_err::read(&path)?;
        relocate_elf(&path, &mut data, &map)?;
        fs_err::write(&path, &data)?;
    }
    for rel in &info.relocate_links {
        let path = prefix.join(rel);
        let target = fs_err::read_link(&path)?;
        if let Some(new) = replace_start(target.as_os_str().as_encoded_bytes(), &map) {
            fs_err::remove_file(&path)?;
            let new = String::from_utf8_lossy(&new).into_owned();
            fs_err::os::unix::fs::symlink(new, &path)?;
        }
    }
    for rel in &info.relocate_textfiles {
        let path = prefix.join(rel);
        let data = fs_err::read(&path)?;
        let new = relocate_text(&data, &map);
        if new != data {
            fs_err::write(&path, new)?;
        }
    }
    for rel in &info.relocate_binaries {
        let path = prefix.join(rel);
        let mut data = fs_err::read(&path)?;
        relocate_binary_strings(&path, &mut data, &map)?;
        fs_err::write(&path, &data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memchr::memmem;

    fn m(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
            .collect()
    }
    #[test]
    fn binary_strings_are_padded_with_slashes() {
        let map = m(&[("/store/pppppppppppp/abc-x-1.0", "/opt/x-1.0-zz")]);
        let mut data = b"A/store/pppppppppppp/abc-x-1.0/lib/libx.so\0B".to_vec();
        let len = data.len();
        relocate_binary_strings(Path::new("f"), &mut data, &map).unwrap();
        let want = format!("A{}/opt/x-1.0-zz/lib/libx.so\0B", "/".repeat(29 - 13));
        assert_eq!(String::from_utf8(data).unwrap(), want);
        assert_eq!(want.len(), len);
    }

    #[test]
    fn c_string_tail_rule() {
        // The prefix ends a C string and its tail differs from the new one: the new prefix is
        // written followed by the old suffix and NUL (Spack's `bytes_shorter > 7` case).
        let map = m(&[("/store/pppppppppppp/abc-x-1.0", "/opt/x-1.0-zz")]);
        let mut data = b"/store/pppppppppppp/abc-x-1.0/bin\0rest".to_vec();
        relocate_binary_strings(Path::new("f"), &mut data, &map).unwrap();
        assert_eq!(&data[..18], b"/opt/x-1.0-zz/bin\0");
        assert_eq!(data.len(), 38);
        // Shorter by 7 or less: Spack refuses.
        let map = m(&[("/store/abc-x-1.0", "/opt/x-1.0-zz")]);
        let mut data = b"/store/abc-x-1.0\0".to_vec();
        let e = relocate_binary_strings(Path::new("f"), &mut data, &map).unwrap_err();
        assert!(
            matches!(e, RelocateError::CannotShrinkCString { .. }),
            "{e}"
        );
        // Longer: never.
        let map = m(&[("/s/a", "/opt/a-much-longer")]);
        let mut data = b"x/s/a/y".to_vec();
        let e = relocate_binary_strings(Path::new("f"), &mut data, &map).unwrap_err();
        assert!(matches!(e, RelocateError::CannotGrowString { .. }), "{e}");
    }

    #[test]
    fn text_relocation_respects_path_starts() {
        let map = m(&[("/s/abc-x", "/opt/x")]);
        let out = relocate_text(b"p=/s/abc-x/lib -L/s/abc-x/lib a//s/abc-x b/s/abc-x", &map);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            // Spack's regex lets a run of word characters precede the prefix (`-L`, `b`), but
            // not a `/`.
            "p=/opt/x/lib -L/opt/x/lib a//s/abc-x b/opt/x"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Binary relocation never changes a file's length, and every occurrence of the old
        /// prefix is gone afterwards (the new prefix being much shorter).
        #[test]
        fn binary_relocation_keeps_lengths(
            filler in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            at in proptest::collection::vec(0usize..400, 0..6),
            tails in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
        ) {
            let old = "/store/__forge_padding________________/abc-x-1.0";
            let map = m(&[(old, "/c/x-1.0-hash")]);
            let mut data = filler.clone();
            for (i, a) in at.iter().enumerate() {
                let a = (*a).min(data.len());
                let mut ins = old.as_bytes().to_vec();
                ins.push(*tails.get(i).unwrap_or(&0));
                data.splice(a..a, ins);
            }
            let len = data.len();
            relocate_binary_strings(Path::new("f"), &mut data, &map).unwrap();
            proptest::prop_assert_eq!(data.len(), len);
            proptest::prop_assert!(memmem::find(&data, old.as_bytes()).is_none());
        }
    }
}
