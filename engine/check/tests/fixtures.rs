//! Planted non-determinism: pairs of trees that differ the way real builds do, made with the
//! real tools where there are some (`date`, `cc`, GNU `ar`, GNU `tar`, `gzip`), and the
//! classification each must get.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::*;
use forge_check::{Classification as C, CompareContext, EntryKind, ExcerptFormat};

#[test]
fn identical_trees_are_reproducible() {
    let p = Pair::new();
    p.both("share/big", &vec![7u8; 3 << 20]);
    let c = p.compare(&ctx());
    assert!(c.reproducible());
    assert!(c.differences.is_empty());
    assert_eq!(c.stored, c.rebuilt);
    assert_eq!(c.stored.files, 4);
    assert_eq!(c.stats.bytes_hashed, 2 * c.stored.bytes);
}

#[test]
fn the_current_time_as_date_prints_it() {
    let p = Pair::new();
    let date = |args: &[&str]| -> Vec<u8> {
        run(
            &p.scratch,
            Command::new("date")
                .env("LC_ALL", "C")
                .env("TZ", "UTC")
                .args(args),
        )
    };
    // `date`'s default format (like ctime), for the stored build's time and for now.
    let stored_date = date(&["-d", &format!("@{STORED_TIME}")]);
    let now_date = date(&[]);
    assert_ne!(stored_date, now_date);
    p.stored(
        "share/demo/built-on",
        &[b"built on ".as_slice(), &stored_date].concat(),
    );
    p.rebuilt(
        "share/demo/built-on",
        &[b"built on ".as_slice(), &now_date].concat(),
    );
    let d = p.only(&ctx());
    assert_eq!(d.path, "share/demo/built-on");
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert_eq!(d.excerpt_format, Some(ExcerptFormat::Text));
    assert_eq!(d.line, Some(1));
    assert!(
        d.stored_excerpt.as_deref().unwrap().contains("2026"),
        "{d:#?}"
    );
    assert!(d.offset.unwrap() >= b"built on ".len() as u64);
}

