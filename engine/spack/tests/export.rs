//! Exporting into a cache directory: layout, determinism, incremental publishing, refusals.

mod common;

use std::path::Path;

use common::*;
use forge_spack::{
    ExportError, ExportOptions, INDEX_MANIFEST, Index, MEDIA_INDEX, MEDIA_SPEC, MEDIA_TARBALL,
    Manifest, Violation, export, gzip::GzipOptions, spec_manifest_path,
};
use serde_json::Value;

fn opts() -> ExportOptions {
    ExportOptions {
        max_consumer_root: 40,
        ..ExportOptions::default()
    }
}

fn blob(cache: &Path, rec: &forge_spack::BlobRecord) -> Vec<u8> {
    fs_err::read(cache.join(rec.relative_path().unwrap())).unwrap()
}

fn index_of(cache: &Path) -> Index {
    let m = Manifest::parse(&fs_err::read_to_string(cache.join(INDEX_MANIFEST)).unwrap()).unwrap();
    Index::parse(&blob(cache, m.record(MEDIA_INDEX).unwrap())).unwrap()
}

/// Replaces the store path (whose padding depends on the temporary directory) in snapshot text.
fn redact(text: &str, store: &Path) -> String {
    let s = store.display().to_string();
    text.replace(&s, "[store]").replace(&s[1..], "[store]")
}

#[test]
fn writes_a_v3_layout_with_a_relocatable_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let cache = tmp.path().join("cache");
    let report = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();

    // The runtime closure: app and libdep, not the build-only tool, not glibc.
    let names: Vec<_> = report.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["libdep", "app"]);
    assert_eq!(
        fs_err::read_to_string(cache.join("v3/layout.json")).unwrap(),
        r#"{"signing": "gpg"}"#
    );

    let app = &report.specs[1];
    assert_eq!(
        app.manifest,
        spec_manifest_path("app", "1.0", &app.hash),
        "manifest named after the spec"
    );
    let m = Manifest::parse(&fs_err::read_to_string(cache.join(&app.manifest)).unwrap()).unwrap();
    assert_eq!(m.record(MEDIA_TARBALL).unwrap(), &app.tarball);
    assert_eq!(m.record(MEDIA_SPEC).unwrap(), &app.spec);

    // Spec blob: gzip'd compact JSON, root first, every DAG node (build deps and externals
    // included), and `buildcache_layout_version` 2.
    let spec_bytes = gunzip(&blob(&cache, &app.spec));
    let spec: Value = serde_json::from_slice(&spec_bytes).unwrap();
    assert_eq!(spec["buildcache_layout_version"], 2);
    let nodes: Vec<_> = spec["spec"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["app", "glibc", "libdep", "tool"]);
    assert_eq!(spec["spec"]["nodes"][0]["arch"]["target"], "x86_64_v3");
    assert_eq!(spec["spec"]["nodes"][1]["external"]["path"], "/usr");

    // Tarball: parents first, prefix depth-first, binary_distribution last.
    let members = members(&blob(&cache, &app.tarball));
    let listing: Vec<String> = members
        .iter()
        .map(|(n, k, mode, link, _)| {
            let kind = match k {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => '-',
            };
            let link = link
                .as_ref()
                .map(|l| format!(" -> {l}"))
                .unwrap_or_default();
            redact(&format!("{kind} {mode:o} {n}{link}"), &f.store)
        })
        .collect();
    // First every parent of the prefix, from the root down; those depend on where the
    // temporary directory is, so only the part below it is snapshotted.
    let prefix = f.graph.node(f.app).prefix().unwrap();
    let parents: Vec<String> = prefix
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip(1)
        .map(|p| format!("{}/", &p.display().to_string()[1..]))
        .collect();
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names[..parents.len()], parents);
    let below: Vec<&String> = listing
        .iter()
        .filter(|l| l[6..].starts_with("[store]"))
        .collect();
    insta::assert_snapshot!(
        "app_tarball_listing",
        below
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let last = members.last().unwrap();
    assert!(last.0.ends_with(".spack/binary_distribution"));
    let info = String::from_utf8(last.4.clone()).unwrap();
    let info = redact(&info, &f.store)
        .replace(&app.hash, "[app-hash]")
        .replace(&report.specs[0].hash, "[libdep-hash]");
    insta::assert_snapshot!("app_binary_distribution", info);

    // `.spack/spec.json` is the document without the layout version; the build log is gzip'd.
    let get = |suffix: &str| &members.iter().find(|m| m.0.ends_with(suffix)).unwrap().4;
    let mut doc = spec.clone();
    doc.as_object_mut()
        .unwrap()
        .remove("buildcache_layout_version");
    assert_eq!(
        serde_json::from_slice::<Value>(get(".spack/spec.json")).unwrap(),
        doc
    );
    assert_eq!(
        gunzip(get(".spack/spack-build-out.txt.gz")),
        b"building app\nok\n"
    );

    // The index holds every node of both DAGs; only exported ones are in the buildcache.
    let idx = index_of(&cache);
    let cached: Vec<_> = idx
        .records
        .values()
        .filter(|r| r.in_buildcache)
        .map(|r| r.field("name"))
        .collect();
    assert_eq!(idx.records.len(), 4);
    assert_eq!(cached.len(), 2);
    assert!(cached.contains(&"app") && cached.contains(&"libdep"));

    // The stub repository declares app's link dependency.
    let stub =
        fs_err::read_to_string(cache.join("spack-repo/spack_repo/forge/packages/app/package.py"))
            .unwrap();
    insta::assert_snapshot!("app_stub_recipe", stub);
    assert_eq!(
        fs_err::read_to_string(cache.join("spack-repo/spack_repo/forge/repo.yaml")).unwrap(),
        "repo:\n  namespace: forge\n  api: v2.2\n"
    );
    let readme = fs_err::read_to_string(cache.join("README.md")).unwrap();
    assert!(readme.contains("spack repo add"), "{readme}");
    // Exported unsigned: added as an unsigned mirror, no keys to trust.
    assert!(
        readme.contains("spack mirror add --unsigned forge"),
        "{readme}"
    );
    assert!(!readme.contains("keys --install"), "{readme}");
    assert!(readme.contains("spack install --cache-only app@1.0"));
}

