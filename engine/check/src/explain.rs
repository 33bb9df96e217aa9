//! Why two versions of a file differ.
//!
//! Order of the questions, most specific first:
//! 1. gzip data: the same content with another header time, or else why the content differs;
//! 2. archives (`ar`, tar, zip): members in another order, other header times, or which member
//!    differs and why (recursively, a few levels deep);
//! 3. text with the same lines in another order;
//! 4. every differing region (see [`crate::regions`]) on its own: a build path, host or user
//!    name, a date or time, reordered words, or a GNU build ID (which follows from the other
//!    differences and so explains nothing by itself).
//!
//! When every region is explained, the file takes the explanation of its first region and lists
//! the others in `also`; when some are not, it is `size` (different sizes) or `binary`, with the
//! explained ones in `also`. The excerpt shows the region the classification rests on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::ops::Range;

use memchr::memmem;

use crate::archive;
use crate::context::{CompareContext, OUTPUT_LABEL};
use crate::regions::{self, Region};
use crate::report::Classification;
use crate::text::{self, Excerpt};
use crate::timestamp::{self, TimeKind, Windows};

/// How deep archives inside archives (inside gzip…) are opened.
const MAX_DEPTH: u32 = 4;
/// gzip data is decompressed up to this size.
const MAX_GUNZIPPED: u64 = 256 << 20;
/// A path difference may extend this far beyond the path (a file name after a directory).
const PATH_TAIL: usize = 64;

