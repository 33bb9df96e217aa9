//! Layout-v3 manifests and their clearsigning (`forge_spack::{Manifest, clearsigned_body,
//! is_clearsigned, TrustedKeys}`) on arbitrary text. Nothing may panic, and:
//!
//! - a manifest that parses survives `to_text` and `parse` unchanged, plain and clearsigned, and
//!   no record's blob path leaves `blobs/`;
//! - `clearsigned_body` undoes clearsigning exactly: for any text, the body of the text
//!   dash-escaped and wrapped as a clearsigned message is the text;
//! - a text that verifies against the fixed key of the Spack-written fixture cache (the
//!   fuzzer cannot sign, so only mutations of the real signed manifests can verify) parses to
//!   one of the manifests that key really signed, or not at all: what `verify_cache` checks is
//!   what it reads.

#![no_main]

use std::sync::OnceLock;

use forge_spack::{Manifest, TrustedKeys, clearsigned_body, is_clearsigned};
use libfuzzer_sys::fuzz_target;

const CSF_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";

macro_rules! fixture {
    ($rel:literal) => {
        include_str!(concat!(
            "../../engine/spack/tests/fixtures/spack-v1.0/",
            $rel
        ))
    };
}

/// The clearsigned manifests of the fixture cache (Spack signs spec manifests only).
const SIGNED: [&str; 4] = [
    fixture!(
        "mirror-signed/v3/manifests/spec/compiler-wrapper/compiler-wrapper-1.0-xdkerimudkgyh5wb75svcqa6uqjynfsf.spec.manifest.json"
    ),
    fixture!(
        "mirror-signed/v3/manifests/spec/forge-hello/forge-hello-1.0-il42sm5f3rapnx54lvrsedacuu7lfd33.spec.manifest.json"
    ),
    fixture!(
        "mirror-signed/v3/manifests/spec/gcc-runtime/gcc-runtime-12.2.0-44575bw7w6i6oo5eifqwscqumawcouli.spec.manifest.json"
    ),
    fixture!(
        "mirror-signed/v3/manifests/spec/zlib/zlib-1.2.13-k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2.spec.manifest.json"
    ),
];

/// The key that signed them.
const KEY: &str = fixture!("public-key-blob.5a69d83a6b7e.asc");

struct Fixed {
    keys: TrustedKeys,
    signed: Vec<Manifest>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut keys = TrustedKeys::new();
        keys.add(KEY.as_bytes()).expect("the fixture key");
        let signed = SIGNED
            .iter()
            .map(|t| {
                keys.verify_clearsigned(t).expect("a fixture verifies");
                Manifest::parse(t).expect("a fixture parses")
            })
            .collect();
        Fixed { keys, signed }
    })
}

/// `text` clearsigned the way GnuPG writes it, without the signature's contents: lines that
/// start with `-` are dash-escaped.
fn wrap(text: &str) -> String {
    let escaped: Vec<String> = text
        .split('\n')
        .map(|l| {
            if l.starts_with('-') {
                format!("- {l}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    format!(
        "{CSF_BEGIN}\nHash: SHA256\n\n{}\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
        escaped.join("\n")
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixed = fixed();
    assert_eq!(is_clearsigned(text), text.starts_with(CSF_BEGIN));
    if clearsigned_body(text).is_some() {
        assert!(
            is_clearsigned(text),
            "a body from a text that is not clearsigned"
        );
    }
    assert_eq!(
        clearsigned_body(&wrap(text)).as_deref(),
        Some(text),
        "clearsigning is not undone exactly"
    );

    let parsed = Manifest::parse(text);
    if let Ok(m) = &parsed {
        let again = m.to_text();
        assert_eq!(Manifest::parse(&again).as_ref(), Ok(m), "through\n{again}");
        assert_eq!(
            Manifest::parse(&wrap(&again)).as_ref(),
            Ok(m),
            "clearsigned"
        );
        for r in &m.data {
            if let Some(p) = r.relative_path() {
                let mut parts = p.split('/');
                assert_eq!(parts.next(), Some("blobs"), "{p}");
                assert!(
                    parts.all(|c| !c.is_empty() && c != "." && c != ".."),
                    "blob path `{p}` may leave blobs/"
                );
            }
        }
    }

    // Verified whether or not it parses: the verifier must not panic either.
    let verified = is_clearsigned(text) && fixed.keys.verify_clearsigned(text).is_ok();
    if verified && let Ok(m) = &parsed {
        assert!(
            fixed.signed.contains(m),
            "a text that verifies reads as a manifest the key never signed: {m:?}"
        );
    }
});
