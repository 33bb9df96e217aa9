//! The hostile-archive corpus and the formats forge unpacks.
//!
//! Every archive is generated here. Each hostile case asserts the specific error and that
//! nothing was written outside the destination: extraction goes to `<scratch>/dest`, next to a
//! sentinel file and an `outside/` directory that symlink attacks aim at; afterwards the scratch
//! directory must hold exactly those three, unchanged, and every symlink left in `dest` must
//! resolve (following links as the kernel would) inside `dest`.

mod corpus;

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use corpus::{
    Entry, TARBALLS, Tarball, ZipEntry, dir, file, hardlink, noise, special, symlink, tar, zfile,
    zip, zip_set_mode, zip_set_size,
};
use forge_fetch::{Limits, Report, UnpackError, source_root, unpack};
use tar::EntryType;

const SENTINEL: &[u8] = b"sentinel: written by the test, must survive\n";
const KEEP: &[u8] = b"outside: must survive\n";

struct Scratch {
    _tmp: tempfile::TempDir,
    archives: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs_err::canonicalize(tmp.path()).unwrap();
        let dest = root.join("dest");
        let outside = root.join("outside");
        fs_err::create_dir(&dest).unwrap();
        fs_err::create_dir(&outside).unwrap();
        fs_err::write(root.join("sentinel"), SENTINEL).unwrap();
        fs_err::write(outside.join("keep"), KEEP).unwrap();
        Self {
            _tmp: tmp,
            archives: tempfile::tempdir().unwrap(),
            root,
            dest,
            outside,
        }
    }

    fn unpack(&self, name: &str, bytes: &[u8], limits: Limits) -> Result<Report, UnpackError> {
        let path = self.archives.path().join(name);
        fs_err::write(&path, bytes).unwrap();
        unpack(&path, name, &self.dest, limits)
    }

    /// Nothing outside `dest` changed, and nothing inside it reaches out or is special.
    fn assert_contained(&self) {
        assert_eq!(
            names(&self.root),
            ["dest", "outside", "sentinel"].map(String::from).into(),
            "the scratch directory holds something new"
        );
        assert_eq!(fs_err::read(self.root.join("sentinel")).unwrap(), SENTINEL);
        let meta = fs_err::metadata(self.root.join("sentinel")).unwrap();
        assert_eq!(meta.nlink(), 1, "the sentinel gained a hard link");
        assert_eq!(names(&self.outside), ["keep".to_string()].into());
        assert_eq!(fs_err::read(self.outside.join("keep")).unwrap(), KEEP);
        assert_eq!(
            fs_err::metadata(self.outside.join("keep")).unwrap().nlink(),
            1
        );
        let mut todo = vec![self.dest.clone()];
        while let Some(d) = todo.pop() {
            for e in fs_err::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let path = e.path();
                let meta = fs_err::symlink_metadata(&path).unwrap();
                let ft = meta.file_type();
                assert!(
                    !(ft.is_char_device() || ft.is_block_device() || ft.is_fifo()),
                    "special file {}",
                    path.display()
                );
                if ft.is_symlink() {
                    let to = resolve(&path);
                    assert!(
                        to.starts_with(&self.dest),
                        "{} leads to {}, outside the tree",
                        path.display(),
                        to.display()
                    );
                } else {
                    assert_eq!(
                        meta.permissions().mode() & 0o7000,
                        0,
                        "special mode bits on {}",
                        path.display()
                    );
                }
                if ft.is_dir() {
                    todo.push(path);
                }
            }
        }
    }

    fn dest_names(&self) -> BTreeSet<String> {
        names(&self.dest)
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Where `path` leads when every symlink on the way is followed as the kernel would; names that
/// do not exist are taken as written. A loop counts as going nowhere (the kernel says ELOOP).
fn resolve(path: &Path) -> PathBuf {
    let mut queue: VecDeque<OsString> = VecDeque::new();
    let mut out = PathBuf::from("/");
    let push_front = |q: &mut VecDeque<OsString>, p: &Path| {
        for c in p.iter().rev() {
            q.push_front(c.to_owned());
        }
    };
    push_front(&mut queue, path);
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        match Path::new(&c).components().next() {
            Some(Component::RootDir) => out = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::Normal(n)) => {
                let next = out.join(n);
                match fs_err::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        hops += 1;
                        if hops > 40 {
                            return path.to_path_buf();
                        }
                        let target = fs_err::read_link(&next).unwrap();
                        push_front(&mut queue, &target);
                    }
                    _ => out = next,
                }
            }
            _ => {}
        }
    }
    out
}

#[track_caller]
fn expect_refused(r: Result<Report, UnpackError>, entry: &str, reason: &str) {
    match r {
        Err(UnpackError::Refused {
            entry: e,
            reason: why,
            ..
        }) => {
            assert_eq!(e, entry, "refused the wrong entry ({why})");
            assert!(
                why.contains(reason),
                "refusal of `{entry}` says `{why}`, expected it to mention `{reason}`"
            );
        }
        other => panic!("expected `{entry}` to be refused ({reason}), got {other:?}"),
    }
}

#[track_caller]
fn expect_too_big(r: Result<Report, UnpackError>, what: &str, limit: u64) {
    match r {
        Err(UnpackError::TooBig {
            what: w, limit: l, ..
        }) => {
            assert!(w.contains(what), "TooBig says `{w}`, expected `{what}`");
            assert_eq!(l, limit);
        }
        other => panic!("expected TooBig ({what}), got {other:?}"),
    }
}

