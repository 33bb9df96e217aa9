//! Archives inside outputs: `ar` (static libraries), tar and zip (jar, wheel…). Their members
//! are compared as sets, so that "the same members in another order" and "the same members with
//! other times in their headers" are told apart from real differences, and a differing member is
//! explained on its own.
//!
//! Every reader here is bounded (member count, total bytes) and fails closed: a malformed
//! archive is compared as plain bytes instead.

pub(crate) mod ar;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{Cursor, Read};

use crate::explain::{Clues, Explanation, explain_bytes};
use crate::report::Classification;
use crate::text::display_bytes;

/// At most this many members are read from one archive.
pub(crate) const MAX_MEMBERS: usize = 100_000;
/// At most this many bytes are unpacked from one archive (tar, zip).
pub(crate) const MAX_UNPACKED: u64 = 256 << 20;
/// At most this many differing members are explained.
const MAX_EXPLAINED: usize = 16;

/// One member of an archive.
#[derive(Debug, Clone)]
pub(crate) struct Member<'a> {
    /// Its name (path) as stored.
    pub(crate) name: Vec<u8>,
    /// Its contents (a symlink's target for tar symlinks).
    pub(crate) data: Cow<'a, [u8]>,
    /// The modification time its header records.
    pub(crate) time: Option<i64>,
    /// Other header fields that matter (type, mode, owner), as text.
    pub(crate) meta: String,
}

/// A parsed archive: its format's name and its members in order.
#[derive(Debug)]
pub(crate) struct Archive<'a> {
    pub(crate) format: &'static str,
    pub(crate) members: Vec<Member<'a>>,
}

/// Parses `data` when it is an archive of a format both sides can share.
pub(crate) fn parse(data: &[u8]) -> Option<Archive<'_>> {
    if ar::is_ar(data) {
        return ar::parse(data).map(|members| Archive {
            format: "ar",
            members,
        });
    }
    if is_tar(data) {
        return parse_tar(data).map(|members| Archive {
            format: "tar",
            members,
        });
    }
    if data.starts_with(b"PK\x03\x04") {
        return parse_zip(data).map(|members| Archive {
            format: "zip",
            members,
        });
    }
    None
}

fn is_tar(data: &[u8]) -> bool {
    data.len() >= 512 && &data[257..262] == b"ustar"
}

fn parse_tar(data: &[u8]) -> Option<Vec<Member<'static>>> {
    let mut archive = tar::Archive::new(data);
    let mut members = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let h = entry.header();
        let kind = h.entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        // Writers leave numeric fields they do not use empty; compare what can be read.
        let meta = format!(
            "type {:?} mode {:?} uid {:?} gid {:?} user {} group {}",
            kind,
            h.mode().ok(),
            h.uid().ok(),
            h.gid().ok(),
            display_bytes(h.username().ok().flatten().unwrap_or("").as_bytes()),
            display_bytes(h.groupname().ok().flatten().unwrap_or("").as_bytes()),
        );
        let time = h.mtime().ok().and_then(|t| i64::try_from(t).ok());
        let name = entry.path_bytes().into_owned();
        let size = entry.size();
        total = total.checked_add(size)?;
        if total > MAX_UNPACKED || members.len() == MAX_MEMBERS {
            return None;
        }
        let data = match link {
            Some(l) => l,
            None => {
                let mut buf = Vec::with_capacity(usize::try_from(size).ok()?);
                entry.read_to_end(&mut buf).ok()?;
                buf
            }
        };
        members.push(Member {
            name,
            data: Cow::Owned(data),
            time,
            meta,
        });
    }
    Some(members)
}

fn parse_zip(data: &[u8]) -> Option<Vec<Member<'static>>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    if archive.len() > MAX_MEMBERS {
        return None;
    }
    let mut members = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).ok()?;
        total = total.checked_add(f.size())?;
        if total > MAX_UNPACKED {
            return None;
        }
        let (time, other_extra) = zip_times(f.last_modified(), f.extra_data().unwrap_or(&[]));
        let meta = format!(
            "mode {:?} extra {}",
            f.unix_mode(),
            crate::text::hex_bytes(&other_extra)
        );
        let name = f.name_raw().to_vec();
        let size = f.size();
        let mut buf = Vec::with_capacity(usize::try_from(size).ok()?);
        // Reading past the declared size would mean a lying header: bound it.
        (&mut f).take(size).read_to_end(&mut buf).ok()?;
        members.push(Member {
            name,
            data: Cow::Owned(buf),
            time,
            meta,
        });
    }
    Some(members)
}

/// A zip member's time: the Unix time of its extended-timestamp field (`UT`, 0x5455) when it
/// has one, else its MS-DOS date and time packed in one number. Returns the other extra fields.
fn zip_times(dos: Option<zip::DateTime>, extra: &[u8]) -> (Option<i64>, Vec<u8>) {
    let mut time = dos.map(|d| (i64::from(d.datepart()) << 16) | i64::from(d.timepart()));
    let mut other = Vec::new();
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[i], extra[i + 1]]);
        let len = usize::from(u16::from_le_bytes([extra[i + 2], extra[i + 3]]));
        let Some(body) = extra.get(i + 4..i + 4 + len) else {
            other.extend_from_slice(&extra[i..]);
            break;
        };
        if id == 0x5455 && body.len() >= 5 && body[0] & 1 == 1 {
            time = Some(i64::from(u32::from_le_bytes(
                body[1..5].try_into().expect("4 bytes"),
            )));
        } else {
            other.extend_from_slice(&extra[i..i + 4 + len]);
        }
        i += 4 + len;
    }
    (time, other)
}