#[test]
fn exports_are_byte_identical_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    // Big enough for many compression blocks.
    let big: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    write(
        &f.graph.node(f.app).prefix().unwrap().join("lib/big.dat"),
        &big,
        false,
    );
    let mut trees = Vec::new();
    for (i, threads) in [1, 2, 4].into_iter().enumerate() {
        let cache = tmp.path().join(format!("cache{i}"));
        let o = ExportOptions {
            gzip: GzipOptions { level: 6, threads },
            ..opts()
        };
        export(&f.graph, &[f.app], &cache, None, &o).unwrap();
        trees.push(tree(&cache));
    }
    assert!(trees[0].len() > 10);
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[test]
fn re_export_reuses_blobs_and_merges_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);

    // libdep alone, then app: the index ends up as if app had been exported at once.
    let merged = tmp.path().join("merged");
    let first = export(&f.graph, &[f.libdep], &merged, None, &opts()).unwrap();
    assert!(!first.specs[0].reused);
    let tarball = merged.join(first.specs[0].tarball.relative_path().unwrap());
    let before = fs_err::metadata(&tarball).unwrap().modified().unwrap();
    let second = export(&f.graph, &[f.app], &merged, None, &opts()).unwrap();
    assert!(second.specs[0].reused, "libdep's blobs were already there");
    assert!(!second.specs[1].reused);
    assert_eq!(
        fs_err::metadata(&tarball).unwrap().modified().unwrap(),
        before
    );

    let direct = tmp.path().join("direct");
    export(&f.graph, &[f.app], &direct, None, &opts()).unwrap();
    // Earlier index blobs stay (a reader may still be fetching one), unreferenced.
    assert_eq!(published(&merged), published(&direct));

    // Once more: nothing to do, same bytes.
    let third = export(&f.graph, &[f.app], &merged, None, &opts()).unwrap();
    assert!(third.specs.iter().all(|s| s.reused));
    assert_eq!(published(&merged), published(&direct));
}

#[test]
fn build_dependencies_are_exported_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let o = ExportOptions {
        with_build_deps: true,
        ..opts()
    };
    let r = export(&f.graph, &[f.app], &tmp.path().join("c"), None, &o).unwrap();
    let names: Vec<_> = r.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["libdep", "tool", "app"]);
}

