//! The `ar` reader of `forge check` (`forge_check::ar_members`) on arbitrary bytes: nothing may
//! panic, the reader must not invent data (every member's contents are a slice of the input, and
//! members do not overlap and come in file order), and it must not accept what is not `ar`.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(members) = forge_check::ar_members(data) else {
        return;
    };
    assert!(
        data.starts_with(b"!<arch>\n"),
        "members of a file that is not ar"
    );
    let base = data.as_ptr() as usize;
    let mut after_last = 8;
    for (name, contents, _time) in &members {
        let Cow::Borrowed(slice) = contents else {
            panic!(
                "member `{}` copied, not borrowed",
                String::from_utf8_lossy(name)
            );
        };
        // Where the contents lie in the input (an empty slice may point anywhere).
        if slice.is_empty() {
            continue;
        }
        let start = (slice.as_ptr() as usize).wrapping_sub(base);
        let end = start.wrapping_add(slice.len());
        assert!(
            start <= end && end <= data.len(),
            "member `{}` is not inside the input",
            String::from_utf8_lossy(name)
        );
        // Each member's data follows its own 60-byte header, after the previous member.
        assert!(
            start >= after_last + 60,
            "member `{}` at {start} overlaps what precedes it (ends at {after_last})",
            String::from_utf8_lossy(name)
        );
        after_last = end;
    }
});
