//! Hostile caches signed by a trusted key: a substituter still refuses tarballs that climb out of
//! their directory, hold more than the prefix, lie about it, or link out of the store, and
//! leaves nothing at the destination.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use forge_spack::substitute::Substituter;
use forge_spack::{
    BlobRecord, BuildInfo, Keyring, MEDIA_TARBALL, Manifest, StorePointer, store_pointer_path,
};
use sha2::Digest as _;

const NAME: &str = "0123456789abcdfghijklmnpqrsvwxyz-evil-1.0";

/// One tar member: a name (raw bytes, not checked), and a file body or a symlink target.
enum Member<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

/// A gzip'd ustar archive written byte by byte, so that names a well-behaved writer refuses
/// (`..`) can be put in.
fn tarball(members: &[Member<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for m in members {
        let mut h = [0u8; 512];
        let (name, kind, body, link): (&str, u8, &[u8], &str) = match m {
            Member::Dir(n) => (n, b'5', b"", ""),
            Member::File(n, b) => (n, b'0', b, ""),
            Member::Link(n, t) => (n, b'2', b"", t),
        };
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000755");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(body);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// A cache at `dir` whose only entry is `NAME` with `tarball`, signed by a new key in `keys`.
fn signed_cache(dir: &Path, keys: &Path, tarball: &[u8]) {
    let ring = Keyring::open(keys).unwrap();
    ring.generate("publisher <p@example.invalid>").unwrap();
    let signer = ring.signer(None).unwrap();
    let sha = format!("{:x}", sha2::Sha256::digest(tarball));
    let rec = BlobRecord::sha256(MEDIA_TARBALL, "gzip", sha.clone(), tarball.len() as u64);
    let blob = dir.join(rec.relative_path().unwrap());
    fs_err::create_dir_all(blob.parent().unwrap()).unwrap();
    fs_err::write(&blob, tarball).unwrap();
    let manifest_rel =
        "v3/manifests/spec/evil/evil-1.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.spec.manifest.json";
    let text = signer
        .clearsign(&Manifest { data: vec![rec] }.to_text())
        .unwrap();
    fs_err::create_dir_all(dir.join(manifest_rel).parent().unwrap()).unwrap();
    fs_err::write(dir.join(manifest_rel), text).unwrap();
    let pointer = StorePointer {
        store_name: NAME.into(),
        spec_manifest: manifest_rel.into(),
    };
    let p = dir.join(store_pointer_path(NAME));
    fs_err::create_dir_all(p.parent().unwrap()).unwrap();
    fs_err::write(p, pointer.to_json()).unwrap();
}

fn info(buildpath: &str, links: &[&str], binaries: &[&str]) -> Vec<u8> {
    BuildInfo {
        buildpath: buildpath.into(),
        relative_prefix: NAME.into(),
        relocate_links: links.iter().map(|s| (*s).to_owned()).collect(),
        relocate_binaries: binaries.iter().map(|s| (*s).to_owned()).collect(),
        hardlinks_deduped: true,
        ..BuildInfo::default()
    }
    .to_yaml()
    .into_bytes()
}

/// Substitutes `NAME` from a cache holding `tarball`; returns the refusal.
fn refusal(tarball: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let keys = d.path().join("keys");
    signed_cache(&cache, &keys, tarball);
    let trusted = Keyring::open(&keys).unwrap().trusted().unwrap();
    let sub = Substituter::new(
        &[cache.display().to_string()],
        trusted,
        true,
        forge_fetch::FetchOptions::default(),
        d.path().join("blobs"),
    )
    .unwrap();
    let store = d.path().join("store");
    let paths = store.join("paths");
    fs_err::create_dir_all(&paths).unwrap();
    let dest: PathBuf = paths.join(NAME);
    let scratch = store.join("scratch");
    let got = sub.substitute(NAME, &dest, &scratch, &paths, &store.join("bin/sbang"));
    assert!(!dest.exists(), "nothing may appear at the destination");
    assert!(!d.path().join("escaped").exists());
    let problems = got.expect_err("refused");
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems[0].clone()
}

#[test]
fn a_well_formed_signed_entry_installs() {
    // The control: the same construction, harmless, is accepted.
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let keys = d.path().join("keys");
    let prefix = format!("old/paths/{NAME}");
    let bd = info("/old/paths", &[], &[]);
    let t = tarball(&[
        Member::Dir("old/"),
        Member::Dir("old/paths/"),
        Member::Dir(&format!("{prefix}/")),
        Member::File(&format!("{prefix}/share/doc"), b"hello"),
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &bd),
    ]);
    signed_cache(&cache, &keys, &t);
    let sub = Substituter::new(
        &[cache.display().to_string()],
        Keyring::open(&keys).unwrap().trusted().unwrap(),
        true,
        forge_fetch::FetchOptions::default(),
        d.path().join("blobs"),
    )
    .unwrap();
    let paths = d.path().join("store/paths");
    fs_err::create_dir_all(&paths).unwrap();
    let got = sub
        .substitute(
            NAME,
            &paths.join(NAME),
            &d.path().join("store/scratch"),
            &paths,
            &d.path().join("store/bin/sbang"),
        )
        .unwrap()
        .expect("substituted");
    assert!(got.signed_by.is_some());
    assert_eq!(
        fs_err::read(paths.join(NAME).join("share/doc")).unwrap(),
        b"hello"
    );
    assert!(!paths.join(NAME).join(".spack").exists());
}

#[test]
fn traversal_extra_prefixes_lies_and_escaping_links_are_refused() {
    let prefix = format!("old/paths/{NAME}");
    let bd = info("/old/paths", &[], &[]);
    // A `..` name.
    let e = refusal(&tarball(&[
        Member::File("../escaped", b"x"),
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &bd),
    ]));
    assert!(
        e.contains("the tarball was refused") && e.contains(".."),
        "{e}"
    );
    // An absolute name.
    let e = refusal(&tarball(&[Member::File("/tmp/escaped", b"x")]));
    assert!(e.contains("the tarball was refused"), "{e}");
    // A second top-level tree beside the prefix.
    let e = refusal(&tarball(&[
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &bd),
        Member::File("etc/cron.d/job", b"* * * * * root true"),
    ]));
    assert!(e.contains("more than one prefix"), "{e}");
    // binary_distribution names another prefix than the tarball holds.
    let other = info("/elsewhere", &[], &[]);
    let e = refusal(&tarball(&[Member::File(
        &format!("{prefix}/.spack/binary_distribution"),
        &other,
    )]));
    assert!(e.contains("says the prefix was `/elsewhere/"), "{e}");
    // A listed binary reached through a symlink that leads out of the tree.
    let through = info("/old/paths", &["lib"], &["lib/passwd"]);
    let e = refusal(&tarball(&[
        Member::Link(&format!("{prefix}/lib"), "/etc"),
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &through),
    ]));
    assert!(e.contains("passes through a symlink"), "{e}");
    // A link to an absolute path outside the store.
    let e = refusal(&tarball(&[
        Member::Link(&format!("{prefix}/shadow"), "/etc/shadow"),
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &bd),
    ]));
    assert!(e.contains("outside the store"), "{e}");
    // A relative link climbing out of the tree.
    let e = refusal(&tarball(&[
        Member::Link(&format!("{prefix}/up"), "../../../../etc"),
        Member::File(&format!("{prefix}/.spack/binary_distribution"), &bd),
    ]));
    assert!(e.contains("leaves the source tree"), "{e}");
}

