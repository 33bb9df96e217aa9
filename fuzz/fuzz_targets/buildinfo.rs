//! `.spack/binary_distribution` (`forge_spack::BuildInfo`) both ways:
//!
//! - the input as text: `from_yaml` must not panic, and whatever it accepts must survive
//!   `to_yaml` and `from_yaml` again unchanged;
//! - the input as the fields of a `BuildInfo` (any strings, any map): `to_yaml` then
//!   `from_yaml` must give it back exactly, and `hash_to_prefix_of` (what `cache verify` reads,
//!   which also takes Spack's flow style) the same map;
//! - `hash_to_prefix_of` on the input as text must not panic.

#![no_main]

use std::collections::BTreeMap;

use forge_spack::BuildInfo;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn strings(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| u.arbitrary()).collect()
}

fn build_info(u: &mut Unstructured<'_>) -> Result<BuildInfo> {
    let mut hash_to_prefix = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=4)? {
        hash_to_prefix.insert(u.arbitrary()?, u.arbitrary()?);
    }
    Ok(BuildInfo {
        buildpath: u.arbitrary()?,
        relative_prefix: u.arbitrary()?,
        hash_to_prefix,
        relocate_binaries: strings(u)?,
        relocate_textfiles: strings(u)?,
        relocate_links: strings(u)?,
        sbang_install_path: u.arbitrary()?,
        hardlinks_deduped: u.arbitrary()?,
    })
}

fn round_trip(info: &BuildInfo) {
    let yaml = info.to_yaml();
    match BuildInfo::from_yaml(&yaml) {
        Ok(back) => assert_eq!(&back, info, "round trip through\n{yaml}"),
        Err(e) => panic!("to_yaml wrote what from_yaml refuses ({e}):\n{yaml}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(info) = BuildInfo::from_yaml(text) {
            round_trip(&info);
        }
        // The reader `cache verify` uses, which also takes Spack's flow-style form.
        let _ = forge_spack::fuzzing::hash_to_prefix_of(text);
    }
    if let Ok(info) = build_info(&mut Unstructured::new(data)) {
        round_trip(&info);
        assert_eq!(
            forge_spack::fuzzing::hash_to_prefix_of(&info.to_yaml()).as_ref(),
            Ok(&info.hash_to_prefix),
            "hash_to_prefix_of disagrees with from_yaml"
        );
    }
});
