//! The scan side: which store paths a file of a prefix embeds, found while it streams into its
//! tarball, and how Spack will classify the file.

use std::collections::{BTreeSet, HashMap};

use memchr::memmem;

use super::is_component_char;
use crate::graph::NodeId;
use forge_core::elf;

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
    /// Prefixes this ELF file names only inside sections that are not loaded at run time
    /// (no `SHF_ALLOC`: DWARF, `.comment`, symbol tables): the running program never sees
    /// them. Empty for other files and for ELF files whose section table could not be read.
    pub(crate) unloaded: BTreeSet<NodeId>,
    /// The first line is a `#!` line longer than 127 bytes.
    pub(crate) long_shebang: bool,
}

/// The bytes of an ELF64 little-endian file's section header table, gathered while the file
/// streams past (the table usually lies at its end).
#[derive(Debug)]
struct SectionTable {
    offset: u64,
    entry: usize,
    count: usize,
    bytes: Vec<u8>,
}

impl SectionTable {
    /// From the first 64 bytes of the file; `None` for anything but ELF64 little-endian with
    /// an ordinary section count.
    fn from_header(head: &[u8]) -> Option<Self> {
        if head.len() < 64 || !elf::is_elf(head) || head[4] != 2 || head[5] != 1 {
            return None;
        }
        let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]) as usize;
        let offset = u64::from_le_bytes(head[0x28..0x30].try_into().ok()?);
        let (entry, count) = (u16_at(0x3a), u16_at(0x3c));
        (offset > 0 && entry >= 0x28 && count > 0).then(|| Self {
            offset,
            entry,
            count,
            bytes: Vec::new(),
        })
    }

    /// Takes the part of `chunk`, which starts at file offset `at`, that lies in the table.
    fn take(&mut self, at: u64, chunk: &[u8]) {
        let want = (self.entry * self.count) as u64;
        let have = self.bytes.len() as u64;
        let next = self.offset + have;
        if have == want || next < at || next >= at + chunk.len() as u64 {
            return;
        }
        let from = (next - at) as usize;
        let n = ((want - have) as usize).min(chunk.len() - from);
        self.bytes.extend_from_slice(&chunk[from..from + n]);
    }

    /// File ranges of the sections that are not loaded at run time, once the whole table has
    /// been seen.
    fn unloaded_ranges(&self) -> Option<Vec<std::ops::Range<u64>>> {
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u32 = 8;
        if self.bytes.len() != self.entry * self.count {
            return None;
        }
        let mut out = Vec::new();
        for e in self.bytes.chunks_exact(self.entry) {
            let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().expect("8 bytes"));
            let kind = u32::from_le_bytes(e[4..8].try_into().expect("4 bytes"));
            let (flags, offset, size) = (u64_at(8), u64_at(0x18), u64_at(0x20));
            if flags & SHF_ALLOC == 0 && kind != SHT_NOBITS && size > 0 {
                out.push(offset..offset.saturating_add(size));
            }
        }
        Some(out)
    }
}

