//! What `cache verify` reads from an install tarball (`forge_spack::fuzzing::tar_facts`: the
//! tar walked block by block, `.spack/spec.json` and `.spack/binary_distribution` parsed) on
//! arbitrary bytes. Nothing may panic or hang, and what it accepts is consistent: an absolute
//! prefix that `binary_distribution` maps the spec's hash to, and a non-empty name and hash.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((prefix, name, hash)) = forge_spack::fuzzing::tar_facts(data) {
        assert!(prefix.starts_with('/'), "prefix `{prefix}`");
        assert!(!name.is_empty() && !hash.is_empty(), "`{name}` `{hash}`");
    }
});
