//! `cache verify` on a good cache and on a corpus of hostile ones.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use forge_spack::{
    ExportOptions, ExportReport, Keyring, MEDIA_SPEC, MEDIA_TARBALL, Manifest, Problem, Signer,
    TrustedKeys, VerifyError, VerifyOptions, export, verify_cache,
};
use serde_json::Value;

struct Signed {
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    report: ExportReport,
    trusted: TrustedKeys,
    signer: Signer,
    attacker: Signer,
}

fn signed_cache() -> Signed {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let ring = Keyring::open(tmp.path().join("keys")).unwrap();
    ring.generate("forge <forge@example.invalid>").unwrap();
    let signer = ring.signer(None).unwrap();
    let evil = Keyring::open(tmp.path().join("evil")).unwrap();
    evil.generate("mallory <mallory@example.invalid>").unwrap();
    let attacker = evil.signer(None).unwrap();
    let cache = tmp.path().join("cache");
    let o = ExportOptions {
        max_consumer_root: 40,
        ..ExportOptions::default()
    };
    let report = export(&f.graph, &[f.app], &cache, Some(&signer), &o).unwrap();
    Signed {
        trusted: ring.trusted().unwrap(),
        _tmp: tmp,
        cache,
        report,
        signer,
        attacker,
    }
}

fn check(s: &Signed) -> Vec<Problem> {
    verify_cache(&s.cache, &s.trusted, &VerifyOptions::default())
        .unwrap()
        .problems
}

fn app_manifest(s: &Signed) -> (PathBuf, Manifest) {
    let rel = s.report.specs[1].manifest.clone();
    let m = Manifest::parse(&fs_err::read_to_string(s.cache.join(&rel)).unwrap()).unwrap();
    (rel, m)
}

#[test]
fn a_good_cache_passes() {
    let s = signed_cache();
    let r = verify_cache(&s.cache, &s.trusted, &VerifyOptions::default()).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.manifests, 2);
    assert_eq!(r.signatures[&s.signer.fingerprint()], 2);
    // Key blob, key index, 2 × (tarball + spec), index.
    assert_eq!(r.blobs, 7);
}

#[test]
fn a_tampered_blob_is_named() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    let rec = m.record(MEDIA_TARBALL).unwrap();
    let blob = s.cache.join(rec.relative_path().unwrap());
    let mut data = fs_err::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x20;
    fs_err::write(&blob, data).unwrap();
    let p = check(&s);
    assert_eq!(p.len(), 1, "{p:?}");
    let Problem::ChecksumMismatch {
        manifest,
        blob: b,
        expected,
        ..
    } = &p[0]
    else {
        panic!("{p:?}")
    };
    assert_eq!(manifest, &rel);
    assert_eq!(b, &PathBuf::from(rec.relative_path().unwrap()));
    assert_eq!(expected, &rec.checksum);
    assert!(p[0].to_string().contains(&rec.checksum));
}

#[test]
fn a_tampered_manifest_fails_its_signature() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    let path = s.cache.join(&rel);
    // Point the spec record at libdep's spec blob: a valid blob, a forged manifest.
    let other = Manifest::parse(
        &fs_err::read_to_string(s.cache.join(&s.report.specs[0].manifest)).unwrap(),
    )
    .unwrap();
    let text = fs_err::read_to_string(&path).unwrap();
    let forged = text.replace(
        &m.record(MEDIA_SPEC).unwrap().checksum,
        &other.record(MEDIA_SPEC).unwrap().checksum,
    );
    assert_ne!(forged, text);
    fs_err::write(&path, forged).unwrap();
    let p = check(&s);
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::BadSignature { manifest, .. } if manifest == &rel)),
        "{p:?}"
    );
}

#[test]
fn a_signature_by_an_untrusted_key_is_named() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    fs_err::write(
        s.cache.join(&rel),
        s.attacker.clearsign(&m.to_text()).unwrap(),
    )
    .unwrap();
    let p = check(&s);
    assert_eq!(
        p,
        [Problem::UntrustedSignature {
            manifest: rel,
            issuers: vec![s.attacker.fingerprint()],
        }]
    );
}

