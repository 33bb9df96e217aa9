//! `forge realize --substituter`: the example realized in one store, exported signed, and
//! installed into another store from the cache (a directory, `file://`, a real HTTP server on
//! 127.0.0.1) without building; and every refusal, each falling back to building.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// A producer store with the example realized and exported to a cache, signed (or not).
struct Published {
    w: World,
    cache: PathBuf,
    keys: PathBuf,
    fpr: String,
}

fn publish(sign: bool) -> Published {
    let w = World::new();
    let keys = w.path().join("keys");
    let cache = w.path().join("cache-dir");
    ok(&w
        .forge()
        .args(["--example", "realize", "hello"])
        .output()
        .unwrap());
    let fpr = ok(&w
        .forge()
        .env("FORGE_KEYS", &keys)
        .args(["key", "generate", "Publisher <p@example.org>"])
        .output()
        .unwrap())
    .trim()
    .to_owned();
    let mut export = w.forge();
    export
        .env("FORGE_KEYS", &keys)
        .args(["--example", "export", "hello", "--to"])
        .arg(&cache);
    if sign {
        export.arg("--sign");
    }
    ok(&export.output().unwrap());
    Published {
        w,
        cache,
        keys,
        fpr,
    }
}

/// A `forge` command on the consumer's store `store`, trusting the keys in `keys`.
fn consumer(p: &Published, store: &Path, keys: &Path) -> Command {
    let mut c = p.w.forge();
    c.env("FORGE_STORE", store)
        .env("FORGE_KEYS", keys)
        .env("XDG_CONFIG_HOME", p.w.path().join("consumer-config"));
    c
}

/// A consumer keyring trusting the publisher's public key.
fn trusting(p: &Published) -> PathBuf {
    let keys = p.w.path().join("consumer-keys");
    let public = p.w.path().join("publisher.asc");
    let armored = ok(&p
        .w
        .forge()
        .env("FORGE_KEYS", &p.keys)
        .args(["key", "export", &p.fpr])
        .output()
        .unwrap());
    fs_err::write(&public, armored).unwrap();
    ok(&p
        .w
        .forge()
        .env("FORGE_KEYS", &keys)
        .arg("key")
        .arg("trust")
        .arg(&public)
        .output()
        .unwrap());
    keys
}

/// Realizes the example into `store` with `args`; returns the events and stderr.
fn realize_from(
    p: &Published,
    store: &Path,
    keys: &Path,
    args: &[&str],
) -> (Vec<serde_json::Value>, String, std::process::Output) {
    let o = consumer(p, store, keys)
        .args(["--example", "realize", "hello", "--json"])
        .args(args)
        .output()
        .unwrap();
    (events(&o.stdout), text(&o.stderr), o)
}

