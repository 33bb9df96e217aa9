//! Content hashes of file trees: store outputs, local sources, `forge check` comparisons.
//!
//! The hash is a Merkle tree over a canonical description of the tree, like a NAR but shaped so
//! that files can be hashed in parallel. Only names, contents, the executable bit and symlink
//! targets count: times, owners, other permission bits and the order the filesystem lists entries
//! in do not. The exact byte layout is specified in `store-layout/tree-hash.md`:
//!
//! ```text
//! H(file)    = blake3("forge-tree-v1\0f" || x || le64(size) || contents)     x = 1 if executable else 0
//! H(symlink) = blake3("forge-tree-v1\0l" || le64(len) || target)
//! H(dir)     = blake3("forge-tree-v1\0d" || for each entry, sorted by name bytes:
//!                                             le64(len(name)) || name || H(entry))
//! ```

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

const DOMAIN: &[u8] = b"forge-tree-v1\0";

/// Files at least this large are hashed with blake3's own multi-threading over a memory map.
const LARGE_FILE: u64 = 1 << 20;

/// What a tree entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File {
        /// Owner-executable.
        executable: bool,
        /// Size in bytes.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Its target, as stored.
        target: PathBuf,
    },
    /// A directory.
    Dir,
}

/// One entry of a hashed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root (empty for the root).
    pub path: PathBuf,
    /// What it is.
    pub kind: Kind,
    /// Its hash as defined above.
    pub hash: [u8; 32],
}

/// The hash of a whole tree with totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHash {
    /// Hash of the root.
    pub root: [u8; 32],
    /// Number of regular files.
    pub files: u64,
    /// Total size of regular files.
    pub bytes: u64,
}

impl TreeHash {
    /// Lower-case hex of the root hash.
    pub fn hex(&self) -> String {
        hex(&self.root)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Why a tree could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A device, FIFO or socket: such files have no place in sources or outputs.
    #[error("{path}: special files (devices, FIFOs, sockets) cannot be hashed")]
    Special {
        /// The path.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_hash(path: &Path, executable: bool, size: u64) -> Result<[u8; 32], TreeError> {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(b"f");
    h.update(&[u8::from(executable)]);
    h.update(&size.to_le_bytes());
    if size >= LARGE_FILE {
        h.update_mmap_rayon(path).map_err(io(path))?;
    } else if size > 0 {
        let data = fs_err::read(path).map_err(|e| TreeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })?;
        if data.len() as u64 != size {
            return Err(TreeError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("file changed size while being hashed"),
            });
        }
        h.update(&data);
    }
    Ok(*h.finalize().as_bytes())
}

fn symlink_hash(target: &Path) -> [u8; 32] {
    let bytes = target.as_os_str().as_bytes();
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(b"l");
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
    *h.finalize().as_bytes()
}

fn dir_hash(children: &[(Vec<u8>, [u8; 32])]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(b"d");
    for (name, hash) in children {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(hash);
    }
    *h.finalize().as_bytes()
}

struct Walked {
    /// Entries in pre-order, each directory before its (sorted) contents.
    entries: Vec<(PathBuf, Kind)>,
}

fn kind_of(path: &Path, meta: &Metadata) -> Result<Kind, TreeError> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs_err::read_link(path).map_err(|e| TreeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })?;
        Ok(Kind::Symlink { target })
    } else if ft.is_dir() {
        Ok(Kind::Dir)
    } else if ft.is_file() {
        Ok(Kind::File {
            executable: meta.permissions().mode() & 0o100 != 0,
            size: meta.len(),
        })
    } else {
        // Devices, FIFOs and sockets.
        Err(TreeError::Special {
            path: path.to_path_buf(),
        })
    }
}

