//! Pairs of trees for the tests: a stored output and a rebuilt one, equal except for what a
//! test plants.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use forge_check::{CompareContext, Difference, NodeComparison, TimeWindow, compare};

/// The stored build's scratch directory as the fixtures pretend it was.
pub(crate) const STORED_BUILD: &str = "/forge-test/.forge/build/abc-demo-1.0.build";
/// The rebuild's.
pub(crate) const REBUILT_BUILD: &str = "/forge-test/.forge/build/abc-demo-1.0.check";
/// The output path.
pub(crate) const OUTPUT: &str = "/forge-test/abcdefghijklmnopqrstuvwxyz012345-demo-1.0";
/// The rebuild's temporary output, as long as `OUTPUT`.
pub(crate) const TEMP_OUTPUT: &str = "/forge-test/.forge/tmp/ijklmnopqrstuvwxyz012345-demo-1.0";
/// 2026-01-01T00:00:00Z: when the stored build ran (for a minute).
pub(crate) const STORED_TIME: i64 = 1_767_225_600;

pub(crate) struct Pair {
    _dir: tempfile::TempDir,
    pub(crate) stored: PathBuf,
    pub(crate) rebuilt: PathBuf,
    pub(crate) scratch: PathBuf,
}

impl Pair {
    /// Two equal trees holding a little of everything.
    pub(crate) fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let stored = dir.path().join("stored");
        let rebuilt = dir.path().join("rebuilt");
        let scratch = dir.path().join("scratch");
        fs_err::create_dir_all(&scratch).unwrap();
        let p = Pair {
            _dir: dir,
            stored,
            rebuilt,
            scratch,
        };
        p.both("bin/demo", b"#!/bin/sh\necho demo\n");
        p.exec("bin/demo");
        p.both("share/doc/demo/README", b"demo 1.0\n");
        p.both("lib/libdemo.so.1", &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        p.link_both("lib/libdemo.so", "libdemo.so.1");
        p
    }

    pub(crate) fn both(&self, rel: &str, data: &[u8]) {
        put(&self.stored, rel, data);
        put(&self.rebuilt, rel, data);
    }

    pub(crate) fn stored(&self, rel: &str, data: &[u8]) {
        put(&self.stored, rel, data);
    }

    pub(crate) fn rebuilt(&self, rel: &str, data: &[u8]) {
        put(&self.rebuilt, rel, data);
    }

    pub(crate) fn exec(&self, rel: &str) {
        set_exec(&self.stored.join(rel), true);
        set_exec(&self.rebuilt.join(rel), true);
    }

    pub(crate) fn link_both(&self, rel: &str, target: &str) {
        link(&self.stored, rel, target);
        link(&self.rebuilt, rel, target);
    }

    pub(crate) fn compare(&self, ctx: &CompareContext) -> NodeComparison {
        compare(&self.stored, &self.rebuilt, ctx).unwrap()
    }

    /// Compares and returns the one difference there must be.
    pub(crate) fn only(&self, ctx: &CompareContext) -> Difference {
        let c = self.compare(ctx);
        assert!(!c.reproducible());
        assert_eq!(
            c.differences.len(),
            1,
            "expected one difference, got {:#?}",
            c.differences
        );
        c.differences.into_iter().next().unwrap()
    }
}

pub(crate) fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(&p, data).unwrap();
}

pub(crate) fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs_err::remove_file(&p);
    fs_err::os::unix::fs::symlink(target, &p).unwrap();
}

pub(crate) fn set_exec(p: &Path, exec: bool) {
    let mode = if exec { 0o755 } else { 0o644 };
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The context `forge check` would pass, with the fixtures' paths and times.
pub(crate) fn ctx() -> CompareContext {
    let mut c = CompareContext::default();
    c.stored_output = Some(OUTPUT.into());
    c.rebuilt_output = Some(TEMP_OUTPUT.into());
    c.stored_build_dir = Some(STORED_BUILD.into());
    c.rebuilt_build_dir = Some(REBUILT_BUILD.into());
    c.stored_window = Some(TimeWindow {
        start: STORED_TIME,
        end: STORED_TIME + 60,
    });
    c.rebuilt_window = Some(TimeWindow {
        start: now() - 5,
        end: now() + 60,
    });
    c
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a command, failing the test with its output when it fails.
pub(crate) fn run(dir: &Path, cmd: &mut Command) -> Vec<u8> {
    let out = cmd.current_dir(dir).output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e}");
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A deterministic shuffle (the tests must not depend on luck).
pub(crate) fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}