fn violations(e: ExportError) -> Vec<Violation> {
    match e {
        ExportError::Relocation(r) => r.packages.into_iter().flat_map(|p| p.violations).collect(),
        other => panic!("expected a relocation error, got {other}"),
    }
}

fn assert_nothing_published(cache: &Path) {
    assert!(!cache.join(INDEX_MANIFEST).exists());
    let spec_dir = cache.join("v3/manifests/spec");
    let manifests = fs_err::read_dir(&spec_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(manifests, 0, "no manifest may be published");
}

#[test]
fn one_refused_export_lists_every_package_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let tool = f.graph.node(f.tool).prefix().unwrap().to_path_buf();
    // Both libdep (exported first) and app name the build-only tool in a script.
    for (id, file) in [(f.libdep, "bin/dep-config"), (f.app, "bin/helper")] {
        let prefix = f.graph.node(id).prefix().unwrap().to_path_buf();
        write(
            &prefix.join(file),
            format!("#!/bin/sh\n{}/bin/tool\n", tool.display()),
            true,
        );
    }
    let cache = tmp.path().join("cache");
    let ExportError::Relocation(e) = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap_err()
    else {
        panic!("expected a relocation error")
    };
    let refused: Vec<(&str, Vec<String>)> = e
        .packages
        .iter()
        .map(|p| {
            (
                p.package.as_str(),
                p.violations.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, "libdep@1.0");
    assert!(
        refused[0].1[0].starts_with("`bin/dep-config` references"),
        "{refused:?}"
    );
    assert_eq!(refused[1].0, "app@1.0");
    assert!(
        refused[1].1[0].starts_with("`bin/helper` references"),
        "{refused:?}"
    );
    assert!(
        e.to_string()
            .ends_with("2 packages cannot be relocated; nothing was published")
    );
    assert_nothing_published(&cache);
}

#[test]
fn refuses_a_file_that_embeds_an_unexported_store_path() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let stray = f.store.join("9z9z9z9z9z9z9z9z9z9z9z9z9z9z9z9z-glibc-2.40");
    write(
        &f.graph.node(f.app).prefix().unwrap().join("etc/app.conf"),
        format!("loader={}/lib/ld-linux-x86-64.so.2\n", stray.display()),
        false,
    );
    let cache = tmp.path().join("cache");
    let e = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        violations(e),
        [Violation::UnexportedStorePath {
            file: "etc/app.conf".into(),
            path: stray.display().to_string(),
        }]
    );
    assert!(msg.contains("etc/app.conf"), "{msg}");
    assert_nothing_published(&cache);
}

#[test]
fn refuses_paths_of_the_store_outside_its_padded_directory() {
    // forge's store keeps the outputs in a padded directory and its build directories, logs and
    // database beside it, in `<store>/.forge`. A configure script that records a path of the
    // build directory (Slurm 22.05's `SLEEP_CMD` was
    // `<store>/.forge/build/<name>.build/hostbin/sleep` while the host tools were linked there)
    // leaves it in a binary: Spack maps only the padded directory (`buildpath`) and the exported
    // prefixes, so the consumer would get a dead path.
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fixture(tmp.path(), 160);
    let store_dir = tmp.path().join("store");
    f.graph.set_store_dir(&store_dir);
    f.graph.set_sbang(store_dir.join("bin/sbang"));
    let app = f.graph.node(f.app).prefix().unwrap().to_path_buf();
    let sleep =
        store_dir.join(".forge/build/1a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-app-1.0.build/hostbin/sleep");
    write(
        &app.join("sbin/appstepd"),
        fake_elf(&sleep.display().to_string()),
        true,
    );
    let log = store_dir.join(".forge/logs/1a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-app-1.0.log.zst");
    fs_err::os::unix::fs::symlink(&log, app.join("share/app/build.log")).unwrap();
    // The store's `sbang` lies beside the padded directory too, and stays allowed.
    write(
        &app.join("bin/tool.py"),
        format!(
            "#!/bin/sh {}/bin/sbang
",
            store_dir.display()
        ),
        true,
    );
    // A sibling whose name merely starts like the store is not the store.
    write(
        &app.join("etc/other.conf"),
        format!(
            "{}-elsewhere/x
",
            store_dir.display()
        ),
        false,
    );

    let cache = tmp.path().join("cache");
    let v = violations(export(&f.graph, &[f.app], &cache, None, &opts()).unwrap_err());
    assert_eq!(
        v,
        [
            Violation::UnexportedStorePath {
                file: "sbin/appstepd".into(),
                path: sleep.display().to_string(),
            },
            Violation::UnexportedStorePath {
                file: "share/app/build.log".into(),
                path: log.display().to_string(),
            },
        ]
    );
    assert_nothing_published(&cache);

    // Without those two files the same prefix exports, `sbang` listed.
    fs_err::remove_file(app.join("sbin/appstepd")).unwrap();
    fs_err::remove_file(app.join("share/app/build.log")).unwrap();
    let r = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
    let members = members(&blob(&cache, &r.specs[1].tarball));
    let info =
        forge_spack::BuildInfo::from_yaml(std::str::from_utf8(&members.last().unwrap().4).unwrap())
            .unwrap();
    assert_eq!(
        info.sbang_install_path,
        Some(store_dir.join("bin/sbang").display().to_string())
    );
}

