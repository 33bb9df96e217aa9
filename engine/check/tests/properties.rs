//! Properties: any reordering of lines is `file-order`; any pair of byte strings (also ones that
//! start like archives or gzip data) is compared without a panic, and exactly when it differs.

mod common;

use forge_check::{Classification, compare};
use proptest::prelude::*;

fn compare_files(a: &[u8], b: &[u8]) -> forge_check::NodeComparison {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    fs_err::write(&pa, a).unwrap();
    fs_err::write(&pb, b).unwrap();
    compare(&pa, &pb, &common::ctx()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reordered_lines_are_file_order(
        lines in proptest::collection::btree_set("[a-z0-9 ./_-]{1,30}", 2..40),
        seed in any::<u64>(),
    ) {
        let lines: Vec<String> = lines.into_iter().collect();
        let mut shuffled = lines.clone();
        common::shuffle(&mut shuffled, seed);
        prop_assume!(shuffled != lines);
        let a = lines.join("\n") + "\n";
        let b = shuffled.join("\n") + "\n";
        let c = compare_files(a.as_bytes(), b.as_bytes());
        prop_assert_eq!(c.differences.len(), 1);
        prop_assert_eq!(c.differences[0].classification, Classification::FileOrder);
    }

    #[test]
    fn any_bytes_compare_without_panic(
        prefix in prop_oneof![
            Just(Vec::new()),
            Just(b"!<arch>\n".to_vec()),
            Just(vec![0x1f, 0x8b, 8, 0]),
            Just(b"PK\x03\x04".to_vec()),
            Just(b"\x7fELF\x02\x01".to_vec()),
        ],
        a in proptest::collection::vec(any::<u8>(), 0..600),
        b in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let a = [prefix.clone(), a].concat();
        let b = [prefix, b].concat();
        let c = compare_files(&a, &b);
        prop_assert_eq!(c.reproducible(), a == b);
        prop_assert_eq!(c.differences.len(), usize::from(a != b));
        if let Some(d) = c.differences.first() {
            let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            prop_assert_eq!(d.offset, Some(first as u64));
        }
    }

    #[test]
    fn one_changed_byte_is_found_where_it_is(
        data in proptest::collection::vec(any::<u8>(), 1..5000),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let i = at.index(data.len());
        let mut other = data.clone();
        other[i] ^= flip;
        let c = compare_files(&data, &other);
        let d = &c.differences[0];
        prop_assert_eq!(d.offset, Some(i as u64));
        let start = d.excerpt_offset.unwrap();
        prop_assert!(start <= i as u64, "the excerpt shows the difference");
    }
}