#[test]
fn unsigned_manifests_are_refused_when_signatures_are_required() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    fs_err::write(s.cache.join(&rel), m.to_text()).unwrap();
    assert_eq!(check(&s), [Problem::Unsigned { manifest: rel }]);
    let lax = VerifyOptions {
        require_signatures: false,
    };
    assert!(
        verify_cache(&s.cache, &TrustedKeys::new(), &lax)
            .unwrap()
            .is_ok()
    );
}

#[test]
fn a_manifest_pointing_at_a_missing_blob_is_named() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    let rec = m.record(MEDIA_TARBALL).unwrap();
    fs_err::remove_file(s.cache.join(rec.relative_path().unwrap())).unwrap();
    assert_eq!(
        check(&s),
        [Problem::MissingBlob {
            manifest: rel,
            blob: rec.relative_path().unwrap().into(),
        }]
    );
}

#[test]
fn a_spec_whose_hash_lies_is_caught_even_when_signed() {
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    // A trusted signer publishes a spec whose content was changed after hashing.
    let spec = m.record(MEDIA_SPEC).unwrap();
    let data = fs_err::read(s.cache.join(spec.relative_path().unwrap())).unwrap();
    let mut doc: Value = serde_json::from_slice(&gunzip(&data)).unwrap();
    doc["spec"]["nodes"][0]["version"] = "2.0".into();
    let gz = forge_spack::gzip::gzip_bytes(forge_core::json::python_compact(&doc).as_bytes(), 6)
        .unwrap();
    let sha = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&gz)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut m2 = m.clone();
    let r = m2
        .data
        .iter_mut()
        .find(|r| r.media_type == MEDIA_SPEC)
        .unwrap();
    r.checksum = sha.clone();
    r.content_length = gz.len() as u64;
    write(&s.cache.join(r.relative_path().unwrap()), &gz, false);
    fs_err::write(
        s.cache.join(&rel),
        s.signer.clearsign(&m2.to_text()).unwrap(),
    )
    .unwrap();
    let p = check(&s);
    assert!(
        p.iter().any(|x| matches!(x, Problem::HashMismatch { manifest, node, .. } if manifest == &rel && node == "app@2.0")),
        "{p:?}"
    );
    // Its file name no longer matches the spec either, and the index disagrees.
    assert!(
        p.iter().any(|x| matches!(x, Problem::NameMismatch { .. })),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::IndexSpecDiffers { .. })),
        "{p:?}"
    );
}

#[test]
fn index_and_manifests_must_agree() {
    let s = signed_cache();
    let (rel, _) = app_manifest(&s);
    fs_err::remove_file(s.cache.join(&rel)).unwrap();
    let p = check(&s);
    assert_eq!(
        p,
        [Problem::IndexWithoutManifest {
            manifest: rel,
            hash: s.report.specs[1].hash.clone(),
        }]
    );
    fs_err::remove_dir_all(s.cache.join("v3/manifests/index")).unwrap();
    let p = check(&s);
    assert!(
        matches!(p.as_slice(), [Problem::IndexUnreadable { .. }]),
        "{p:?}"
    );
}

#[test]
fn a_directory_that_is_not_a_cache_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify_cache(tmp.path(), &TrustedKeys::new(), &VerifyOptions::default()),
        Err(VerifyError::NotACache { .. })
    ));
    let _ = Path::new("");
}

