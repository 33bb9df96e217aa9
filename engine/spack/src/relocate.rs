//! Relocation: finding the store paths a prefix embeds (before export) and rewriting them the
//! way Spack does (after extraction).
//!
//! **Scan side.** While a prefix is streamed into its tarball, every file is searched for the
//! store root (and for the store's own directory when the root is a padded directory inside
//! it). Each hit is attributed to a known prefix (a node of the graph), the store root itself,
//! the `sbang` path, or an unknown store path (anything else below either); each file is
//! classified as ELF, text or other binary the way Spack classifies it. The export then lists
//! every file that embeds a path in `binary_distribution` and refuses (with a [`Violation`])
//! what Spack could not fix on the consumer's side.
//!
//! **Apply side.** [`relocate_prefix`] performs Spack's install-time relocation on an extracted
//! prefix: ELF run paths and interpreter rewritten in place, symbolic links, text files, then
//! fixed-length binary string replacement with `/` padding and the C-string tail rule. forge
//! uses it to test its exports end to end (and a substituter can use it to install Spack-format
//! tarballs).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use memchr::memmem;

use crate::buildinfo::BuildInfo;
use crate::graph::NodeId;
use forge_core::elf;

/// The longest consumer install-tree root (`config:install_tree:root`, after padding) an export
/// is checked to support by default.
///
/// Spack installs a package at `<root>/<platform>-<target>/<name>-<version>-<hash>`; every
/// binary that embeds a build prefix must find room for that consumer prefix, plus the 8 bytes
/// Spack's C-string tail rule needs when the two prefixes end differently. Roots longer than
/// 117 characters fail in Spack anyway (`sbang` path limit of 127).
pub const DEFAULT_MAX_CONSUMER_ROOT: usize = 96;

/// What Spack's binary-string replacement needs beyond the new prefix when a C string ends
/// within 7 bytes after the prefix and the prefixes' tails differ (`bytes_shorter > 7`).
pub const CSTRING_TAIL_MARGIN: usize = 8;

/// Characters that continue a path component (so a store root followed by one of them is not the
/// store root).
fn is_component_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+')
}

/// What a hit of the store root refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ref {
    /// A known prefix.
    Node(NodeId),
    /// The store root itself.
    Root,
    /// The store's `sbang` (`<store root>/bin/sbang`, possibly outside the padded directory).
    Sbang,
    /// A store path no node has.
    Unknown(String),
}

/// Attributes hits of the store root to prefixes.
#[derive(Debug)]
pub(crate) struct RefMatcher {
    root: Vec<u8>,
    /// The store's own directory, when `root` is a padded directory inside it.
    outer: Option<Vec<u8>>,
    sbang: Vec<u8>,
    by_component: HashMap<Vec<u8>, Vec<(Vec<u8>, NodeId)>>,
    lookahead: usize,
}

