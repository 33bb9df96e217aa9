//! Just enough ELF for forge: the strings Spack relocates in binaries (the `PT_INTERP` path and
//! the `DT_RPATH` / `DT_RUNPATH` entries), the sections `forge check` names when it explains a
//! difference, and GNU build-ID notes.
//!
//! Bounded reads only: every offset comes from untrusted bytes and is checked against the buffer;
//! a malformed file gives `None` or an empty list, never a panic. 32- and 64-bit, little- and
//! big-endian.

use std::ops::Range;

/// The ELF magic.
pub const MAGIC: &[u8; 4] = b"\x7fELF";

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const SHT_NOBITS: u32 = 8;

/// A NUL-terminated string in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfString {
    /// File offset of its first byte.
    pub offset: usize,
    /// Its bytes, without the NUL.
    pub value: Vec<u8>,
}

/// The relocatable strings of an ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfStrings {
    /// `PT_INTERP`.
    pub interp: Option<ElfString>,
    /// `DT_RPATH` and `DT_RUNPATH` values (each `:`-separated).
    pub rpaths: Vec<ElfString>,
}

/// A program header: type, file offset, virtual address, size in the file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// An ELF file's header fields, read with bounds checks.
struct Reader<'a> {
    data: &'a [u8],
    is64: bool,
    le: bool,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        if !is_elf(data) || data.len() < 52 {
            return None;
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            _ => return None,
        };
        let le = match data[5] {
            1 => true,
            2 => false,
            _ => return None,
        };
        Some(Self { data, is64, le })
    }

    fn uint(&self, off: usize, size: usize) -> Option<u64> {
        let b = self.data.get(off..off.checked_add(size)?)?;
        let mut v = 0u64;
        if self.le {
            for x in b.iter().rev() {
                v = (v << 8) | u64::from(*x);
            }
        } else {
            for x in b {
                v = (v << 8) | u64::from(*x);
            }
        }
        Some(v)
    }

    fn word(&self, off: usize) -> Option<u64> {
        self.uint(off, if self.is64 { 8 } else { 4 })
    }

    fn usize(&self, off: usize, size: usize) -> Option<usize> {
        usize::try_from(self.uint(off, size)?).ok()
    }

    fn segments(&self) -> Option<Vec<Segment>> {
        let (phoff, phentsize, phnum) = if self.is64 {
            (
                self.usize(0x20, 8)?,
                self.usize(0x36, 2)?,
                self.usize(0x38, 2)?,
            )
        } else {
            (
                self.usize(0x1c, 4)?,
                self.usize(0x2a, 2)?,
                self.usize(0x2c, 2)?,
            )
        };
        let mut out = Vec::with_capacity(phnum);
        for i in 0..phnum {
            let h = phoff.checked_add(i.checked_mul(phentsize)?)?;
            out.push(if self.is64 {
                Segment {
                    kind: self.uint(h, 4)? as u32,
                    offset: self.uint(h + 8, 8)?,
                    vaddr: self.uint(h + 16, 8)?,
                    filesz: self.uint(h + 32, 8)?,
                }
            } else {
                Segment {
                    kind: self.uint(h, 4)? as u32,
                    offset: self.uint(h + 4, 4)?,
                    vaddr: self.uint(h + 8, 4)?,
                    filesz: self.uint(h + 16, 4)?,
                }
            });
        }
        Some(out)
    }

    /// Section `i`: name offset, type, file range.
    fn section(&self, shoff: usize, entsize: usize, i: usize) -> Option<(u32, u32, Range<usize>)> {
        let h = shoff.checked_add(i.checked_mul(entsize)?)?;
        let name = self.uint(h, 4)? as u32;
        let kind = self.uint(h + 4, 4)? as u32;
        let (off, size) = if self.is64 {
            (self.usize(h + 0x18, 8)?, self.usize(h + 0x20, 8)?)
        } else {
            (self.usize(h + 0x10, 4)?, self.usize(h + 0x14, 4)?)
        };
        let end = off.checked_add(size)?;
        (end <= self.data.len()).then_some((name, kind, off..end))
    }

    fn sections(&self) -> Option<Vec<(Vec<u8>, Range<usize>)>> {
        let (shoff, entsize, count, strndx, min_entsize) = if self.is64 {
            (
                self.usize(0x28, 8)?,
                self.usize(0x3a, 2)?,
                self.usize(0x3c, 2)?,
                self.usize(0x3e, 2)?,
                0x40,
            )
        } else {
            (
                self.usize(0x20, 4)?,
                self.usize(0x2e, 2)?,
                self.usize(0x30, 2)?,
                self.usize(0x32, 2)?,
                0x28,
            )
        };
        if entsize < min_entsize || count == 0 || strndx >= count {
            return None;
        }
        let (_, _, names) = self.section(shoff, entsize, strndx)?;
        let names = &self.data[names];
        let mut out = Vec::new();
        for i in 1..count {
            let (name, kind, range) = self.section(shoff, entsize, i)?;
            if kind == SHT_NOBITS {
                continue;
            }
            let n = names.get(name as usize..)?;
            out.push((n[..memchr::memchr(0, n)?].to_vec(), range));
        }
        Some(out)
    }
}

