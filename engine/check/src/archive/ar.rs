//! The `ar` format (static libraries): GNU/System V and BSD variants.
//!
//! ```text
//! "!<arch>\n"
//! per member: a 60-byte header, then `size` bytes, then one `\n` if `size` is odd
//!   name[16] date[12] uid[6] gid[6] mode[8] size[10] "`\n"     (decimal/octal ASCII, space-padded)
//! GNU: "/" symbol index, "/SYM64/" 64-bit index, "//" long-name table,
//!      "name/" short name, "/123" long name at offset 123 of the table (ending "/\n")
//! BSD: "__.SYMDEF" or "__.SYMDEF SORTED" symbol index, "#1/N" name in the first N data bytes
//! ```
//!
//! Symbol indexes and the long-name table are not members: their bytes depend on the order of
//! the members, which is what the caller wants to compare.

use std::borrow::Cow;

use super::{MAX_MEMBERS, Member};

const MAGIC: &[u8] = b"!<arch>\n";
const HEADER: usize = 60;

/// Whether `data` starts like an `ar` archive (thin archives are not: they hold no data).
pub(crate) fn is_ar(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// The members of an `ar` archive, in order, or `None` when it is malformed.
pub(crate) fn parse(data: &[u8]) -> Option<Vec<Member<'_>>> {
    if !is_ar(data) {
        return None;
    }
    let mut pos = MAGIC.len();
    let mut long_names: &[u8] = &[];
    let mut members = Vec::new();
    while pos < data.len() {
        // Some writers pad the end with a newline.
        if data.len() - pos == 1 && data[pos] == b'\n' {
            break;
        }
        let h = data.get(pos..pos + HEADER)?;
        if &h[58..60] != b"`\n" {
            return None;
        }
        let size: usize = ascii_number(&h[48..58], 10)?.try_into().ok()?;
        let body_start = pos + HEADER;
        let body = data.get(body_start..body_start.checked_add(size)?)?;
        pos = body_start + size + (size & 1);
        let raw_name = &h[0..16];
        let name_field = trim_right(raw_name);
        let (name, contents): (Vec<u8>, &[u8]) = if name_field == b"/"
            || name_field == b"/SYM64/"
            || name_field.starts_with(b"__.SYMDEF")
        {
            continue;
        } else if name_field == b"//" {
            long_names = body;
            continue;
        } else if let Some(n) = name_field.strip_prefix(b"#1/") {
            let n: usize = ascii_number(n, 10)?.try_into().ok()?;
            let name = body.get(..n)?;
            let name = &name[..memchr::memchr(0, name).unwrap_or(name.len())];
            if name.starts_with(b"__.SYMDEF") {
                continue;
            }
            (name.to_vec(), &body[n..])
        } else if name_field.len() > 1
            && name_field[0] == b'/'
            && name_field[1..].iter().all(u8::is_ascii_digit)
        {
            let off: usize = ascii_number(&name_field[1..], 10)?.try_into().ok()?;
            let rest = long_names.get(off..)?;
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let name = rest[..end].strip_suffix(b"/").unwrap_or(&rest[..end]);
            (name.to_vec(), body)
        } else {
            let name = name_field.strip_suffix(b"/").unwrap_or(name_field);
            (name.to_vec(), body)
        };
        if members.len() == MAX_MEMBERS {
            return None;
        }
        members.push(Member {
            name,
            data: Cow::Borrowed(contents),
            time: ascii_number(&h[16..28], 10),
            meta: format!(
                "uid {} gid {} mode {}",
                String::from_utf8_lossy(trim_right(&h[28..34])),
                String::from_utf8_lossy(trim_right(&h[34..40])),
                String::from_utf8_lossy(trim_right(&h[40..48])),
            ),
        });
    }
    Some(members)
}

fn trim_right(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &s[..end]
}

/// A space-padded ASCII number; an empty field is 0.
fn ascii_number(field: &[u8], radix: u32) -> Option<i64> {
    let s = std::str::from_utf8(field).ok()?.trim();
    if s.is_empty() {
        return Some(0);
    }
    i64::from_str_radix(s, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, date: u64, size: usize) -> Vec<u8> {
        let h = format!(
            "{name:<16}{date:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
            0, 0, 644
        );
        assert_eq!(h.len(), HEADER);
        h.into_bytes()
    }

    fn archive(members: &[(&str, u64, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (name, date, data) in members {
            out.extend(header(name, *date, data.len()));
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn gnu_names_symbol_index_and_long_names() {
        let long = b"a_rather_long_member_name.o/\nshort_too_but_long_.o/\n";
        let a = archive(&[
            ("/", 0, b"\0\0\0\x01\0\0\0\x08sym\0"),
            ("//", 0, long),
            ("/0", 5, b"one"),
            ("x.o/", 6, b"two!"),
            ("/29", 7, b"three"),
        ]);
        let m = parse(&a).unwrap();
        let names: Vec<_> = m.iter().map(|m| String::from_utf8_lossy(&m.name)).collect();
        assert_eq!(
            names,
            [
                "a_rather_long_member_name.o",
                "x.o",
                "short_too_but_long_.o"
            ]
        );
        assert_eq!(&*m[0].data, b"one");
        assert_eq!(&*m[2].data, b"three");
        assert_eq!(m[1].time, Some(6));
    }

    #[test]
    fn bsd_names() {
        let a = archive(&[("#1/12", 0, b"long_name.o\0body")]);
        let m = parse(&a).unwrap();
        assert_eq!(m[0].name, b"long_name.o");
        assert_eq!(&*m[0].data, b"body");
    }

    #[test]
    fn malformed_archives_are_refused() {
        let good = archive(&[("a.o/", 0, b"abc")]);
        assert!(parse(&good).is_some());
        assert!(parse(&good[..good.len() - 2]).is_none(), "truncated body");
        let mut bad = good.clone();
        bad[8 + 58] = b'x';
        assert!(parse(&bad).is_none(), "bad header end");
        let mut bad = good.clone();
        bad[8 + 48] = b'z';
        assert!(parse(&bad).is_none(), "bad size");
        let long_ref = archive(&[("/99", 0, b"abc")]);
        assert!(parse(&long_ref).is_none(), "long name without a table");
    }
}