#[test]
fn the_current_time_as_unix_seconds() {
    let p = Pair::new();
    let now = run(&p.scratch, Command::new("date").arg("+%s"));
    p.stored(
        "lib/pkgconfig/demo.pc",
        format!("prefix={OUTPUT}\nbuild_time={STORED_TIME}\n").as_bytes(),
    );
    p.rebuilt(
        "lib/pkgconfig/demo.pc",
        [
            format!("prefix={OUTPUT}\nbuild_time=").as_bytes(),
            now.as_slice(),
        ]
        .concat()
        .as_slice(),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert_eq!(d.line, Some(2));
    assert!(d.note.contains("a Unix time"), "{}", d.note);
}

#[test]
fn a_binary_time_in_a_header_like_pyc() {
    // A .pyc-like header: magic, flags, 32-bit little-endian time, size.
    let p = Pair::new();
    let pyc = |t: i64| {
        let mut v = vec![0x6f, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0];
        v.extend_from_slice(&(t as u32).to_le_bytes());
        v.extend_from_slice(&1234u32.to_le_bytes());
        v.extend_from_slice(&[0xe3, 0, 0, 0, 0, 0x10, 0x20]);
        v
    };
    p.stored("lib/python/__pycache__/m.pyc", &pyc(STORED_TIME + 30));
    p.rebuilt("lib/python/__pycache__/m.pyc", &pyc(now()));
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert_eq!(d.excerpt_format, Some(ExcerptFormat::Hex));
    // Without the builds' times, four random-looking bytes are not evidence enough.
    let d = p.only(&CompareContext::default());
    assert_eq!(d.classification, C::Binary);
}

#[test]
fn the_build_directory_embedded_in_text() {
    let p = Pair::new();
    p.stored(
        "include/demo/config.h",
        format!("#define DEMO_SRCDIR \"{STORED_BUILD}/src/demo-1.0\"\n").as_bytes(),
    );
    p.rebuilt(
        "include/demo/config.h",
        format!("#define DEMO_SRCDIR \"{REBUILT_BUILD}/src/demo-1.0\"\n").as_bytes(),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedBuildPath, "{d:#?}");
    assert!(d.note.contains("build's directory"), "{}", d.note);
    assert_eq!(
        d.stored_excerpt.as_deref(),
        Some(format!("#define DEMO_SRCDIR \"{STORED_BUILD}/src/demo-1.0\"").as_str())
    );
}

#[test]
fn the_build_directory_in_real_debug_info() {
    // The same source compiled with -g in two build directories: DWARF records the directory.
    // The compiler orders its merged debug strings by hash, so for some directory names the
    // strings and the offsets pointing at them move too: those must be told apart from
    // unexplained differences. The directories are mapped to fixed names so that the test sees
    // both cases every time.
    let src = "int demo(int x) { return x * 3 + 1; }\n";
    let mut moved = 0;
    let names = 24;
    for n in 0..names {
        let p = Pair::new();
        let mut ctx = CompareContext::default();
        for (side, suffix) in [("stored", "build"), ("rebuilt", "check")] {
            let dir = p.scratch.join(suffix);
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(dir.join("demo.c"), src).unwrap();
            let seen = format!("/forge-fixture/p{n}/abc-demo-1.0.{suffix}");
            run(
                &dir,
                Command::new("cc")
                    .args(["-g", "-O1", "-c", "demo.c", "-o", "demo.o"])
                    .arg(format!("-fdebug-prefix-map={}={seen}", dir.display())),
            );
            let obj = fs_err::read(dir.join("demo.o")).unwrap();
            assert!(
                memchr::memmem::find(&obj, seen.as_bytes()).is_some(),
                "the object names its build directory"
            );
            if side == "stored" {
                p.stored("lib/demo.o", &obj);
                ctx.stored_build_dir = Some(seen.into());
            } else {
                p.rebuilt("lib/demo.o", &obj);
                ctx.rebuilt_build_dir = Some(seen.into());
            }
        }
        let d = p.only(&ctx);
        assert_eq!(d.classification, C::EmbeddedBuildPath, "{d:#?}");
        assert!(d.also.is_empty(), "{d:#?}");
        assert_eq!(
            d.stored_size, d.rebuilt_size,
            "same-length build directories"
        );
        if d.note.contains("debug-information offsets") {
            moved += 1;
        }
    }
    assert!(
        0 < moved && moved < names,
        "{moved} of {names} objects had their debug strings reordered"
    );
}

#[test]
fn the_temporary_output_path_left_in_compressed_data() {
    // The rewrite of the temporary output path cannot see inside gzip data.
    let p = Pair::new();
    let gz = |s: String| {
        let mut w = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        w.write_all(s.as_bytes()).unwrap();
        w.finish().unwrap()
    };
    p.stored(
        "share/man/man1/demo.1.gz",
        &gz(format!(".TH DEMO 1\nFiles live in {OUTPUT}/share.\n")),
    );
    p.rebuilt(
        "share/man/man1/demo.1.gz",
        &gz(format!(".TH DEMO 1\nFiles live in {TEMP_OUTPUT}/share.\n")),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedBuildPath, "{d:#?}");
    assert_eq!(d.members, ["<gzip>"]);
    assert!(d.note.contains("temporary output path"), "{}", d.note);
    assert_eq!(d.line, Some(2));
}

#[test]
fn a_gzip_header_time() {
    // `gzip` records the input file's modification time.
    let p = Pair::new();
    let file = p.scratch.join("demo.1");
    fs_err::write(&file, ".TH DEMO 1\n").unwrap();
    let mut gz = Vec::new();
    for t in [STORED_TIME, now()] {
        run(
            &p.scratch,
            Command::new("touch")
                .arg("-d")
                .arg(format!("@{t}"))
                .arg(&file),
        );
        gz.push(run(&p.scratch, Command::new("gzip").arg("-c").arg(&file)));
    }
    p.stored("share/man/man1/demo.1.gz", &gz[0]);
    p.rebuilt("share/man/man1/demo.1.gz", &gz[1]);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert!(
        (4..8).contains(&d.offset.unwrap()),
        "MTIME is bytes 4..8 of the gzip header: {d:#?}"
    );
}

#[test]
fn a_text_file_listing_files_in_random_order() {
    let p = Pair::new();
    let mut names: Vec<String> = (0..40).map(|i| format!("{OUTPUT}/lib/m{i}.so")).collect();
    p.stored("share/demo/files.txt", (names.join("\n") + "\n").as_bytes());
    shuffle(&mut names, 42);
    p.rebuilt("share/demo/files.txt", (names.join("\n") + "\n").as_bytes());
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder, "{d:#?}");
    assert_eq!(d.note, "the same 40 lines in another order");
}

#[test]
fn words_in_another_order_on_a_line() {
    let p = Pair::new();
    p.stored(
        "lib/pkgconfig/demo.pc",
        b"Name: demo\nLibs: -ldemo -lm -lz -lpthread\n",
    );
    p.rebuilt(
        "lib/pkgconfig/demo.pc",
        b"Name: demo\nLibs: -lz -lpthread -ldemo -lm\n",
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder, "{d:#?}");
    assert_eq!(d.line, Some(2));
}