impl RefMatcher {
    /// A matcher for `root`, the prefixes below it, and the `sbang` path (wherever it is).
    /// `outer`, the store's own directory holding `root`, makes every other path below it an
    /// unknown store path.
    pub(crate) fn new(
        root: &str,
        outer: Option<&str>,
        sbang: &str,
        prefixes: &[(String, NodeId)],
    ) -> Self {
        let root_b = root.as_bytes().to_vec();
        let outer = outer
            .map(|o| o.trim_end_matches('/').as_bytes().to_vec())
            .filter(|o| {
                root_b.len() > o.len() + 1 && root_b.starts_with(o) && root_b[o.len()] == b'/'
            });
        let mut by_component: HashMap<Vec<u8>, Vec<(Vec<u8>, NodeId)>> = HashMap::new();
        let mut longest = 0;
        for (p, id) in prefixes {
            let rest = &p.as_bytes()[root_b.len()..];
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            let comp = rest
                .split(|b| *b == b'/')
                .next()
                .unwrap_or_default()
                .to_vec();
            longest = longest.max(p.len());
            by_component
                .entry(comp)
                .or_default()
                .push((p.as_bytes().to_vec(), *id));
        }
        // Deeper prefixes first, so the most specific one wins.
        for v in by_component.values_mut() {
            v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        let sbang = sbang.as_bytes().to_vec();
        let lookahead = (root_b.len() + 258).max(longest + 1).max(sbang.len() + 1);
        Self {
            root: root_b,
            outer,
            sbang,
            by_component,
            lookahead,
        }
    }

    /// Classifies a path that starts with the store root (a symbolic link's target).
    pub(crate) fn classify_at_start(&self, s: &[u8]) -> Option<Ref> {
        if s.starts_with(&self.root) {
            self.classify(s, 0)
        } else if self.sbang_outside() && s.starts_with(&self.sbang) {
            self.classify_sbang(s, 0)
        } else if self.outer.as_ref().is_some_and(|o| s.starts_with(o)) {
            self.classify_outer(s, 0)
        } else {
            None
        }
    }

    /// Whether the `sbang` path lies outside the store root (and needs its own search).
    fn sbang_outside(&self) -> bool {
        !self.sbang.starts_with(&self.root)
    }

    /// A hit of the `sbang` path at `hay[at..]` (searched separately when it is outside the
    /// store root).
    fn classify_sbang(&self, hay: &[u8], at: usize) -> Option<Ref> {
        let end = at + self.sbang.len();
        hay.get(end)
            .is_none_or(|b| !is_component_char(*b) && *b != b'/')
            .then_some(Ref::Sbang)
    }

    /// A hit of the store's own directory at `hay[at..]`: `None` when it is the start of the
    /// store root or of `sbang` (found by their own searches) or of a longer name; otherwise the
    /// path below it, which Spack would leave as it is.
    fn classify_outer(&self, hay: &[u8], at: usize) -> Option<Ref> {
        let outer = self.outer.as_deref()?;
        let rest = &hay[at..];
        if rest.starts_with(&self.root) && self.classify(hay, at).is_some()
            || rest.starts_with(&self.sbang) && self.classify_sbang(hay, at).is_some()
        {
            return None;
        }
        let after = at + outer.len();
        if hay.get(after).is_some_and(|b| is_component_char(*b)) {
            return None;
        }
        let len = hay[after..]
            .iter()
            .take(self.lookahead - outer.len())
            .take_while(|b| is_component_char(**b) || **b == b'/')
            .count();
        Some(Ref::Unknown(
            String::from_utf8_lossy(&hay[at..after + len])
                .trim_end_matches('/')
                .to_owned(),
        ))
    }

    /// Classifies a hit of the root at `hay[at..]`; `None` when the root is only the start of a
    /// longer name.
    fn classify(&self, hay: &[u8], at: usize) -> Option<Ref> {
        let after = at + self.root.len();
        let bounded = |end: usize| hay.get(end).is_none_or(|b| !is_component_char(*b));
        match hay.get(after) {
            None => return Some(Ref::Root),
            Some(b'/') => {}
            Some(b) if is_component_char(*b) => return None,
            Some(_) => return Some(Ref::Root),
        }
        let comp_start = after + 1;
        let comp_len = hay[comp_start..]
            .iter()
            .take_while(|b| is_component_char(**b))
            .count();
        let comp = &hay[comp_start..comp_start + comp_len];
        if let Some(cands) = self.by_component.get(comp) {
            for (p, id) in cands {
                if hay[at..].starts_with(p) && bounded(at + p.len()) {
                    return Some(Ref::Node(*id));
                }
            }
        }
        if hay[at..].starts_with(&self.sbang) && bounded(at + self.sbang.len()) {
            return Some(Ref::Sbang);
        }
        if comp.is_empty() {
            return Some(Ref::Root);
        }
        Some(Ref::Unknown(
            String::from_utf8_lossy(&hay[at..comp_start + comp_len]).into_owned(),
        ))
    }
}

/// How Spack would treat a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileClass {
    /// Starts with the ELF magic.
    Elf,
    /// Decodes as UTF-8, or as ISO-8859-1 without NUL and C1 control bytes.
    Text,
    /// Anything else.
    Binary,
}

/// What a scan found in one file.
#[derive(Debug)]
pub(crate) struct FileScan {
    pub(crate) class: FileClass,
    pub(crate) refs: BTreeSet<Ref>,
    /// The first line is a `#!` line longer than 127 bytes.
    pub(crate) long_shebang: bool,
}

/// Scans one file fed in chunks.
pub(crate) struct FileScanner<'m> {
    m: &'m RefMatcher,
    finder: memmem::Finder<'m>,
    sbang_finder: Option<memmem::Finder<'m>>,
    outer_finder: Option<memmem::Finder<'m>>,
    window: Vec<u8>,
    refs: BTreeSet<Ref>,
    head: Vec<u8>,
    utf8_ok: bool,
    utf8_pending: Vec<u8>,
    latin1_ok: bool,
    first_line: Option<usize>,
    len: u64,
}