fn kinds<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn node_names(events: &[&serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .map(|e| {
            let n = e["node"].as_str().unwrap();
            n[33..].to_owned()
        })
        .collect();
    v.sort();
    v
}

/// The installed program runs with an empty environment, its RUNPATH points into `store`, and
/// the store verifies with its contents.
fn assert_installed_in(p: &Published, store: &Path, keys: &Path) -> PathBuf {
    let o = consumer(p, store, keys)
        .args(["--example", "realize", "hello"])
        .output()
        .unwrap();
    let hello = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    assert!(hello.starts_with(store), "{}", hello.display());
    assert_hello_runs(&hello);
    let runpath = runpath(&hello.join("bin/hello"));
    assert!(
        runpath.contains(&store.display().to_string())
            && !runpath.contains(&format!("{}/", p.w.store().display())),
        "{runpath}"
    );
    ok(&consumer(p, store, keys)
        .args(["verify", "--check-contents"])
        .output()
        .unwrap());
    hello
}

#[test]
fn a_signed_directory_cache_substitutes_every_built_node() {
    let p = publish(true);
    let keys = trusting(&p);
    let store = p.w.path().join("store-b");
    let cache = p.cache.display().to_string();
    let (ev, err, o) = realize_from(&p, &store, &keys, &["--substituter", &cache]);
    ok(&o);
    let subs = kinds(&ev, "substituted");
    assert_eq!(
        node_names(&subs),
        ["gcc-runtime-12.2.0", "hello-1.0", "libgreet-1.0"],
        "{err}"
    );
    for s in &subs {
        assert_eq!(s["signed_by"], serde_json::json!(p.fpr));
        assert_eq!(s["from"], serde_json::json!(format!("file://{cache}")));
    }
    // Nothing was compiled: the only node not substituted is the host compiler's link.
    let started = kinds(&ev, "started");
    assert_eq!(node_names(&started), ["gcc-12.2.0"], "{err}");
    let hello = assert_installed_in(&p, &store, &keys);
    // path-info says where it came from.
    let info = ok(&consumer(&p, &store, &keys)
        .args(["path-info", "--json"])
        .arg(&hello)
        .output()
        .unwrap());
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info[0]["substituted"]["signed_by"],
        serde_json::json!(p.fpr)
    );
    // The downloaded tarballs were not kept beside the store.
    let leftovers: Vec<_> = walk_files(&p.w.path().join("cache/forge/substitutes/sha256"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs_err::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1; killed on drop.
struct Http {
    child: Child,
    port: u16,
}

impl Http {
    fn serve(dir: &Path) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, 20, "http.server");
        Self { child, port }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_http_cache_substitutes_into_a_store_of_another_padded_length() {
    let p = publish(true);
    let keys = trusting(&p);
    let http = Http::serve(&p.cache);
    let url = format!("http://127.0.0.1:{}/", http.port);
    // A shorter paths directory than the producer's: binaries are rewritten in place.
    let store = p.w.path().join("store-short");
    let o = consumer(&p, &store, &keys)
        .args([
            "--padded-length",
            "100",
            "--example",
            "realize",
            "hello",
            "--json",
        ])
        .args(["--substituter", &url])
        .output()
        .unwrap();
    ok(&o);
    let ev = events(&o.stdout);
    assert_eq!(kinds(&ev, "substituted").len(), 3, "{}", text(&o.stderr));
    let o = consumer(&p, &store, &keys)
        .args(["--padded-length", "100", "--example", "realize", "hello"])
        .output()
        .unwrap();
    let hello = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    assert_hello_runs(&hello);
    ok(&consumer(&p, &store, &keys)
        .args(["verify", "--check-contents"])
        .output()
        .unwrap());

    // A longer one cannot fit the binaries' strings: refused with the reason, then built.
    let store = p.w.path().join("store-long");
    let (ev, err, o) = realize_from(
        &p,
        &store,
        &keys,
        &["--padded-length", "240", "--substituter", &url],
    );
    let _ = (&ev, &err);
    ok(&o);
    let ev = events(&o.stdout);
    let notes: Vec<String> = kinds(&ev, "note")
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("not substituted, building it instead") && n.contains("relocation")),
        "{notes:?}"
    );
    assert!(kinds(&ev, "finished").iter().any(|f| f["how"] == "built"));
}

/// Each refusal names its cause, registers nothing from the cache, and the node is built.
fn assert_refused_then_built(p: &Published, keys: &Path, url: &str, extra: &[&str], cause: &str) {
    let store = p.w.path().join(format!("store-{}", cause.len()));
    let _ = fs_err::remove_dir_all(&store);
    let mut args = vec!["--substituter", url];
    args.extend_from_slice(extra);
    let (ev, err, o) = realize_from(p, &store, keys, &args);
    ok(&o);
    assert!(kinds(&ev, "substituted").is_empty(), "{cause}: {err}");
    let notes: Vec<String> = kinds(&ev, "note")
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains(cause)),
        "{cause} not in {notes:#?}"
    );
    let built = kinds(&ev, "finished")
        .iter()
        .filter(|f| f["how"] == "built")
        .count();
    assert_eq!(built, 3, "{cause}: {err}");
    let s = fs_err::read_dir(store.join(".forge/logs"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(".substituted.json")
        })
        .count();
    assert_eq!(s, 0, "{cause}");
}

#[test]
fn untrusted_unsigned_tampered_and_unreachable_caches_are_refused_then_built() {
    let p = publish(true);
    let url = format!("file://{}", p.cache.display());
    // No key trusted: the refusal names the signer.
    let empty = p.w.path().join("no-keys");
    assert_refused_then_built(&p, &empty, &url, &[], &format!("untrusted key ({})", p.fpr));
    let keys = trusting(&p);

    // A server that is down.
    let port = free_port();
    assert_refused_then_built(
        &p,
        &keys,
        &format!("http://127.0.0.1:{port}"),
        &[],
        "Connection refused",
    );

    // A tampered manifest: the signature no longer matches.
    let copy = p.w.path().join("tampered-manifest");
    copy_tree(&p.cache, &copy);
    for m in walk_files(&copy.join("v3/manifests/spec")) {
        let t = fs_err::read_to_string(&m).unwrap();
        fs_err::write(
            &m,
            t.replacen("\"contentLength\":", "\"contentLength\": ", 1),
        )
        .unwrap();
    }
    assert_refused_then_built(
        &p,
        &keys,
        &format!("file://{}", copy.display()),
        &[],
        "bad signature",
    );

    // A tampered tarball: its sha256 is not the signed one.
    let copy = p.w.path().join("tampered-tarball");
    copy_tree(&p.cache, &copy);
    for b in walk_files(&copy.join("blobs")) {
        let mut bytes = fs_err::read(&b).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) && bytes.len() > 2000 {
            let n = bytes.len();
            bytes[n - 100] ^= 0xff;
            fs_err::write(&b, bytes).unwrap();
        }
    }
    assert_refused_then_built(
        &p,
        &keys,
        &format!("file://{}", copy.display()),
        &[],
        "checksum mismatch",
    );
}