fn walk(root: &Path) -> Result<Walked, TreeError> {
    let meta = fs_err::symlink_metadata(root).map_err(|e| TreeError::Io {
        path: root.to_path_buf(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })?;
    let root_kind = kind_of(root, &meta)?;
    let root_is_dir = matches!(root_kind, Kind::Dir);
    let mut entries = vec![(PathBuf::new(), root_kind)];
    // Depth-first with children pushed in reverse, so entries come out in pre-order with sorted
    // names.
    let mut todo: Vec<(PathBuf, Kind)> = Vec::new();
    if root_is_dir {
        push_children(root, Path::new(""), &mut todo)?;
    }
    while let Some((rel, kind)) = todo.pop() {
        let is_dir = matches!(kind, Kind::Dir);
        entries.push((rel.clone(), kind));
        if is_dir {
            push_children(root, &rel, &mut todo)?;
        }
    }
    Ok(Walked { entries })
}

fn push_children(
    root: &Path,
    rel: &Path,
    todo: &mut Vec<(PathBuf, Kind)>,
) -> Result<(), TreeError> {
    let dir = root.join(rel);
    let mut children: Vec<(Vec<u8>, PathBuf, Kind)> = Vec::new();
    for e in fs_err::read_dir(&dir).map_err(|e| TreeError::Io {
        path: dir.clone(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })? {
        let e = e.map_err(io(&dir))?;
        let name = e.file_name();
        let path = e.path();
        let meta = fs_err::symlink_metadata(&path).map_err(|err| TreeError::Io {
            path: path.clone(),
            source: std::io::Error::new(err.kind(), err.to_string()),
        })?;
        let kind = kind_of(&path, &meta)?;
        children.push((name.as_bytes().to_vec(), rel.join(&name), kind));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, p, k) in children.into_iter().rev() {
        todo.push((p, k));
    }
    Ok(())
}

/// Hashes the tree at `root` (a directory, a file or a symlink) and returns every entry in
/// pre-order (directories before their contents, names sorted by bytes) with its hash.
pub fn hash_tree_entries(root: &Path) -> Result<(TreeHash, Vec<Entry>), TreeError> {
    let walked = walk(root)?;
    // Hash file contents in parallel.
    let leaf_hashes: Vec<Option<[u8; 32]>> = walked
        .entries
        .par_iter()
        .map(|(rel, kind)| match kind {
            Kind::File { executable, size } => {
                let p = if rel.as_os_str().is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(rel)
                };
                file_hash(&p, *executable, *size).map(Some)
            }
            Kind::Symlink { target } => Ok(Some(symlink_hash(target))),
            Kind::Dir => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    // Fold directories bottom-up: walk the pre-order list backwards with a stack of pending
    // children per depth.
    let n = walked.entries.len();
    let mut hashes: Vec<[u8; 32]> = vec![[0; 32]; n];
    let mut files = 0;
    let mut bytes = 0;
    // children[i] collects (name, hash) of entry i's direct children.
    let mut parent: Vec<Option<usize>> = vec![None; n];
    {
        let mut dir_stack: Vec<(usize, usize)> = Vec::new(); // (index, depth)
        for (i, (rel, _)) in walked.entries.iter().enumerate() {
            let depth = rel.components().count();
            while dir_stack.last().is_some_and(|(_, d)| *d >= depth) {
                dir_stack.pop();
            }
            parent[i] = dir_stack.last().map(|(p, _)| *p);
            if matches!(walked.entries[i].1, Kind::Dir) {
                dir_stack.push((i, depth));
            }
        }
    }
    let mut children: Vec<Vec<(Vec<u8>, [u8; 32])>> = vec![Vec::new(); n];
    for i in (0..n).rev() {
        let (rel, kind) = &walked.entries[i];
        let h = match kind {
            Kind::Dir => {
                let mut c = std::mem::take(&mut children[i]);
                c.sort_by(|a, b| a.0.cmp(&b.0));
                dir_hash(&c)
            }
            Kind::File { size, .. } => {
                files += 1;
                bytes += size;
                leaf_hashes[i].expect("leaf")
            }
            Kind::Symlink { .. } => leaf_hashes[i].expect("leaf"),
        };
        hashes[i] = h;
        if let Some(p) = parent[i] {
            let name = rel
                .file_name()
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default();
            children[p].push((name, h));
        }
    }
    let entries = walked
        .entries
        .into_iter()
        .zip(hashes)
        .map(|((path, kind), hash)| Entry { path, kind, hash })
        .collect::<Vec<_>>();
    let root_hash = entries[0].hash;
    Ok((
        TreeHash {
            root: root_hash,
            files,
            bytes,
        },
        entries,
    ))
}

/// Hashes the tree at `root`.
pub fn hash_tree(root: &Path) -> Result<TreeHash, TreeError> {
    hash_tree_entries(root).map(|(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(p: &Path, s: &str) {
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, s).unwrap();
    }

    #[test]
    fn same_content_same_hash_regardless_of_creation_order_and_times() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(&a.path().join("x/1"), "one");
        write(&a.path().join("y"), "two");
        write(&b.path().join("y"), "two");
        write(&b.path().join("x/1"), "one");
        assert_eq!(hash_tree(a.path()).unwrap(), hash_tree(b.path()).unwrap());
    }

    #[test]
    fn exec_bit_contents_names_and_symlinks_count() {
        let a = tempfile::tempdir().unwrap();
        write(&a.path().join("f"), "data");
        let base = hash_tree(a.path()).unwrap().root;
        fs_err::set_permissions(a.path().join("f"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let exec = hash_tree(a.path()).unwrap().root;
        assert_ne!(base, exec);
        fs_err::set_permissions(a.path().join("f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_eq!(
            hash_tree(a.path()).unwrap().root,
            base,
            "only the executable bit counts"
        );
        fs_err::os::unix::fs::symlink("f", a.path().join("l")).unwrap();
        let with_link = hash_tree(a.path()).unwrap().root;
        assert_ne!(with_link, base);
        fs_err::remove_file(a.path().join("l")).unwrap();
        fs_err::os::unix::fs::symlink("g", a.path().join("l")).unwrap();
        assert_ne!(hash_tree(a.path()).unwrap().root, with_link);
    }

    #[test]
    fn moving_a_file_between_dirs_changes_the_hash() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(&a.path().join("d/f"), "x");
        write(&a.path().join("e/.keep"), "");
        write(&b.path().join("e/f"), "x");
        write(&b.path().join("d/.keep"), "");
        assert_ne!(hash_tree(a.path()).unwrap(), hash_tree(b.path()).unwrap());
    }

    #[test]
    fn entries_are_preorder_and_sorted() {
        let a = tempfile::tempdir().unwrap();
        write(&a.path().join("b/z"), "1");
        write(&a.path().join("b/a"), "2");
        write(&a.path().join("a"), "3");
        let (h, entries) = hash_tree_entries(a.path()).unwrap();
        let paths: Vec<_> = entries
            .iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["", "a", "b", "b/a", "b/z"]);
        assert_eq!(h.files, 3);
        assert_eq!(h.bytes, 3);
    }

    #[test]
    fn large_files_hash_like_small_ones_would() {
        // The mmap path and the read path must agree on the definition.
        let a = tempfile::tempdir().unwrap();
        let data = vec![7u8; (LARGE_FILE + 5) as usize];
        fs_err::write(a.path().join("big"), &data).unwrap();
        let got = hash_tree_entries(a.path()).unwrap().1[1].hash;
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        h.update(b"f");
        h.update(&[0]);
        h.update(&(data.len() as u64).to_le_bytes());
        h.update(&data);
        assert_eq!(got, *h.finalize().as_bytes());
    }

    #[test]
    fn special_files_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let fifo = a.path().join("p");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            hash_tree(a.path()),
            Err(TreeError::Special { .. })
        ));
    }
}