/// Scans one file fed in chunks.
pub(crate) struct FileScanner<'m> {
    m: &'m RefMatcher,
    finder: memmem::Finder<'m>,
    sbang_finder: Option<memmem::Finder<'m>>,
    outer_finder: Option<memmem::Finder<'m>>,
    window: Vec<u8>,
    /// File offset of `window[0]`.
    window_at: u64,
    refs: BTreeSet<Ref>,
    /// Where in an ELF file each prefix was named, to tell loaded from unloaded sections.
    node_hits: Vec<(NodeId, u64)>,
    sections: Option<SectionTable>,
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
            window_at: 0,
            refs: BTreeSet::new(),
            node_hits: Vec::new(),
            sections: None,
            head: Vec::new(),
            utf8_ok: true,
            utf8_pending: Vec::new(),
            latin1_ok: true,
            first_line: None,
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        if self.head.len() < 64 {
            let take = (64 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() == 64 {
                self.sections = SectionTable::from_header(&self.head);
            }
        }
        if let Some(t) = &mut self.sections {
            t.take(self.len, chunk);
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
                if let (Ref::Node(n), Some(_)) = (&r, &self.sections) {
                    self.node_hits.push((*n, self.window_at + at as u64));
                }
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
            self.window_at += limit as u64;
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
        let mut unloaded = BTreeSet::new();
        if let Some(ranges) = self
            .sections
            .as_ref()
            .and_then(SectionTable::unloaded_ranges)
        {
            let in_unloaded = |at: u64| ranges.iter().any(|r| r.contains(&at));
            let mut loaded = BTreeSet::new();
            for (n, at) in &self.node_hits {
                if in_unloaded(*at) {
                    unloaded.insert(*n);
                } else {
                    loaded.insert(*n);
                }
            }
            unloaded.retain(|n| !loaded.contains(n));
        }
        FileScan {
            class,
            refs: self.refs,
            unloaded,
            long_shebang,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(non_snake_case)]
    fn NodeId_for_test(i: usize) -> NodeId {
        crate::graph::test_node_id(i)
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

    /// An ELF64 file with an allocated section at 0x100..0x200 and a non-allocated one at
    /// 0x200..0x400, its section table at the end.
    fn elf_with_sections(in_alloc: &[&str], in_debug: &[&str]) -> Vec<u8> {
        let mut d = vec![0u8; 0x400];
        d[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let put = |d: &mut Vec<u8>, at: usize, s: &str| {
            d[at..at + s.len()].copy_from_slice(s.as_bytes());
        };
        for (i, p) in in_alloc.iter().enumerate() {
            put(&mut d, 0x100 + i * 0x40, p);
        }
        for (i, p) in in_debug.iter().enumerate() {
            put(&mut d, 0x200 + i * 0x40, p);
        }
        let shoff = d.len() as u64;
        d[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        d[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        d[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        // Section 0 is the null section; then (type, flags, offset, size).
        for (kind, flags, off, size) in [
            (0u32, 0u64, 0u64, 0u64),
            (1, 2, 0x100, 0x100),
            (1, 0, 0x200, 0x200),
        ] {
            let mut e = [0u8; 64];
            e[4..8].copy_from_slice(&kind.to_le_bytes());
            e[8..16].copy_from_slice(&flags.to_le_bytes());
            e[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            e[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            d.extend_from_slice(&e);
        }
        d
    }

    #[test]
    fn prefixes_named_only_outside_loaded_sections_are_told_apart() {
        let prefixes = [
            ("/st/pad/aaa-x-1".to_string(), NodeId_for_test(0)),
            ("/st/pad/bbb-y-2".to_string(), NodeId_for_test(1)),
            ("/st/pad/ccc-z-3".to_string(), NodeId_for_test(2)),
        ];
        let matcher = RefMatcher::new("/st/pad", None, "/st/bin/sbang", &prefixes);
        // a: loaded only; b: debug only; c: both, so loaded.
        let data = elf_with_sections(
            &["/st/pad/aaa-x-1/lib", "/st/pad/ccc-z-3/lib"],
            &["/st/pad/bbb-y-2/include", "/st/pad/ccc-z-3/include"],
        );
        for chunk in [1, 7, 64, 300, 4096] {
            let mut s = FileScanner::new(&matcher);
            for c in data.chunks(chunk) {
                s.update(c);
            }
            let scan = s.finish();
            assert_eq!(scan.class, FileClass::Elf);
            assert_eq!(scan.refs.len(), 3, "chunk {chunk}");
            assert_eq!(
                scan.unloaded,
                BTreeSet::from([NodeId_for_test(1)]),
                "chunk {chunk}"
            );
        }
        // A table cut short (a truncated file) tells nothing: every hit counts as loaded.
        let mut s = FileScanner::new(&matcher);
        s.update(&data[..data.len() - 10]);
        assert!(s.finish().unloaded.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
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
}