#[track_caller]
fn expect_read(r: Result<Report, UnpackError>) -> String {
    match r {
        Err(UnpackError::Read { reason, .. }) => reason,
        other => panic!("expected a read error, got {other:?}"),
    }
}

/// Unpacks `entries` as plain tar and as every compressed tar; each time `check` judges the
/// result, and the scratch directory must be untouched outside `dest`.
fn in_every_tarball(
    entries: &[Entry],
    limits: Limits,
    check: impl Fn(Tarball, &Scratch, Result<Report, UnpackError>),
) {
    let bytes = tar(entries);
    for t in TARBALLS {
        let s = Scratch::new();
        let r = s.unpack(t.file_name(), &t.compress(&bytes), limits);
        check(t, &s, r);
        s.assert_contained();
    }
}

fn refused_everywhere(entries: &[Entry], entry: &str, reason: &str) {
    in_every_tarball(entries, Limits::default(), |_, _, r| {
        expect_refused(r, entry, reason)
    });
}

// ---- path traversal and absolute names ----

#[test]
fn traversal_with_leading_dotdot_is_refused() {
    refused_everywhere(
        &[file("ok", 0o644, b"fine"), file("../x", 0o644, b"pwned")],
        "../x",
        "`..`",
    );
}

#[test]
fn traversal_through_a_subdirectory_is_refused() {
    in_every_tarball(
        &[
            dir("a/", 0o755),
            file("a/../../x", 0o644, b"pwned"),
            file("a/after", 0o644, b"never"),
        ],
        Limits::default(),
        |_, s, r| {
            expect_refused(r, "a/../../x", "`..`");
            // Extraction stopped at the refusal.
            assert!(!s.dest.join("a/after").exists());
        },
    );
}

#[test]
fn absolute_names_are_refused() {
    let s = Scratch::new();
    let into_scratch = format!("{}/abs-pwned", s.root.display());
    let into_tmp = format!("/tmp/forge-unpack-test-{}-abs", std::process::id());
    drop(s);
    refused_everywhere(
        &[file(&into_scratch, 0o644, b"pwned")],
        &into_scratch,
        "absolute path",
    );
    refused_everywhere(
        &[file(&into_tmp, 0o644, b"pwned")],
        &into_tmp,
        "absolute path",
    );
    assert!(!Path::new(&into_tmp).exists());
    refused_everywhere(&[dir("/", 0o755)], "/", "absolute path");
}

// ---- symlinks ----

#[test]
fn symlink_to_the_parent_then_a_file_through_it_is_refused() {
    refused_everywhere(
        &[symlink("link", ".."), file("link/pwned", 0o644, b"pwned")],
        "link",
        "leaves the source tree",
    );
}

#[test]
fn symlink_to_an_absolute_directory_then_a_file_through_it_is_refused() {
    refused_everywhere(
        &[symlink("link", "/etc"), file("link/pwned", 0o644, b"pwned")],
        "link",
        "absolute path",
    );
    assert!(!Path::new("/etc/pwned").exists());
    // Aimed at a directory the test watches: `outside/` must stay as it was.
    for t in TARBALLS {
        let s = Scratch::new();
        let target = s.outside.display().to_string();
        let bytes = tar(&[symlink("link", &target), file("link/pwned", 0o644, b"x")]);
        let r = s.unpack(t.file_name(), &t.compress(&bytes), Limits::default());
        expect_refused(r, "link", "absolute path");
        s.assert_contained();
    }
}

#[test]
fn deep_symlink_climbing_out_is_refused() {
    refused_everywhere(
        &[
            dir("a/b/", 0o755),
            symlink("a/b/up", "../../../outside"),
            file("a/b/up/pwned", 0o644, b"pwned"),
        ],
        "a/b/up",
        "leaves the source tree",
    );
}

#[test]
fn symlink_climbing_out_through_another_symlink_is_refused() {
    // `d/x -> ..` stays inside (it is the tree's root), but `d/x/..` is then the root's parent:
    // a lexical check alone would accept `esc`.
    in_every_tarball(
        &[
            dir("d/", 0o755),
            symlink("d/x", ".."),
            symlink("esc", "d/x/.."),
            file("esc/outside/pwned", 0o644, b"pwned"),
        ],
        Limits::default(),
        |_, s, r| {
            expect_refused(r, "esc", "`..` after a name");
            assert_eq!(
                fs_err::read_link(s.dest.join("d/x")).unwrap(),
                Path::new("..")
            );
        },
    );
    refused_everywhere(
        &[
            dir("d/", 0o755),
            symlink("d/x", ".."),
            symlink("esc", "d/x/../outside/keep"),
        ],
        "esc",
        "`..` after a name",
    );
}

#[test]
fn file_through_a_symlink_inside_the_tree_is_refused() {
    in_every_tarball(
        &[
            dir("sub/", 0o755),
            file("sub/keep", 0o644, b"keep"),
            symlink("link", "sub"),
            file("link/pwned", 0o644, b"pwned"),
        ],
        Limits::default(),
        |_, s, r| {
            expect_refused(r, "link/pwned", "symlink");
            // The link's target directory is untouched.
            assert_eq!(names(&s.dest.join("sub")), ["keep".to_string()].into());
            assert_eq!(fs_err::read(s.dest.join("sub/keep")).unwrap(), b"keep");
        },
    );
}