#[test]
fn refuses_references_spack_would_not_relocate() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let app = f.graph.node(f.app).prefix().unwrap().to_path_buf();
    let tool = f.graph.node(f.tool).prefix().unwrap().to_path_buf();
    // A build-only dependency's path baked into a script.
    write(
        &app.join("bin/helper"),
        format!("#!/bin/sh\n{}/bin/tool\n", tool.display()),
        true,
    );
    // A non-ELF binary file with a store path: Spack relocates neither text nor strings in it.
    let mut blob = vec![0u8, 0xff, 0xfe];
    blob.extend_from_slice(app.join("lib").display().to_string().as_bytes());
    write(&app.join("lib/libapp.a"), &blob, false);
    // A relative link out of the prefix.
    fs_err::os::unix::fs::symlink("../../../outside", app.join("share/app/escape")).unwrap();

    let cache = tmp.path().join("cache");
    let v = violations(export(&f.graph, &[f.app], &cache, None, &opts()).unwrap_err());
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v.contains(&Violation::NotADependency {
        file: "bin/helper".into(),
        package: "tool@1.0".into(),
        path: tool.display().to_string(),
    }));
    assert!(v.contains(&Violation::Unrelocatable {
        file: "lib/libapp.a".into(),
        path: app.display().to_string(),
    }));
    assert!(v.contains(&Violation::LinkEscapesPrefix {
        file: "share/app/escape".into(),
        target: "../../../outside".into(),
    }));
    assert_nothing_published(&cache);

    // Accepting unrelocatable files turns that one into a warning.
    fs_err::remove_file(app.join("bin/helper")).unwrap();
    fs_err::remove_file(app.join("share/app/escape")).unwrap();
    let o = ExportOptions {
        allow_unrelocatable: true,
        ..opts()
    };
    let r = export(&f.graph, &[f.app], &cache, None, &o).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("lib/libapp.a")),
        "{:?}",
        r.warnings
    );
}

/// Compiles `src` with the host's gcc, debug information on, headers from `include`.
fn cc(src: &str, include: &Path, out: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("main.c");
    fs_err::write(&c, src).unwrap();
    fs_err::create_dir_all(out.parent().unwrap()).unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-g", "-O0", "-I"])
        .arg(include)
        .arg(&c)
        .arg("-o")
        .arg(out)
        .status()
        .expect("gcc runs");
    assert!(st.success());
}

