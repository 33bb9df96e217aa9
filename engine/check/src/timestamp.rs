//! Does a differing byte range look like a date or time?
//!
//! Three independent tests, each applied to the same place on both sides:
//! - *text dates*: the range lies inside a span of date tokens (ISO-8601 dates and times,
//!   compact `YYYYMMDD[HHMMSS]`, `a/b/c` dates, times of day, month and weekday names, zones)
//!   joined with the day and year numbers next to them, or inside a plausible year;
//! - *decimal Unix times* (seconds, or milli/micro/nanoseconds): the digit run holding the range
//!   is a time inside one of the builds' windows (or, with no window known, between 2000 and
//!   tomorrow);
//! - *binary Unix times*: 32- or 64-bit little-endian seconds covering the range, inside a
//!   build's window (only with a window: random bytes would match too often otherwise).

use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::context::TimeWindow;

/// How far around a build's window an embedded time may lie (clock skew, time spent outside
/// the build proper, time zones).
const SLACK: i64 = 3600;
/// 2000-01-01: decimal numbers are taken for times without a window only after this.
const STRICT_MIN: i64 = 946_684_800;
/// 2100-01-01.
const LOOSE_MAX: i64 = 4_102_444_800;
/// How much text around a range is searched for date tokens.
const CONTEXT: usize = 64;

/// The two builds' time windows and the current time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) stored: Option<TimeWindow>,
    pub(crate) rebuilt: Option<TimeWindow>,
    pub(crate) now: i64,
}

impl Windows {
    fn known(&self) -> bool {
        self.stored.is_some() || self.rebuilt.is_some()
    }

    /// Whether `a` (stored side) and `b` (rebuilt side) are both Unix times of the builds.
    fn epochs(&self, a: i64, b: i64, decimal: bool) -> bool {
        if !self.known() {
            let strict = |v: i64| (STRICT_MIN..=self.now + 86_400).contains(&v);
            return decimal && strict(a) && strict(b);
        }
        let inside = self.stored.is_some_and(|w| w.contains(a, SLACK))
            || self.rebuilt.is_some_and(|w| w.contains(b, SLACK));
        let loose = |v: i64| v > 0 && v <= LOOSE_MAX;
        inside && loose(a) && loose(b)
    }
}

/// What kind of date or time explains a difference, for notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimeKind {
    /// A date or time written as text.
    Text,
    /// A decimal Unix time.
    Decimal,
    /// A little-endian binary Unix time.
    Binary,
}

impl TimeKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TimeKind::Text => "a date or time",
            TimeKind::Decimal => "a Unix time",
            TimeKind::Binary => "a binary Unix time",
        }
    }
}

/// Whether the range `ra` of `a` and `rb` of `b` (the same place) is a date or time.
pub(crate) fn explains(
    a: &[u8],
    ra: Range<usize>,
    b: &[u8],
    rb: Range<usize>,
    w: &Windows,
) -> Option<TimeKind> {
    if ra.len() > 64 || rb.len() > 64 {
        return None;
    }
    if let (Some(va), Some(vb)) = (decimal_epoch(a, ra.clone()), decimal_epoch(b, rb.clone()))
        && w.epochs(va, vb, true)
    {
        return Some(TimeKind::Decimal);
    }
    if in_text_date(a, ra.clone()) && in_text_date(b, rb.clone()) {
        return Some(TimeKind::Text);
    }
    if w.known() && binary_epoch(a, ra, b, rb, w) {
        return Some(TimeKind::Binary);
    }
    None
}

/// The digit run holding `r` as Unix seconds (milli-, micro- and nanoseconds scaled down), or
/// the integer seconds before a fraction that holds `r`.
fn decimal_epoch(data: &[u8], r: Range<usize>) -> Option<i64> {
    let (s, e) = digit_run(data, r)?;
    let value = |s: usize, e: usize| -> Option<i64> {
        let digits = std::str::from_utf8(&data[s..e]).ok()?;
        let v: i64 = digits.parse().ok()?;
        match e - s {
            9 | 10 => Some(v),
            12 | 13 => Some(v / 1_000),
            15 | 16 => Some(v / 1_000_000),
            18 | 19 => Some(v / 1_000_000_000),
            _ => None,
        }
    };
    if let Some(v) = value(s, e) {
        return Some(v);
    }
    // A fraction of a second: `1767225600.123456`.
    if s >= 2 && data[s - 1] == b'.' {
        let ie = s - 1;
        let is = data[..ie]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        if matches!(ie - is, 9 | 10) {
            return value(is, ie);
        }
    }
    None
}

/// The maximal run of ASCII digits holding `r` (at most 20 digits), if `r` is all digits.
fn digit_run(data: &[u8], r: Range<usize>) -> Option<(usize, usize)> {
    if r.end > data.len() || !data[r.clone()].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut s = r.start;
    while s > 0 && data[s - 1].is_ascii_digit() && r.end - s < 20 {
        s -= 1;
    }
    let mut e = r.end;
    while e < data.len() && data[e].is_ascii_digit() && e - s < 20 {
        e += 1;
    }
    (e > s).then_some((s, e))
}

