//! Downloads into the source cache against a real HTTP server on 127.0.0.1 (see `server.rs`),
//! `file://` URLs, mirrors, and a download killed with SIGKILL.

mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use forge_fetch::{FetchError, FetchOptions, SourceCache};
use server::{Fault, Request, Server};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Bytes that differ everywhere, so a misplaced range shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn options(mirrors: Vec<String>) -> FetchOptions {
    FetchOptions {
        mirrors,
        retries: 3,
        backoff: Duration::from_millis(5),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..FetchOptions::default()
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs_err::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Nothing in the cache but what `fetch` verified.
fn assert_nothing_kept(cache: &Path) {
    assert_eq!(listing(&cache.join("sha256")), Vec::<String>::new());
    assert_eq!(listing(&cache.join("partial")), Vec::<String>::new());
}

fn range(n: usize) -> Option<String> {
    Some(format!("bytes={n}-"))
}

#[test]
fn a_download_lands_under_its_digest() {
    let server = Server::start();
    let body = content(300_000, 1);
    server.serve("/dl/pkg-1.0.tar.gz", &body);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let url = server.url("/dl/pkg-1.0.tar.gz");
    let got = cache.fetch("pkg-1.0.tar.gz", &sha(&body), &[url]).unwrap();
    assert_eq!(got, tmp.path().join("sha256").join(sha(&body)));
    assert_eq!(fs_err::read(&got).unwrap(), body);
    assert_eq!(listing(&tmp.path().join("partial")), Vec::<String>::new());
    assert_eq!(
        server.requests(),
        [Request {
            path: "/dl/pkg-1.0.tar.gz".into(),
            range: None
        }]
    );
    // A second fetch is served by the cache, with any digest spelling.
    let again = cache
        .fetch("pkg-1.0.tar.gz", &sha(&body).to_uppercase(), &[])
        .unwrap();
    assert_eq!(again, got);
    assert_eq!(cache.get(&sha(&body)), Some(got));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn server_errors_are_retried_with_back_off() {
    let server = Server::start();
    let body = content(10_000, 2);
    server.serve("/f.tar.xz", &body);
    server.fault("/f.tar.xz", Fault::Status(500));
    server.fault("/f.tar.xz", Fault::Status(503));
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("f.tar.xz", &sha(&body), &[server.url("/f.tar.xz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(server.paths().len(), 3);

    // Out of retries: the error lists the attempt and why it failed.
    let server = Server::start();
    server.serve("/f.tar.xz", &body);
    for _ in 0..3 {
        server.fault("/f.tar.xz", Fault::Status(500));
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let url = server.url("/f.tar.xz");
    let err = cache
        .fetch("f.tar.xz", &sha(&body), std::slice::from_ref(&url))
        .unwrap_err();
    match &err {
        FetchError::Unavailable { attempts, .. } => {
            assert_eq!(attempts.len(), 1);
            assert!(attempts[0].starts_with(&url), "{attempts:?}");
            assert!(
                attempts[0].contains("HTTP 500 (after 3 attempts)"),
                "{attempts:?}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(server.paths().len(), 3);
    assert_eq!(listing(&tmp.path().join("sha256")), Vec::<String>::new());
}

#[test]
fn not_found_is_not_retried() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let url = server.url("/missing.tar.gz");
    let err = cache
        .fetch("missing.tar.gz", &sha(b"x"), std::slice::from_ref(&url))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("{url}: HTTP 404")), "{msg}");
    assert_eq!(server.paths(), ["/missing.tar.gz"]);
    // Nowhere to look at all says so.
    let err = cache.fetch("orphan.tar.gz", &sha(b"y"), &[]).unwrap_err();
    assert!(
        err.to_string().contains("no URL and no mirror to try"),
        "{err}"
    );
}

#[test]
fn a_download_cut_mid_body_resumes_with_a_range_request() {
    let server = Server::start();
    let body = content(200_000, 3);
    server.serve("/big.tar.gz", &body);
    server.fault("/big.tar.gz", Fault::CutAfter(70_000));
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("big.tar.gz", &sha(&body), &[server.url("/big.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range, range(70_000));
    assert_eq!(listing(&tmp.path().join("partial")), Vec::<String>::new());
}

#[test]
fn progress_does_not_use_up_retries() {
    // Four cuts in a row with three retries: each attempt got further, so the download finishes.
    let server = Server::start();
    let body = content(100_000, 4);
    server.serve("/flaky.zip", &body);
    for _ in 0..4 {
        server.fault("/flaky.zip", Fault::CutAfter(20_000));
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("flaky.zip", &sha(&body), &[server.url("/flaky.zip")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    let ranges: Vec<_> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(
        ranges,
        [
            None,
            range(20_000),
            range(40_000),
            range(60_000),
            range(80_000)
        ]
    );
}

#[test]
fn a_stalled_body_times_out_and_resumes() {
    let server = Server::start();
    let body = content(100_000, 5);
    server.serve("/stall.tar.bz2", &body);
    server.fault(
        "/stall.tar.bz2",
        Fault::Stall(30_000, Duration::from_secs(30)),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.read_timeout = Duration::from_millis(300);
    let cache = SourceCache::new(tmp.path(), opts);
    let started = Instant::now();
    let got = cache
        .fetch(
            "stall.tar.bz2",
            &sha(&body),
            &[server.url("/stall.tar.bz2")],
        )
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?} on a stalled server",
        started.elapsed()
    );
    assert_eq!(fs_err::read(got).unwrap(), body);
    let reqs = server.requests();
    assert_eq!(reqs.last().unwrap().range, range(30_000), "{reqs:?}");
}

#[test]
fn a_checksum_mismatch_shows_url_and_digests_and_keeps_nothing() {
    let server = Server::start();
    let expected = content(50_000, 6);
    let served = content(50_000, 7);
    server.serve("/pkg-2.0.tar.gz", &served);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let url = server.url("/pkg-2.0.tar.gz");
    let err = cache
        .fetch(
            "pkg-2.0.tar.gz",
            &sha(&expected),
            std::slice::from_ref(&url),
        )
        .unwrap_err();
    match &err {
        FetchError::Mismatch {
            url: u,
            expected: e,
            actual: a,
        } => {
            assert_eq!(u, &url);
            assert_eq!(e, &sha(&expected));
            assert_eq!(a, &sha(&served));
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    for part in [url.as_str(), &sha(&expected), &sha(&served)] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_nothing_kept(tmp.path());
    // A mismatch is final: no retries.
    assert_eq!(server.paths().len(), 1);
}

#[test]
fn an_unreachable_url_is_reported_with_the_attempt() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/pkg.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.retries = 2;
    let cache = SourceCache::new(tmp.path(), opts);
    let err = cache
        .fetch("pkg.tar.gz", &sha(b"pkg"), std::slice::from_ref(&url))
        .unwrap_err();
    match &err {
        FetchError::Unavailable {
            name,
            sha256,
            attempts,
        } => {
            assert_eq!(name, "pkg.tar.gz");
            assert_eq!(sha256, &sha(b"pkg"));
            assert_eq!(attempts.len(), 1);
            assert!(attempts[0].starts_with(&format!("{url}: ")), "{attempts:?}");
            assert!(attempts[0].ends_with("(after 2 attempts)"), "{attempts:?}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.to_string().contains(&url));
    assert_nothing_kept(tmp.path());
}

#[test]
fn mirrors_are_tried_by_digest_then_by_name_then_upstream() {
    let body = content(20_000, 8);
    let hex = sha(&body);
    let by_digest = format!("/mirror/sha256/{hex}");
    let by_name = "/mirror/pkg-3.0.tar.gz";
    let upstream = "/upstream/pkg-3.0.tar.gz";

    // The digest layout first: nothing else is asked.
    let server = Server::start();
    for p in [by_digest.as_str(), by_name, upstream] {
        server.serve(p, &body);
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![server.url("/mirror/")]));
    let got = cache
        .fetch("pkg-3.0.tar.gz", &hex, &[server.url(upstream)])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(server.paths(), [by_digest.as_str()]);

    // Not there by digest: by name.
    let server = Server::start();
    server.serve(by_name, &body);
    server.serve(upstream, &body);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![server.url("/mirror")]));
    cache
        .fetch("pkg-3.0.tar.gz", &hex, &[server.url(upstream)])
        .unwrap();
    assert_eq!(server.paths(), [by_digest.as_str(), by_name]);

    // Other bytes under that name (a repack): not an error, just not here.
    let server = Server::start();
    server.serve(by_name, &content(20_000, 9));
    server.serve(upstream, &body);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![server.url("/mirror")]));
    let got = cache
        .fetch("pkg-3.0.tar.gz", &hex, &[server.url(upstream)])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(server.paths(), [by_digest.as_str(), by_name, upstream]);
    assert_eq!(listing(&tmp.path().join("partial")), Vec::<String>::new());

    // Other bytes under the digest (a damaged or planted entry): that mirror is passed over,
    // the recipe's URL still serves the file.
    let server = Server::start();
    server.serve(&by_digest, &content(20_000, 10));
    server.serve(upstream, &body);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![server.url("/mirror")]));
    let got = cache
        .fetch("pkg-3.0.tar.gz", &hex, &[server.url(upstream)])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(server.paths(), [by_digest.as_str(), by_name, upstream]);
    assert_eq!(listing(&tmp.path().join("partial")), Vec::<String>::new());

    // With nowhere else to look, the failure says what the mirror held.
    let server = Server::start();
    let planted = content(20_000, 10);
    server.serve(&by_digest, &planted);
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![server.url("/mirror")]));
    let err = cache.fetch("pkg-3.0.tar.gz", &hex, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{}: different content (sha256 {})",
            server.url(&by_digest),
            sha(&planted)
        )),
        "{msg}"
    );
    assert_nothing_kept(tmp.path());
}

#[test]
fn a_cached_file_with_other_bytes_is_removed_and_fetched_again() {
    let body = content(30_000, 40);
    let hex = sha(&body);
    let server = Server::start();
    server.serve("/pkg.tar.gz", &body);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(tmp.path().join("sha256")).unwrap();
    fs_err::write(
        tmp.path().join("sha256").join(&hex),
        b"planted, not the source",
    )
    .unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("pkg.tar.gz", &hex, &[server.url("/pkg.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(&got).unwrap(), body);
    assert_eq!(server.paths(), ["/pkg.tar.gz"]);

    // Damaged again, with nowhere to fetch from: the error names the cached file.
    fs_err::write(&got, b"flipped").unwrap();
    let err = cache.fetch("pkg.tar.gz", &hex, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "{}: the cached file had other bytes",
            got.display()
        )),
        "{msg}"
    );
    assert!(!got.exists(), "the bad entry is removed");
}

#[test]
fn an_endless_body_is_cut_at_the_size_bound_and_nothing_is_kept() {
    let server = Server::start();
    server.serve("/endless.tar.gz", &content(64 * 1024, 41));
    server.fault("/endless.tar.gz", Fault::Endless);
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.max_bytes = 4 << 20;
    let cache = SourceCache::new(tmp.path(), opts);
    let started = Instant::now();
    let err = cache
        .fetch(
            "endless.tar.gz",
            &sha(b"x"),
            &[server.url("/endless.tar.gz")],
        )
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    let msg = err.to_string();
    assert!(
        msg.contains("the body grew past 4.0 MiB, more than the 4.0 MiB a download may have"),
        "{msg}"
    );
    // Not retried: the same server would send the same endless body.
    assert_eq!(server.paths().len(), 1);
    assert_nothing_kept(tmp.path());
}

#[test]
fn an_announced_length_above_the_bound_is_refused_before_the_body() {
    let server = Server::start();
    let body = content(300_000, 42);
    server.serve("/big.tar.gz", &body);
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.max_bytes = 100_000;
    let cache = SourceCache::new(tmp.path(), opts);
    let err = cache
        .fetch("big.tar.gz", &sha(&body), &[server.url("/big.tar.gz")])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("the server announces 293.0 KiB, more than the 97.7 KiB"),
        "{msg}"
    );
    assert_eq!(server.paths().len(), 1);
    assert_nothing_kept(tmp.path());
}

#[test]
fn a_trickle_fails_the_low_speed_limit_without_counting_as_progress() {
    let server = Server::start();
    let body = content(10_000, 43);
    server.serve("/trickle.tar.gz", &body);
    // One byte every 20 ms: 50 B/s, forever as far as the client can tell.
    server.slow("/trickle.tar.gz", Some((1, Duration::from_millis(20))));
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.retries = 2;
    opts.low_speed_limit = 1000;
    opts.low_speed_time = Duration::from_millis(300);
    let cache = SourceCache::new(tmp.path(), opts);
    let started = Instant::now();
    let err = cache
        .fetch(
            "trickle.tar.gz",
            &sha(&body),
            &[server.url("/trickle.tar.gz")],
        )
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("too slow: "), "{msg}");
    assert!(msg.contains("under 1000 B/s"), "{msg}");
    assert!(msg.contains("(after 2 attempts)"), "{msg}");
    // Each attempt grew the partial file, yet only the two allowed were made.
    assert_eq!(server.paths().len(), 2);
}

#[test]
fn one_location_gives_up_at_its_deadline() {
    let server = Server::start();
    let body = content(4_000_000, 44);
    server.serve("/slow.tar.gz", &body);
    // 100 KB/s: fast enough for the speed floor, 40 s for the whole file.
    server.slow("/slow.tar.gz", Some((2_000, Duration::from_millis(20))));
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options(vec![]);
    opts.deadline = Duration::from_millis(800);
    let cache = SourceCache::new(tmp.path(), opts);
    let started = Instant::now();
    let err = cache
        .fetch("slow.tar.gz", &sha(&body), &[server.url("/slow.tar.gz")])
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("gave up after 0 s, the limit for one location"),
        "{msg}"
    );
    assert_eq!(server.paths().len(), 1);
}

#[test]
fn clean_partial_deletes_only_what_no_process_is_downloading() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let idle = sha(b"idle");
    let busy = sha(b"busy");
    for d in ["partial", "locks"] {
        fs_err::create_dir_all(tmp.path().join(d)).unwrap();
    }
    let part = |stem: &str| tmp.path().join("partial").join(format!("{stem}.part"));
    fs_err::write(part(&idle), vec![0u8; 1000]).unwrap();
    fs_err::write(part(&busy), b"in progress").unwrap();
    // A download of `busy` is under way: it holds the digest's lock.
    let lock = fs_err::File::create(tmp.path().join("locks").join(format!("{busy}.lock"))).unwrap();
    lock.file().lock().unwrap();
    // An import by a process that is gone, and one by a live process (this one).
    fs_err::write(part("import-4194305"), b"orphan").unwrap();
    let mine = format!("import-{}", std::process::id());
    fs_err::write(part(&mine), b"live").unwrap();

    let found = cache.clean_partial(true).unwrap();
    let removed = cache.clean_partial(false).unwrap();
    assert_eq!(found, removed, "a dry run finds what a run deletes");
    let mut expect = vec![(part(&idle), 1000), (part("import-4194305"), 6)];
    expect.sort();
    assert_eq!(removed, expect);
    let mut left = vec![format!("{busy}.part"), format!("{mine}.part")];
    left.sort();
    assert_eq!(listing(&tmp.path().join("partial")), left);
    drop(lock);
    assert_eq!(cache.clean_partial(false).unwrap(), vec![(part(&busy), 11)]);
}

#[test]
fn mirrors_are_tried_in_order_and_may_be_directories() {
    let body = content(5_000, 11);
    let hex = sha(&body);
    let server = Server::start();
    let local = tempfile::tempdir().unwrap();
    fs_err::create_dir(local.path().join("sha256")).unwrap();
    fs_err::write(local.path().join("sha256").join(&hex), &body).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = vec![
        server.url("/empty-mirror"),
        format!("file://{}", local.path().display()),
    ];
    let cache = SourceCache::new(tmp.path(), options(mirrors));
    let got = cache
        .fetch("pkg.tar.gz", &hex, &[server.url("/upstream/pkg.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(
        server.paths(),
        [
            format!("/empty-mirror/sha256/{hex}"),
            "/empty-mirror/pkg.tar.gz".to_string()
        ]
    );
}

#[test]
fn file_urls_are_read_and_checked() {
    let body = content(8_000, 12);
    let hex = sha(&body);
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("with space");
    fs_err::create_dir(&dir).unwrap();
    fs_err::write(dir.join("pkg.tar.gz"), &body).unwrap();
    let encoded = format!("file://{}/with%20space/pkg.tar.gz", src.path().display());

    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache.fetch("pkg.tar.gz", &hex, &[encoded]).unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);

    // Missing: unavailable, saying so.
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let missing = format!("file://{}/nope.tar.gz", src.path().display());
    let err = cache
        .fetch("nope.tar.gz", &hex, std::slice::from_ref(&missing))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{missing}: no such file")),
        "{err}"
    );

    // Other bytes: a mismatch naming the URL, nothing kept.
    let plain = format!("file://{}", dir.join("pkg.tar.gz").display());
    let wrong = sha(b"something else");
    let err = cache
        .fetch("pkg.tar.gz", &wrong, std::slice::from_ref(&plain))
        .unwrap_err();
    match err {
        FetchError::Mismatch {
            url,
            expected,
            actual,
        } => {
            assert_eq!(url, plain);
            assert_eq!(expected, wrong);
            assert_eq!(actual, hex);
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert_nothing_kept(tmp.path());
}

#[test]
fn add_file_checks_the_digest() {
    let body = content(1_000, 13);
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("local.tar");
    fs_err::write(&path, &body).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let err = cache.add_file(&path, &sha(b"other")).unwrap_err();
    assert!(matches!(err, FetchError::Mismatch { .. }), "{err:?}");
    assert_nothing_kept(tmp.path());
    let got = cache.add_file(&path, &sha(&body)).unwrap();
    assert_eq!(got, cache.path_for(&sha(&body)));
    assert_eq!(fs_err::read(got).unwrap(), body);
}

#[test]
fn digests_that_are_not_sha256_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    for bad in ["", "abc", "../../etc/passwd", &"g".repeat(64)] {
        let err = cache.fetch("x.tar.gz", bad, &[]).unwrap_err();
        assert!(
            matches!(err, FetchError::BadDigest { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(cache.get(bad), None);
    }
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

fn partial(cache: &Path, hex: &str) -> PathBuf {
    cache.join("partial").join(format!("{hex}.part"))
}

#[test]
fn a_stale_partial_file_is_resumed() {
    let server = Server::start();
    let body = content(120_000, 14);
    let hex = sha(&body);
    server.serve("/p.tar.zst", &body);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::create_dir(tmp.path().join("partial")).unwrap();
    fs_err::write(partial(tmp.path(), &hex), &body[..45_000]).unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("p.tar.zst", &hex, &[server.url("/p.tar.zst")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(
        server.requests(),
        [Request {
            path: "/p.tar.zst".into(),
            range: range(45_000)
        }]
    );
    assert!(!partial(tmp.path(), &hex).exists());
}

#[test]
fn a_partial_file_that_does_not_verify_is_fetched_again_from_the_start() {
    // The prefix is not the file's (another server's bytes, or a re-release): the resumed result
    // cannot verify, and one full download settles it.
    let server = Server::start();
    let body = content(60_000, 15);
    let hex = sha(&body);
    server.serve("/q.tar.gz", &body);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::create_dir(tmp.path().join("partial")).unwrap();
    fs_err::write(partial(tmp.path(), &hex), content(10_000, 16)).unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("q.tar.gz", &hex, &[server.url("/q.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    let ranges: Vec<_> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [range(10_000), None]);
}

#[test]
fn a_server_that_ignores_or_misreads_the_range_does_not_corrupt_the_file() {
    for fault in [Fault::IgnoreRange, Fault::WrongRange] {
        let server = Server::start();
        let body = content(40_000, 17);
        let hex = sha(&body);
        server.serve("/r.tar.xz", &body);
        server.fault("/r.tar.xz", fault.clone());
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir(tmp.path().join("partial")).unwrap();
        fs_err::write(partial(tmp.path(), &hex), &body[..15_000]).unwrap();
        let cache = SourceCache::new(tmp.path(), options(vec![]));
        let got = cache
            .fetch("r.tar.xz", &hex, &[server.url("/r.tar.xz")])
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(fs_err::read(got).unwrap(), body, "{fault:?}");
    }
}

#[test]
fn a_partial_file_that_is_already_whole_is_not_downloaded_again() {
    // Killed after the last byte but before the rename: the server answers 416.
    let server = Server::start();
    let body = content(30_000, 18);
    let hex = sha(&body);
    server.serve("/w.tar.gz", &body);
    let tmp = tempfile::tempdir().unwrap();
    fs_err::create_dir(tmp.path().join("partial")).unwrap();
    fs_err::write(partial(tmp.path(), &hex), &body).unwrap();
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("w.tar.gz", &hex, &[server.url("/w.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    assert_eq!(server.requests().len(), 1);
}

// ---- kill -9 during a download ----

/// Set in the child: the test binary re-executed to run only the download, until killed.
const CHILD_ENV: &str = "FORGE_FETCH_TEST_CHILD";

/// The child's side: download until killed. Exits 3 if the download ever ends, which the
/// parent sees as "not killed by a signal".
fn download_until_killed(spec: &str) -> ! {
    let mut it = spec.split('\n');
    let (dir, hex, url) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let cache = SourceCache::new(dir, options(vec![]));
    let _ = cache.fetch("slow.tar.gz", hex, &[url.to_owned()]);
    std::process::exit(3);
}

/// Kills the child on the way out, whatever happens in between.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_during_a_download_leaves_only_a_partial_file() {
    use std::os::unix::process::ExitStatusExt;
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        download_until_killed(&spec);
    }
    let server = Server::start();
    let body = content(4 << 20, 19);
    let hex = sha(&body);
    server.serve("/slow.tar.gz", &body);
    // 8 KiB every 10 ms: several seconds for the whole file.
    server.slow("/slow.tar.gz", Some((8 << 10, Duration::from_millis(10))));
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!(
        "{}\n{hex}\n{}",
        tmp.path().display(),
        server.url("/slow.tar.gz")
    );
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_9_during_a_download_leaves_only_a_partial_file",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, spec)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let part = partial(tmp.path(), &hex);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs_err::metadata(&part).map_or(0, |m| m.len()) < 128 << 10 {
        assert!(Instant::now() < deadline, "the child never got going");
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the child ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");

    // Nothing verified, nothing half-written under the digest: only the partial file, a prefix.
    assert_eq!(listing(&tmp.path().join("sha256")), Vec::<String>::new());
    assert_eq!(
        listing(&tmp.path().join("partial")),
        [format!("{hex}.part")]
    );
    let prefix = fs_err::read(&part).unwrap();
    assert!(prefix.len() >= 128 << 10 && prefix.len() < body.len());
    assert_eq!(&prefix[..], &body[..prefix.len()]);

    // Rerunning completes, from where the killed download stopped.
    server.slow("/slow.tar.gz", None);
    let cache = SourceCache::new(tmp.path(), options(vec![]));
    let got = cache
        .fetch("slow.tar.gz", &hex, &[server.url("/slow.tar.gz")])
        .unwrap();
    assert_eq!(fs_err::read(got).unwrap(), body);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range, range(prefix.len()));
    assert_eq!(listing(&tmp.path().join("partial")), Vec::<String>::new());
}