fn cstr(data: &[u8], off: usize) -> Option<ElfString> {
    let rest = data.get(off..)?;
    let end = memchr::memchr(0, rest)?;
    Some(ElfString {
        offset: off,
        value: rest[..end].to_vec(),
    })
}

/// Whether `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// The interpreter and run paths. `None` when `data` is not a well-formed ELF file.
pub fn relocatable_strings(data: &[u8]) -> Option<ElfStrings> {
    let r = Reader::new(data)?;
    let segments = r.segments()?;
    let mut out = ElfStrings::default();
    for s in &segments {
        if s.kind == PT_INTERP {
            out.interp = cstr(data, usize::try_from(s.offset).ok()?);
        }
    }
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Some(out);
    };
    let entsize = if r.is64 { 16 } else { 8 };
    let dyn_off = usize::try_from(dynamic.offset).ok()?;
    let count = usize::try_from(dynamic.filesz).ok()? / entsize;
    let mut strtab_vaddr = None;
    let mut paths = Vec::new();
    for i in 0..count {
        let e = dyn_off.checked_add(i * entsize)?;
        let tag = r.word(e)?;
        let val = r.word(e + entsize / 2)?;
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab_vaddr = Some(val),
            DT_RPATH | DT_RUNPATH => paths.push(val),
            _ => {}
        }
    }
    if paths.is_empty() {
        return Some(out);
    }
    let vaddr = strtab_vaddr?;
    let load = segments.iter().find(|s| {
        s.kind == PT_LOAD && s.vaddr <= vaddr && vaddr < s.vaddr.saturating_add(s.filesz)
    })?;
    // The load segment's offset is untrusted too: near 2^64 the sum overflows.
    let strtab = (vaddr - load.vaddr).checked_add(load.offset)?;
    for p in paths {
        let off = usize::try_from(strtab.checked_add(p)?).ok()?;
        out.rpaths.push(cstr(data, off)?);
    }
    Some(out)
}

/// The sections of an ELF file that have contents in it: name and file range. Empty for
/// anything that is not ELF or is malformed.
pub fn sections(data: &[u8]) -> Vec<(Vec<u8>, Range<usize>)> {
    Reader::new(data)
        .and_then(|r| r.sections())
        .unwrap_or_default()
}

/// The ranges of the description of every GNU build-ID note in a little-endian ELF file: a
/// hash of the rest of the file, so it differs whenever anything else does. Found by their
/// byte pattern, so stripped section tables do not hide them.
pub fn build_ids(data: &[u8]) -> Vec<Range<usize>> {
    if !is_elf(data) || data.get(5) != Some(&1) {
        return Vec::new();
    }
    let mut out = Vec::new();
    // namesz = 4, then descsz, then type NT_GNU_BUILD_ID = 3, then "GNU\0".
    for pos in memchr::memmem::find_iter(data, b"\x03\x00\x00\x00GNU\x00") {
        if pos < 8 || data[pos - 8..pos - 4] != [4, 0, 0, 0] {
            continue;
        }
        let descsz = u32::from_le_bytes(data[pos - 4..pos].try_into().expect("4 bytes")) as usize;
        let start = pos + 8;
        if (8..=64).contains(&descsz) && start + descsz <= data.len() {
            out.push(start..start + descsz);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(relocatable_strings(b"not elf"), None);
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[2, 1, 1]);
        v.resize(64, 0xff);
        // Program header table far beyond the end.
        assert_eq!(relocatable_strings(&v), None);
        assert!(sections(&v).is_empty());
        assert!(build_ids(&v).is_empty());
    }

    #[test]
    fn reads_a_real_binary() {
        // The test binary itself is a dynamically linked ELF with an interpreter.
        let exe = std::env::current_exe().unwrap();
        let data = fs_err::read(&exe).unwrap();
        let s = relocatable_strings(&data).unwrap();
        let interp = s.interp.unwrap();
        assert!(interp.value.starts_with(b"/"), "{interp:?}");
        assert_eq!(
            &data[interp.offset..interp.offset + interp.value.len()],
            &interp.value[..]
        );
        let names: Vec<Vec<u8>> = sections(&data).into_iter().map(|(n, _)| n).collect();
        for want in [&b".text"[..], b".dynamic", b".interp"] {
            assert!(names.iter().any(|n| n == want), "{want:?} in {names:?}");
        }
    }

    #[test]
    fn build_id_notes_are_found() {
        let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf.resize(64, 0);
        elf.extend_from_slice(&[4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0]);
        elf.extend_from_slice(b"GNU\0");
        let start = elf.len();
        elf.extend_from_slice(&[0xab; 20]);
        elf.extend_from_slice(&[0; 16]);
        assert_eq!(build_ids(&elf), vec![start..start + 20]);
        assert!(build_ids(&elf[4..]).is_empty());
    }
}
