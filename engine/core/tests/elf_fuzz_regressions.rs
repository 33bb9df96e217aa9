//! Inputs that once made the ELF reader panic (`fuzz/fuzz_targets/elf.rs` minimized them), in
//! `tests/fuzz-regressions/elf/`. Each must now be read without a panic, with everything the
//! reader returns inside the input.

use std::path::Path;

use forge_core::elf;

fn read_within_bounds(data: &[u8]) {
    if let Some(s) = elf::relocatable_strings(data) {
        for string in s.interp.iter().chain(&s.rpaths) {
            let end = string.offset + string.value.len();
            assert_eq!(&data[string.offset..end], &string.value[..]);
            assert_eq!(data[end], 0);
        }
    }
    for (_, range) in elf::sections(data) {
        assert!(range.end <= data.len(), "{range:?}");
    }
    for range in elf::build_ids(data) {
        assert!(range.end <= data.len(), "{range:?}");
    }
}

fn case(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/elf");
    fs_err::read(dir.join(name)).unwrap()
}

#[test]
fn every_minimized_input_reads_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/elf");
    let mut n = 0;
    for e in fs_err::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        read_within_bounds(&fs_err::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

/// A 64-bit file whose `PT_LOAD` segment holding the dynamic string table claims a file offset
/// near 2^64: locating the run paths overflowed (a panic with overflow checks, a wrapped and
/// wrong offset without). Such a file is malformed: no strings.
#[test]
fn string_table_offset_near_the_top_of_u64_is_malformed() {
    let data = case("strtab-offset-overflow");
    assert_eq!(elf::relocatable_strings(&data), None);
}
