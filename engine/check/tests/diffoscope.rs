//! The diffoscope integration, with stand-in programs (diffoscope itself is optional and not
//! needed to test how forge runs it, bounds it and records what it says).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use forge_check::{DiffoscopeOptions, DiffoscopeOutcome, diffoscope_available, run_diffoscope};

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs_err::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn opts(program: PathBuf) -> DiffoscopeOptions {
    DiffoscopeOptions {
        program,
        timeout: Duration::from_secs(20),
        max_output: 1024,
        max_files: 10,
    }
}

#[test]
fn its_output_and_exit_status_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let differ = script(
        dir.path(),
        "differ",
        "echo \"args: $*\"; echo \"--- $3\"; echo \"+++ $4\"; exit 1",
    );
    let out = run_diffoscope(Path::new("/a/x"), Path::new("/b/x"), &opts(differ)).unwrap();
    assert_eq!(
        out,
        DiffoscopeOutcome::Differences("args: --text - /a/x /b/x\n--- /a/x\n+++ /b/x\n".into())
    );
    let same = script(dir.path(), "same", "exit 0");
    assert_eq!(
        run_diffoscope(Path::new("/a"), Path::new("/b"), &opts(same)).unwrap(),
        DiffoscopeOutcome::Same
    );
    let broken = script(dir.path(), "broken", "echo 'no such file' >&2; exit 2");
    assert_eq!(
        run_diffoscope(Path::new("/a"), Path::new("/b"), &opts(broken)).unwrap(),
        DiffoscopeOutcome::Failed {
            code: Some(2),
            stderr: "no such file\n".into()
        }
    );
}

#[test]
fn output_is_cut_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let chatty = script(dir.path(), "chatty", "yes line | head -n 100000; exit 1");
    let DiffoscopeOutcome::Differences(text) =
        run_diffoscope(Path::new("/a"), Path::new("/b"), &opts(chatty)).unwrap()
    else {
        panic!("expected differences");
    };
    assert!(text.starts_with("line\nline\n"));
    assert!(text.ends_with("\n[output cut]"));
    assert_eq!(text.len(), 1024 + "\n[output cut]".len());
}

#[test]
fn a_run_that_overstays_is_killed_with_its_helpers() {
    let dir = tempfile::tempdir().unwrap();
    // A helper in the background holds the pipe open, like diffoscope's own subprocesses.
    let slow = script(
        dir.path(),
        "slow",
        "echo started; sleep 30 & sleep 30; echo never",
    );
    let mut o = opts(slow);
    o.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let out = run_diffoscope(Path::new("/a"), Path::new("/b"), &o).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(out, DiffoscopeOutcome::TimedOut("started\n".into()));
}

#[test]
fn a_missing_program_is_an_error_when_run_directly() {
    let err = run_diffoscope(
        Path::new("/a"),
        Path::new("/b"),
        &opts("/nonexistent/diffoscope".into()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/diffoscope"), "{err}");
}

#[test]
fn compare_puts_its_output_on_differing_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let fake = script(
        dir.path(),
        "fake",
        "echo \"compared $(basename $3)\"; exit 1",
    );
    let p = Pair::new();
    p.stored("share/a.txt", b"1\n");
    p.rebuilt("share/a.txt", b"2\n");
    p.stored("share/b.txt", b"1\n");
    p.rebuilt("share/b.txt", b"2\n");
    p.stored("share/gone", b"x");
    set_exec(&p.rebuilt.join("share/doc/demo/README"), true);
    let mut ctx = ctx();
    let mut o = opts(fake);
    o.max_files = 1;
    ctx.diffoscope = Some(o);
    let c = p.compare(&ctx);
    let got: Vec<(&str, Option<&str>)> = c
        .differences
        .iter()
        .map(|d| (d.path.as_str(), d.diffoscope.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("share/a.txt", Some("compared a.txt\n")),
            ("share/b.txt", None),           // over max_files
            ("share/doc/demo/README", None), // mode only
            ("share/gone", None),            // one side only
        ]
    );
    assert!(c.notes.is_empty());
}

#[test]
fn compare_notes_a_missing_diffoscope_and_goes_on() {
    let p = Pair::new();
    p.stored("share/a.txt", b"1\n");
    p.rebuilt("share/a.txt", b"2\n");
    let mut ctx = ctx();
    ctx.diffoscope = Some(opts("/nonexistent/diffoscope".into()));
    let c = p.compare(&ctx);
    assert_eq!(c.differences.len(), 1);
    assert_eq!(c.differences[0].diffoscope, None);
    assert_eq!(
        c.notes,
        ["diffoscope was asked for but `/nonexistent/diffoscope` is not installed"]
    );
}

#[test]
fn the_real_diffoscope_when_installed() {
    if !diffoscope_available() {
        // Optional: then it must really be absent, not overlooked.
        assert!(
            std::process::Command::new("diffoscope")
                .arg("--version")
                .output()
                .is_err(),
            "diffoscope runs but was not found"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    fs_err::write(&a, "demo\nbuilt 12:00:01\n").unwrap();
    fs_err::write(&b, "demo\nbuilt 12:07:44\n").unwrap();
    let o = opts("diffoscope".into());
    let DiffoscopeOutcome::Differences(text) = run_diffoscope(&a, &b, &o).unwrap() else {
        panic!("diffoscope should see the difference");
    };
    assert!(text.contains("-built 12:00:01"), "{text}");
    assert!(text.contains("+built 12:07:44"), "{text}");
    assert_eq!(run_diffoscope(&a, &a, &o).unwrap(), DiffoscopeOutcome::Same);
}