/// Three small object files compiled with the host compiler, in `dir`.
fn objects(dir: &Path) -> Vec<&'static str> {
    let names = vec!["alpha.o", "beta.o", "gamma_with_a_long_name.o"];
    for (i, n) in names.iter().enumerate() {
        let c = n.replace(".o", ".c");
        fs_err::write(
            dir.join(&c),
            format!("int f{i}(int x) {{ return x + {i}; }}\nint v{i} = {i};\n"),
        )
        .unwrap();
        run(dir, Command::new("cc").args(["-c", &c, "-o", n]));
    }
    names
}

#[test]
fn an_ar_archive_with_members_in_another_order() {
    let p = Pair::new();
    let names = objects(&p.scratch);
    // GNU ar in deterministic mode (D): only the order differs, and with it the symbol index.
    let mut order = names.clone();
    run(
        &p.scratch,
        Command::new("ar").arg("rcD").arg("one.a").args(&order),
    );
    order.reverse();
    run(
        &p.scratch,
        Command::new("ar").arg("rcD").arg("two.a").args(&order),
    );
    let one = fs_err::read(p.scratch.join("one.a")).unwrap();
    let two = fs_err::read(p.scratch.join("two.a")).unwrap();
    assert_ne!(one, two);
    assert!(one.starts_with(b"!<arch>\n"));
    p.stored("lib/libdemo.a", &one);
    p.rebuilt("lib/libdemo.a", &two);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder, "{d:#?}");
    assert!(d.also.is_empty(), "deterministic mode: no times ({d:#?})");
    assert!(
        d.note.contains("the same 3 ar members in another order"),
        "{}",
        d.note
    );
    assert!(d.note.contains("gamma_with_a_long_name.o"), "{}", d.note);
}

#[test]
fn an_ar_archive_with_member_times() {
    let p = Pair::new();
    let names = objects(&p.scratch);
    let mut archives = Vec::new();
    for (i, t) in [STORED_TIME, now()].into_iter().enumerate() {
        for n in &names {
            run(
                &p.scratch,
                Command::new("touch").arg("-d").arg(format!("@{t}")).arg(n),
            );
        }
        let a = format!("t{i}.a");
        // U: keep real times, owners and modes (what deterministic mode avoids).
        run(
            &p.scratch,
            Command::new("ar").arg("rcU").arg(&a).args(&names),
        );
        archives.push(fs_err::read(p.scratch.join(&a)).unwrap());
    }
    p.stored("lib/libdemo.a", &archives[0]);
    p.rebuilt("lib/libdemo.a", &archives[1]);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert!(d.note.contains("ar headers"), "{}", d.note);
}

#[test]
fn an_ar_member_that_differs_is_explained_inside() {
    let p = Pair::new();
    let mk = |name: &str, body: &str| {
        fs_err::write(p.scratch.join("version.c"), body).unwrap();
        run(
            &p.scratch,
            Command::new("cc").args(["-c", "version.c", "-o", "version.o"]),
        );
        run(
            &p.scratch,
            Command::new("ar").args(["rcD", name, "version.o"]),
        );
        fs_err::read(p.scratch.join(name)).unwrap()
    };
    let a = mk("a.a", "const char *built = \"Tue Mar  3 14:02:11 2026\";\n");
    let b = mk("b.a", "const char *built = \"Tue Mar  3 18:45:09 2026\";\n");
    p.stored("lib/libversion.a", &a);
    p.rebuilt("lib/libversion.a", &b);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert_eq!(d.members, ["version.o"]);
    assert!(d.note.starts_with("1 of 1 ar members differ"), "{}", d.note);
}

#[test]
fn a_tar_with_another_member_order() {
    let p = Pair::new();
    for n in ["a.txt", "b.txt", "c.txt"] {
        fs_err::write(p.scratch.join(n), format!("{n}\n")).unwrap();
    }
    let tar = |name: &str, members: &[&str]| {
        run(
            &p.scratch,
            Command::new("tar")
                .args(["--mtime=@1", "--owner=0", "--group=0", "--numeric-owner"])
                .args(["--format=ustar", "-cf", name])
                .args(members),
        );
        fs_err::read(p.scratch.join(name)).unwrap()
    };
    p.stored(
        "share/demo/data.tar",
        &tar("one.tar", &["a.txt", "b.txt", "c.txt"]),
    );
    p.rebuilt(
        "share/demo/data.tar",
        &tar("two.tar", &["c.txt", "a.txt", "b.txt"]),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder, "{d:#?}");
    assert!(d.note.contains("3 tar members"), "{}", d.note);
    assert!(
        d.note
            .contains("stored a.txt b.txt c.txt; rebuilt c.txt a.txt b.txt"),
        "{}",
        d.note
    );
}