/// Explains the difference between two archives of the same format from their members, or
/// `None` when the members are the same in the same order with the same headers as far as this
/// module reads them (then the difference lies in bytes it does not interpret).
pub(crate) fn compare(
    a: &Archive<'_>,
    b: &Archive<'_>,
    clues: &Clues,
    depth: u32,
) -> Option<Explanation> {
    let (ma, mb) = (&a.members, &b.members);
    let fmt = a.format;
    let same_content = |x: &Member<'_>, y: &Member<'_>| x.name == y.name && x.data == y.data;
    let times_differ = |pairs: &[(&Member<'_>, &Member<'_>)]| {
        pairs.iter().filter(|(x, y)| x.time != y.time).count()
    };
    if ma.len() == mb.len() && ma.iter().zip(mb).all(|(x, y)| same_content(x, y)) {
        let pairs: Vec<_> = ma.iter().zip(mb).collect();
        let times = times_differ(&pairs);
        let metas = pairs.iter().filter(|(x, y)| x.meta != y.meta).count();
        if times > 0 {
            let mut e = Explanation::new(
                Classification::EmbeddedTimestamp,
                format!(
                    "the same members with other modification times in the {fmt} headers ({times} of {})",
                    ma.len()
                ),
            );
            if metas > 0 {
                e.also.insert(Classification::Binary);
                e.note.push_str(&format!(
                    "; {metas} headers also differ in type, mode or owner"
                ));
            }
            return Some(e);
        }
        if metas > 0 {
            return Some(Explanation::new(
                Classification::Binary,
                format!(
                    "the same members with another type, mode or owner in {metas} {fmt} headers"
                ),
            ));
        }
        return None;
    }
    // The same members in another order?
    let mut sa: Vec<(&[u8], &[u8])> = ma.iter().map(|m| (&*m.name, &*m.data)).collect();
    let mut sb: Vec<(&[u8], &[u8])> = mb.iter().map(|m| (&*m.name, &*m.data)).collect();
    sa.sort_unstable();
    sb.sort_unstable();
    if sa == sb {
        let mut e = Explanation::new(
            Classification::FileOrder,
            format!(
                "the same {} {fmt} members in another order: stored {}; rebuilt {}",
                ma.len(),
                name_list(ma),
                name_list(mb)
            ),
        );
        // Header times of the same member, matched by name.
        let by_name = |m: &[Member<'_>]| -> BTreeSet<(Vec<u8>, Option<i64>)> {
            m.iter().map(|m| (m.name.clone(), m.time)).collect()
        };
        if by_name(ma) != by_name(mb) {
            e.also.insert(Classification::EmbeddedTimestamp);
        }
        return Some(e);
    }
    // The same names in the same order: explain the members that differ.
    if ma.len() == mb.len() && ma.iter().zip(mb).all(|(x, y)| x.name == y.name) {
        let differing: Vec<usize> = (0..ma.len())
            .filter(|&i| ma[i].data != mb[i].data)
            .collect();
        let mut first: Option<Explanation> = None;
        let mut also = BTreeSet::new();
        for &i in differing.iter().take(MAX_EXPLAINED) {
            let mut e = explain_bytes(&ma[i].data, &mb[i].data, clues, depth + 1);
            e.members.insert(0, display_bytes(&ma[i].name));
            if first.is_none() {
                first = Some(e);
            } else {
                also.insert(e.class);
                also.extend(e.also);
            }
        }
        let mut e = first?;
        let pairs: Vec<_> = ma.iter().zip(mb).collect();
        if times_differ(&pairs) > 0 {
            also.insert(Classification::EmbeddedTimestamp);
        }
        also.remove(&e.class);
        e.also.extend(also);
        e.note = format!(
            "{} of {} {fmt} members differ; in `{}`: {}",
            differing.len(),
            ma.len(),
            e.members[0],
            e.note
        );
        return Some(e);
    }
    // Members only on one side.
    let names =
        |m: &[Member<'_>]| -> BTreeSet<Vec<u8>> { m.iter().map(|m| m.name.clone()).collect() };
    let (na, nb) = (names(ma), names(mb));
    let only = |x: &BTreeSet<Vec<u8>>, y: &BTreeSet<Vec<u8>>| -> String {
        let v: Vec<String> = x.difference(y).take(5).map(|n| display_bytes(n)).collect();
        let n = x.difference(y).count();
        match n {
            0 => "none".to_string(),
            n if n > v.len() => format!("{} and {} more", v.join(", "), n - v.len()),
            _ => v.join(", "),
        }
    };
    Some(Explanation::unexplained(format!(
        "the {fmt} members differ: only in the stored archive: {}; only in the rebuilt archive: {}",
        only(&na, &nb),
        only(&nb, &na)
    )))
}

/// The first member names, for notes.
fn name_list(m: &[Member<'_>]) -> String {
    const SHOWN: usize = 6;
    let mut s: Vec<String> = m
        .iter()
        .take(SHOWN)
        .map(|m| display_bytes(&m.name))
        .collect();
    if m.len() > SHOWN {
        s.push(format!("… ({} more)", m.len() - SHOWN));
    }
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_ut_field_gives_the_time_and_other_fields_stay() {
        // UT with mtime, then a 0x7875 (uid/gid) field.
        let mut extra = vec![0x55, 0x54, 5, 0, 1];
        extra.extend_from_slice(&1_767_225_600u32.to_le_bytes());
        extra.extend_from_slice(&[0x75, 0x78, 3, 0, 1, 0, 0]);
        let (t, other) = zip_times(None, &extra);
        assert_eq!(t, Some(1_767_225_600));
        assert_eq!(other, vec![0x75, 0x78, 3, 0, 1, 0, 0]);
        let (t, other) = zip_times(None, &[0x55, 0x54, 200, 0]);
        assert_eq!(t, None, "a truncated field is kept as bytes, not read");
        assert_eq!(other.len(), 4);
    }
}