/// Runs `verify_cache` in a thread; fails the test (instead of hanging it) when the check does
/// not return within a few seconds.
fn check_promptly(s: &Signed) -> Vec<Problem> {
    let (cache, trusted) = (s.cache.clone(), s.trusted.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let start = std::time::Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(verify_cache(&cache, &trusted, &VerifyOptions::default()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("`cache verify` hung");
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs() < 10, "`cache verify` took {elapsed:?}");
    r.unwrap().problems
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn a_fifo_or_a_link_to_dev_zero_does_not_hang_verify() {
    // A FIFO as a tarball blob.
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    let blob = PathBuf::from(m.record(MEDIA_TARBALL).unwrap().relative_path().unwrap());
    fs_err::remove_file(s.cache.join(&blob)).unwrap();
    mkfifo(&s.cache.join(&blob));
    let p = check_promptly(&s);
    assert!(
        p.contains(&Problem::NotAFile {
            path: blob.clone(),
            kind: "a FIFO".into()
        }),
        "{p:?}"
    );
    assert!(
        p.iter().any(|x| matches!(x, Problem::BlobUnreadable { manifest, blob: b, .. } if manifest == &rel && b == &blob)),
        "{p:?}"
    );

    // A FIFO as a spec manifest.
    let s = signed_cache();
    let (rel, _) = app_manifest(&s);
    fs_err::remove_file(s.cache.join(&rel)).unwrap();
    mkfifo(&s.cache.join(&rel));
    let p = check_promptly(&s);
    assert!(
        p.contains(&Problem::NotAFile {
            path: rel.clone(),
            kind: "a FIFO".into()
        }),
        "{p:?}"
    );
    assert!(
        p.iter().any(|x| matches!(x, Problem::ManifestUnreadable { manifest, reason } if manifest == &rel && reason.contains("FIFO"))),
        "{p:?}"
    );

    // A FIFO as the index manifest.
    let s = signed_cache();
    let index = PathBuf::from(forge_spack::INDEX_MANIFEST);
    fs_err::remove_file(s.cache.join(&index)).unwrap();
    mkfifo(&s.cache.join(&index));
    let p = check_promptly(&s);
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::IndexUnreadable { path, .. } if path == &index)),
        "{p:?}"
    );

    // A symbolic link to /dev/zero as a spec blob (reading it grew memory until killed) and as
    // a tarball blob (hashing it never ended).
    for media in [MEDIA_SPEC, MEDIA_TARBALL] {
        let s = signed_cache();
        let (rel, m) = app_manifest(&s);
        let blob = PathBuf::from(m.record(media).unwrap().relative_path().unwrap());
        fs_err::remove_file(s.cache.join(&blob)).unwrap();
        fs_err::os::unix::fs::symlink("/dev/zero", s.cache.join(&blob)).unwrap();
        let p = check_promptly(&s);
        assert!(
            p.contains(&Problem::Symlink { path: blob.clone() }),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| matches!(x, Problem::BlobUnreadable { manifest, blob: b, .. } if manifest == &rel && b == &blob)),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.to_string().contains(&blob.display().to_string())
                    && x.to_string().contains("symbolic link")),
            "{p:?}"
        );
    }
}

#[test]
fn a_blob_linked_out_of_the_cache_is_named() {
    // The link's target holds exactly the right bytes: only the link itself is wrong.
    let s = signed_cache();
    let (_, m) = app_manifest(&s);
    let blob = PathBuf::from(m.record(MEDIA_SPEC).unwrap().relative_path().unwrap());
    let outside = s._tmp.path().join("outside-blob");
    fs_err::rename(s.cache.join(&blob), &outside).unwrap();
    fs_err::os::unix::fs::symlink(&outside, s.cache.join(&blob)).unwrap();
    let p = check(&s);
    assert!(
        p.contains(&Problem::Symlink { path: blob.clone() }),
        "{p:?}"
    );

    // A blob reached through a linked directory.
    let s = signed_cache();
    let (rel, m) = app_manifest(&s);
    let blob = PathBuf::from(m.record(MEDIA_TARBALL).unwrap().relative_path().unwrap());
    let dir = blob.parent().unwrap().to_path_buf();
    let outside = s._tmp.path().join("outside-dir");
    fs_err::rename(s.cache.join(&dir), &outside).unwrap();
    fs_err::os::unix::fs::symlink(&outside, s.cache.join(&dir)).unwrap();
    let p = check(&s);
    assert!(p.contains(&Problem::Symlink { path: dir.clone() }), "{p:?}");
    assert!(
        p.iter().any(|x| matches!(x, Problem::BlobUnreadable { manifest, blob: b, .. } if manifest == &rel && b == &blob)),
        "{p:?}"
    );
}

