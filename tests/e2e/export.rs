//! `forge export`, `forge key` and `forge cache verify` on a realized example, checked with
//! real GnuPG.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The spec document a signed spec manifest points at (its gzip'd spec blob).
fn spec_of(cache: &Path, manifest: &Path) -> serde_json::Value {
    let body = fs_err::read_to_string(manifest).unwrap();
    let start = body.find("\n{").unwrap();
    let end = body.find("-----BEGIN PGP SIGNATURE-----").unwrap();
    let m: serde_json::Value = serde_json::from_str(&body[start..end]).unwrap();
    let sum = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mediaType"] == "application/vnd.spack.spec.v5+json")
        .unwrap()["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = cache.join("blobs/sha256").join(&sum[..2]).join(&sum);
    let o = Command::new("gzip").arg("-dc").arg(&blob).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A refused export leaves no spec manifest in the cache.
#[track_caller]
fn assert_nothing_published(cache: &Path) {
    assert!(
        !cache.join("v3/manifests").exists() || files_under(&cache.join("v3/manifests")).is_empty(),
        "nothing may be published"
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `forge ARGS` in `w` with its own keyring (`<world>/keys`).
fn with_keys(w: &World, args: &[&str]) -> std::process::Output {
    let mut c = w.forge();
    c.env("FORGE_KEYS", w.path().join("keys")).args(args);
    c.output().unwrap()
}

#[test]
fn signed_export_verifies_with_gnupg_and_forge_and_catches_tampering() {
    let w = World::new();
    let forge = |args: &[&str]| with_keys(&w, args);
    ok(&forge(&["realize", "--example"]));
    let fpr = ok(&forge(&[
        "key",
        "generate",
        "forge test <forge-test@example.invalid>",
    ]))
    .trim()
    .to_owned();
    assert_eq!(fpr.len(), 40, "{fpr}");
    let listed = ok(&forge(&["key", "list"]));
    assert!(
        listed.contains(&fpr) && listed.contains("[can sign]"),
        "{listed}"
    );

    let cache = w.path().join("cache-out");
    let cache_s = cache.to_str().unwrap();
    let out = ok(&forge(&[
        "export",
        "--example",
        "hello",
        "--to",
        cache_s,
        "--sign",
    ]));
    assert!(
        out.contains("hello@1.0") && out.contains("gcc-runtime@12.2.0") && out.contains("greet"),
        "{out}"
    );
    assert!(out.contains(&format!("signed by {fpr}")), "{out}");
    assert!(cache.join("v3/layout.json").exists());
    assert!(cache.join("README.md").exists());
    // forge's own verification, with the signing key trusted; it says that the published key
    // itself is not signed.
    let v = forge(&["cache", "verify", cache_s]);
    ok(&v);
    assert!(
        text(&v.stderr).contains("note: the key index and key manifests are not signed"),
        "{}",
        text(&v.stderr)
    );

    // Real GnuPG accepts every spec manifest after importing the published key.
    let gnupg = w.path().join("gnupg");
    fs_err::create_dir_all(&gnupg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let public = w.path().join("public.asc");
    fs_err::write(&public, ok(&forge(&["key", "export", &fpr]))).unwrap();
    let gpg = |args: &[&str]| {
        Command::new("gpg")
            .env("GNUPGHOME", &gnupg)
            .args(["--batch", "--no-tty"])
            .args(args)
            .output()
            .unwrap()
    };
    let imported = gpg(&["--import", public.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let manifests: Vec<PathBuf> = files_under(&cache.join("v3/manifests/spec"));
    assert!(manifests.len() >= 3, "{manifests:?}");
    for m in &manifests {
        let v = gpg(&["--verify", m.to_str().unwrap()]);
        assert!(
            v.status.success(),
            "gpg rejected {}: {}",
            m.display(),
            text(&v.stderr)
        );
        assert!(
            text(&v.stderr).contains("Good signature"),
            "{}",
            text(&v.stderr)
        );
        let body = fs_err::read_to_string(m).unwrap();
        assert!(
            body.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n"),
            "{body}"
        );
    }

    // The spec of `hello` as the CLI built it from the store: the host gcc as an external
    // build dependency at /usr with its compilers, gcc-runtime as a real node, glibc as an
    // external at /usr with the version this machine links, the target as x86_64_v3.
    let hello = manifests
        .iter()
        .find(|m| m.parent().unwrap().ends_with("hello"))
        .expect("a manifest for hello");
    let spec = spec_of(&cache, hello);
    let nodes = spec["spec"]["nodes"].as_array().unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {spec}"))
    };
    let dep_types = |of: &serde_json::Value, name: &str| -> Vec<String> {
        of["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} among the dependencies of {of}"))["parameters"]
            ["deptypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    let root = &nodes[0];
    assert_eq!(root["name"], "hello");
    assert_eq!(root["arch"]["target"], "x86_64_v3");
    assert_eq!(dep_types(root, "gcc"), ["build"]);
    assert_eq!(dep_types(root, "gcc-runtime"), ["link"]);
    assert_eq!(dep_types(root, "glibc"), ["link"]);
    let gcc = node("gcc");
    assert_eq!(gcc["external"]["path"], "/usr", "{gcc}");
    assert_eq!(
        gcc["external"]["extra_attributes"]["compilers"]["c"], "/usr/bin/gcc",
        "{gcc}"
    );
    assert!(node("gcc-runtime")["external"].is_null());
    let glibc = node("glibc");
    assert_eq!(glibc["external"]["path"], "/usr", "{glibc}");
    let ldd = text(
        &Command::new("ldd")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    );
    let linked = ldd.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert_eq!(glibc["version"], linked, "{ldd}");

    // Exporting again writes nothing new and keeps the blobs byte for byte.
    let blobs_before: Vec<(PathBuf, Vec<u8>)> = files_under(&cache.join("blobs"))
        .into_iter()
        .map(|p| {
            let b = fs_err::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let again = ok(&forge(&[
        "export",
        "--example",
        "hello",
        "--to",
        cache_s,
        "--sign",
    ]));
    assert!(!again.contains("exported "), "{again}");
    let blobs_after: Vec<(PathBuf, Vec<u8>)> = files_under(&cache.join("blobs"))
        .into_iter()
        .map(|p| {
            let b = fs_err::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert_eq!(blobs_before, blobs_after);

    // A tampered blob is caught and named.
    let tarball = files_under(&cache.join("blobs"))
        .into_iter()
        .max_by_key(|p| fs_err::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs_err::read(&tarball).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs_err::write(&tarball, &bytes).unwrap();
    let v = forge(&["cache", "verify", cache_s]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v.stderr));
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert!(text(&v.stderr).contains(&name), "{}", text(&v.stderr));

    // Without the key trusted, the signatures do not verify.
    let other_keys = w.path().join("other-keys");
    let mut c = w.forge();
    c.env("FORGE_KEYS", &other_keys)
        .args(["cache", "verify", cache_s]);
    let v = c.output().unwrap();
    assert_eq!(v.status.code(), Some(1));
}

#[test]
fn export_from_an_unpadded_store_is_refused_with_the_reason() {
    let w = World::new();
    let mut c = w.forge();
    c.env("FORGE_PADDED_LENGTH", "0")
        .args(["realize", "--example"]);
    ok(&c.output().unwrap());
    let cache = w.path().join("cache-out");
    let o = w
        .forge()
        .args(["export", "--example", "hello", "--to"])
        .arg(&cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("--padded-length"), "{err}");
    assert_nothing_published(&cache);
}

#[test]
fn an_output_naming_its_build_directory_is_refused() {
    // A build that records a path of its build directory, which lies beside the padded outputs
    // (`<store>/.forge/build/<name>.build/…`) and is deleted afterwards; Spack would leave the
    // path as it is. (Slurm 22.05's slurmstepd recorded `…/hostbin/sleep` this way when the host
    // tools were linked into the build directory.)
    let w = World::new();
    let pkgs = [Pkg {
        name: "stepd",
        deps: &[],
        script: r#"mkdir -p "$out/etc"
echo "BuildDir=$PWD" > "$out/etc/stepd.conf""#
            .into(),
    }];
    write_tree(&w.recipes(), &pkgs, &[("stepd", "stepd")]);
    ok(&w.run(&["realize", "stepd"]));
    let cache = w.path().join("cache-out");
    let o = w.run(&["export", "stepd", "--to", cache.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}\n{err}", text(&o.stdout));
    assert!(
        err.contains("etc/stepd.conf") && err.contains("/.forge/build/"),
        "{err}"
    );
    assert_nothing_published(&cache);
}

#[test]
fn a_store_path_or_out_link_exports_that_nodes_closure() {
    let w = World::new();
    let link = w.path().join("result");
    let out = ok(&w
        .forge()
        .args(["realize", "--example", "-o"])
        .arg(&link)
        .output()
        .unwrap());
    let hello = PathBuf::from(out.lines().last().unwrap().trim());
    let lib = fs_err::read_dir(hello.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-libgreet-1.0"))
        .unwrap();
    let export = |what: &Path, to: &Path| {
        w.forge()
            .args(["export", "--example", "--json"])
            .arg(what)
            .arg("--to")
            .arg(to)
            .output()
            .unwrap()
    };
    let specs = |o: &std::process::Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
        let mut s: Vec<String> = v["specs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    // The library's path: its closure only (with the compiler runtime), not the program.
    let only_lib = specs(&export(&lib, &w.path().join("c1")));
    assert!(only_lib.contains(&"libgreet".to_owned()), "{only_lib:?}");
    assert!(!only_lib.contains(&"hello".to_owned()), "{only_lib:?}");
    // The out-link: the same cache as exporting the target.
    let by_link = specs(&export(&link, &w.path().join("c2")));
    let by_target = specs(&export(Path::new("hello"), &w.path().join("c3")));
    assert_eq!(by_link, by_target);
    assert!(by_link.contains(&"hello".to_owned()));
    // Not a store path: a clear error.
    let o = export(w.path(), &w.path().join("c4"));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("is not a path of the store"),
        "{}",
        text(&o.stderr)
    );
}

/// A cache is signed only when every spec manifest is: an unsigned export merged into a
/// signed cache turns its README to `--unsigned` and says why, and signing again restores it.
#[test]
fn an_unsigned_export_into_a_signed_cache_makes_it_unsigned_and_says_so() {
    let w = World::new();
    let forge = |args: &[&str]| with_keys(&w, args);
    let hello = PathBuf::from(
        ok(&forge(&["realize", "--example"]))
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    ok(&forge(&[
        "key",
        "generate",
        "forge test <forge-test@example.invalid>",
    ]));
    let lib = fs_err::read_dir(hello.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-libgreet-1.0"))
        .unwrap();
    let cache = w.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    let readme = || fs_err::read_to_string(cache.join("README.md")).unwrap();
    // The library's closure, signed.
    ok(&forge(&[
        "export",
        "--example",
        lib.to_str().unwrap(),
        "--to",
        cache_s,
        "--sign",
    ]));
    assert!(!readme().contains("--unsigned"), "{}", readme());
    // The program, unsigned, into the same cache: its manifest is the one unsigned.
    let o = forge(&["export", "--example", "hello", "--to", cache_s]);
    ok(&o);
    assert!(
        text(&o.stderr).contains("1 spec manifest(s) in the cache are not signed"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        readme().contains("spack mirror add --unsigned forge"),
        "{}",
        readme()
    );
    // Signing the program's export again signs its manifest: the whole cache is signed.
    let o = forge(&["export", "--example", "hello", "--to", cache_s, "--sign"]);
    ok(&o);
    assert!(
        !text(&o.stderr).contains("not signed"),
        "{}",
        text(&o.stderr)
    );
    assert!(!readme().contains("--unsigned"), "{}", readme());
    ok(&forge(&["cache", "verify", cache_s]));
}

/// An unsigned export says so: its README adds the mirror `--unsigned` and promises no
/// signature checks, `cache verify` points at `--unsigned` (not at importing a key), and the
/// published cache holds nothing of forge's (no `.forge-tmp/`, no lock).
#[test]
fn an_unsigned_export_is_honest_about_it_and_leaves_nothing_of_forge() {
    let w = World::new();
    ok(&w.forge().args(["realize", "--example"]).output().unwrap());
    let cache = w.path().join("cache");
    ok(&w
        .forge()
        .args(["export", "--example", "hello", "--to"])
        .arg(&cache)
        .output()
        .unwrap());
    // `--quiet` prints only errors: nothing, when it works.
    let quiet = w
        .forge()
        .args(["-q", "export", "--example", "hello", "--to"])
        .arg(w.path().join("quiet-cache"))
        .output()
        .unwrap();
    assert_eq!(ok(&quiet), "");
    assert_eq!(text(&quiet.stderr), "");
    let readme = fs_err::read_to_string(cache.join("README.md")).unwrap();
    assert!(
        readme.contains("spack mirror add --unsigned forge")
            && !readme.contains("keys --install")
            && !readme.contains("Signatures are checked"),
        "{readme}"
    );
    assert!(!cache.join(".forge-tmp").exists());
    let v = w
        .forge()
        .args(["cache", "verify"])
        .arg(&cache)
        .output()
        .unwrap();
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not signed") && err.contains("`--unsigned`") && !err.contains("key import"),
        "{err}"
    );
    ok(&w
        .forge()
        .args(["cache", "verify", "--unsigned"])
        .arg(&cache)
        .output()
        .unwrap());
}

/// The repository's recipes (not the examples).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Compiler-flag lists and patches: parameters that are not variants.
const NOT_VARIANTS: &[&str] = &[
    "cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs", "patches",
];

/// What Spack's solver needs to reuse a cached spec, checked for every node the headline
/// targets would export (`export --dry-run`, nothing built) against the vendored facts of
/// Spack's builtin recipes (`engine/spack/data`):
///
/// - a `builtin` node carries exactly the variants its recipe declares for it (a missing one
///   makes requests such as `slurm~gtk` miss the binary; an unknown one names something the
///   recipe cannot express), with allowed values, and links only what the recipe declares
///   (a dependency outside the recipe's graph makes the whole spec unusable to the solver);
/// - a `forge` node named like a builtin package carries builtin's variants too (its stub
///   shadows builtin's recipe, and sites ask in builtin's terms);
/// - an external carries its recipe's variants at their defaults, as `spack external find`
///   records one, and nothing of forge's.
#[test]
fn exported_specs_are_ones_spacks_builtin_recipes_can_reuse() {
    use forge_spack::VariantValue;
    use forge_spack::builtin::builtin;
    use std::collections::{BTreeMap, BTreeSet};

    fn value(v: &serde_json::Value) -> VariantValue {
        match v {
            serde_json::Value::Bool(b) => VariantValue::Bool(*b),
            serde_json::Value::Array(a) => {
                VariantValue::Multi(a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            }
            other => VariantValue::Single(other.as_str().unwrap().to_owned()),
        }
    }

    let repo = builtin();
    let w = World::new();
    let mut nodes: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let targets = [
        "slurm-22.05-host",
        "slurm-24.11-gcc13-deb",
        "slurm-24.11-host-deb",
        "slurm-25.11-gcc13",
    ];
    for t in targets {
        let out = ok(&w.run_in(&repo_root(), &["export", t, "--dry-run", "--json"]));
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let specs = doc["specs"].as_array().unwrap();
        assert!(!specs.is_empty(), "{t}: nothing to export");
        for s in specs {
            for n in s["spec"]["spec"]["nodes"].as_array().unwrap() {
                nodes.insert(n["hash"].as_str().unwrap().to_owned(), n.clone());
            }
        }
    }
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for n in nodes.values() {
        let name = n["name"].as_str().unwrap();
        let version = n["version"].as_str().unwrap();
        let ns = n["namespace"].as_str().unwrap();
        let what = format!("{ns}.{name}@{version}");
        let values: BTreeMap<String, VariantValue> = n["parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !NOT_VARIANTS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), value(v)))
            .collect();
        let Some(pkg) = repo.package(name) else {
            if ns == "builtin" {
                problems.push(format!(
                    "{what}: no such recipe in Spack's builtin repository"
                ));
            }
            continue;
        };
        checked.insert(what.clone());
        let declared = pkg.variants_for(version, &values);
        for (v, d) in &declared {
            match values.get(*v) {
                None => problems.push(format!("{what}: lacks builtin's variant `{v}`")),
                Some(x) if ns == "builtin" && !d.allows(x) => problems.push(format!(
                    "{what}: `{v}={x}` is not a value builtin's recipe allows ({:?})",
                    d.values
                )),
                Some(_) => {}
            }
        }
        if n.get("external").is_some() {
            let mut want = pkg.defaults(version);
            if name == "gcc" {
                want.insert("languages".into(), values["languages"].clone());
            }
            if values != want {
                problems.push(format!(
                    "{what}: an external's variants are not builtin's defaults: {values:?} != {want:?}"
                ));
            }
            continue;
        }
        if ns != "builtin" {
            continue;
        }
        for v in values.keys() {
            if !declared.contains_key(v.as_str()) {
                problems.push(format!("{what}: variant `{v}` is not in builtin's recipe"));
            }
        }
        for d in n["dependencies"].as_array().into_iter().flatten() {
            let types: Vec<&str> = d["parameters"]["deptypes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let dep = d["name"].as_str().unwrap();
            if !types.iter().any(|t| *t == "link" || *t == "run")
                || dep == "gcc-runtime"
                || dep == "glibc"
            {
                continue;
            }
            let virtuals: Vec<String> = d["parameters"]["virtuals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            if !pkg.declares_dependency(dep, &virtuals) {
                problems.push(format!(
                    "{what}: links `{dep}`, which builtin's recipe does not declare"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The check saw the packages that matter, in both namespaces.
    for must in [
        "builtin.openssl@3.0.20",
        "forge.slurm@22-05-8-1",
        "forge.munge@0.5.16",
    ] {
        assert!(checked.contains(must), "{must} not among {checked:?}");
    }
}
