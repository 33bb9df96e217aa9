//! The ELF reader (`forge_core::elf`) on arbitrary bytes: nothing may panic, and everything it
//! returns must point into the input — every string at its offset, NUL-terminated there, and
//! every section and build-ID range inside the file.

#![no_main]

use forge_core::elf;
use libfuzzer_sys::fuzz_target;

fn check_string(data: &[u8], s: &elf::ElfString) {
    let end = s
        .offset
        .checked_add(s.value.len())
        .expect("string end overflows");
    assert_eq!(
        data.get(s.offset..end),
        Some(&s.value[..]),
        "string at {} is not the input's bytes",
        s.offset
    );
    assert_eq!(
        data.get(end),
        Some(&0),
        "string at {} is not NUL-terminated",
        s.offset
    );
    assert!(!s.value.contains(&0), "string at {} holds a NUL", s.offset);
}

fuzz_target!(|data: &[u8]| {
    if let Some(strings) = elf::relocatable_strings(data) {
        assert!(elf::is_elf(data), "strings from a file that is not ELF");
        if let Some(i) = &strings.interp {
            check_string(data, i);
        }
        for r in &strings.rpaths {
            check_string(data, r);
        }
    }
    for (name, range) in elf::sections(data) {
        assert!(
            range.start <= range.end && range.end <= data.len(),
            "section {range:?}"
        );
        assert!(!name.contains(&0), "section name holds a NUL");
    }
    let mut last = 0;
    for range in elf::build_ids(data) {
        assert!(
            range.start <= range.end && range.end <= data.len(),
            "build ID {range:?}"
        );
        assert!(
            (8..=64).contains(&range.len()),
            "build ID of {} bytes",
            range.len()
        );
        assert!(range.start >= last, "build IDs out of order");
        last = range.start;
    }
});
