//! Where two byte strings differ: a list of regions, each a range on both sides.
//!
//! - Equal sizes: maximal runs of differing bytes, runs closer than [`MERGE_GAP`] joined.
//! - Text with as many lines on both sides: line pairs that differ, each narrowed to the
//!   differing bytes (so a line whose length changed is one region, and the lines after it still
//!   align).
//! - Otherwise: what lies between the common prefix and the common suffix.

use std::ops::Range;

/// Differing runs at most this far apart are one region.
pub(crate) const MERGE_GAP: usize = 8;
/// At most this many regions are listed; the rest are counted.
pub(crate) const MAX_REGIONS: usize = 4096;

/// One place where the sides differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    /// The stored side's bytes.
    pub(crate) a: Range<usize>,
    /// The rebuilt side's bytes.
    pub(crate) b: Range<usize>,
    /// The region is part of a line pair whose whitespace-separated words are the same, in
    /// another order.
    pub(crate) words_reordered: bool,
}

/// The regions, and whether [`MAX_REGIONS`] cut the list short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Regions {
    pub(crate) list: Vec<Region>,
    pub(crate) truncated: bool,
}

/// The first offset at which `a` and `b` differ (`None` when equal).
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let p = common_prefix(a, b);
    (p < a.len() || p < b.len()).then_some(p)
}

pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    // Compare in blocks first: memcmp is much faster than a byte loop.
    const BLOCK: usize = 4096;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn common_suffix(a: &[u8], b: &[u8], limit: usize) -> usize {
    let mut i = 0;
    while i < limit && a[a.len() - 1 - i] == b[b.len() - 1 - i] {
        i += 1;
    }
    i
}

/// The regions where `a` and `b` differ. `text` says both are text (see [`crate::text`]).
pub(crate) fn regions(a: &[u8], b: &[u8], text: bool) -> Regions {
    if text {
        let la: Vec<Range<usize>> = lines(a).collect();
        let lb: Vec<Range<usize>> = lines(b).collect();
        if la.len() == lb.len() {
            return line_regions(a, b, &la, &lb);
        }
    }
    if a.len() == b.len() {
        return byte_regions(a, b, 0, 0);
    }
    let p = common_prefix(a, b);
    let s = common_suffix(a, b, a.len().min(b.len()) - p);
    Regions {
        list: vec![Region {
            a: p..a.len() - s,
            b: p..b.len() - s,
            words_reordered: false,
        }],
        truncated: false,
    }
}

/// Line ranges without their newline; a final line without newline counts.
fn lines(data: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    let mut done = data.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match memchr::memchr(b'\n', &data[start..]) {
            Some(i) => {
                let r = start..start + i;
                start += i + 1;
                if start == data.len() {
                    done = true;
                }
                Some(r)
            }
            None => {
                done = true;
                Some(start..data.len())
            }
        }
    })
}

/// Runs of differing bytes of two equal-length slices, offset by `oa`/`ob` in their files.
fn byte_regions(a: &[u8], b: &[u8], oa: usize, ob: usize) -> Regions {
    debug_assert_eq!(a.len(), b.len());
    let mut list: Vec<Region> = Vec::new();
    let mut truncated = false;
    let mut i = 0;
    let n = a.len();
    while i < n {
        i += common_prefix(&a[i..], &b[i..]);
        if i >= n {
            break;
        }
        let start = i;
        // Extend while differences keep coming within MERGE_GAP bytes.
        let mut end = i + 1;
        let mut j = end;
        while j < n && j - end <= MERGE_GAP {
            if a[j] != b[j] {
                end = j + 1;
            }
            j += 1;
        }
        if list.len() == MAX_REGIONS {
            truncated = true;
            break;
        }
        list.push(Region {
            a: oa + start..oa + end,
            b: ob + start..ob + end,
            words_reordered: false,
        });
        i = end;
    }
    Regions { list, truncated }
}