#[test]
fn directory_entry_over_a_symlink_is_refused() {
    in_every_tarball(
        &[
            dir("sub/", 0o700),
            symlink("link", "sub"),
            dir("link/", 0o777),
        ],
        Limits::default(),
        |_, s, r| {
            expect_refused(r, "link/", "symlink");
            // The mode of the link's target was not changed through it.
            let mode = fs_err::metadata(s.dest.join("sub"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        },
    );
}

#[test]
fn symlink_with_an_empty_target_is_refused() {
    refused_everywhere(&[symlink("empty", "")], "empty", "empty or invalid target");
}

// ---- hard links ----

#[test]
fn hard_link_out_of_the_tree_is_refused() {
    refused_everywhere(
        &[hardlink("h", "../../etc/passwd")],
        "h",
        "hard link target: `..`",
    );
    refused_everywhere(
        &[hardlink("h", "/etc/passwd")],
        "h",
        "hard link target: absolute path",
    );
    let s = Scratch::new();
    let sentinel = s.root.join("sentinel").display().to_string();
    drop(s);
    refused_everywhere(&[hardlink("h", &sentinel)], "h", "absolute path");
}

#[test]
fn hard_link_to_a_missing_target_is_refused_and_creates_nothing() {
    in_every_tarball(
        &[hardlink("h", "nowhere/deeper/file")],
        Limits::default(),
        |_, s, r| {
            expect_refused(r, "h", "not in the archive before it");
            assert!(
                s.dest_names().is_empty(),
                "a refused hard link created {:?}",
                s.dest_names()
            );
        },
    );
    refused_everywhere(
        &[hardlink("h", "later"), file("later", 0o644, b"too late")],
        "h",
        "not in the archive before it",
    );
}

#[test]
fn hard_link_through_a_symlink_is_refused() {
    refused_everywhere(
        &[
            dir("sub/", 0o755),
            file("sub/f", 0o644, b"f"),
            symlink("l", "sub"),
            hardlink("h", "l/f"),
        ],
        "h",
        "symlink",
    );
}

#[test]
fn hard_link_to_a_directory_or_a_symlink_is_refused() {
    refused_everywhere(
        &[dir("sub/", 0o755), hardlink("h", "sub")],
        "h",
        "not a regular file",
    );
    refused_everywhere(
        &[
            file("f", 0o644, b"f"),
            symlink("l", "f"),
            hardlink("h", "l"),
        ],
        "h",
        "not a regular file",
    );
}

// ---- special files and modes ----

#[test]
fn setuid_setgid_and_sticky_bits_are_dropped() {
    in_every_tarball(
        &[
            dir("d/", 0o3775),
            file("d/suid", 0o4755, b"#!/bin/sh\n"),
            file("d/sgid", 0o2750, b"#!/bin/sh\n"),
            file("d/sticky", 0o1644, b"data"),
            file("d/all", 0o7777, b"data"),
        ],
        Limits::default(),
        |_, s, r| {
            r.unwrap();
            let mode = |p: &str| {
                fs_err::metadata(s.dest.join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777
            };
            assert_eq!(mode("d"), 0o755);
            assert_eq!(mode("d/suid"), 0o755);
            assert_eq!(mode("d/sgid"), 0o750);
            assert_eq!(mode("d/sticky"), 0o644);
            // Group and world write are not kept either.
            assert_eq!(mode("d/all"), 0o755);
        },
    );
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, name) in [
        (EntryType::Char, "dev/null"),
        (EntryType::Block, "dev/sda"),
        (EntryType::Fifo, "fifo"),
    ] {
        in_every_tarball(
            &[dir("dev/", 0o755), special(name, kind)],
            Limits::default(),
            |_, s, r| {
                expect_refused(r, name, "device and FIFO");
                assert!(fs_err::symlink_metadata(s.dest.join(name)).is_err());
            },
        );
    }
}

#[test]
fn file_named_like_the_root_is_refused() {
    refused_everywhere(
        &[file("./", 0o644, b"data")],
        "./",
        "named like the archive root",
    );
    refused_everywhere(
        &[file(".", 0o644, b"x")],
        ".",
        "named like the archive root",
    );
}

// ---- sizes and limits ----

#[test]
fn a_huge_size_header_is_refused_before_any_data_is_read() {
    let tib = 1u64 << 40;
    in_every_tarball(
        &[Entry::Lying {
            name: b"huge".to_vec(),
            size: tib,
            data: b"only a few bytes follow".to_vec(),
        }],
        Limits::default(),
        |_, s, r| {
            expect_too_big(r, "entry `huge`", Limits::default().max_file_bytes);
            assert!(s.dest_names().is_empty(), "the huge entry was created");
        },
    );
}

#[test]
fn per_file_and_total_sizes_are_bounded() {
    let limits = Limits {
        max_file_bytes: 1000,
        max_total_bytes: 1500,
        ..Limits::default()
    };
    in_every_tarball(&[file("big", 0o644, &[b'x'; 1001])], limits, |_, s, r| {
        expect_too_big(r, "entry `big` (1001 bytes)", 1000);
        assert!(s.dest_names().is_empty());
    });
    in_every_tarball(
        &[
            file("a", 0o644, &[b'a'; 800]),
            file("b", 0o644, &[b'b'; 800]),
        ],
        limits,
        |_, s, r| {
            expect_too_big(r, "the unpacked size", 1500);
            assert_eq!(s.dest_names(), ["a".to_string()].into());
        },
    );
}

#[test]
fn too_many_entries_are_refused() {
    let entries: Vec<Entry> = (0..10)
        .map(|i| file(&format!("f{i}"), 0o644, b"x"))
        .collect();
    let limits = Limits {
        max_entries: 5,
        ..Limits::default()
    };
    in_every_tarball(&entries, limits, |_, s, r| {
        expect_too_big(r, "the number of entries", 5);
        assert_eq!(s.dest_names().len(), 5);
    });
    // Exactly at the limit is fine.
    in_every_tarball(&entries[..5], limits, |_, _, r| {
        assert_eq!(r.unwrap().entries, 5);
    });
}

#[test]
fn truncated_archives_fail_to_read() {
    // Incompressible data, so cutting the compressed stream in half cuts the tar inside it.
    let bytes = tar(&[
        file("pkg/first", 0o644, b"complete"),
        file("pkg/blob", 0o644, &noise(256 << 10, 7)),
        file("pkg/last", 0o644, b"never reached"),
    ]);
    for t in TARBALLS {
        let whole = t.compress(&bytes);
        let cut = &whole[..whole.len() / 2];
        let s = Scratch::new();
        let why = expect_read(s.unpack(t.file_name(), cut, Limits::default()));
        if t == Tarball::Tar {
            assert!(why.contains("truncated"), "{t:?}: {why}");
        }
        assert!(!s.dest.join("pkg/last").exists());
        s.assert_contained();
    }
}

#[test]
fn names_with_nul_bytes_are_refused() {
    // A GNU long name can carry a NUL in the middle; the header's own field cannot.
    refused_everywhere(
        &[Entry::File {
            name: [b'n'; 120]
                .iter()
                .chain(b"\0/../../escape")
                .copied()
                .collect(),
            mode: 0o644,
            data: b"x".to_vec(),
        }],
        // Shown escaped, like every control character in a name.
        &format!("{}\\u{{0}}/../../escape", "n".repeat(120)),
        "NUL byte",
    );
}

#[test]
fn overlong_names_are_refused() {
    let long = format!("pkg/{}", "a".repeat(5000));
    // The message shows the start of the name and its length, not all of it.
    let shown = format!("{}… (5004 bytes)", &long[..1024]);
    refused_everywhere(
        &[file(&long, 0o644, b"x")],
        &shown,
        "longer than 4096 bytes",
    );
    // A symlink target is bounded the same way.
    let target = "b/".repeat(3000);
    refused_everywhere(&[symlink("l", &target)], "l", "target longer than");
}

#[test]
fn oversized_metadata_is_refused_before_it_is_buffered() {
    // A long-name entry claiming 64 MiB, backed by zeros that compress to almost nothing: the
    // reader would hold it all in memory before the name could be judged.
    let size = 64u64 << 20;
    let entries = [
        Entry::LongNameRaw {
            size,
            data: vec![0; size as usize],
        },
        file("short", 0o644, b"x"),
    ];
    let bytes = tar(&entries);
    let limits = Limits::default();
    for t in [Tarball::Gz, Tarball::Zst] {
        let s = Scratch::new();
        let r = s.unpack(t.file_name(), &t.compress(&bytes), limits);
        expect_too_big(r, "metadata of one entry", limits.max_metadata_bytes);
        s.assert_contained();
    }
}

#[test]
fn pax_size_overrides_the_header_and_is_bounded() {
    let data = noise(1500, 3);
    // The header says 0 bytes; the pax record says 1500 and wins.
    let mut entries = vec![
        Entry::Pax {
            records: vec![("size".into(), "1500".into())],
        },
        file("paxed", 0o644, b""),
    ];
    let mut bytes = tar(&entries);
    // Put the 1500 bytes (padded) where the data of `paxed` belongs: after its header.
    let end = bytes.len() - 1024;
    let mut padded = data.clone();
    padded.resize(1536, 0);
    bytes.splice(end..end, padded);
    let s = Scratch::new();
    s.unpack("pax.tar", &bytes, Limits::default()).unwrap();
    assert_eq!(fs_err::read(s.dest.join("paxed")).unwrap(), data);
    s.assert_contained();

    entries[0] = Entry::Pax {
        records: vec![("size".into(), (1u64 << 40).to_string())],
    };
    in_every_tarball(&entries, Limits::default(), |_, s, r| {
        expect_too_big(r, "entry `paxed`", Limits::default().max_file_bytes);
        assert!(s.dest_names().is_empty());
    });
}

#[test]
fn pax_path_and_linkpath_overrides_are_judged_too() {
    // The header's own name is innocent; the pax record that replaces it is not.
    refused_everywhere(
        &[
            Entry::Pax {
                records: vec![("path".into(), "../pax-escape".into())],
            },
            file("innocent", 0o644, b"pwned"),
        ],
        "../pax-escape",
        "`..`",
    );
    refused_everywhere(
        &[
            Entry::Pax {
                records: vec![("linkpath".into(), "../../outside".into())],
            },
            symlink("innocent", "harmless"),
        ],
        "innocent",
        "leaves the source tree",
    );
}

#[test]
fn pre_posix_directory_entries_are_directories() {
    // Old archives mark a directory with a trailing slash on a regular, empty entry.
    in_every_tarball(
        &[file("old/", 0o755, b""), file("old/inside", 0o644, b"in")],
        Limits::default(),
        |_, s, r| {
            r.unwrap();
            assert!(s.dest.join("old").is_dir());
            assert_eq!(fs_err::read(s.dest.join("old/inside")).unwrap(), b"in");
        },
    );
}

// ---- duplicate names ----

#[test]
fn duplicate_names_last_wins_without_escaping() {
    in_every_tarball(
        &[
            dir("sub/", 0o755),
            file("sub/keep", 0o644, b"keep"),
            file("f", 0o644, b"one"),
            file("f", 0o644, b"two"),
            // A symlink replaced by a file: the file must not be written through the link.
            symlink("g", "sub/keep"),
            file("g", 0o644, b"three"),
            // A hard link replaced by a file: the other name keeps its content.
            file("h1", 0o644, b"original"),
            hardlink("h2", "h1"),
            file("h2", 0o644, b"replaced"),
        ],
        Limits::default(),
        |_, s, r| {
            r.unwrap();
            assert_eq!(fs_err::read(s.dest.join("f")).unwrap(), b"two");
            assert!(
                !fs_err::symlink_metadata(s.dest.join("g"))
                    .unwrap()
                    .is_symlink()
            );
            assert_eq!(fs_err::read(s.dest.join("g")).unwrap(), b"three");
            assert_eq!(fs_err::read(s.dest.join("sub/keep")).unwrap(), b"keep");
            assert_eq!(fs_err::read(s.dest.join("h1")).unwrap(), b"original");
            assert_eq!(fs_err::read(s.dest.join("h2")).unwrap(), b"replaced");
        },
    );
    // A file replaced by a symlink pointing out is still refused.
    refused_everywhere(
        &[file("f", 0o644, b"one"), symlink("f", "../outside/keep")],
        "f",
        "leaves the source tree",
    );
}

// ---- zip ----

fn zip_case(
    bytes: &[u8],
    limits: Limits,
    check: impl FnOnce(&Scratch, Result<Report, UnpackError>),
) {
    let s = Scratch::new();
    let r = s.unpack("src.zip", bytes, limits);
    check(&s, r);
    s.assert_contained();
}

#[test]
fn zip_slip_is_refused() {
    let bytes = zip(&[zfile("ok", 0o644, b"ok"), zfile("../evil", 0o644, b"pwned")]);
    zip_case(&bytes, Limits::default(), |_, r| {
        expect_refused(r, "../evil", "`..`")
    });
    let bytes = zip(&[zfile("a/../../evil", 0o644, b"pwned")]);
    zip_case(&bytes, Limits::default(), |_, r| {
        expect_refused(r, "a/../../evil", "`..`")
    });
    let bytes = zip(&[zfile("/tmp/evil", 0o644, b"pwned")]);
    zip_case(&bytes, Limits::default(), |_, r| {
        expect_refused(r, "/tmp/evil", "absolute path")
    });
}

#[test]
fn zip_symlinks_out_of_the_tree_are_refused() {
    for target in ["../../etc", "/etc", "sub/../.."] {
        let bytes = zip(&[
            ZipEntry::Dir {
                name: "sub/".into(),
            },
            ZipEntry::Symlink {
                name: "l".into(),
                target: target.into(),
            },
            zfile("l/passwd", 0o644, b"pwned"),
        ]);
        zip_case(&bytes, Limits::default(), |_, r| expect_refused(r, "l", ""));
    }
    let bytes = zip(&[
        ZipEntry::Dir {
            name: "sub/".into(),
        },
        ZipEntry::Symlink {
            name: "l".into(),
            target: "sub".into(),
        },
        zfile("l/pwned", 0o644, b"pwned"),
    ]);
    zip_case(&bytes, Limits::default(), |s, r| {
        expect_refused(r, "l/pwned", "symlink");
        assert!(names(&s.dest.join("sub")).is_empty());
    });
}

#[test]
fn zip_special_bits_are_dropped_and_special_files_refused() {
    let mut bytes = zip(&[
        zfile("suid", 0o755, b"#!/bin/sh\n"),
        zfile("fifo", 0o644, b""),
    ]);
    zip_set_mode(&mut bytes, "suid", 0o106755);
    let mut fifo = bytes.clone();
    zip_set_mode(&mut fifo, "fifo", 0o010644);
    zip_case(&fifo, Limits::default(), |_, r| {
        expect_refused(r, "fifo", "device, FIFO")
    });
    let mut chr = bytes.clone();
    zip_set_mode(&mut chr, "fifo", 0o020644);
    zip_case(&chr, Limits::default(), |_, r| {
        expect_refused(r, "fifo", "device, FIFO")
    });
    zip_case(&bytes, Limits::default(), |s, r| {
        r.unwrap();
        let mode = fs_err::metadata(s.dest.join("suid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    });
}

#[test]
fn zip_limits_apply() {
    let mut bytes = zip(&[zfile("big", 0o644, b"ten bytes!")]);
    zip_set_size(&mut bytes, "big", 0x7fff_ffff);
    let limits = Limits {
        max_file_bytes: 1 << 20,
        ..Limits::default()
    };
    zip_case(&bytes, limits, |s, r| {
        expect_too_big(r, "entry `big`", 1 << 20);
        assert!(s.dest_names().is_empty());
    });
    let many: Vec<ZipEntry> = (0..10)
        .map(|i| zfile(&format!("f{i}"), 0o644, b"x"))
        .collect();
    let limits = Limits {
        max_entries: 5,
        ..Limits::default()
    };
    zip_case(&zip(&many), limits, |s, r| {
        expect_too_big(r, "the number of entries", 5);
        assert!(s.dest_names().is_empty(), "counted before extracting");
    });
}

#[test]
fn zip_truncated_or_corrupt_fails_to_read() {
    let data = noise(64 << 10, 11);
    let bytes = zip(&[zfile("blob", 0o644, &data)]);
    zip_case(&bytes[..bytes.len() / 2], Limits::default(), |_, r| {
        expect_read(r);
    });
    // One flipped byte in the stored data: only the CRC can tell.
    let mut corrupt = bytes.clone();
    let at = corrupt
        .windows(16)
        .position(|w| w == &data[1000..1016])
        .unwrap();
    corrupt[at] ^= 0xff;
    zip_case(&corrupt, Limits::default(), |_, r| {
        let why = expect_read(r);
        assert!(why.contains("blob"), "{why}");
    });
}

// ---- what a good archive becomes ----

fn good_tree() -> Vec<Entry> {
    let long = format!("pkg-1.0/{}/long.txt", "l".repeat(120));
    vec![
        dir("pkg-1.0/", 0o755),
        dir("pkg-1.0/src/", 0o755),
        file(
            "pkg-1.0/src/main.c",
            0o644,
            b"int main(void) { return 0; }\n",
        ),
        file("pkg-1.0/configure", 0o755, b"#!/bin/sh\necho ok\n"),
        // No directory entry for `lib/`: created on the way.
        file("pkg-1.0/lib/libx.so.1", 0o644, b"\x7fELF"),
        symlink("pkg-1.0/lib/libx.so", "libx.so.1"),
        symlink("pkg-1.0/include", "src"),
        dir("pkg-1.0/src/sub/deep/", 0o755),
        symlink("pkg-1.0/src/sub/deep/up", "../../main.c"),
        symlink("pkg-1.0/top", "./configure"),
        hardlink("pkg-1.0/src/copy.c", "pkg-1.0/src/main.c"),
        dir("pkg-1.0/empty/", 0o700),
        file(&long, 0o644, b"long"),
    ]
}

fn check_good_tree(s: &Scratch, report: &Report) {
    let p = |rel: &str| s.dest.join("pkg-1.0").join(rel);
    assert_eq!(
        fs_err::read(p("src/main.c")).unwrap(),
        b"int main(void) { return 0; }\n"
    );
    let mode = |rel: &str| fs_err::metadata(p(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("configure"), 0o755);
    assert_eq!(mode("src/main.c"), 0o644);
    assert_eq!(mode("empty"), 0o700);
    assert_eq!(
        fs_err::read_link(p("lib/libx.so")).unwrap(),
        Path::new("libx.so.1")
    );
    assert_eq!(fs_err::read(p("lib/libx.so")).unwrap(), b"\x7fELF");
    assert_eq!(fs_err::read_link(p("include")).unwrap(), Path::new("src"));
    assert_eq!(
        fs_err::read(p("include/main.c")).unwrap(),
        fs_err::read(p("src/main.c")).unwrap()
    );
    assert_eq!(
        fs_err::read(p("src/sub/deep/up")).unwrap(),
        fs_err::read(p("src/main.c")).unwrap()
    );
    assert_eq!(fs_err::read(p("top")).unwrap(), b"#!/bin/sh\necho ok\n");
    let a = fs_err::metadata(p("src/main.c")).unwrap();
    let b = fs_err::metadata(p("src/copy.c")).unwrap();
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "copy.c is a hard link"
    );
    assert_eq!(a.nlink(), 2);
    assert_eq!(
        fs_err::read(p(&format!("{}/long.txt", "l".repeat(120)))).unwrap(),
        b"long"
    );
    assert_eq!(report.entries, 13);
    assert_eq!(report.bytes, 29 + 18 + 4 + 4);
    assert_eq!(source_root(&s.dest).unwrap(), s.dest.join("pkg-1.0"));
}

#[test]
fn every_tar_format_unpacks_a_good_tree() {
    in_every_tarball(&good_tree(), Limits::default(), |t, s, r| {
        let report = r.unwrap_or_else(|e| panic!("{t:?}: {e}"));
        check_good_tree(s, &report);
    });
}

#[test]
fn formats_are_recognized_by_content_without_a_telling_name() {
    let bytes = tar(&good_tree());
    for t in TARBALLS {
        let s = Scratch::new();
        let report = s
            .unpack("download", &t.compress(&bytes), Limits::default())
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
        check_good_tree(&s, &report);
    }
    let s = Scratch::new();
    let zipped = zip(&[zfile("pkg/a", 0o644, b"a")]);
    s.unpack("download", &zipped, Limits::default()).unwrap();
    assert_eq!(fs_err::read(s.dest.join("pkg/a")).unwrap(), b"a");
    let s = Scratch::new();
    let err = s.unpack("download", b"plain text, not an archive", Limits::default());
    assert!(expect_read(err).contains("not an archive"));
}

#[test]
fn zip_unpacks_a_good_tree() {
    let bytes = zip(&[
        ZipEntry::Dir {
            name: "pkg-2.0/".into(),
        },
        zfile("pkg-2.0/src/main.c", 0o644, b"int main;\n"),
        zfile("pkg-2.0/configure", 0o755, b"#!/bin/sh\n"),
        ZipEntry::Symlink {
            name: "pkg-2.0/include".into(),
            target: "src".into(),
        },
        ZipEntry::Symlink {
            name: "pkg-2.0/src/up".into(),
            target: "../configure".into(),
        },
        ZipEntry::Dir {
            name: "pkg-2.0/empty/".into(),
        },
    ]);
    zip_case(&bytes, Limits::default(), |s, r| {
        let report = r.unwrap();
        assert_eq!(report.entries, 6);
        let p = |rel: &str| s.dest.join("pkg-2.0").join(rel);
        assert_eq!(fs_err::read(p("src/main.c")).unwrap(), b"int main;\n");
        let mode = |rel: &str| fs_err::metadata(p(rel)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("configure"), 0o755);
        assert_eq!(mode("src/main.c"), 0o644);
        assert_eq!(fs_err::read_link(p("include")).unwrap(), Path::new("src"));
        assert_eq!(fs_err::read(p("src/up")).unwrap(), b"#!/bin/sh\n");
        assert!(p("empty").is_dir());
        assert_eq!(source_root(&s.dest).unwrap(), s.dest.join("pkg-2.0"));
    });
}

#[test]
fn source_root_is_the_single_top_directory_only() {
    let s = Scratch::new();
    s.unpack(
        "two.tar",
        &tar(&[file("a/x", 0o644, b"x"), file("b/y", 0o644, b"y")]),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(source_root(&s.dest).unwrap(), s.dest);
    let s = Scratch::new();
    s.unpack(
        "one-file.tar",
        &tar(&[file("README", 0o644, b"r")]),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(source_root(&s.dest).unwrap(), s.dest);
    let s = Scratch::new();
    s.unpack("link.tar", &tar(&[symlink("only", ".")]), Limits::default())
        .unwrap();
    assert_eq!(
        source_root(&s.dest).unwrap(),
        s.dest,
        "a symlink is not a source root"
    );
}

/// A wrapper the way Debian ships GCC: a tarball whose top directory holds the source tarball,
/// another tarball and a text file.
fn wrapper(inner: &[u8]) -> Vec<u8> {
    Tarball::Gz.compress(&tar(&[
        dir("gcc-13-13.4.0", 0o755),
        file("gcc-13-13.4.0/gcc-13.4.0-dfsg.tar.xz", 0o644, inner),
        file(
            "gcc-13-13.4.0/newlib-4.3.0.tar.xz",
            0o644,
            &Tarball::Xz.compress(&tar(&[file("newlib/README", 0o644, b"newlib\n")])),
        ),
        file("gcc-13-13.4.0/README.source", 0o644, b"how this was made\n"),
    ]))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn unpack_wrapper(
    s: &Scratch,
    bytes: &[u8],
    pattern: &str,
    sha256: &str,
) -> Result<PathBuf, forge_fetch::InnerError> {
    let path = s.archives.path().join("gcc-13_13.4.0.orig.tar.gz");
    fs_err::write(&path, bytes).unwrap();
    let work = s.archives.path().join("wrapper");
    let _ = fs_err::remove_dir_all(&work);
    forge_fetch::unpack_inner(
        &path,
        "gcc-13_13.4.0.orig.tar.gz",
        pattern,
        sha256,
        &work,
        &s.dest,
        Limits::default(),
    )
    .map(|(_, p)| p)
}

#[test]
fn a_wrapper_archive_unpacks_the_archive_inside_it_checked_by_its_own_sha256() {
    let s = Scratch::new();
    let inner = Tarball::Xz.compress(&tar(&[
        dir("gcc-13.4.0", 0o755),
        file(
            "gcc-13.4.0/configure",
            0o755,
            b"#!/bin/sh\necho configured\n",
        ),
        dir("gcc-13.4.0/gcc", 0o755),
        file("gcc-13.4.0/gcc/version.c", 0o644, b"13.4.0\n"),
    ]));
    let found = unpack_wrapper(
        &s,
        &wrapper(&inner),
        "gcc-13.4.0*.tar.*",
        &sha256_hex(&inner),
    )
    .expect("the inner archive unpacks");
    assert!(
        found.ends_with("gcc-13-13.4.0/gcc-13.4.0-dfsg.tar.xz"),
        "{found:?}"
    );
    // The source root is the inner archive's top directory, not the wrapper's.
    let root = source_root(&s.dest).unwrap();
    assert_eq!(root, s.dest.join("gcc-13.4.0"));
    assert_eq!(
        fs_err::read(root.join("gcc/version.c")).unwrap(),
        b"13.4.0\n"
    );
    assert!(
        !s.dest.join("gcc-13-13.4.0").exists(),
        "nothing of the wrapper in dest"
    );
    s.assert_contained();
}

#[test]
fn a_wrapper_whose_inner_archive_differs_is_refused_before_unpacking_it() {
    let s = Scratch::new();
    let inner = Tarball::Xz.compress(&tar(&[file("gcc-13.4.0/x", 0o644, b"x\n")]));
    let other = "0".repeat(64);
    let e = unpack_wrapper(&s, &wrapper(&inner), "gcc-13.4.0*.tar.*", &other).unwrap_err();
    match &e {
        forge_fetch::InnerError::Checksum {
            inner: name,
            expected,
            actual,
            ..
        } => {
            assert_eq!(name, "gcc-13-13.4.0/gcc-13.4.0-dfsg.tar.xz");
            assert_eq!(expected, &other);
            assert_eq!(actual, &sha256_hex(&inner));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("the recipe expects"), "{e}");
    assert!(names(&s.dest).is_empty(), "nothing unpacked");
    s.assert_contained();
}

#[test]
fn a_pattern_matching_nothing_or_several_files_is_refused_with_the_names() {
    let s = Scratch::new();
    let inner = Tarball::Xz.compress(&tar(&[file("gcc-13.4.0/x", 0o644, b"x\n")]));
    let sha = sha256_hex(&inner);
    let e = unpack_wrapper(&s, &wrapper(&inner), "gcc-14*.tar.*", &sha).unwrap_err();
    assert!(
        matches!(e, forge_fetch::InnerError::NotFound { .. })
            && e.to_string().contains("gcc-13-13.4.0/newlib-4.3.0.tar.xz"),
        "{e}"
    );
    let e = unpack_wrapper(&s, &wrapper(&inner), "*.tar.xz", &sha).unwrap_err();
    assert!(
        matches!(e, forge_fetch::InnerError::Ambiguous { ref matches, .. } if matches.len() == 2),
        "{e}"
    );
    assert!(names(&s.dest).is_empty());
    s.assert_contained();
}

#[test]
fn a_hostile_inner_archive_is_refused_like_any_other() {
    for (what, entries) in [
        (
            "traversal",
            vec![file("../../outside/keep", 0o644, b"pwned\n")],
        ),
        (
            "symlink escape",
            vec![
                symlink("gcc-13.4.0/out", "../../outside"),
                file("gcc-13.4.0/out/keep", 0o644, b"pwned\n"),
            ],
        ),
        (
            "absolute path",
            vec![file("/tmp/forge-inner-pwned", 0o644, b"pwned\n")],
        ),
    ] {
        let s = Scratch::new();
        let inner = Tarball::Xz.compress(&tar(&entries));
        let e = unpack_wrapper(
            &s,
            &wrapper(&inner),
            "gcc-13.4.0*.tar.*",
            &sha256_hex(&inner),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                forge_fetch::InnerError::Unpack(UnpackError::Refused { .. })
            ),
            "{what}: {e}"
        );
        s.assert_contained();
        assert!(!Path::new("/tmp/forge-inner-pwned").exists());
    }
    // A link in the wrapper that bears the inner archive's name is not the inner archive (and
    // a link out of the wrapper is refused while unpacking it).
    let s = Scratch::new();
    let bytes = Tarball::Gz.compress(&tar(&[
        dir("w", 0o755),
        file("w/other.tar.xz", 0o644, b"not it\n"),
        symlink("w/gcc-13.4.0-dfsg.tar.xz", "other.tar.xz"),
    ]));
    let e = unpack_wrapper(&s, &bytes, "gcc-13.4.0*.tar.*", &"0".repeat(64)).unwrap_err();
    assert!(matches!(e, forge_fetch::InnerError::NotFound { .. }), "{e}");
    s.assert_contained();
}

// ---- names a terminal would act on ----

/// An entry whose name holds an escape sequence, a carriage return or a bidirectional override
/// is refused before anything is created for it, and the error shows the name escaped.
#[test]
fn names_with_control_characters_are_refused_and_shown_escaped() {
    for (name, shown) in [
        (
            "src/\x1b[2J\x1b]0;pwned\x07.c",
            "src/\\u{1b}[2J\\u{1b}]0;pwned\\u{7}.c",
        ),
        ("ok\rREADME", "ok\\rREADME"),
        ("a/b\nerror: fake", "a/b\\nerror: fake"),
        ("evil\u{202e}c.sh", "evil\\u{202e}c.sh"),
        ("c1\u{9b}31m", "c1\\u{9b}31m"),
    ] {
        in_every_tarball(
            &[dir("src", 0o755), file(name, 0o644, b"x")],
            Limits::default(),
            |_, s, r| {
                let message = r
                    .as_ref()
                    .map(|_| String::new())
                    .unwrap_or_else(|e| e.to_string());
                expect_refused(r, shown, "control character");
                assert!(
                    !message.chars().any(forge_core::text::is_unsafe),
                    "{message:?}"
                );
                assert_eq!(s.dest_names(), ["src".to_owned()].into(), "{name:?}");
            },
        );
        let s = Scratch::new();
        let r = s.unpack(
            "a.zip",
            &zip(&[zfile(name, 0o644, b"x")]),
            Limits::default(),
        );
        expect_refused(r, shown, "control character");
        assert!(s.dest_names().is_empty());
    }
    // A link whose target holds one is refused too.
    refused_everywhere(
        &[file("a", 0o644, b"x"), hardlink("b", "a\x1b[0m")],
        "b",
        "control character",
    );
}

/// With `allow_control_chars` (a recipe's `allow-control-chars=#true`), such names are unpacked
/// as they are; everything else is still refused.
#[test]
fn control_characters_can_be_allowed() {
    let allow = Limits {
        allow_control_chars: true,
        ..Limits::default()
    };
    let name = "src/esc\x1b[0m.c";
    in_every_tarball(
        &[dir("src", 0o755), file(name, 0o644, b"x")],
        allow,
        |_, s, r| {
            r.unwrap();
            assert_eq!(fs_err::read(s.dest.join(name)).unwrap(), b"x");
            s.assert_contained();
        },
    );
    let s = Scratch::new();
    s.unpack("a.zip", &zip(&[zfile(name, 0o644, b"x")]), allow)
        .unwrap();
    assert_eq!(fs_err::read(s.dest.join(name)).unwrap(), b"x");
    // `..` stays refused.
    let s = Scratch::new();
    let r = s.unpack("b.zip", &zip(&[zfile("../esc\x1b.c", 0o644, b"x")]), allow);
    assert!(r.is_err());
    s.assert_contained();
}