/// Stores bytes as a blob of the cache; returns its record.
fn put_blob(cache: &Path, media: &str, compression: &str, data: &[u8]) -> forge_spack::BlobRecord {
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rec = forge_spack::BlobRecord::sha256(media, compression, sha, data.len() as u64);
    write(&cache.join(rec.relative_path().unwrap()), data, false);
    rec
}

/// Replaces the record of `media` in the app's manifest and re-signs it with the trusted key.
fn resign_app_with(s: &Signed, media: &str, rec: forge_spack::BlobRecord) -> PathBuf {
    let (rel, mut m) = app_manifest(s);
    let r = m.data.iter_mut().find(|r| r.media_type == media).unwrap();
    *r = rec;
    fs_err::write(
        s.cache.join(&rel),
        s.signer.clearsign(&m.to_text()).unwrap(),
    )
    .unwrap();
    rel
}

#[test]
fn a_signed_manifest_pointing_at_another_packages_tarball_is_caught() {
    let s = signed_cache();
    let lib = Manifest::parse(
        &fs_err::read_to_string(s.cache.join(&s.report.specs[0].manifest)).unwrap(),
    )
    .unwrap();
    let lib_tarball = lib.record(MEDIA_TARBALL).unwrap().clone();
    let rel = resign_app_with(&s, MEDIA_TARBALL, lib_tarball.clone());
    let (app, libdep) = (&s.report.specs[1], &s.report.specs[0]);
    assert_eq!((app.name.as_str(), libdep.name.as_str()), ("app", "libdep"));
    let p = check(&s);
    assert_eq!(
        p,
        [Problem::TarballSpecMismatch {
            manifest: rel,
            blob: lib_tarball.relative_path().unwrap().into(),
            expected: format!("app/{}", app.hash),
            found: format!("libdep/{}", libdep.hash),
        }]
    );
    let shown = p[0].to_string();
    assert!(
        shown.contains(&app.hash) && shown.contains(&libdep.hash),
        "{shown}"
    );
}

#[test]
fn a_tarball_whose_binary_distribution_maps_its_hash_elsewhere_is_caught() {
    let s = signed_cache();
    let (_, m) = app_manifest(&s);
    let hash = s.report.specs[1].hash.clone();
    let old = fs_err::read(
        s.cache
            .join(m.record(MEDIA_TARBALL).unwrap().relative_path().unwrap()),
    )
    .unwrap();
    // The same members, but `hash_to_prefix` sends the package's hash to another directory
    // (written with the tar crate: GNU long names this time).
    let mut b = tar::Builder::new(Vec::new());
    let mut prefix = String::new();
    for (name, kind, mode, link, mut content) in members(&old) {
        if name.ends_with(".spack/binary_distribution") {
            let mut info =
                forge_spack::BuildInfo::from_yaml(std::str::from_utf8(&content).unwrap()).unwrap();
            prefix = info.hash_to_prefix[&hash].clone();
            info.hash_to_prefix
                .insert(hash.clone(), "/elsewhere".into());
            content = info.to_yaml().into_bytes();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(content.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, &name, &l).unwrap(),
            None => b.append_data(&mut h, &name, &content[..]).unwrap(),
        }
    }
    let gz = forge_spack::gzip::gzip_bytes(&b.into_inner().unwrap(), 6).unwrap();
    let rec = put_blob(&s.cache, MEDIA_TARBALL, "gzip", &gz);
    let rel = resign_app_with(&s, MEDIA_TARBALL, rec.clone());
    assert_eq!(
        check(&s),
        [Problem::TarballPrefixMismatch {
            manifest: rel,
            blob: rec.relative_path().unwrap().into(),
            hash,
            prefix,
            mapped: Some("/elsewhere".into()),
        }]
    );
}