#[test]
fn build_only_paths_the_program_never_loads_are_allowed_and_reported() {
    // A compiler in the store leaves its include directory in the DWARF of everything it
    // compiles; Spack's own binaries carry such paths too. Only where the program can see a
    // path at run time must it belong to a link or run dependency.
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let app = f.graph.node(f.app).prefix().unwrap().to_path_buf();
    let tool = f.graph.node(f.tool).prefix().unwrap().to_path_buf();
    let include = tool.join("include");
    write(
        &include.join("tool.h"),
        "static inline int tool(void) { return 7; }\n",
        false,
    );
    cc(
        "#include <tool.h>\nint main(void) { return tool(); }\n",
        &include,
        &app.join("bin/appdbg"),
    );
    let cache = tmp.path().join("cache");
    let r = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
    let warned: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| w.contains("build-only `tool@1.0`"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", r.warnings);
    assert!(
        warned[0].contains("by 1 ELF file(s) of 1 package(s)"),
        "{warned:?}"
    );
    let app_spec = r.specs.iter().find(|s| s.name == "app").unwrap();
    let members = members(&blob(&cache, &app_spec.tarball));
    let info =
        forge_spack::BuildInfo::from_yaml(std::str::from_utf8(&members.last().unwrap().4).unwrap())
            .unwrap();
    assert!(
        info.relocate_binaries.contains(&"bin/appdbg".to_string()),
        "{info:?}"
    );

    // The same path as a string the program reads is refused.
    cc(
        &format!(
            "#include <stdio.h>\nint main(void) {{ puts(\"{}/bin/tool\"); return 0; }}\n",
            tool.display()
        ),
        &include,
        &app.join("bin/appstr"),
    );
    let cache = tmp.path().join("cache2");
    let v = violations(export(&f.graph, &[f.app], &cache, None, &opts()).unwrap_err());
    assert_eq!(
        v,
        [Violation::NotADependency {
            file: "bin/appstr".into(),
            package: "tool@1.0".into(),
            path: tool.display().to_string(),
        }]
    );
}

#[test]
fn refuses_binaries_whose_prefix_is_too_short_for_consumers() {
    let tmp = tempfile::tempdir().unwrap();
    // An unpadded store: consumer prefixes of up to 96-character roots would not fit.
    let f = fixture(tmp.path(), 0);
    let cache = tmp.path().join("cache");
    let o = ExportOptions {
        max_consumer_root: 96,
        ..ExportOptions::default()
    };
    let v = violations(export(&f.graph, &[f.libdep], &cache, None, &o).unwrap_err());
    let [
        Violation::PrefixTooShort {
            file, len, needed, ..
        },
    ] = v.as_slice()
    else {
        panic!("{v:?}")
    };
    assert_eq!(file, Path::new("lib/libdep.so.1"));
    assert!(len < needed);
    // Text files and links may grow: only binaries constrain the length.
    assert_nothing_published(&cache);
}

#[test]
fn scripts_using_the_stores_sbang_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fixture(tmp.path(), 160);
    // forge's store keeps `sbang` in the unpadded root, outside the padded directory.
    let sbang = tmp.path().join("store/bin/sbang");
    f.graph.set_sbang(&sbang);
    let app = f.graph.node(f.app).prefix().unwrap().to_path_buf();
    write(
        &app.join("bin/tool.py"),
        format!(
            "#!/bin/sh {}\n#!{}/bin/python3\nprint('hi')\n",
            sbang.display(),
            app.display()
        ),
        true,
    );
    let cache = tmp.path().join("cache");
    let r = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
    let members = members(&blob(&cache, &r.specs[1].tarball));
    let info =
        forge_spack::BuildInfo::from_yaml(std::str::from_utf8(&members.last().unwrap().4).unwrap())
            .unwrap();
    assert_eq!(info.sbang_install_path, Some(sbang.display().to_string()));
    assert!(info.relocate_textfiles.contains(&"bin/tool.py".to_string()));
    // Without such scripts there is no `sbang_install_path`.
    let r = export(&f.graph, &[f.libdep], &tmp.path().join("c2"), None, &opts()).unwrap();
    let lib_members = common::members(&blob(&tmp.path().join("c2"), &r.specs[0].tarball));
    let text = String::from_utf8(lib_members.last().unwrap().4.clone()).unwrap();
    assert!(!text.contains("sbang"), "{text}");
}

#[test]
fn build_logs_may_be_zstd_or_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fixture(tmp.path(), 160);
    let text = b"configure: ok\nmake: ok\n".repeat(100);
    let zst = tmp.path().join("logs/libdep.log.zst");
    fs_err::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
    let gz = tmp.path().join("logs/app.log.gz");
    fs_err::write(&gz, forge_spack::gzip::gzip_bytes(&text, 9).unwrap()).unwrap();
    for (id, log) in [(f.libdep, &zst), (f.app, &gz)] {
        if let forge_spack::NodeKind::Built { build_log, .. } = &mut f.graph.node_mut(id).kind {
            *build_log = Some(log.clone());
        }
    }
    let cache = tmp.path().join("cache");
    let r = export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
    for s in &r.specs {
        let m = members(&blob(&cache, &s.tarball));
        let log = &m
            .iter()
            .find(|x| x.0.ends_with(".spack/spack-build-out.txt.gz"))
            .unwrap()
            .4;
        assert_eq!(gunzip(log), text, "{}", s.name);
    }
}

