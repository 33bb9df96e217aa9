//! Crash safety: an export killed with SIGKILL at any moment leaves a cache in which every
//! manifest's blobs are complete and the index names only published manifests; the next export
//! recovers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use forge_spack::{
    ExportOptions, Problem, TrustedKeys, VerifyOptions, export, gzip::GzipOptions, verify_cache,
};

const ENV: &str = "FORGE_SPACK_CRASH_BASE";

fn opts() -> ExportOptions {
    ExportOptions {
        max_consumer_root: 40,
        rebuild: true,
        gzip: GzipOptions {
            level: 6,
            threads: 2,
        },
        ..ExportOptions::default()
    }
}

fn prepare(base: &Path) -> Fixture {
    let f = fixture(base, 160);
    // Enough data that an export takes a while.
    let big: Vec<u8> = (0..2_000_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes())
        .collect();
    write(
        &f.graph.node(f.app).prefix().unwrap().join("lib/big.dat"),
        &big,
        false,
    );
    f
}

/// Run by `killed_exports_never_publish_partial_data` in a child process: exports in a loop
/// until killed.
#[test]
#[ignore = "helper run in a child process"]
fn crash_child() {
    let Some(base) = std::env::var_os(ENV) else {
        return;
    };
    let base = Path::new(&base);
    let run = base.join(format!("run-{}", std::process::id()));
    let f = prepare(&run);
    // The parent times its kill from here.
    #[allow(clippy::print_stdout)]
    {
        println!("ready");
    }
    loop {
        export(&f.graph, &[f.app], &base.join("cache"), None, &opts()).unwrap();
    }
}

fn check_invariants(cache: &Path) {
    if !cache.join("v3").exists() {
        return;
    }
    let lax = VerifyOptions {
        require_signatures: false,
    };
    let report = verify_cache(cache, &TrustedKeys::new(), &lax).unwrap();
    let bad: Vec<&Problem> = report
        .problems
        .iter()
        .filter(|p| {
            // Published manifests the index does not list yet, or no index yet: the index is
            // written last, so both are expected after a crash.
            !matches!(p, Problem::NotInIndex { .. })
                && !matches!(p, Problem::IndexUnreadable { reason, .. } if reason.contains("No such file"))
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn killed_exports_never_publish_partial_data() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let exe = std::env::current_exe().unwrap();
    let mut published = 0;
    for ms in [
        0u64, 10, 25, 45, 70, 100, 140, 190, 250, 330, 430, 560, 620, 700, 780, 870,
    ] {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, base)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert_ne!(std::io::BufRead::read_line(&mut out, &mut line).unwrap(), 0);
        }
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check_invariants(&base.join("cache"));
        if base
            .join("cache/v3/manifests/index/index.manifest.json")
            .exists()
        {
            published += 1;
        }
    }
    // Some kills landed after a complete export, some before.
    assert!(published > 0 && published < 16, "{published}");
    // A clean export afterwards recovers: temporary leftovers removed, everything consistent.
    let f = prepare(&base.join("final"));
    export(&f.graph, &[f.app], &base.join("cache"), None, &opts()).unwrap();
    // Nothing of forge's is left in the published cache: no temporary file, no lock.
    let tmpdir = base.join("cache/.forge-tmp");
    assert!(
        !tmpdir.exists(),
        "{:?}",
        fs_err::read_dir(&tmpdir).map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
    );
    let report = verify_cache(
        &base.join("cache"),
        &TrustedKeys::new(),
        &VerifyOptions {
            require_signatures: false,
        },
    )
    .unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
}
