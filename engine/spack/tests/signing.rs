//! Keys, clearsigned manifests, and what GnuPG (which Spack runs) thinks of them.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use forge_spack::{
    ExportOptions, KEYS_MANIFEST, KeyError, Keyring, MEDIA_KEY, MEDIA_KEY_INDEX, Manifest,
    SignatureProblem, TrustedKeys, export, is_clearsigned,
};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spack-v1.0")
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg")
        .arg("--homedir")
        .arg(home)
        .args(["--batch", "--no-tty"])
        .args(args)
        .output()
        .expect("GnuPG (`gpg`) must be installed to run this test")
}

#[test]
fn keyring_generates_lists_exports_and_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = Keyring::open(tmp.path().join("keys")).unwrap();
    assert!(matches!(
        ring.signer(None),
        Err(KeyError::NoSecretKey { .. })
    ));
    let k = ring
        .generate("forge test <forge-test@example.invalid>")
        .unwrap();
    assert_eq!(k.fingerprint.len(), 40);
    assert!(
        k.fingerprint
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert_eq!(k.algorithm, "EdDSA");
    assert!(k.has_secret);
    assert_eq!(ring.list().unwrap(), std::slice::from_ref(&k));
    // Layout: one armored secret key (private to its owner) and one public key.
    let secret = tmp
        .path()
        .join(format!("keys/secret/{}.asc", k.fingerprint));
    let public = tmp
        .path()
        .join(format!("keys/public/{}.asc", k.fingerprint));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        fs_err::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        fs_err::read_to_string(&secret)
            .unwrap()
            .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    );

    let armored = ring.export_public(&k.fingerprint[24..]).unwrap();
    assert!(armored.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    assert_eq!(armored, fs_err::read_to_string(public).unwrap());

    // Another keyring that only trusts the public key cannot sign.
    let other = Keyring::open(tmp.path().join("other")).unwrap();
    let imported = other.import(armored.as_bytes()).unwrap();
    assert_eq!(imported[0].fingerprint, k.fingerprint);
    assert!(!imported[0].has_secret);
    assert!(matches!(
        other.signer(None),
        Err(KeyError::NoSecretKey { .. })
    ));
    assert!(matches!(
        other.export_public("0000"),
        Err(KeyError::NotFound { .. })
    ));
    assert!(matches!(
        other.import(b"not a key"),
        Err(KeyError::Parse { .. })
    ));

    // A second secret key makes the choice explicit.
    ring.generate("second <second@example.invalid>").unwrap();
    assert!(matches!(
        ring.signer(None),
        Err(KeyError::AmbiguousSecretKey { .. })
    ));
    assert_eq!(
        ring.signer(Some(&k.fingerprint)).unwrap().fingerprint(),
        k.fingerprint
    );
}

#[test]
fn clearsigned_text_carries_the_hash_header_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = Keyring::open(tmp.path()).unwrap();
    ring.generate("t <t@example.invalid>").unwrap();
    let signer = ring.signer(None).unwrap();
    let text = "{\n\"version\":3,\n\"data\":[]\n}";
    let signed = signer.clearsign(text).unwrap();
    assert!(
        signed.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"),
        "{signed}"
    );
    assert_eq!(forge_spack::clearsigned_body(&signed).unwrap(), text);
    let trusted = ring.trusted().unwrap();
    assert_eq!(
        trusted.verify_clearsigned(&signed).unwrap(),
        signer.fingerprint()
    );

    let tampered = signed.replace("\"version\":3", "\"version\":4");
    assert!(matches!(
        trusted.verify_clearsigned(&tampered),
        Err(SignatureProblem::BadSignature(_))
    ));
    assert_eq!(
        TrustedKeys::new().verify_clearsigned(&signed),
        Err(SignatureProblem::UntrustedKey {
            issuers: vec![signer.fingerprint()]
        })
    );
    assert_eq!(
        trusted.verify_clearsigned(text),
        Err(SignatureProblem::NotSigned)
    );
}

#[test]
fn spacks_own_rsa_signatures_verify() {
    let mut trusted = TrustedKeys::new();
    trusted
        .add(&fs_err::read(fixtures().join("public-key-blob.5a69d83a6b7e.asc")).unwrap())
        .unwrap();
    let dir = fixtures().join("mirror-signed/v3/manifests/spec");
    let mut n = 0;
    for pkg in fs_err::read_dir(&dir).unwrap() {
        for m in fs_err::read_dir(pkg.unwrap().path()).unwrap() {
            let text = fs_err::read_to_string(m.unwrap().path()).unwrap();
            assert_eq!(
                trusted.verify_clearsigned(&text).unwrap(),
                "1FC9195287D4975498DD5A405EBA8DC15A96DE9D"
            );
            n += 1;
        }
    }
    assert_eq!(n, 4);
}

#[test]
fn gnupg_verifies_every_signed_manifest_with_the_published_key() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let ring = Keyring::open(tmp.path().join("keys")).unwrap();
    let key = ring
        .generate("forge cache <cache@example.invalid>")
        .unwrap();
    let signer = ring.signer(None).unwrap();
    let cache = tmp.path().join("cache");
    let o = ExportOptions {
        max_consumer_root: 40,
        ..ExportOptions::default()
    };
    let report = export(&f.graph, &[f.app], &cache, Some(&signer), &o).unwrap();
    assert_eq!(report.signed_by.as_deref(), Some(key.fingerprint.as_str()));

    // The published key, as `spack buildcache keys --install` finds it.
    let keys =
        Manifest::parse(&fs_err::read_to_string(cache.join(KEYS_MANIFEST)).unwrap()).unwrap();
    let index_blob = cache.join(
        keys.record(MEDIA_KEY_INDEX)
            .unwrap()
            .relative_path()
            .unwrap(),
    );
    assert_eq!(
        fs_err::read_to_string(index_blob).unwrap(),
        format!(r#"{{"keys":{{"{}":{{}}}}}}"#, key.fingerprint)
    );
    let km = cache.join(format!(
        "v3/manifests/key/{}.key.manifest.json",
        key.fingerprint
    ));
    let km = Manifest::parse(&fs_err::read_to_string(km).unwrap()).unwrap();
    let key_blob = cache.join(km.record(MEDIA_KEY).unwrap().relative_path().unwrap());

    // A fresh GnuPG home (short path: gpg-agent sockets live there).
    let home = tempfile::Builder::new()
        .prefix("g")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = gpg(home.path(), &["--import", key_blob.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for s in &report.specs {
        let path = cache.join(&s.manifest);
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(is_clearsigned(&text));
        assert!(text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{\n"));
        let out = gpg(home.path(), &["--verify", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "gpg --verify {}: {err}",
            s.manifest.display()
        );
        assert!(err.contains("Good signature"), "{err}");

        // And GnuPG notices tampering.
        let bad = tmp.path().join("tampered.json");
        fs_err::write(
            &bad,
            text.replacen("\"contentLength\":", "\"contentLength\":1", 1),
        )
        .unwrap();
        let out = gpg(home.path(), &["--verify", bad.to_str().unwrap()]);
        assert!(!out.status.success());
    }
}