#[test]
fn packages_mapped_to_spacks_builtin_get_no_stub_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fixture(tmp.path(), 160);
    f.graph.node_mut(f.libdep).namespace = "builtin".into();
    let cache = tmp.path().join("cache");
    export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
    let packages = cache.join("spack-repo/spack_repo/forge/packages");
    assert!(packages.join("app/package.py").exists());
    assert!(
        !packages.join("libdep").exists(),
        "libdep is Spack's own recipe: no stub"
    );
    assert!(!cache.join("spack-repo/spack_repo/builtin").exists());
    // The stub still declares the dependency on the builtin package.
    let stub = fs_err::read_to_string(packages.join("app/package.py")).unwrap();
    assert!(
        stub.contains("depends_on(\"libdep\", type=(\"build\", \"link\"))"),
        "{stub}"
    );
    // The spec says which repository each package comes from.
    let idx = index_of(&cache);
    let ns: Vec<(String, String)> = idx
        .records
        .values()
        .filter(|r| r.in_buildcache)
        .map(|r| (r.field("name").to_owned(), r.field("namespace").to_owned()))
        .collect();
    assert!(ns.contains(&("libdep".into(), "builtin".into())), "{ns:?}");
    assert!(ns.contains(&("app".into(), "forge".into())), "{ns:?}");
}

/// Copies a directory tree of regular files.
fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree_bytes(from) {
        write(&to.join(rel), bytes, false);
    }
}

#[test]
fn refuses_to_write_through_symbolic_links_in_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path(), 160);
    let good = tmp.path().join("good");
    export(&f.graph, &[f.app], &good, None, &opts()).unwrap();
    // forge itself never creates a symbolic link in a cache.
    assert!(
        tree_bytes(&good)
            .iter()
            .all(|(_, b)| !b.starts_with(b"-> ")),
        "{:?}",
        tree(&good)
    );
    let rebuild = ExportOptions {
        rebuild: true,
        ..opts()
    };
    for (i, placement) in [
        "blobs",
        "blobs/sha256",
        "v3",
        "v3/manifests/spec/app",
        "v3/manifests/index",
        ".forge-tmp",
        ".forge-tmp/lock",
        "spack-repo",
        "spack-repo/spack_repo/forge/packages",
        "README.md",
    ]
    .into_iter()
    .enumerate()
    {
        let cache = tmp.path().join(format!("cache-{i}"));
        copy_tree(&good, &cache);
        let outside = tmp.path().join(format!("outside-{i}"));
        write(&outside.join("keep"), "not the cache's\n", false);
        let link = cache.join(placement);
        let target = if placement.starts_with("spack-repo") {
            // A stale stub recipe where the link points: the export would remove it.
            copy_tree(&link, &outside);
            write(
                &outside.join(if placement == "spack-repo" {
                    "spack_repo/forge/packages/stale/package.py"
                } else {
                    "stale/package.py"
                }),
                "# stale\n",
                false,
            );
            outside.clone()
        } else if link.is_dir() {
            outside.clone()
        } else {
            // A file: the link dangles into the outside directory.
            outside.join("new-file")
        };
        if link.is_dir() {
            fs_err::remove_dir_all(&link).unwrap();
        } else if fs_err::symlink_metadata(&link).is_ok() {
            fs_err::remove_file(&link).unwrap();
        }
        fs_err::create_dir_all(link.parent().unwrap()).unwrap();
        fs_err::os::unix::fs::symlink(&target, &link).unwrap();
        let before = tree_bytes(&outside);

        let e = export(&f.graph, &[f.app], &cache, None, &rebuild)
            .expect_err(&format!("an export through `{placement}` must be refused"));
        match &e {
            ExportError::UnsafeCacheEntry { path, kind, .. } => {
                assert_eq!(path, Path::new(placement));
                assert_eq!(*kind, "a symbolic link");
            }
            other => panic!("{placement}: {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("`{placement}`")) && msg.contains("remove it"),
            "{msg}"
        );
        assert_eq!(
            tree_bytes(&outside),
            before,
            "{placement}: the link's target was written to"
        );
        // Removing the link is all it takes.
        fs_err::remove_file(&link).unwrap();
        export(&f.graph, &[f.app], &cache, None, &opts()).unwrap();
        assert_eq!(tree_bytes(&outside), before);
    }
}
