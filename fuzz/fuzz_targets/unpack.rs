//! Source-archive unpacking (`forge_fetch::unpack`) on hostile bytes. Each input is unpacked
//! into a fresh scratch directory; whatever the result, nothing may panic, and afterwards:
//!
//! - the scratch directory holds exactly what it held before — the archive, a sentinel file, an
//!   `outside/` directory with one file, and the directories above the destination — unchanged,
//!   and none of those files gained a hard link;
//! - inside the destination there is no device, FIFO or socket, no setuid, setgid or sticky bit,
//!   and every symlink leads (following links as the kernel would) inside the destination;
//! - the regular files respect the size limits, and a success reports within the limits;
//! - unless control characters are allowed, no name inside the destination holds one.
//!
//! Input: one byte whose low three bits choose the name the archive is unpacked under (`.tar`,
//! `.tar.gz`, `.tar.xz`, `.zip`, `.tar.bz2`, `.tar.zst`, or a name without a suffix, so the format
//! comes from the first bytes) and whose bit 3 allows control characters in names, then the
//! archive.
//!
//! The scratch directories go under `$TMPDIR`; a tmpfs (`TMPDIR=/dev/shm`) is faster.

#![no_main]

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use forge_fetch::{Limits, unpack};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "src.tar",
    "src.tar.gz",
    "src.tar.xz",
    "src.zip",
    "src.tar.bz2",
    "src.tar.zst",
    "src-archive",
    "src-archive",
];

const LIMITS: Limits = Limits {
    max_total_bytes: 4 << 20,
    max_file_bytes: 1 << 20,
    max_entries: 256,
    max_path_bytes: 512,
    max_metadata_bytes: 64 << 10,
    allow_control_chars: false,
};

const SENTINEL: &[u8] = b"sentinel: must survive\n";
const KEEP: &[u8] = b"outside: must survive\n";

fn names(dir: &Path) -> BTreeSet<String> {
    fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Where `path` leads when every symlink on the way is followed as the kernel would; names that
/// do not exist are taken as written. A loop leads nowhere (the kernel says ELOOP): `None`.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut queue: VecDeque<OsString> = path.iter().map(|c| c.to_owned()).collect();
    let mut out = PathBuf::from("/");
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
                            return None;
                        }
                        let target = fs_err::read_link(&next).unwrap();
                        for t in target.iter().rev() {
                            queue.push_front(t.to_owned());
                        }
                    }
                    _ => out = next,
                }
            }
            _ => {}
        }
    }
    Some(out)
}

fn file_is(path: &Path, contents: &[u8]) {
    let meta = fs_err::symlink_metadata(path).unwrap();
    assert!(
        meta.file_type().is_file(),
        "{} was replaced",
        path.display()
    );
    assert_eq!(meta.nlink(), 1, "{} gained a hard link", path.display());
    assert_eq!(
        fs_err::read(path).unwrap(),
        contents,
        "{} changed",
        path.display()
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, archive)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let limits = Limits {
        allow_control_chars: pick & 8 != 0,
        ..LIMITS
    };

    let tmp = tempfile::Builder::new()
        .prefix("forge-fuzz-unpack.")
        .tempdir()
        .unwrap();
    let root = fs_err::canonicalize(tmp.path()).unwrap();
    // The destination sits three levels down, so that an escape by `..` lands in the scratch
    // directory where it is seen.
    let dest = root.join("d1/d2/dest");
    let outside = root.join("outside");
    fs_err::create_dir_all(&dest).unwrap();
    fs_err::create_dir(&outside).unwrap();
    fs_err::write(root.join("sentinel"), SENTINEL).unwrap();
    fs_err::write(outside.join("keep"), KEEP).unwrap();
    let input = root.join("input");
    fs_err::write(&input, archive).unwrap();

    let result = unpack(&input, name, &dest, limits);
    if let Ok(report) = &result {
        assert!(report.entries <= LIMITS.max_entries, "{report:?}");
        assert!(report.bytes <= LIMITS.max_total_bytes, "{report:?}");
    }

    assert_eq!(
        names(&root),
        set(&["d1", "input", "outside", "sentinel"]),
        "the scratch directory holds something new ({name}: {result:?})"
    );
    assert_eq!(names(&root.join("d1")), set(&["d2"]));
    assert_eq!(names(&root.join("d1/d2")), set(&["dest"]));
    assert_eq!(names(&outside), set(&["keep"]));
    file_is(&root.join("sentinel"), SENTINEL);
    file_is(&outside.join("keep"), KEEP);
    file_is(&input, archive);

    let mut inodes = HashSet::new();
    let mut total = 0u64;
    let mut todo = vec![dest.clone()];
    while let Some(d) = todo.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if !limits.allow_control_chars {
                let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    !file_name.chars().any(forge_core::text::is_unsafe),
                    "a name with a control character: {file_name:?}"
                );
            }
            let meta = fs_err::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            assert!(
                !(ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket()),
                "special file {}",
                path.display()
            );
            if ft.is_symlink() {
                if let Some(to) = resolve(&path) {
                    assert!(
                        to.starts_with(&dest),
                        "{} leads to {}, outside the tree",
                        path.display(),
                        to.display()
                    );
                }
                continue;
            }
            assert_eq!(
                meta.mode() & 0o7000,
                0,
                "special mode bits on {}",
                path.display()
            );
            if ft.is_dir() {
                todo.push(path);
            } else {
                assert!(meta.len() <= LIMITS.max_file_bytes, "{}", path.display());
                if inodes.insert(meta.ino()) {
                    total += meta.len();
                }
            }
        }
    }
    assert!(total <= LIMITS.max_total_bytes, "{total} bytes unpacked");
});