#[test]
fn a_tar_with_member_times() {
    let p = Pair::new();
    fs_err::write(p.scratch.join("a.txt"), "a\n").unwrap();
    let mut tars = Vec::new();
    for (i, t) in [STORED_TIME, now()].into_iter().enumerate() {
        run(
            &p.scratch,
            Command::new("touch")
                .arg("-d")
                .arg(format!("@{t}"))
                .arg("a.txt"),
        );
        let name = format!("{i}.tar");
        run(
            &p.scratch,
            Command::new("tar")
                .args([
                    "--owner=0",
                    "--group=0",
                    "--numeric-owner",
                    "--format=ustar",
                    "-cf",
                ])
                .args([name.as_str(), "a.txt"]),
        );
        tars.push(fs_err::read(p.scratch.join(name)).unwrap());
    }
    p.stored("share/demo/data.tar", &tars[0]);
    p.rebuilt("share/demo/data.tar", &tars[1]);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert!(d.note.contains("tar headers"), "{}", d.note);
}

#[test]
fn a_zip_with_another_member_order() {
    let p = Pair::new();
    let zip = |order: &[&str]| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts =
            zip::write::SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
        for n in order {
            w.start_file(*n, opts).unwrap();
            w.write_all(format!("class {n}\n").as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    p.stored(
        "share/java/demo.jar",
        &zip(&["META-INF/MANIFEST.MF", "A.class", "B.class"]),
    );
    p.rebuilt(
        "share/java/demo.jar",
        &zip(&["META-INF/MANIFEST.MF", "B.class", "A.class"]),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder, "{d:#?}");
    assert!(d.note.contains("zip members"), "{}", d.note);
}

#[test]
fn a_compiled_date_and_time_in_a_program() {
    // __DATE__ and __TIME__ follow SOURCE_DATE_EPOCH: two builds three hours apart. The GNU
    // build ID (a hash of the whole file) differs as a consequence and must not hide the cause.
    let p = Pair::new();
    fs_err::write(
        p.scratch.join("prog.c"),
        "#include <stdio.h>\nint main(void) { puts(\"built \" __DATE__ \" \" __TIME__); return 0; }\n",
    )
    .unwrap();
    let mut bins = Vec::new();
    for (i, t) in [STORED_TIME, STORED_TIME + 3 * 3600 + 17]
        .into_iter()
        .enumerate()
    {
        let out = format!("prog{i}");
        run(
            &p.scratch,
            Command::new("cc")
                .env("SOURCE_DATE_EPOCH", t.to_string())
                .args([
                    "-O1",
                    "-Wno-date-time",
                    "-Wl,--build-id=sha1",
                    "prog.c",
                    "-o",
                ])
                .arg(&out),
        );
        bins.push(fs_err::read(p.scratch.join(out)).unwrap());
    }
    p.stored("bin/prog", &bins[0]);
    p.rebuilt("bin/prog", &bins[1]);
    p.exec("bin/prog");
    let d = p.only(&CompareContext::default());
    assert_eq!(d.classification, C::EmbeddedTimestamp, "{d:#?}");
    assert!(d.note.contains("GNU build ID"), "{}", d.note);
    assert!(d.stored_excerpt.is_some());
}

#[test]
fn an_executable_bit_flip() {
    let p = Pair::new();
    set_exec(&p.rebuilt.join("share/doc/demo/README"), true);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::Mode);
    assert_eq!(d.stored_executable, Some(false));
    assert_eq!(d.rebuilt_executable, Some(true));
    assert_eq!(d.offset, None);
    assert_eq!(d.note, "executable in the rebuilt output only");
}

#[test]
fn a_size_change() {
    let p = Pair::new();
    p.stored("share/demo/data.bin", &[1, 2, 3, 4, 5, 6, 7, 8]);
    p.rebuilt(
        "share/demo/data.bin",
        &[1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 5, 6, 7, 8],
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::Size);
    assert_eq!((d.stored_size, d.rebuilt_size), (Some(8), Some(15)));
    assert_eq!(d.offset, Some(4));
    assert_eq!(d.excerpt_format, Some(ExcerptFormat::Hex));
    assert_eq!(d.stored_excerpt.as_deref(), Some("01 02 03 04 05 06 07 08"));
}

#[test]
fn missing_and_extra_entries() {
    let p = Pair::new();
    p.stored("share/locale/de/demo.mo", b"de");
    p.stored("share/locale/fr/demo.mo", b"fr");
    p.rebuilt("share/demo/new-file", b"x");
    let c = p.compare(&ctx());
    let got: Vec<(&str, C, &str)> = c
        .differences
        .iter()
        .map(|d| (d.path.as_str(), d.classification, d.note.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "share/demo",
                C::Extra,
                "only in the rebuilt output: a directory of 1 entry (1 file)"
            ),
            (
                "share/locale",
                C::Missing,
                "only in the stored output: a directory of 4 entries (2 files)"
            ),
        ]
    );
    assert_eq!(c.differences[1].stored_kind, Some(EntryKind::Directory));
    assert_eq!(c.differences[1].rebuilt_kind, None);
}