fn line_regions(a: &[u8], b: &[u8], la: &[Range<usize>], lb: &[Range<usize>]) -> Regions {
    let mut list: Vec<Region> = Vec::new();
    let mut truncated = false;
    for (ra, rb) in la.iter().zip(lb) {
        let (x, y) = (&a[ra.clone()], &b[rb.clone()]);
        if x == y {
            continue;
        }
        let reordered = same_words(x, y);
        let found: Vec<Region> = if x.len() == y.len() {
            byte_regions(x, y, ra.start, rb.start).list
        } else {
            let p = common_prefix(x, y);
            let s = common_suffix(x, y, x.len().min(y.len()) - p);
            vec![Region {
                a: ra.start + p..ra.end - s,
                b: rb.start + p..rb.end - s,
                words_reordered: false,
            }]
        };
        for mut r in found {
            if list.len() == MAX_REGIONS {
                truncated = true;
                break;
            }
            r.words_reordered = reordered;
            list.push(r);
        }
        if truncated {
            break;
        }
    }
    Regions { list, truncated }
}

/// Whether two lines hold the same whitespace-separated words (at least two) in another order.
fn same_words(x: &[u8], y: &[u8]) -> bool {
    let words = |s: &[u8]| -> Vec<Vec<u8>> {
        let mut w: Vec<Vec<u8>> = s
            .split(|c| c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        w.sort_unstable();
        w
    };
    let (wx, wy) = (words(x), words(y));
    wx.len() >= 2 && wx == wy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sizes_give_byte_runs_merged_across_small_gaps() {
        let a = b"aaaaXaaaaaaaaaaaaaaaaaXXaaaYaaa";
        let b = b"aaaaYaaaaaaaaaaaaaaaaaYYaaaXaaa";
        let r = regions(a, b, false);
        let spans: Vec<_> = r.list.iter().map(|r| r.a.clone()).collect();
        assert_eq!(spans, vec![4..5, 22..28]);
        assert!(!r.truncated);
    }

    #[test]
    fn text_lines_keep_aligning_after_a_length_change() {
        let a = b"one\nbuilt in 5 s\nsame\nrandom 12\n";
        let b = b"one\nbuilt in 123 s\nsame\nrandom 99\n";
        let r = regions(a, b, true);
        assert_eq!(r.list.len(), 2);
        assert_eq!(&a[r.list[0].a.clone()], b"5");
        assert_eq!(&b[r.list[0].b.clone()], b"123");
        assert_eq!(&a[r.list[1].a.clone()], b"12");
        assert_eq!(&b[r.list[1].b.clone()], b"99");
    }

    #[test]
    fn different_sizes_give_the_middle() {
        let r = regions(b"head-AB-tail", b"head-ABC-tail", false);
        assert_eq!(r.list.len(), 1);
        assert_eq!(r.list[0].a, 7..7);
        assert_eq!(r.list[0].b, 7..8);
    }

    #[test]
    fn reordered_words_are_flagged() {
        let r = regions(b"LIBS = -la -lb -lc\n", b"LIBS = -lc -la -lb\n", true);
        assert!(!r.list.is_empty());
        assert!(r.list.iter().all(|r| r.words_reordered));
        let r = regions(b"LIBS = -la -lb\n", b"LIBS = -la -lx\n", true);
        assert!(r.list.iter().all(|r| !r.words_reordered));
    }

    #[test]
    fn region_count_is_bounded() {
        let a = vec![0u8; 20 * MAX_REGIONS + 100];
        let b: Vec<u8> = (0..a.len())
            .map(|i| if i % 20 == 0 { 1 } else { 0 })
            .collect();
        let r = regions(&a, &b, false);
        assert_eq!(r.list.len(), MAX_REGIONS);
        assert!(r.truncated);
    }

    #[test]
    fn lines_split_like_the_file() {
        let v: Vec<_> = lines(b"a\nb").collect();
        assert_eq!(v, vec![0..1, 2..3]);
        let v: Vec<_> = lines(b"a\n").collect();
        assert_eq!(v, vec![0..1]);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn first_difference_finds_prefixes() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        let mut big = vec![5u8; 10_000];
        let other = big.clone();
        big[9_000] = 6;
        assert_eq!(first_difference(&big, &other), Some(9_000));
    }
}