/// 32- or 64-bit little-endian values covering both ranges at the same relative place.
fn binary_epoch(a: &[u8], ra: Range<usize>, b: &[u8], rb: Range<usize>, w: &Windows) -> bool {
    if ra.is_empty() || ra.len() != rb.len() {
        return false;
    }
    for width in [4usize, 8] {
        if ra.len() > width {
            continue;
        }
        let first = (ra.end).saturating_sub(width);
        for sa in first..=ra.start {
            let sb = rb.start + sa - ra.start;
            let (Some(ba), Some(bb)) = (a.get(sa..sa + width), b.get(sb..sb + width)) else {
                continue;
            };
            let le = |x: &[u8]| {
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(x);
                i64::from_le_bytes(v)
            };
            if w.epochs(le(ba), le(bb), false) {
                return true;
            }
        }
    }
    false
}

/// Date tokens that make the numbers next to them date parts.
static ANCHOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?-u)",
        // ISO-8601 date, optionally with a time and zone.
        r"\b(?:19|20)\d\d-[01]\d-[0-3]\d(?:[T ][0-2]\d:[0-5]\d(?::[0-6]\d(?:[.,]\d{1,9})?)?(?:Z|[+-][0-2]\d:?[0-5]\d)?)?",
        // Compact YYYYMMDD[THHMMSS][Z].
        r"|\b(?:19|20)\d\d[01]\d[0-3]\d(?:T?[0-2]\d[0-5]\d[0-6]\d)?Z?\b",
        // Dates with slashes: 2026/03/01, 03/01/2026, 01/03/26.
        r"|\b(?:(?:19|20)\d\d/[01]?\d/[0-3]?\d|[0-3]?\d/[01]?\d/(?:19|20)\d\d|\d\d/\d\d/\d\d)\b",
        // Times of day, optionally with fractions and AM/PM.
        r"|\b[0-2]?\d:[0-5]\d(?::[0-6]\d)?(?:[.,]\d{1,9})?(?: ?[AaPp][Mm])?\b",
        // Month and weekday names, English, short or long.
        r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.?",
        r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}\b",
        // Zones.
        r"|\b(?:UTC|GMT|[A-Z]{1,3}[SD]T|CET|CEST|EET|EEST|WET|WEST|JST|IST|MSK)\b",
        r"|[+-][01]\d:?[0-5]\d\b",
    ))
    .expect("the date pattern compiles")
});

/// Whether `r` lies inside a date span of `data`.
fn in_text_date(data: &[u8], r: Range<usize>) -> bool {
    if r.end > data.len() {
        return false;
    }
    let ws = r.start.saturating_sub(CONTEXT);
    let we = (r.end + CONTEXT).min(data.len());
    let window = &data[ws..we];
    // (start, end, anchored) in window coordinates.
    let mut tokens: Vec<(usize, usize, bool)> = ANCHOR
        .find_iter(window)
        .map(|m| (m.start(), m.end(), true))
        .collect();
    // Digit runs outside anchors: days (1-2 digits) and years (4 digits).
    let mut i = 0;
    while i < window.len() {
        if window[i].is_ascii_digit() {
            let s = i;
            while i < window.len() && window[i].is_ascii_digit() {
                i += 1;
            }
            let inside = tokens.iter().any(|&(ts, te, _)| s < te && i > ts);
            // A number inside a word (a hash, an identifier) is no date part.
            let in_word = (s > 0 && window[s - 1].is_ascii_alphabetic())
                || window.get(i).is_some_and(u8::is_ascii_alphabetic);
            if !inside && !in_word && matches!(i - s, 1 | 2 | 4) {
                tokens.push((s, i, false));
            }
        } else {
            i += 1;
        }
    }
    tokens.sort_unstable();
    // Join tokens separated by at most 3 bytes of spaces and punctuation into spans.
    let mut spans: Vec<(usize, usize, bool, bool)> = Vec::new(); // start, end, anchored, year-only
    for (s, e, anchored) in tokens {
        let year = !anchored && e - s == 4 && is_year(&window[s..e]);
        if let Some(last) = spans.last_mut()
            && s >= last.1
            && s - last.1 <= 3
            && window[last.1..s].iter().all(|c| b" ,.".contains(c))
        {
            last.1 = e;
            last.2 |= anchored;
            last.3 = false;
            continue;
        }
        spans.push((s, e, anchored, year));
    }
    let (rs, re) = (r.start - ws, r.end - ws);
    spans.iter().any(|&(s, e, anchored, year)| {
        (anchored || year)
            && if rs == re {
                s <= rs && rs <= e
            } else {
                s <= rs && re <= e
            }
    })
}