#[test]
fn a_missing_file_next_to_equal_ones() {
    let p = Pair::new();
    p.stored("share/doc/demo/NEWS", b"news\n");
    let d = p.only(&ctx());
    assert_eq!(d.path, "share/doc/demo/NEWS");
    assert_eq!(d.classification, C::Missing);
    assert_eq!(d.stored_size, Some(5));
}

#[test]
fn a_symlink_retarget() {
    let p = Pair::new();
    link(&p.rebuilt, "lib/libdemo.so", "libdemo.so.1.0");
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::SymlinkTarget);
    assert_eq!(d.stored_target.as_deref(), Some("libdemo.so.1"));
    assert_eq!(d.rebuilt_target.as_deref(), Some("libdemo.so.1.0"));
}

#[test]
fn a_symlink_into_the_build_directory() {
    let p = Pair::new();
    link(&p.stored, "share/demo/src", &format!("{STORED_BUILD}/src"));
    link(
        &p.rebuilt,
        "share/demo/src",
        &format!("{REBUILT_BUILD}/src"),
    );
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::EmbeddedBuildPath);
    assert_eq!(d.also, [C::SymlinkTarget]);
}

#[test]
fn a_plain_binary_difference() {
    let p = Pair::new();
    let mut a: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    p.stored("lib/blob", &a);
    a[1234] ^= 0x5a;
    a[1236] ^= 0x01;
    p.rebuilt("lib/blob", &a);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::Binary);
    assert_eq!(d.offset, Some(1234));
    assert_eq!(d.excerpt_offset, Some(1216));
    assert!(d.note.starts_with("1 differing place"), "{}", d.note);
}

#[test]
fn a_file_that_became_a_directory() {
    let p = Pair::new();
    p.stored("share/demo/conf", b"x=1\n");
    p.rebuilt("share/demo/conf/x", b"1\n");
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::Mode);
    assert_eq!(d.stored_kind, Some(EntryKind::File));
    assert_eq!(d.rebuilt_kind, Some(EntryKind::Directory));
}

#[test]
fn the_executable_bit_is_noted_next_to_a_content_difference() {
    let p = Pair::new();
    p.stored("bin/tool", b"one\ntwo\n");
    p.rebuilt("bin/tool", b"two\none\n");
    set_exec(&p.rebuilt.join("bin/tool"), true);
    let d = p.only(&ctx());
    assert_eq!(d.classification, C::FileOrder);
    assert_eq!(d.also, [C::Mode]);
}

#[test]
fn several_differences_come_in_tree_order() {
    let p = Pair::new();
    p.stored("z/last", b"1");
    p.rebuilt("z/last", b"2");
    p.stored("a-b/f", b"1");
    p.rebuilt("a-b/f", b"2");
    p.stored("a/f", b"1");
    p.rebuilt("a/f", b"2");
    let c = p.compare(&ctx());
    let paths: Vec<&str> = c.differences.iter().map(|d| d.path.as_str()).collect();
    // Component by component: `a` sorts before `a-b`, so `a/f` comes first.
    assert_eq!(paths, ["a/f", "a-b/f", "z/last"]);
}

#[test]
fn a_single_file_output() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "stored", b"v=1\n");
    put(dir.path(), "rebuilt", b"v=2\n");
    let c = forge_check::compare(
        &dir.path().join("stored"),
        &dir.path().join("rebuilt"),
        &ctx(),
    )
    .unwrap();
    assert_eq!(c.differences.len(), 1);
    assert_eq!(c.differences[0].path, ".");
    assert_eq!(c.differences[0].classification, C::Binary);
}

#[test]
fn names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let p = Pair::new();
    let name = std::ffi::OsStr::from_bytes(b"share/caf\xe9");
    fs_err::write(p.stored.join(name), b"1\n").unwrap();
    fs_err::write(p.rebuilt.join(name), b"2\n").unwrap();
    let d = p.only(&ctx());
    assert_eq!(d.path, "share/caf\\xe9");
}