/// What is known about the builds, prepared once per comparison.
#[derive(Debug)]
pub(crate) struct Clues {
    paths: Vec<(Vec<u8>, &'static str)>,
    hosts: Vec<(Vec<u8>, &'static str)>,
    windows: Windows,
}

impl Clues {
    pub(crate) fn new(ctx: &CompareContext) -> Clues {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Clues {
            paths: ctx.path_needles(),
            hosts: ctx.host_needles(),
            windows: Windows {
                stored: ctx.stored_window,
                rebuilt: ctx.rebuilt_window,
                now,
            },
        }
    }
}

/// The explanation of one difference, before it becomes a [`crate::Difference`].
#[derive(Debug, Clone)]
pub(crate) struct Explanation {
    pub(crate) class: Classification,
    pub(crate) also: BTreeSet<Classification>,
    /// Archive members, outermost first.
    pub(crate) members: Vec<String>,
    /// Evidence, in the innermost member's bytes.
    pub(crate) excerpt: Option<Excerpt>,
    pub(crate) note: String,
    /// Set when nothing specific explains the difference: the caller decides between `size` and
    /// `binary` from the sizes at its level.
    pub(crate) unexplained: bool,
}

impl Explanation {
    pub(crate) fn new(class: Classification, note: String) -> Explanation {
        Explanation {
            class,
            also: BTreeSet::new(),
            members: Vec::new(),
            excerpt: None,
            note,
            unexplained: false,
        }
    }

    pub(crate) fn unexplained(note: String) -> Explanation {
        Explanation {
            unexplained: true,
            ..Explanation::new(Classification::Binary, note)
        }
    }
}

/// Why `a` (stored) and `b` (rebuilt) differ. They must differ.
pub(crate) fn explain_bytes(a: &[u8], b: &[u8], clues: &Clues, depth: u32) -> Explanation {
    let mut e = explain_inner(a, b, clues, depth);
    if e.unexplained {
        e.class = if a.len() == b.len() {
            Classification::Binary
        } else {
            Classification::Size
        };
        e.unexplained = false;
    }
    e.also.remove(&e.class);
    if e.excerpt.is_none() && e.members.is_empty() {
        let p = regions::common_prefix(a, b);
        e.excerpt = Some(text::excerpt(
            a,
            p..p,
            b,
            p..p,
            text::is_text(a) && text::is_text(b),
        ));
    }
    e
}

fn explain_inner(a: &[u8], b: &[u8], clues: &Clues, depth: u32) -> Explanation {
    if depth < MAX_DEPTH {
        if let Some(e) = explain_gzip(a, b, clues, depth) {
            return e;
        }
        if let (Some(x), Some(y)) = (archive::parse(a), archive::parse(b))
            && x.format == y.format
            && let Some(e) = archive::compare(&x, &y, clues, depth)
        {
            return e;
        }
    }
    let text = text::is_text(a) && text::is_text(b);
    if text && a.len() == b.len() && same_lines(a, b) {
        let n = a.split(|&c| c == b'\n').count() - usize::from(a.ends_with(b"\n"));
        return Explanation::new(
            Classification::FileOrder,
            format!("the same {n} lines in another order"),
        );
    }
    explain_regions(a, b, text, clues)
}

fn same_lines(a: &[u8], b: &[u8]) -> bool {
    fn sorted(d: &[u8]) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = d.split(|&c| c == b'\n').collect();
        v.sort_unstable();
        v
    }
    sorted(a) == sorted(b)
}

/// gzip: compare the decompressed data and the header.
fn explain_gzip(a: &[u8], b: &[u8], clues: &Clues, depth: u32) -> Option<Explanation> {
    let (ha, hb) = (gzip_header(a)?, gzip_header(b)?);
    let (da, db) = (gunzip(a)?, gunzip(b)?);
    if da == db {
        if ha.mtime != hb.mtime {
            let mut e = Explanation::new(
                Classification::EmbeddedTimestamp,
                format!(
                    "the same data; the gzip headers record another time ({} and {})",
                    ha.mtime, hb.mtime
                ),
            );
            let p = regions::common_prefix(a, b);
            e.excerpt = Some(text::excerpt(a, p..p, b, p..p, false));
            return Some(e);
        }
        if ha.name != hb.name {
            return Some(Explanation::new(
                Classification::Binary,
                format!(
                    "the same data; the gzip headers record another file name (`{}` and `{}`)",
                    text::display_bytes(&ha.name),
                    text::display_bytes(&hb.name)
                ),
            ));
        }
        return Some(Explanation::new(
            Classification::Binary,
            "the same data compressed differently (another gzip level or implementation)"
                .to_string(),
        ));
    }
    let mut e = explain_bytes(&da, &db, clues, depth + 1);
    e.members.insert(0, "<gzip>".to_string());
    if ha.mtime != hb.mtime {
        e.also.insert(Classification::EmbeddedTimestamp);
        e.also.remove(&e.class);
    }
    e.note = format!("the decompressed data differs: {}", e.note);
    Some(e)
}

struct GzipHeader {
    mtime: u32,
    name: Vec<u8>,
}

fn gzip_header(d: &[u8]) -> Option<GzipHeader> {
    if d.len() < 18 || d[0] != 0x1f || d[1] != 0x8b || d[2] != 8 {
        return None;
    }
    let flags = d[3];
    let mtime = u32::from_le_bytes(d[4..8].try_into().ok()?);
    let mut pos = 10;
    if flags & 4 != 0 {
        let xlen = usize::from(u16::from_le_bytes(d.get(10..12)?.try_into().ok()?));
        pos += 2 + xlen;
    }
    let mut name = Vec::new();
    if flags & 8 != 0 {
        let rest = d.get(pos..)?;
        let end = memchr::memchr(0, rest)?;
        name = rest[..end].to_vec();
    }
    Some(GzipHeader { mtime, name })
}

fn gunzip(d: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(d)
        .take(MAX_GUNZIPPED + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_GUNZIPPED).then_some(out)
}

/// What explains one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    BuildPath(&'static str),
    HostInfo(&'static str),
    Time(TimeKind),
    Order,
    /// A GNU build ID: a hash of the other bytes.
    BuildId,
    /// A small change inside debug information or its relocations, in a file whose debug
    /// strings hold a differing build path: string offsets that moved with it.
    DebugOffset,
    Unexplained,
}

impl Why {
    fn class(self) -> Option<Classification> {
        match self {
            Why::BuildPath(_) => Some(Classification::EmbeddedBuildPath),
            Why::HostInfo(_) => Some(Classification::EmbeddedHostInfo),
            Why::Time(_) => Some(Classification::EmbeddedTimestamp),
            Why::Order => Some(Classification::FileOrder),
            Why::BuildId | Why::DebugOffset | Why::Unexplained => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Why::BuildPath(what) => what.to_string(),
            Why::HostInfo(what) => what.to_string(),
            Why::Time(k) => k.describe().to_string(),
            Why::Order => "the same words in another order".to_string(),
            Why::BuildId => "the GNU build ID (a hash of the rest)".to_string(),
            Why::DebugOffset => {
                "debug-information offsets that moved with the build path".to_string()
            }
            Why::Unexplained => "unexplained".to_string(),
        }
    }
}

/// Occurrences of needles in one side.
fn occurrences(
    data: &[u8],
    needles: &[(Vec<u8>, &'static str)],
) -> Vec<(Range<usize>, &'static str)> {
    let mut v = Vec::new();
    for (n, label) in needles {
        for i in memmem::find_iter(data, n) {
            v.push((i..i + n.len(), *label));
        }
    }
    v.sort_by_key(|(r, _)| (r.start, r.end));
    v
}

/// The label of an occurrence overlapping `r` (an empty `r` touching it counts), if `r` does not
/// reach too far beyond it.
fn overlapping(occ: &[(Range<usize>, &'static str)], r: &Range<usize>) -> Option<&'static str> {
    // Occurrences are few; a linear scan over those starting before r.end is enough.
    occ.iter()
        .take_while(|(o, _)| o.start <= r.end)
        .find(|(o, _)| {
            let touches = if r.is_empty() {
                o.start <= r.start && r.start <= o.end
            } else {
                o.start < r.end && r.start < o.end
            };
            touches && r.len() <= o.len() + PATH_TAIL
        })
        .map(|(_, l)| *l)
}

/// A differing range inside something that looks like a temporary or build directory, when the
/// builds' own directories are not known (or the build used another one).
fn in_temporary_path(data: &[u8], r: &Range<usize>) -> bool {
    if r.len() > PATH_TAIL || r.end > data.len() {
        return false;
    }
    let is_path = |c: u8| c.is_ascii_alphanumeric() || b"/._-+~@%=,".contains(&c);
    let mut s = r.start;
    while s > 0 && is_path(data[s - 1]) && r.start - s < 4096 {
        s -= 1;
    }
    let mut e = r.end;
    while e < data.len() && is_path(data[e]) && e - r.end < 4096 {
        e += 1;
    }
    let token = &data[s..e];
    let Some(slash) = memchr::memchr(b'/', token) else {
        return false;
    };
    // The differing bytes must come after the path's start, inside the path.
    if s + slash > r.start {
        return false;
    }
    let path = &token[slash..];
    [
        &b"/tmp/"[..],
        b"/var/tmp/",
        b"/dev/shm/",
        b".build/",
        b".check/",
        b"/.forge/build/",
    ]
    .iter()
    .any(|n| memmem::find(path, n).is_some())
}

/// In an ELF file whose debug strings hold a differing build path, the string table's order
/// and with it the offsets that point into it may change too (compilers order merged strings by
/// hash). Small unexplained changes inside debug sections or their relocations are taken as such
/// offsets; anything larger, or elsewhere, stays unexplained.
fn follow_debug_strings(a: &[u8], regions: &[Region], whys: &mut [(usize, Why)]) {
    const SMALL: usize = 8;
    if !whys.iter().any(|(_, w)| *w == Why::Unexplained) {
        return;
    }
    let sections = forge_core::elf::sections(a);
    let section_of = |r: &Range<usize>| {
        sections
            .iter()
            .find(|(_, s)| s.start <= r.start && r.end <= s.end)
            .map(|(n, _)| n.as_slice())
    };
    let debug = |n: &[u8]| {
        n.starts_with(b".debug_") || n.starts_with(b".rela.debug_") || n.starts_with(b".rel.debug_")
    };
    let path_in_strings = whys.iter().any(|(i, w)| {
        matches!(w, Why::BuildPath(_))
            && section_of(&regions[*i].a)
                .is_some_and(|n| n.starts_with(b".debug_") && n.ends_with(b"str"))
    });
    if !path_in_strings {
        return;
    }
    for (i, w) in whys.iter_mut() {
        let r = &regions[*i];
        if *w == Why::Unexplained
            && r.a.len() <= SMALL
            && r.b.len() <= SMALL
            && section_of(&r.a).is_some_and(debug)
        {
            *w = Why::DebugOffset;
        }
    }
}

fn explain_regions(a: &[u8], b: &[u8], text: bool, clues: &Clues) -> Explanation {
    let found = regions::regions(a, b, text);
    let (pa, pb) = (occurrences(a, &clues.paths), occurrences(b, &clues.paths));
    let (ha, hb) = (occurrences(a, &clues.hosts), occurrences(b, &clues.hosts));
    let (ida, idb) = (forge_core::elf::build_ids(a), forge_core::elf::build_ids(b));
    let inside = |ids: &[Range<usize>], r: &Range<usize>| {
        ids.iter().any(|i| i.start <= r.start && r.end <= i.end)
    };
    let why = |r: &Region| -> Why {
        if inside(&ida, &r.a) || inside(&idb, &r.b) {
            return Why::BuildId;
        }
        // The output path itself is in both trees; when the rebuilt side has its temporary
        // output path there, that is the better description.
        match (overlapping(&pa, &r.a), overlapping(&pb, &r.b)) {
            (Some(OUTPUT_LABEL), Some(l)) | (Some(l), _) | (None, Some(l)) => {
                return Why::BuildPath(l);
            }
            (None, None) => {}
        }
        if in_temporary_path(a, &r.a) || in_temporary_path(b, &r.b) {
            return Why::BuildPath("a temporary or build directory");
        }
        if let Some(l) = overlapping(&ha, &r.a).or_else(|| overlapping(&hb, &r.b)) {
            return Why::HostInfo(l);
        }
        if let Some(k) = timestamp::explains(a, r.a.clone(), b, r.b.clone(), &clues.windows) {
            return Why::Time(k);
        }
        if r.words_reordered {
            return Why::Order;
        }
        Why::Unexplained
    };
    let mut whys: Vec<(usize, Why)> = found.list.iter().map(why).enumerate().collect();
    follow_debug_strings(a, &found.list, &mut whys);
    // Counts per reason, for the note.
    let mut counts: BTreeMap<Why, usize> = BTreeMap::new();
    for (_, w) in &whys {
        *counts.entry(*w).or_default() += 1;
    }
    let summary = counts
        .iter()
        .map(|(w, n)| match n {
            1 => w.describe(),
            n => format!("{} (×{n})", w.describe()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let total = found.list.len();
    let places = format!(
        "{}{total} differing place{}",
        if found.truncated { "the first " } else { "" },
        if total == 1 { "" } else { "s" }
    );
    let first_unexplained = whys.iter().find(|(_, w)| *w == Why::Unexplained);
    let first_explained = whys.iter().find(|(_, w)| w.class().is_some());
    let also: BTreeSet<Classification> = whys.iter().filter_map(|(_, w)| w.class()).collect();
    let excerpt = |i: usize| {
        let r = &found.list[i];
        text::excerpt(a, r.a.clone(), b, r.b.clone(), text)
    };
    let mut e = match (first_unexplained, first_explained) {
        (None, Some(&(i, w))) => {
            let mut e = Explanation::new(
                w.class().expect("explained"),
                format!("{places}: {summary}"),
            );
            e.excerpt = Some(excerpt(i));
            e
        }
        (Some(&(i, _)), _) => {
            let mut e = Explanation::unexplained(format!("{places}: {summary}"));
            e.excerpt = Some(excerpt(i));
            e
        }
        (None, None) => {
            // Only build IDs differ (or nothing was found): the hash of something this analysis
            // does not see.
            let mut e = Explanation::unexplained(format!("{places}: {summary}"));
            if let Some(&(i, _)) = whys.first() {
                e.excerpt = Some(excerpt(i));
            }
            e
        }
    };
    if a.len() != b.len() && !e.unexplained {
        // Explained, but the sizes differ too: worth saying.
        e.note.push_str(&format!(
            "; {} bytes {}",
            a.len().abs_diff(b.len()),
            if b.len() > a.len() {
                "longer"
            } else {
                "shorter"
            }
        ));
    }
    e.also = also;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clues(ctx: &CompareContext) -> Clues {
        Clues::new(ctx)
    }

    #[test]
    fn build_paths_of_the_context() {
        let ctx = CompareContext {
            stored_build_dir: Some("/s/.forge/build/x-1.build".into()),
            rebuilt_build_dir: Some("/s/.forge/build/x-1.check".into()),
            ..CompareContext::default()
        };
        let e = explain_bytes(
            b"cwd=/s/.forge/build/x-1.build/src\n",
            b"cwd=/s/.forge/build/x-1.check/src\n",
            &clues(&ctx),
            0,
        );
        assert_eq!(e.class, Classification::EmbeddedBuildPath);
        assert!(
            e.note.contains("the stored build's directory"),
            "{}",
            e.note
        );
        let ex = e.excerpt.unwrap();
        assert_eq!(ex.stored, "cwd=/s/.forge/build/x-1.build/src");
    }

    #[test]
    fn temporary_directories_without_context() {
        let e = explain_bytes(
            b"tmp=/tmp/tmp.AbCdEf12/x\n",
            b"tmp=/tmp/tmp.ZyXwVu98/x\n",
            &clues(&CompareContext::default()),
            0,
        );
        assert_eq!(e.class, Classification::EmbeddedBuildPath);
        let e = explain_bytes(
            b"lib=/usr/lib/libfoo1\n",
            b"lib=/usr/lib/libfoo2\n",
            &clues(&CompareContext::default()),
            0,
        );
        assert_eq!(e.class, Classification::Binary);
    }

    #[test]
    fn host_names() {
        let ctx = CompareContext {
            stored_host: Some("node017".into()),
            rebuilt_host: Some("node042".into()),
            ..CompareContext::default()
        };
        let e = explain_bytes(
            b"built on node017\n",
            b"built on node042\n",
            &clues(&ctx),
            0,
        );
        assert_eq!(e.class, Classification::EmbeddedHostInfo);
    }

    #[test]
    fn mixed_reasons_take_the_first_and_list_the_rest() {
        let ctx = CompareContext {
            stored_build_dir: Some("/b/x.build".into()),
            rebuilt_build_dir: Some("/b/x.check".into()),
            ..CompareContext::default()
        };
        let e = explain_bytes(
            b"at 12:00:01\nin /b/x.build\n",
            b"at 12:03:07\nin /b/x.check\n",
            &clues(&ctx),
            0,
        );
        assert_eq!(e.class, Classification::EmbeddedTimestamp);
        assert_eq!(
            e.also.iter().copied().collect::<Vec<_>>(),
            [Classification::EmbeddedBuildPath]
        );
    }

    #[test]
    fn an_unexplained_region_wins_over_explained_ones() {
        let e = explain_bytes(
            b"at 12:00:01\nrandom 4711\n",
            b"at 12:03:07\nrandom 0815\n",
            &clues(&CompareContext::default()),
            0,
        );
        assert_eq!(e.class, Classification::Binary);
        assert!(e.also.contains(&Classification::EmbeddedTimestamp));
        assert_eq!(e.excerpt.unwrap().stored, "random 4711");
        let e = explain_bytes(
            b"at 12:00:01\nrandom 4711\n",
            b"at 12:03:07\nrandom 08150\n",
            &clues(&CompareContext::default()),
            0,
        );
        assert_eq!(e.class, Classification::Size);
    }

    #[test]
    fn reordered_lines_and_words() {
        let c = clues(&CompareContext::default());
        let e = explain_bytes(b"a\nb\nc\n", b"c\na\nb\n", &c, 0);
        assert_eq!(e.class, Classification::FileOrder);
        assert_eq!(e.note, "the same 3 lines in another order");
        let e = explain_bytes(b"x\nobjs: a.o b.o c.o\n", b"x\nobjs: c.o a.o b.o\n", &c, 0);
        assert_eq!(e.class, Classification::FileOrder);
    }

    #[test]
    fn gzip_header_times() {
        use std::io::Write;
        let gz = |data: &[u8], mtime: u32| {
            let mut w = flate2::GzBuilder::new()
                .mtime(mtime)
                .write(Vec::new(), flate2::Compression::default());
            w.write_all(data).unwrap();
            w.finish().unwrap()
        };
        let c = clues(&CompareContext::default());
        let e = explain_bytes(&gz(b"same", 1), &gz(b"same", 2), &c, 0);
        assert_eq!(e.class, Classification::EmbeddedTimestamp);
        let e = explain_bytes(&gz(b"a\nb\n", 1), &gz(b"b\na\n", 1), &c, 0);
        assert_eq!(e.class, Classification::FileOrder);
        assert_eq!(e.members, ["<gzip>"]);
    }
}
