//! Just enough ELF to find, and rewrite in place, the strings Spack relocates in binaries: the
//! `DT_RPATH` / `DT_RUNPATH` entries of the dynamic section and the `PT_INTERP` path.
//!
//! Bounded reads only: every offset comes from untrusted bytes and is checked against the
//! buffer. 32- and 64-bit, little- and big-endian.

/// The ELF magic.
pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// A NUL-terminated string in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfString {
    /// File offset of its first byte.
    pub(crate) offset: usize,
    /// Its bytes, without the NUL.
    pub(crate) value: Vec<u8>,
}

/// The relocatable strings of an ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ElfStrings {
    /// `PT_INTERP`.
    pub(crate) interp: Option<ElfString>,
    /// `DT_RPATH` and `DT_RUNPATH` values (each `:`-separated).
    pub(crate) rpaths: Vec<ElfString>,
}

struct Reader<'a> {
    data: &'a [u8],
    is64: bool,
    le: bool,
}

impl Reader<'_> {
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
pub(crate) fn is_elf(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// Finds the interpreter and run paths. `None` when `data` is not a well-formed ELF file.
pub(crate) fn parse(data: &[u8]) -> Option<ElfStrings> {
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
    let r = Reader { data, is64, le };
    let (phoff, phentsize, phnum) = if is64 {
        (r.uint(0x20, 8)?, r.uint(0x36, 2)?, r.uint(0x38, 2)?)
    } else {
        (r.uint(0x1c, 4)?, r.uint(0x2a, 2)?, r.uint(0x2c, 2)?)
    };
    let phoff = usize::try_from(phoff).ok()?;
    let phentsize = usize::try_from(phentsize).ok()?;
    // (type, offset, vaddr, filesz)
    let mut segments = Vec::new();
    for i in 0..usize::try_from(phnum).ok()? {
        let h = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let seg = if is64 {
            (
                r.uint(h, 4)? as u32,
                r.uint(h + 8, 8)?,
                r.uint(h + 16, 8)?,
                r.uint(h + 32, 8)?,
            )
        } else {
            (
                r.uint(h, 4)? as u32,
                r.uint(h + 4, 4)?,
                r.uint(h + 8, 4)?,
                r.uint(h + 16, 4)?,
            )
        };
        segments.push(seg);
    }
    let mut out = ElfStrings::default();
    for &(t, off, _, _) in &segments {
        if t == PT_INTERP {
            out.interp = cstr(data, usize::try_from(off).ok()?);
        }
    }
    let Some(&(_, dyn_off, _, dyn_size)) = segments.iter().find(|s| s.0 == PT_DYNAMIC) else {
        return Some(out);
    };
    let entsize = if is64 { 16 } else { 8 };
    let dyn_off = usize::try_from(dyn_off).ok()?;
    let count = usize::try_from(dyn_size).ok()? / entsize;
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
    let (_, seg_off, seg_vaddr, _) = segments
        .iter()
        .find(|&&(t, _, v, sz)| t == PT_LOAD && v <= vaddr && vaddr < v.saturating_add(sz))?;
    let strtab = vaddr - seg_vaddr + seg_off;
    for p in paths {
        let off = usize::try_from(strtab.checked_add(p)?).ok()?;
        out.rpaths.push(cstr(data, off)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(parse(b"not elf"), None);
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[2, 1, 1]);
        v.resize(64, 0xff);
        // Program header table far beyond the end.
        assert_eq!(parse(&v), None);
    }

    #[test]
    fn reads_a_real_binary() {
        // The test binary itself is a dynamically linked ELF with an interpreter.
        let exe = std::env::current_exe().unwrap();
        let data = fs_err::read(&exe).unwrap();
        let s = parse(&data).unwrap();
        let interp = s.interp.unwrap();
        assert!(interp.value.starts_with(b"/"), "{interp:?}");
        assert_eq!(
            &data[interp.offset..interp.offset + interp.value.len()],
            &interp.value[..]
        );
    }
}