#[test]
fn an_unsigned_cache_is_refused_unless_signatures_are_not_checked() {
    let p = publish(false);
    let keys = trusting(&p);
    let url = format!("file://{}", p.cache.display());
    assert_refused_then_built(&p, &keys, &url, &[], "is not signed");
    let store = p.w.path().join("store-unchecked");
    let (ev, err, o) = realize_from(
        &p,
        &store,
        &keys,
        &["--substituter", &url, "--no-check-signature"],
    );
    ok(&o);
    let subs = kinds(&ev, "substituted");
    assert_eq!(subs.len(), 3, "{err}");
    assert!(subs.iter().all(|s| s["signed_by"].is_null()));
    assert_installed_in(&p, &store, &keys);
}

fn copy_tree(from: &Path, to: &Path) {
    let s = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(s.success());
}

/// A node whose dependencies were built here still substitutes: the key is its own hash.
#[test]
fn a_node_substitutes_over_dependencies_built_locally() {
    let p = publish(true);
    let keys = trusting(&p);
    let store = p.w.path().join("store-mixed");
    // libgreet (and gcc-runtime under it) built here, without any cache.
    let o = consumer(&p, &store, &keys)
        .args(["--example", "realize", "libgreet", "--json"])
        .output()
        .unwrap();
    ok(&o);
    assert!(kinds(&events(&o.stdout), "substituted").is_empty());
    let url = p.cache.display().to_string();
    let (ev, err, o) = realize_from(&p, &store, &keys, &["--substituter", &url]);
    ok(&o);
    assert_eq!(
        node_names(&kinds(&ev, "substituted")),
        ["hello-1.0"],
        "{err}"
    );
    assert_installed_in(&p, &store, &keys);
    // Trusting the publisher's secret key file keeps only its public part: trusting never makes
    // a signing key.
    let other = p.w.path().join("keys-from-secret");
    ok(&consumer(&p, &store, &other)
        .arg("key")
        .arg("trust")
        .arg(p.keys.join(format!("secret/{}.asc", p.fpr)))
        .output()
        .unwrap());
    let listed = ok(&consumer(&p, &store, &other)
        .args(["key", "list", "--json"])
        .output()
        .unwrap());
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["fingerprint"], serde_json::json!(p.fpr));
    assert_eq!(listed[0]["secret"], serde_json::json!(false), "{listed:#}");
    assert!(!other.join(format!("secret/{}.asc", p.fpr)).exists());
}

/// Substituters also come from `FORGE_SUBSTITUTERS` and from `<config dir>/substituters`.
#[test]
fn substituters_come_from_the_environment_and_the_config_file() {
    let p = publish(true);
    let keys = trusting(&p);
    let url = format!("file://{}", p.cache.display());
    let count = |o: &std::process::Output| {
        ok(o);
        kinds(&events(&o.stdout), "substituted").len()
    };
    let o = consumer(&p, &p.w.path().join("store-env"), &keys)
        .env(
            "FORGE_SUBSTITUTERS",
            format!("file:///nonexistent-cache {url}"),
        )
        .args(["--example", "realize", "hello", "--json"])
        .output()
        .unwrap();
    assert_eq!(count(&o), 3, "{}", text(&o.stderr));
    let config = p.w.path().join("consumer-config/forge");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(
        config.join("substituters"),
        format!("# the site cache\n{url}   # signed by the publisher\n"),
    )
    .unwrap();
    let o = consumer(&p, &p.w.path().join("store-config"), &keys)
        .args(["--example", "realize", "hello", "--json"])
        .output()
        .unwrap();
    assert_eq!(count(&o), 3, "{}", text(&o.stderr));
}
