//! The store's integrity end to end: a damaged or lost database, deleted store paths, a full or
//! read-only file system, modes changed behind forge's back — each found by `forge verify`,
//! named with the file and what to do, and repaired where forge can repair it.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Two packages: `app` references `lib` at run time (its output names `lib`'s path).
fn world() -> World {
    world_with(&[])
}

/// [`world`] with more packages; `app` and each of them is a target of its own name.
fn world_with(extra: &[Pkg<'_>]) -> World {
    let w = World::new();
    let mut pkgs = vec![
        Pkg {
            name: "lib",
            deps: &[],
            script: "mkdir -p \"$out/share\"; echo library > \"$out/share/lib.txt\"".into(),
        },
        Pkg {
            name: "app",
            deps: &["lib"],
            script: "mkdir -p \"$out/bin\"; printf '#!/bin/sh\\ncat %s/share/lib.txt\\n' \"$FORGE_DEP_LIB\" > \"$out/bin/app\"; chmod 755 \"$out/bin/app\""
                .into(),
        },
    ];
    pkgs.extend(extra.iter().map(|p| Pkg {
        name: p.name,
        deps: p.deps,
        script: p.script.clone(),
    }));
    let targets: Vec<(&str, &str)> = pkgs[1..].iter().map(|p| (p.name, p.name)).collect();
    write_tree(&w.recipes(), &pkgs, &targets);
    w
}

/// Realizes `app` with an out-link `result`; returns the paths of `app` and `lib`.
fn realize(w: &World) -> (PathBuf, PathBuf) {
    let link = w.path().join("result");
    let o = w.run(&["realize", "app", "--out-link", link.to_str().unwrap()]);
    let app = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    let lib = fs_err::read_dir(w.paths_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-lib-1.0"))
        .unwrap();
    (app, lib)
}

fn db(w: &World) -> PathBuf {
    w.store().join(".forge/db.sqlite")
}

/// `path-info --json` of one path: its references (store paths).
fn references(w: &World, path: &Path) -> Vec<String> {
    let o = w
        .forge()
        .args(["path-info", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    v[0]["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Asserts that `forge ARGS` fails with a message that names the database and the repair.
#[track_caller]
fn refused_naming_the_repair(w: &World, args: &[&str]) {
    let o = w.run(args);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "forge {args:?} succeeded:\n{err}");
    assert!(
        err.contains(&db(w).display().to_string()),
        "forge {args:?} does not name the database:\n{err}"
    );
    assert!(
        err.contains("forge verify --repair"),
        "forge {args:?} does not name the repair:\n{err}"
    );
}

/// After a repair, the store is what it was: both paths valid with their contents, `app`
/// referencing `lib`, nothing to build, and the out-link keeping both alive.
#[track_caller]
fn store_is_whole_again(w: &World, app: &Path, lib: &Path) {
    ok(&w
        .forge()
        .args(["verify", "--check-contents"])
        .output()
        .unwrap());
    assert_eq!(references(w, app), vec![name_of(lib)]);
    let o = w.run(&["realize", "app", "--json"]);
    let ev = events(&o.stdout);
    ok(&o);
    assert_eq!(ev[0]["to_build"], 0, "{ev:?}");
    let gc = ok(&w
        .forge()
        .args(["gc", "--dry-run", "--json"])
        .output()
        .unwrap());
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["deleted"].as_array().unwrap().len(), 0, "{gc}");
    assert_eq!(gc["kept"], 2, "{gc}");
}

#[test]
fn a_damaged_database_page_is_found_by_verify_and_repaired() {
    let w = world();
    let (app, lib) = realize(&w);
    // 4 KiB of noise over page 2 (the first table's root page).
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs_err::OpenOptions::new().write(true).open(db(&w)).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(&noise).unwrap();
    }
    let v = w.forge().args(["verify"]).output().unwrap();
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(!err.contains("all good"), "{err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(err.contains(&db(&w).display().to_string()), "{err}");
    assert!(err.contains("forge verify --repair"), "{err}");
    // The other commands say the same instead of "malformed".
    refused_naming_the_repair(&w, &["path-info", app.to_str().unwrap()]);
    refused_naming_the_repair(&w, &["gc", "--dry-run"]);
    let r = w.forge().args(["verify", "--repair"]).output().unwrap();
    let out = text(&r.stderr);
    assert!(r.status.success(), "{out}");
    assert!(out.contains("2 paths registered again"), "{out}");
    // The damaged file is kept.
    let kept: Vec<String> = fs_err::read_dir(w.store().join(".forge"))
        .unwrap()
        .map(|e| name_of(&e.unwrap().path()))
        .filter(|n| n.starts_with("db.sqlite.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    store_is_whole_again(&w, &app, &lib);
}

#[test]
fn a_lost_database_is_refused_everywhere_and_rebuilt_by_repair() {
    for how in ["deleted", "emptied"] {
        let w = world();
        let (app, lib) = realize(&w);
        // The leftover of an interrupted build: not normalized, so never registered.
        let leftover = w
            .paths_dir()
            .join("0000000000000000000000000000000a-half-1.0");
        fs_err::create_dir_all(&leftover).unwrap();
        fs_err::write(leftover.join("part"), "half").unwrap();
        match how {
            "deleted" => fs_err::remove_file(db(&w)).unwrap(),
            _ => fs_err::write(db(&w), "").unwrap(),
        }
        for args in [
            &["verify"][..],
            &["path-info", app.to_str().unwrap()],
            &["roots"],
            &["gc"],
            &["gc", "--dry-run"],
            &["realize", "app"],
        ] {
            refused_naming_the_repair(&w, args);
        }
        // Nothing was rebuilt or deleted meanwhile.
        assert!(app.join("bin/app").exists() && lib.join("share/lib.txt").exists());
        let r = w.forge().args(["verify", "--repair"]).output().unwrap();
        let out = text(&r.stderr);
        assert!(r.status.success(), "{how}: {out}");
        assert!(out.contains("2 paths registered again"), "{how}: {out}");
        assert!(
            out.contains(&format!("`{}` was not registered", leftover.display())),
            "{how}: {out}"
        );
        store_is_whole_again(&w, &app, &lib);
        // The leftover is an unregistered directory, as before.
        let v = text(&w.forge().args(["verify"]).output().unwrap().stderr);
        assert!(v.contains("is not registered"), "{how}: {v}");
    }
}

#[test]
fn a_dropped_table_is_damage_not_an_empty_table() {
    let w = world();
    let (app, lib) = realize(&w);
    rusqlite::Connection::open(db(&w))
        .unwrap()
        .execute_batch("DROP TABLE Refs")
        .unwrap();
    let v = w.forge().args(["verify"]).output().unwrap();
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(err.contains("`Refs` is missing"), "{err}");
    refused_naming_the_repair(&w, &["gc"]);
    refused_naming_the_repair(&w, &["path-info", app.to_str().unwrap()]);
    // Without `Refs`, gc would have deleted `lib` from under `app`.
    assert!(lib.join("share/lib.txt").exists());
    ok(&w.forge().args(["verify", "--repair"]).output().unwrap());
    store_is_whole_again(&w, &app, &lib);
}

/// Deletes a store path as a user would: write permission back, then `rm -rf`.
fn delete_tree(p: &Path) {
    let s = std::process::Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(p)
        .status()
        .unwrap();
    assert!(s.success());
    fs_err::remove_dir_all(p).unwrap();
}

/// `forge realize app --json`: how many nodes it had to build.
fn realize_counting(w: &World) -> u64 {
    let o = w.run(&["realize", "app", "--json"]);
    ok(&o);
    let ev = events(&o.stdout);
    ev[0]["to_build"].as_u64().unwrap()
}

#[test]
fn a_deleted_store_path_is_built_again_and_verify_says_how() {
    let w = world();
    let (app, lib) = realize(&w);
    delete_tree(&lib);
    // verify names the path and a command that builds it again.
    let v = w.run(&["verify"]);
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("`{}` is registered but missing", lib.display())),
        "{err}"
    );
    assert!(
        err.contains("hint: `forge realize app` builds lib-1.0 again"),
        "{err}"
    );
    // That command works: realize takes the missing path for unbuilt, builds it (only it) and
    // registers it again.
    let o = w.run(&["realize", "app"]);
    let printed = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    assert_eq!(printed, app);
    assert!(
        text(&o.stderr).contains("1 of 2 nodes to build"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        fs_err::read_to_string(lib.join("share/lib.txt")).unwrap(),
        "library\n"
    );
    store_is_whole_again(&w, &app, &lib);

    // A missing path that present paths reference stays registered under --repair (its
    // referrers would dangle), and the repair says which command builds it again.
    delete_tree(&lib);
    let r = w.run(&["verify", "--repair"]);
    let err = text(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("stays registered"), "{err}");
    assert!(
        err.contains("hint: `forge realize app` builds lib-1.0 again"),
        "{err}"
    );
    assert_eq!(references(&w, &app), vec![name_of(&lib)]);
    assert_eq!(realize_counting(&w), 1);
    store_is_whole_again(&w, &app, &lib);

    // A missing path nothing references: outside a recipe tree, verify's hint is the repair,
    // which unregisters it.
    delete_tree(&app);
    let v = w.forge().args(["verify"]).output().unwrap();
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`forge verify --repair` unregisters it"),
        "{err}"
    );
    let r = w.forge().args(["verify", "--repair"]).output().unwrap();
    let err = text(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("unregistered"), "{err}");
    assert!(err.contains("verified 1 paths: all good"), "{err}");
    // And realize builds it again, printing a path that exists.
    assert_eq!(realize_counting(&w), 1);
    assert!(app.join("bin/app").exists());
    store_is_whole_again(&w, &app, &lib);
}

/// A tmpfs mounted at a directory, unmounted when dropped; `None` (with the reason printed)
/// where mounting is impossible (not root, no mount namespace privileges).
struct Tmpfs(PathBuf);

impl Tmpfs {
    // A test that cannot mount says why it did nothing.
    #[allow(clippy::print_stderr)]
    fn mount(dir: &Path, options: &str) -> Option<Self> {
        fs_err::create_dir_all(dir).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs at {}: {}",
                    dir.display(),
                    text(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Tmpfs {
    fn remount(&self, options: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remounting {} {options}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `forge ARGS` on the store at `store`, with the world's recipes.
fn run_at(w: &World, store: &Path, args: &[&str]) -> std::process::Output {
    let mut c = w.forge();
    c.env("FORGE_STORE", store)
        .arg("--recipes")
        .arg(w.recipes())
        .args(args);
    c.output().unwrap()
}

/// Bytes still available to unprivileged writers on the file system holding `p`.
fn available(p: &Path) -> u64 {
    let o = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(p)
        .output()
        .unwrap();
    text(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Writes zeros to a new file under `dir` until the file system refuses more.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = fs_err::File::create(dir.join("filler")).unwrap();
    for chunk in [1 << 16, 1 << 10, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

#[test]
fn on_a_full_file_system_read_only_commands_work_and_gc_frees_space() {
    let junk = Pkg {
        name: "junk",
        deps: &[],
        script: "mkdir -p \"$out\"; head -c 3000000 /dev/urandom > \"$out/blob\"".into(),
    };
    let w = world_with(&[junk]);
    let Some(fs) = Tmpfs::mount(&w.path().join("fs"), "size=12m") else {
        return;
    };
    let store = fs.0.join("store");
    let link = w.path().join("result");
    let o = run_at(
        &w,
        &store,
        &["realize", "app", "--out-link", link.to_str().unwrap()],
    );
    let app = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    // Garbage: built, and no root keeps it.
    let o = run_at(&w, &store, &["realize", "junk", "--no-root"]);
    let junk = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    fill(&fs.0);
    assert_eq!(available(&fs.0), 0, "the file system is full");
    // Every command that only reads works.
    for args in [
        &["verify"][..],
        &["verify", "--check-contents"],
        &["roots"],
        &["path-info", app.to_str().unwrap()],
        &["why-depends", app.to_str().unwrap(), &name_of(&app)],
        &["log", app.to_str().unwrap()],
        &["realize", "app"],
    ] {
        ok(&run_at(&w, &store, args));
    }
    let dry = ok(&run_at(&w, &store, &["gc", "--dry-run", "--json"]));
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["deleted"], serde_json::json!([name_of(&junk)]), "{dry}");
    assert!(junk.exists(), "a dry run deletes nothing");
    // gc deletes the garbage first, then has room to write the database.
    let gc = ok(&run_at(&w, &store, &["gc", "--json"]));
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["deleted"], serde_json::json!([name_of(&junk)]), "{gc}");
    assert!(!junk.exists());
    assert!(available(&fs.0) > 2_000_000);
    let info = run_at(&w, &store, &["path-info", junk.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(1), "{}", text(&info.stderr));
    let v = ok(&run_at(
        &w,
        &store,
        &["verify", "--check-contents", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["checked"], 2, "{v}");
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    drop(fs);
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs_err::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn verify_check_contents_sees_a_setuid_bit_and_a_mode_change_and_repair_restores_them() {
    use std::os::unix::fs::PermissionsExt;
    let w = world();
    let (app, lib) = realize(&w);
    let tool = app.join("bin/app");
    let data = lib.join("share/lib.txt");
    assert_eq!((mode(&tool), mode(&data)), (0o555, 0o444));
    // Neither changes the content hash (it covers only the execute bit).
    fs_err::set_permissions(&tool, std::fs::Permissions::from_mode(0o4555)).unwrap();
    fs_err::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&w.forge().args(["verify"]).output().unwrap());
    let v = w.run(&["verify", "--check-contents"]);
    let err = text(&v.stderr);
    assert_eq!(v.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "`{}` has mode 4555; the store gives it 0555",
            tool.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "`{}` has mode 0644; the store gives it 0444",
            data.display()
        )),
        "{err}"
    );
    assert!(err.contains("2 of 2 paths are damaged"), "{err}");
    assert!(
        err.contains("`forge verify --check-contents --repair`"),
        "{err}"
    );
    let r = w.run(&["verify", "--check-contents", "--repair"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!((mode(&tool), mode(&data)), (0o555, 0o444));
    store_is_whole_again(&w, &app, &lib);
}

#[test]
fn a_store_configuration_with_an_unknown_layout_version_is_refused_naming_the_file() {
    let w = world();
    let (app, lib) = realize(&w);
    let config = w.store().join(".forge/config.json");
    let good = fs_err::read_to_string(&config).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    assert_eq!(v["version"], 1, "{good}");
    for (bad, says) in [
        (
            good.replace("\"version\": 1", "\"version\": 2"),
            "says the store layout is version 2, but this forge knows only version 1",
        ),
        (
            good.replace("\"version\": 1", "\"version\": 0"),
            "says the store layout is version 0, but this forge knows only version 1",
        ),
        (
            good.replace("\"version\": 1", "\"version\": \"one\""),
            "is not a store configuration",
        ),
    ] {
        assert_ne!(bad, good);
        fs_err::write(&config, &bad).unwrap();
        for args in [
            &["verify"][..],
            &["path-info", app.to_str().unwrap()],
            &["gc"],
            &["realize", "app"],
            &["verify", "--repair"],
        ] {
            let o = w.run(args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(&format!("`{}` {says}", config.display())),
                "{args:?}: {err}"
            );
            assert!(err.contains("another `--store`"), "{args:?}: {err}");
        }
        // Nothing was rewritten or deleted.
        assert_eq!(fs_err::read_to_string(&config).unwrap(), bad);
        assert!(app.exists() && lib.exists());
    }
    fs_err::write(&config, &good).unwrap();
    store_is_whole_again(&w, &app, &lib);
}

#[test]
fn a_read_only_store_says_so_and_still_serves_the_read_only_commands() {
    let w = world();
    let Some(fs) = Tmpfs::mount(&w.path().join("fs"), "size=12m") else {
        return;
    };
    let store = fs.0.join("store");
    let link = w.path().join("result");
    let o = run_at(
        &w,
        &store,
        &["realize", "app", "--out-link", link.to_str().unwrap()],
    );
    let app = PathBuf::from(ok(&o).lines().last().unwrap().trim());
    fs.remount("ro");
    for args in [
        &["verify"][..],
        &["verify", "--check-contents"],
        &["roots"],
        &["path-info", app.to_str().unwrap()],
        &["why-depends", app.to_str().unwrap(), &name_of(&app)],
        &["log", app.to_str().unwrap()],
        &["gc", "--dry-run"],
        // Everything is valid: nothing to write.
        &["realize", "app"],
    ] {
        let out = ok(&run_at(&w, &store, args));
        if args[0] == "roots" {
            assert!(out.contains(&link.display().to_string()), "{out}");
        }
    }
    for args in [
        &["gc"][..],
        &["verify", "--repair"],
        &[
            "realize",
            "app",
            "--out-link",
            w.path().join("again").to_str().unwrap(),
        ],
    ] {
        let o = run_at(&w, &store, args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("the store at `{}` is read-only", store.display())),
            "{args:?}: {err}"
        );
        assert!(err.contains("remount it read-write"), "{args:?}: {err}");
        assert!(!err.contains("unable to open database file"), "{err}");
    }
    fs.remount("rw");
    ok(&run_at(&w, &store, &["verify", "--check-contents"]));
    drop(fs);
}

/// A store on a file system machines share keeps its database in SQLite's rollback-journal
/// mode (the write-ahead log's index lives in one machine's shared memory); a local one uses
/// the log. `FORGE_STORE_SHARED=1` declares a shared file system forge does not recognize;
/// an existing store switches when it is next opened.
#[test]
fn a_shared_store_uses_the_rollback_journal() {
    // Byte 18 of an SQLite file: 1 for the rollback journal, 2 for the write-ahead log.
    let mode = |w: &World| fs_err::read(w.store().join(".forge/db.sqlite")).unwrap()[18];
    let w = World::new();
    ok(&w.forge().args(["--example", "realize"]).output().unwrap());
    assert_eq!(mode(&w), 2, "a local store: write-ahead log");
    let shared = |w: &World, args: &[&str]| {
        ok(&w
            .forge()
            .env("FORGE_STORE_SHARED", "1")
            .args(args)
            .output()
            .unwrap())
    };
    shared(&w, &["--example", "realize"]);
    assert_eq!(mode(&w), 1, "the same store, declared shared: switched");
    assert!(!w.store().join(".forge/db.sqlite-wal").exists());
    let fresh = World::new();
    shared(&fresh, &["--example", "realize"]);
    assert_eq!(mode(&fresh), 1, "a new shared store");
    shared(&fresh, &["verify"]);
}
