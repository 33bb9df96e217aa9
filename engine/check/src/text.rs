//! Bytes as text for the report: paths, excerpts, and whether a file is text at all.

use std::ops::Range;

use crate::report::ExcerptFormat;

/// A path or symlink target for JSON: UTF-8 as is, other bytes as `\xHH`.
pub(crate) fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// One line of text for an excerpt: control characters, backslashes and invalid UTF-8
/// escaped, so the excerpt is one printable line.
pub(crate) fn escape_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Lower-case hex bytes separated by spaces.
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `data` is text: valid UTF-8 without control characters other than tab, line
/// feed, carriage return, form feed and escape (an empty file is text).
pub(crate) fn is_text(data: &[u8]) -> bool {
    data.iter()
        .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        && std::str::from_utf8(data).is_ok()
}

/// The excerpt of both sides around a difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Excerpt {
    /// Where the stored excerpt starts.
    pub(crate) offset: u64,
    /// The 1-based line of the stored side (text only).
    pub(crate) line: Option<u64>,
    pub(crate) format: ExcerptFormat,
    pub(crate) stored: String,
    pub(crate) rebuilt: String,
}

/// Longest text excerpt, in bytes, on each side.
const TEXT_EXCERPT: usize = 160;
/// Context kept before a difference inside a long line.
const TEXT_BEFORE: usize = 48;
/// Bytes of a hex excerpt.
const HEX_EXCERPT: usize = 32;

/// The excerpt around the region `ra` of `a` and `rb` of `b` (the same place on both sides).
pub(crate) fn excerpt(
    a: &[u8],
    ra: Range<usize>,
    b: &[u8],
    rb: Range<usize>,
    text: bool,
) -> Excerpt {
    if text {
        let (sa, sa_end) = text_window(a, ra.start);
        // The rebuilt side starts at the same distance before its region, so both excerpts
        // show the same context.
        let lead = ra.start - sa;
        let at_b = rb.start.min(b.len());
        let line_start_b = memchr::memrchr(b'\n', &b[..at_b]).map_or(0, |i| i + 1);
        let line_end_b = memchr::memchr(b'\n', &b[at_b..]).map_or(b.len(), |i| at_b + i);
        let mut sb = at_b.saturating_sub(lead).max(line_start_b);
        while sb > line_start_b && (b[sb] & 0xc0) == 0x80 {
            sb -= 1;
        }
        let mut sb_end = line_end_b.min(sb + TEXT_EXCERPT);
        while sb_end < line_end_b && sb_end > sb && (b[sb_end] & 0xc0) == 0x80 {
            sb_end -= 1;
        }
        let line = a[..sa].iter().filter(|&&c| c == b'\n').count() as u64 + 1;
        Excerpt {
            offset: sa as u64,
            line: Some(line),
            format: ExcerptFormat::Text,
            stored: escape_text(&a[sa..sa_end]),
            rebuilt: escape_text(&b[sb..sb_end]),
        }
    } else {
        let mut start = ra.start / 16 * 16;
        if ra.start - start < 8 && start >= 16 {
            start -= 16;
        }
        let lead = ra.start - start;
        let sb = rb.start.saturating_sub(lead);
        Excerpt {
            offset: start as u64,
            line: None,
            format: ExcerptFormat::Hex,
            stored: hex_bytes(&a[start.min(a.len())..(start + HEX_EXCERPT).min(a.len())]),
            rebuilt: hex_bytes(&b[sb.min(b.len())..(sb + HEX_EXCERPT).min(b.len())]),
        }
    }
}

/// The part of the line around offset `at` to show: the whole line when short, else a window starting
/// a little before the difference. Never includes the line's newline.
fn text_window(data: &[u8], at: usize) -> (usize, usize) {
    let at = at.min(data.len());
    let line_start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
    let line_end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
    let mut start = line_start;
    if line_end - line_start > TEXT_EXCERPT && at - line_start > TEXT_BEFORE {
        start = at - TEXT_BEFORE;
    }
    let mut end = line_end.min(start + TEXT_EXCERPT);
    // Cut at character boundaries so the excerpt does not start or end with a broken character.
    while start > line_start && start < data.len() && (data[start] & 0xc0) == 0x80 {
        start -= 1;
    }
    while end < line_end && end > start && (data[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_only_invalid_bytes() {
        assert_eq!(display_bytes(b"lib/a\\b\xffc"), "lib/a\\b\\xffc");
        assert_eq!(display_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn text_escapes() {
        assert_eq!(escape_text(b"a\tb\\c\x1b\xfe"), "a\\tb\\\\c\\u{1b}\\xfe");
    }

    #[test]
    fn text_detection() {
        assert!(is_text(b""));
        assert!(is_text("grüße\n".as_bytes()));
        assert!(!is_text(b"a\0b"));
        assert!(!is_text(b"\xff\xfe"));
        assert!(!is_text(b"\x01\x02abc"));
        assert!(is_text(b"\x1b[1mbold\x1b[0m\r\n"));
    }

    #[test]
    fn text_excerpt_is_the_line() {
        let a = b"first\nbuilt at 12:00:01 today\nlast\n";
        let b = b"first\nbuilt at 12:09:59 today\nlast\n";
        let e = excerpt(a, 16..17, b, 16..17, true);
        assert_eq!(e.offset, 6);
        assert_eq!(e.line, Some(2));
        assert_eq!(e.stored, "built at 12:00:01 today");
        assert_eq!(e.rebuilt, "built at 12:09:59 today");
    }

    #[test]
    fn long_lines_are_cut_around_the_difference() {
        let mut a = vec![b'x'; 1000];
        a[600] = b'A';
        let mut b = a.clone();
        b[600] = b'B';
        let e = excerpt(&a, 600..601, &b, 600..601, true);
        assert_eq!(e.offset, 600 - TEXT_BEFORE as u64);
        assert_eq!(e.stored.len(), TEXT_EXCERPT);
        assert_eq!(&e.stored[TEXT_BEFORE..TEXT_BEFORE + 1], "A");
        assert_eq!(&e.rebuilt[TEXT_BEFORE..TEXT_BEFORE + 1], "B");
    }

    #[test]
    fn hex_excerpt_starts_on_a_16_byte_boundary_with_context() {
        let a: Vec<u8> = (0..100).collect();
        let mut b = a.clone();
        b[42] = 0xff;
        let e = excerpt(&a, 42..43, &b, 42..43, false);
        assert_eq!(e.offset, 32);
        assert!(e.stored.starts_with("20 21 22 23 24 25 26 27 28 29 2a 2b"));
        assert!(e.rebuilt.starts_with("20 21 22 23 24 25 26 27 28 29 ff 2b"));
        let e = excerpt(&a, 33..34, &b, 33..34, false);
        assert_eq!(
            e.offset, 16,
            "less than 8 bytes of context: one more row before"
        );
        assert_eq!(e.stored.split(' ').count(), HEX_EXCERPT);
    }
}
