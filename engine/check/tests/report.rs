//! The report: JSON round trip, byte-identical output for the same situation, the rendering for
//! people (snapshots), and agreement with `store-layout/check-report.md`.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use common::*;
use forge_check::{
    CheckError, Classification, CompareContext, NodeComparison, NodeReport, Report, SCHEMA,
    TimeWindow, render_text,
};

/// A fixed time for the rebuild: 30 days after the stored build.
const REBUILT_TIME: i64 = STORED_TIME + 30 * 86_400;

/// The context with fixed windows, so reports do not depend on when the test runs.
fn fixed_ctx() -> CompareContext {
    let mut c = ctx();
    c.rebuilt_window = Some(TimeWindow {
        start: REBUILT_TIME,
        end: REBUILT_TIME + 60,
    });
    c
}

fn gz(data: &[u8], mtime: u32) -> Vec<u8> {
    let mut w = flate2::GzBuilder::new()
        .mtime(mtime)
        .write(Vec::new(), flate2::Compression::none());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn tar(members: &[(&str, &[u8])], mtime: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A node with one of every kind of difference, all of them fixed bytes.
fn mixed() -> Pair {
    let p = Pair::new();
    p.stored(
        "share/demo/built-on",
        b"demo 1.0, built on Thu Jan  1 00:00:12 UTC 2026\n",
    );
    p.rebuilt(
        "share/demo/built-on",
        b"demo 1.0, built on Sat Jan 31 00:00:40 UTC 2026\n",
    );
    p.stored(
        "lib/pkgconfig/demo.pc",
        format!("prefix={OUTPUT}\nbuild_time={}\n", STORED_TIME + 12).as_bytes(),
    );
    p.rebuilt(
        "lib/pkgconfig/demo.pc",
        format!("prefix={OUTPUT}\nbuild_time={}\n", REBUILT_TIME + 40).as_bytes(),
    );
    p.stored(
        "include/demo/config.h",
        format!("#define DEMO_SRCDIR \"{STORED_BUILD}/src\"\n").as_bytes(),
    );
    p.rebuilt(
        "include/demo/config.h",
        format!("#define DEMO_SRCDIR \"{REBUILT_BUILD}/src\"\n").as_bytes(),
    );
    p.stored(
        "share/demo/files.txt",
        b"bin/demo\nlib/libdemo.so\nshare/doc\n",
    );
    p.rebuilt(
        "share/demo/files.txt",
        b"share/doc\nbin/demo\nlib/libdemo.so\n",
    );
    // GNU ar, deterministic mode, text members (so the bytes do not depend on the compiler).
    for (i, n) in ["one.txt", "two.txt", "three.txt"].iter().enumerate() {
        fs_err::write(p.scratch.join(n), format!("member {i}\n")).unwrap();
    }
    run(
        &p.scratch,
        Command::new("ar").args(["rcD", "a.a", "one.txt", "two.txt", "three.txt"]),
    );
    run(
        &p.scratch,
        Command::new("ar").args(["rcD", "b.a", "three.txt", "one.txt", "two.txt"]),
    );
    p.stored(
        "lib/libdemo.a",
        &fs_err::read(p.scratch.join("a.a")).unwrap(),
    );
    p.rebuilt(
        "lib/libdemo.a",
        &fs_err::read(p.scratch.join("b.a")).unwrap(),
    );
    let members: [(&str, &[u8]); 2] = [("a.txt", b"a\n"), ("b.txt", b"b\n")];
    p.stored("share/demo/data.tar", &tar(&members, 1));
    p.rebuilt("share/demo/data.tar", &tar(&[members[1], members[0]], 1));
    p.stored(
        "share/man/man1/demo.1.gz",
        &gz(b".TH DEMO 1\n", STORED_TIME as u32),
    );
    p.rebuilt(
        "share/man/man1/demo.1.gz",
        &gz(b".TH DEMO 1\n", REBUILT_TIME as u32),
    );
    set_exec(&p.rebuilt.join("share/doc/demo/README"), true);
    p.stored("share/demo/data.bin", &[1, 2, 3, 4, 5, 6, 7, 8]);
    p.rebuilt("share/demo/data.bin", &[1, 2, 3, 4, 9, 9, 9, 5, 6, 7, 8]);
    p.stored("share/locale/de/demo.mo", b"de");
    p.rebuilt("share/demo/new-file", b"x");
    link(&p.rebuilt, "lib/libdemo.so", "libdemo.so.1.0");
    let blob: Vec<u8> = (0..256u32).map(|i| (i * 7 % 251) as u8).collect();
    p.stored("lib/blob", &blob);
    let mut other = blob.clone();
    other[100] ^= 0xff;
    p.rebuilt("lib/blob", &other);
    p
}

fn report_of(cmp: NodeComparison) -> Report {
    let same = Pair::new();
    let ok = same.compare(&fixed_ctx());
    Report::new(
        "demo-target",
        vec![
            NodeReport::new("demo-1.0", OUTPUT, 2, cmp),
            NodeReport::new(
                "base-0.1",
                "/forge-test/0123456789abcdfghijklmnpqrsvwxyz-base-0.1",
                2,
                ok,
            ),
        ],
    )
}

#[test]
fn every_planted_difference_is_classified() {
    let p = mixed();
    let c = p.compare(&fixed_ctx());
    let got: Vec<(&str, Classification)> = c
        .differences
        .iter()
        .map(|d| (d.path.as_str(), d.classification))
        .collect();
    use Classification::*;
    assert_eq!(
        got,
        vec![
            ("include/demo/config.h", EmbeddedBuildPath),
            ("lib/blob", Binary),
            ("lib/libdemo.a", FileOrder),
            ("lib/libdemo.so", SymlinkTarget),
            ("lib/pkgconfig/demo.pc", EmbeddedTimestamp),
            ("share/demo/built-on", EmbeddedTimestamp),
            ("share/demo/data.bin", Size),
            ("share/demo/data.tar", FileOrder),
            ("share/demo/files.txt", FileOrder),
            ("share/demo/new-file", Extra),
            ("share/doc/demo/README", Mode),
            ("share/locale", Missing),
            ("share/man/man1/demo.1.gz", EmbeddedTimestamp),
        ]
    );
}

#[test]
fn json_round_trips_and_is_byte_identical_across_runs() {
    let p = mixed();
    let one = report_of(p.compare(&fixed_ctx())).to_json();
    let two = report_of(p.compare(&fixed_ctx())).to_json();
    assert_eq!(one, two, "the same situation gives the same bytes");
    let back = Report::from_json(&one).unwrap();
    assert_eq!(back.to_json(), one);
    assert_eq!(back.summary.nodes, 2);
    assert_eq!(back.summary.not_reproducible, 1);
    assert_eq!(back.summary.differences, 13);
    assert_eq!(
        back.summary.by_classification[&Classification::FileOrder],
        3
    );
    assert_eq!(
        back.summary.by_classification.len(),
        Classification::ALL.len()
    );
    assert_eq!(back.nodes[0].name, "base-0.1", "nodes are sorted by name");
    assert!(!back.reproducible());
}

#[test]
fn other_schemas_are_refused() {
    let p = Pair::new();
    let json = report_of(p.compare(&fixed_ctx())).to_json();
    let other = json.replace(SCHEMA, "forge-check-report/2");
    assert!(matches!(
        Report::from_json(&other),
        Err(CheckError::Schema { .. })
    ));
    assert!(matches!(
        Report::from_json("{\"schema\": 1}"),
        Err(CheckError::Report(_))
    ));
}

#[test]
fn text_rendering_is_stable() {
    let p = mixed();
    let report = report_of(p.compare(&fixed_ctx()));
    insta::assert_snapshot!("mixed_text", render_text(&report));
}

#[test]
fn json_form_is_stable() {
    let p = mixed();
    let report = report_of(p.compare(&fixed_ctx()));
    insta::assert_snapshot!("mixed_json", report.to_json());
}

/// The fields documented in `store-layout/check-report.md` (the first column of each table
/// under a heading), by heading.
fn documented_fields() -> Vec<(String, BTreeSet<String>)> {
    let doc = spec();
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            out.push((h.trim().to_string(), BTreeSet::new()));
        } else if let Some(rest) = line.strip_prefix("| `")
            && let Some((field, _)) = rest.split_once('`')
            && let Some((_, set)) = out.last_mut()
        {
            set.insert(field.to_string());
        }
    }
    out
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_specification_lists_exactly_the_fields_written() {
    let p = mixed();
    let report = report_of(p.compare(&fixed_ctx()));
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let doc = documented_fields();
    let section = |name: &str| -> BTreeSet<String> {
        doc.iter()
            .find(|(h, _)| h == name)
            .unwrap_or_else(|| panic!("no section `{name}` in check-report.md"))
            .1
            .clone()
    };
    assert_eq!(keys(&v), section("Report"));
    assert_eq!(keys(&v["nodes"][1]), section("Node"));
    assert_eq!(
        keys(&v["nodes"][1]["differences"][0]),
        section("Difference")
    );
    assert_eq!(keys(&v["summary"]), section("Summary"));
    let classes: BTreeSet<String> = Classification::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(keys(&v["summary"]["by_classification"]), classes);
    assert_eq!(section("Classifications"), classes);
}

fn spec() -> String {
    fs_err::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../store-layout/check-report.md"),
    )
    .unwrap()
}

/// The text of the first fenced block after `marker`.
fn block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let at = doc.find(marker).unwrap_or_else(|| panic!("no `{marker}`"));
    let open = at + doc[at..].find("```").unwrap();
    let start = open + doc[open..].find('\n').unwrap() + 1;
    let end = start + doc[start..].find("```").unwrap();
    &doc[start..end]
}

#[test]
fn the_specification_example_is_a_valid_report() {
    let doc = spec();
    let example = block_after(&doc, "## Example");
    let report = Report::from_json(example).unwrap();
    assert_eq!(
        report.to_json(),
        example,
        "the example is in the canonical form"
    );
    assert_eq!(
        render_text(&report),
        block_after(&doc, "For people, the same report reads:"),
        "the rendering shown is the rendering"
    );
}