fn is_year(digits: &[u8]) -> bool {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .is_some_and(|y| (1970..=2100).contains(&y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_windows() -> Windows {
        Windows {
            stored: None,
            rebuilt: None,
            now: 1_767_225_600, // 2026-01-01
        }
    }

    /// The differing range of two equal-length strings.
    fn diff(a: &str, b: &str) -> Range<usize> {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let s = (0..a.len()).find(|&i| a[i] != b[i]).unwrap();
        let e = (0..a.len()).rev().find(|&i| a[i] != b[i]).unwrap() + 1;
        s..e
    }

    fn text(a: &str, b: &str) -> Option<TimeKind> {
        let r = diff(a, b);
        explains(a.as_bytes(), r.clone(), b.as_bytes(), r, &no_windows())
    }

    #[test]
    fn text_formats() {
        let cases = [
            (
                "built 2026-03-03T14:02:11Z ok",
                "built 2026-03-04T09:12:55Z ok",
            ),
            (
                "Tue Mar  3 14:02:11 UTC 2026",
                "Tue Mar  3 15:12:11 UTC 2026",
            ),
            (
                "Tue Mar  3 14:02:11 UTC 2026",
                "Wed Mar  4 14:02:11 UTC 2026",
            ),
            (
                "#define DATE \"Mar  3 2026\"",
                "#define DATE \"Apr 11 2026\"",
            ),
            ("#define TIME \"14:02:11\"", "#define TIME \"14:09:50\""),
            (
                "Date: Tue, 03 Mar 2026 14:02:11 +0000",
                "Date: Tue, 03 Mar 2026 14:02:11 +0100",
            ),
            ("Copyright 2025 forge", "Copyright 2026 forge"),
            ("stamp 20260303140211 x", "stamp 20260303151003 x"),
            ("on 03/03/2026.", "on 04/03/2026."),
            ("generated 3 March 2026", "generated 9 March 2026"),
        ];
        for (a, b) in cases {
            assert_eq!(text(a, b), Some(TimeKind::Text), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn numbers_and_words_that_are_not_dates() {
        let cases = [
            ("version 1.2.3", "version 1.2.4"),
            ("count = 17", "count = 18"),
            ("hello world", "hello wurld"),
            ("size 12345", "size 12346"),
            ("year 1234", "year 1235"),
            ("id=abc2025def", "id=abc2026def"),
            ("sha 9f2025e1", "sha 9f2026e1"),
        ];
        for (a, b) in cases {
            assert_eq!(text(a, b), None, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn decimal_epochs_without_windows_must_be_recent() {
        assert_eq!(
            text("t=1767225600;", "t=1767229999;"),
            Some(TimeKind::Decimal)
        );
        assert_eq!(
            text("t=1767225600123;", "t=1767229999123;"),
            Some(TimeKind::Decimal),
            "milliseconds"
        );
        assert_eq!(
            text("t=1767225600.123456;", "t=1767225600.654321;"),
            Some(TimeKind::Decimal),
            "a fraction"
        );
        assert_eq!(text("t=0123456789;", "t=0123456788;"), None, "1973");
        assert_eq!(text("t=9767225600;", "t=9767229999;"), None, "the future");
    }

    #[test]
    fn decimal_epochs_with_windows() {
        let w = Windows {
            stored: Some(TimeWindow {
                start: 1_000_000_000,
                end: 1_000_000_100,
            }),
            rebuilt: Some(TimeWindow {
                start: 1_700_000_000,
                end: 1_700_000_100,
            }),
            now: 1_700_000_200,
        };
        let a = b"t=1000000050;";
        let b = b"t=1700000050;";
        let r = 2..12;
        assert_eq!(
            explains(a, r.clone(), b, r.clone(), &w),
            Some(TimeKind::Decimal)
        );
        let far = b"t=1300000050;";
        let r2 = diff("1000000050", "1300000050");
        let r2 = r2.start + 2..r2.end + 2;
        assert_eq!(
            explains(a, r2.clone(), far, r2, &w),
            Some(TimeKind::Decimal)
        );
        let neither = b"t=1200000050;";
        let other = b"t=1300000050;";
        assert_eq!(explains(neither, 3..4, other, 3..4, &w), None);
    }

    #[test]
    fn binary_epochs_need_a_window() {
        let start = 1_767_225_600i64;
        let mut a = vec![0xaau8; 32];
        let mut b = a.clone();
        a[8..12].copy_from_slice(&(start as u32 + 5).to_le_bytes());
        b[8..12].copy_from_slice(&(start as u32 + 900).to_le_bytes());
        let s = (0..32).find(|&i| a[i] != b[i]).unwrap();
        let e = (0..32).rev().find(|&i| a[i] != b[i]).unwrap() + 1;
        assert_eq!(explains(&a, s..e, &b, s..e, &no_windows()), None);
        let w = Windows {
            stored: Some(TimeWindow {
                start,
                end: start + 60,
            }),
            rebuilt: None,
            now: start + 1000,
        };
        assert_eq!(explains(&a, s..e, &b, s..e, &w), Some(TimeKind::Binary));
    }
}