#[test]
fn a_replaced_published_key_is_caught() {
    let real = |s: &Signed| s.signer.fingerprint();
    let evil = |s: &Signed| s.attacker.fingerprint();
    let key_manifest = |f: &str| PathBuf::from(format!("v3/manifests/key/{f}.key.manifest.json"));
    let publish = |s: &Signed, name: &str| {
        let armored = s.attacker.public_key_armored().unwrap();
        let rec = put_blob(&s.cache, forge_spack::MEDIA_KEY, "none", armored.as_bytes());
        fs_err::write(
            s.cache.join(key_manifest(name)),
            Manifest { data: vec![rec] }.to_text(),
        )
        .unwrap();
    };
    let key_index = |s: &Signed, names: &[String]| {
        let keys: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.clone(), serde_json::json!({})))
            .collect();
        let blob = serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap();
        let rec = put_blob(&s.cache, forge_spack::MEDIA_KEY_INDEX, "none", &blob);
        fs_err::write(
            s.cache.join(forge_spack::KEYS_MANIFEST),
            Manifest { data: vec![rec] }.to_text(),
        )
        .unwrap();
    };

    // A good cache: no problem, but the note that published keys are unsigned.
    let s = signed_cache();
    let r = verify_cache(&s.cache, &s.trusted, &VerifyOptions::default()).unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.notes, [forge_spack::UNSIGNED_KEYS_NOTE]);

    // The attacker's key published under the real key's name.
    let s = signed_cache();
    publish(&s, &real(&s));
    assert_eq!(
        check(&s),
        [
            Problem::KeyFingerprintMismatch {
                manifest: key_manifest(&real(&s)),
                named: real(&s),
                actual: evil(&s),
            },
            Problem::SignerNotPublished {
                fingerprint: real(&s)
            },
        ]
    );

    // The attacker's key published under its own name, instead of the real one.
    let s = signed_cache();
    fs_err::remove_file(s.cache.join(key_manifest(&real(&s)))).unwrap();
    publish(&s, &evil(&s));
    key_index(&s, &[evil(&s)]);
    assert_eq!(
        check(&s),
        [
            Problem::SignerNotPublished {
                fingerprint: real(&s)
            },
            Problem::KeySignedNothing {
                manifest: key_manifest(&evil(&s)),
                fingerprint: evil(&s),
                signers: vec![real(&s)],
            },
        ]
    );
    // …or beside it.
    let s = signed_cache();
    publish(&s, &evil(&s));
    key_index(&s, &[evil(&s), real(&s)]);
    let p = check(&s);
    assert_eq!(
        p,
        [Problem::KeySignedNothing {
            manifest: key_manifest(&evil(&s)),
            fingerprint: evil(&s),
            signers: vec![real(&s)],
        }]
    );
    let shown = p[0].to_string();
    assert!(
        shown.contains(&evil(&s)) && shown.contains(&real(&s)),
        "{shown}"
    );
}

#[test]
fn an_indexed_manifest_that_does_not_parse_is_called_unreadable_not_missing() {
    let s = signed_cache();
    let (rel, _) = app_manifest(&s);
    fs_err::write(s.cache.join(&rel), "{\"version\": 3, \"data\": [").unwrap();
    let p = check(&s);
    let hash = s.report.specs[1].hash.clone();
    assert!(
        p.iter()
            .any(|x| matches!(x, Problem::ManifestUnreadable { manifest, .. } if manifest == &rel)),
        "{p:?}"
    );
    let indexed = p
        .iter()
        .find(|x| matches!(x, Problem::IndexedManifestUnreadable { manifest, hash: h, .. } if manifest == &rel && h == &hash))
        .unwrap_or_else(|| panic!("{p:?}"));
    let shown = indexed.to_string();
    assert!(
        !shown.contains("does not exist")
            && shown.contains("unreadable")
            && shown.contains("does not parse"),
        "{shown}"
    );
    assert!(
        !p.iter()
            .any(|x| matches!(x, Problem::IndexWithoutManifest { .. })),
        "{p:?}"
    );
}