impl<'m> FileScanner<'m> {
    pub(crate) fn new(m: &'m RefMatcher) -> Self {
        Self {
            m,
            finder: memmem::Finder::new(&m.root),
            sbang_finder: m.sbang_outside().then(|| memmem::Finder::new(&m.sbang)),
            outer_finder: m.outer.as_deref().map(memmem::Finder::new),
            window: Vec::new(),
            refs: BTreeSet::new(),
            head: Vec::new(),
            utf8_ok: true,
            utf8_pending: Vec::new(),
            latin1_ok: true,
            first_line: None,
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        if self.head.len() < 8 {
            let take = (8 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if self.first_line.is_none() {
            if let Some(nl) = memchr::memchr(b'\n', chunk) {
                self.first_line = Some(self.len as usize + nl);
            } else if self.len + chunk.len() as u64 > 4096 {
                self.first_line = Some(4096);
            }
        }
        self.len += chunk.len() as u64;
        self.feed_utf8(chunk);
        if self.latin1_ok {
            self.latin1_ok = !chunk.iter().any(|&b| b == 0 || (0x7f..=0x9f).contains(&b));
        }
        self.window.extend_from_slice(chunk);
        self.search(false);
    }

    fn feed_utf8(&mut self, mut chunk: &[u8]) {
        if !self.utf8_ok {
            return;
        }
        if let Some(&lead) = self.utf8_pending.first() {
            let width: usize = match lead {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => 0,
            };
            let need = width
                .saturating_sub(self.utf8_pending.len())
                .min(chunk.len());
            self.utf8_pending.extend_from_slice(&chunk[..need]);
            chunk = &chunk[need..];
            if self.utf8_pending.len() < width {
                return;
            }
            self.utf8_ok = std::str::from_utf8(&self.utf8_pending).is_ok();
            self.utf8_pending.clear();
            if !self.utf8_ok {
                return;
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            if e.error_len().is_some() {
                self.utf8_ok = false;
            } else {
                self.utf8_pending = chunk[e.valid_up_to()..].to_vec();
            }
        }
    }

    /// Classifies the hits whose lookahead is complete (all of them at the end), then keeps
    /// only the tail that later hits may still need.
    fn search(&mut self, end: bool) {
        let limit = if end {
            usize::MAX
        } else {
            self.window.len().saturating_sub(self.m.lookahead)
        };
        let mut pos = 0;
        while let Some(i) = self.finder.find(&self.window[pos..]) {
            let at = pos + i;
            if at >= limit {
                break;
            }
            if let Some(r) = self.m.classify(&self.window, at) {
                self.refs.insert(r);
            }
            pos = at + 1;
        }
        if let Some(f) = &self.sbang_finder {
            let mut pos = 0;
            while let Some(i) = f.find(&self.window[pos..]) {
                let at = pos + i;
                if at >= limit {
                    break;
                }
                if let Some(r) = self.m.classify_sbang(&self.window, at) {
                    self.refs.insert(r);
                }
                pos = at + 1;
            }
        }
        if let Some(f) = &self.outer_finder {
            let mut pos = 0;
            while let Some(i) = f.find(&self.window[pos..]) {
                let at = pos + i;
                if at >= limit {
                    break;
                }
                if let Some(r) = self.m.classify_outer(&self.window, at) {
                    self.refs.insert(r);
                }
                pos = at + 1;
            }
        }
        if !end {
            self.window.drain(..limit);
        }
    }

    pub(crate) fn finish(mut self) -> FileScan {
        self.search(true);
        if !self.utf8_pending.is_empty() {
            self.utf8_ok = false;
        }
        let class = if elf::is_elf(&self.head) {
            FileClass::Elf
        } else if self.utf8_ok || self.latin1_ok {
            FileClass::Text
        } else {
            FileClass::Binary
        };
        let long_shebang =
            self.head.starts_with(b"#!") && self.first_line.unwrap_or(self.len as usize) > 127;
        FileScan {
            class,
            refs: self.refs,
            long_shebang,
        }
    }
}

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

    #[test]
    fn scanner_finds_references_across_chunk_boundaries() {
        let root = "/st/pad";
        let prefixes = [
            ("/st/pad/aaa-x-1".to_string(), NodeId_for_test(0)),
            ("/st/pad/bbb-y-2".to_string(), NodeId_for_test(1)),
        ];
        let matcher = RefMatcher::new(root, None, "/st/bin/sbang", &prefixes);
        let mut data = vec![0u8; 10_010];
        let put = |d: &mut Vec<u8>, at: usize, s: &str| {
            d[at..at + s.len()].copy_from_slice(s.as_bytes());
        };
        put(&mut data, 4095, "/st/pad/aaa-x-1/lib");
        put(&mut data, 6000, "/st/pad/zzz-q-3/lib");
        put(&mut data, 7000, "/st/pad");
        put(&mut data, 8000, "/st/padded/other");
        put(&mut data, 9990, "/st/pad/bbb-y-2");
        put(&mut data, 3000, "#!/bin/sh /st/bin/sbang\n");
        for chunk in [1, 7, 100, 4096, 10_010] {
            let mut s = FileScanner::new(&matcher);
            for c in data.chunks(chunk) {
                s.update(c);
            }
            let scan = s.finish();
            let want: BTreeSet<Ref> = [
                Ref::Node(NodeId_for_test(0)),
                Ref::Node(NodeId_for_test(1)),
                Ref::Unknown("/st/pad/zzz-q-3".into()),
                Ref::Root,
                Ref::Sbang,
            ]
            .into();
            assert_eq!(scan.refs, want, "chunk {chunk}");
            assert_eq!(scan.class, FileClass::Text, "NULs are valid UTF-8");
        }
    }

    #[test]
    fn paths_of_the_store_beside_its_padded_directory_are_unknown() {
        let prefixes = [("/st/pad/aaa-x-1".to_string(), NodeId_for_test(0))];
        let matcher = RefMatcher::new("/st/pad", Some("/st"), "/st/bin/sbang", &prefixes);
        let mut data = vec![b'.'; 6000];
        let put = |d: &mut Vec<u8>, at: usize, s: &str| {
            d[at..at + s.len()].copy_from_slice(s.as_bytes());
        };
        put(&mut data, 100, "/st/pad/aaa-x-1/lib\0");
        put(
            &mut data,
            1000,
            "/st/.forge/build/aaa-x-1.build/hostbin/sleep\0",
        );
        put(&mut data, 2000, "#!/bin/sh /st/bin/sbang\n");
        put(&mut data, 3000, "/stable/x /st/padded/y\0");
        put(&mut data, 4093, "=/st:");
        for chunk in [1, 5, 64, 4096, 6000] {
            let mut s = FileScanner::new(&matcher);
            for c in data.chunks(chunk) {
                s.update(c);
            }
            let want: BTreeSet<Ref> = [
                Ref::Node(NodeId_for_test(0)),
                Ref::Sbang,
                Ref::Unknown("/st/.forge/build/aaa-x-1.build/hostbin/sleep".into()),
                Ref::Unknown("/st/padded/y".into()),
                Ref::Unknown("/st".into()),
            ]
            .into();
            assert_eq!(s.finish().refs, want, "chunk {chunk}");
        }
        assert_eq!(
            matcher.classify_at_start(b"/st/.forge/logs/aaa-x-1.log"),
            Some(Ref::Unknown("/st/.forge/logs/aaa-x-1.log".into()))
        );
        assert_eq!(
            matcher.classify_at_start(b"/st/pad/aaa-x-1/lib"),
            Some(Ref::Node(NodeId_for_test(0)))
        );
        assert_eq!(matcher.classify_at_start(b"/stable"), None);
        // Without the store's directory only the padded one is searched.
        let plain = RefMatcher::new("/st/pad", None, "/st/bin/sbang", &prefixes);
        assert_eq!(plain.classify_at_start(b"/st/.forge/logs/x"), None);
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

        /// The scanner finds the same references however the file is cut into chunks.
        #[test]
        fn scanning_does_not_depend_on_chunking(
            filler in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            at in proptest::collection::vec(0usize..3000, 0..5),
            chunk in 1usize..700,
        ) {
            let prefixes = [("/st/pad/aaa-x-1".to_string(), NodeId_for_test(0))];
            let matcher = RefMatcher::new("/st/pad", None, "/st/bin/sbang", &prefixes);
            let mut data = filler.clone();
            for a in &at {
                let a = (*a).min(data.len());
                data.splice(a..a, b"\0/st/pad/aaa-x-1/lib\0".iter().copied());
            }
            let scan = |c: usize| {
                let mut s = FileScanner::new(&matcher);
                for piece in data.chunks(c) {
                    s.update(piece);
                }
                s.finish().refs
            };
            let whole = scan(data.len().max(1));
            proptest::prop_assert_eq!(scan(chunk), whole.clone());
            if !at.is_empty() {
                proptest::prop_assert!(whole.contains(&Ref::Node(NodeId_for_test(0))));
            }
        }
    }

    #[allow(non_snake_case)]
    fn NodeId_for_test(i: usize) -> NodeId {
        crate::graph::test_node_id(i)
    }

    #[test]
    fn classifies_like_spack() {
        let matcher = RefMatcher::new("/s", None, "/s/bin/sbang", &[]);
        let class = |d: &[u8]| {
            let mut s = FileScanner::new(&matcher);
            s.update(d);
            s.finish().class
        };
        assert_eq!(class(b"\x7fELF\x02\x01"), FileClass::Elf);
        assert_eq!(class("héllo".as_bytes()), FileClass::Text);
        assert_eq!(class(b"caf\xe9"), FileClass::Text, "ISO-8859-1");
        assert_eq!(class(b"\xff\x00\x01"), FileClass::Binary);
        let mut s = FileScanner::new(&matcher);
        let mut line = b"#!".to_vec();
        line.extend(std::iter::repeat_n(b'a', 200));
        line.push(b'\n');
        s.update(&line);
        assert!(s.finish().long_shebang);
    }
}