/// A cache real Spack v1.0 wrote (`tests/fixtures/spack-v1.0`): its manifests and index blob.
fn spack_written(dir: &Path, flavour: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spack-v1.0");
    let s = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures.join(flavour).join("v3"))
        .arg(dir.join("v3"))
        .status()
        .unwrap();
    assert!(s.success());
    let index = fs_err::read(fixtures.join("index-blob.79c29406e7d8.json")).unwrap();
    let sha = format!("{:x}", sha2::Sha256::digest(&index));
    let blob = dir.join(format!("blobs/sha256/{}/{sha}", &sha[..2]));
    fs_err::create_dir_all(blob.parent().unwrap()).unwrap();
    fs_err::write(blob, index).unwrap();
}

#[test]
fn cache_list_reads_a_spack_written_cache_and_its_signatures() {
    let d = tempfile::tempdir().unwrap();
    let signed = d.path().join("signed");
    fs_err::create_dir_all(&signed).unwrap();
    spack_written(&signed, "mirror-signed");
    let remote = forge_remote::Remote::parse(&signed.display().to_string()).unwrap();
    let listed = forge_spack::list_cache(&remote, &forge_spack::TrustedKeys::new()).unwrap();
    let in_cache: Vec<(&str, &str)> = listed
        .iter()
        .filter(|s| s.in_buildcache)
        .map(|s| (s.name.as_str(), s.version.as_str()))
        .collect();
    assert_eq!(
        in_cache,
        [
            ("compiler-wrapper", "1.0"),
            ("forge-hello", "1.0"),
            ("gcc-runtime", "12.2.0"),
            ("zlib", "1.2.13")
        ]
    );
    let hello = listed.iter().find(|s| s.name == "forge-hello").unwrap();
    assert!(hello.hash.starts_with("il42sm5"), "{hello:?}");
    // Spack wrote it on this machine for its own default target.
    assert_eq!(hello.target, "zen2");
    // Not trusted yet: signed, by a key forge cannot vouch for.
    assert!(
        hello.signature.starts_with("signed by an untrusted key"),
        "{hello:?}"
    );
    // With Spack's published key trusted: signed by its fingerprint.
    let mut trusted = forge_spack::TrustedKeys::new();
    trusted
        .add(
            &fs_err::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/spack-v1.0/public-key-blob.5a69d83a6b7e.asc"),
            )
            .unwrap(),
        )
        .unwrap();
    let listed = forge_spack::list_cache(&remote, &trusted).unwrap();
    for s in listed.iter().filter(|s| s.in_buildcache) {
        assert_eq!(
            s.signature, "signed by 1FC9195287D4975498DD5A405EBA8DC15A96DE9D",
            "{s:?}"
        );
    }
    // The unsigned flavour says so.
    let unsigned = d.path().join("unsigned");
    fs_err::create_dir_all(&unsigned).unwrap();
    spack_written(&unsigned, "mirror-unsigned");
    let remote = forge_remote::Remote::parse(&unsigned.display().to_string()).unwrap();
    let listed = forge_spack::list_cache(&remote, &trusted).unwrap();
    assert!(
        listed
            .iter()
            .filter(|s| s.in_buildcache)
            .all(|s| s.signature == "unsigned"),
        "{listed:?}"
    );
    // Not a cache: the error says what is missing.
    let e = forge_spack::list_cache(
        &forge_remote::Remote::parse(&d.path().display().to_string()).unwrap(),
        &trusted,
    )
    .unwrap_err();
    assert!(e.contains("has no index"), "{e}");
}
