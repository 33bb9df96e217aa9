//! The plan cache of `forge realize`: what a request planned to, remembered across runs, so
//! that a realize with nothing to build answers without parsing the recipe tree.
//!
//! Parsing ~100 KDL files is most of a no-op realize (the parser costs ~0.1 ms per KB). An
//! entry records the plan's store names, keyed by everything the plan is computed from that is
//! known before planning: the forge executable (its size, mtime and inode: a rebuilt forge may
//! plan differently), the recipe root, the request, the store and its padding, `PATH` with the
//! signature of each of its directories (a tool added to or removed from a directory changes
//! it), and the bytes of every recipe file. What planning read beyond that is recorded in the
//! entry and checked on use: the host tools' executables and the patch files (by signature), and
//! each local source (by the signatures of every file under it).
//!
//! A hit is used only when every node is valid in the store; anything else (a miss, a stale
//! entry, a node to build, a `--lock`/`--locked` run, recipes that printed warnings) takes the
//! normal path, which plans from the recipes and rewrites the entry. The cache is an
//! optimization only: an unreadable or damaged entry is a miss, and a failure to write one is
//! ignored. Entries live in `<cache dir>/plans/`, one file per (recipe root, request, store), so
//! their number stays bounded by the requests made. Format: `store-layout/plan-cache.md`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use forge_core::fs::signature;
use forge_plan::Plan;
use forge_recipe::HostDecl;
use forge_resolve::{HostError, HostProbe, HostTool};
use serde::{Deserialize, Serialize};

/// Changes whenever the entry format or the meaning of a key changes.
const FORMAT: &str = "forge-plan-cache-v1";

/// One remembered plan.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: String,
    /// The key this entry answers (hex blake3).
    key: String,
    /// The root's store name.
    root: String,
    /// Every node's store name.
    names: Vec<String>,
    /// Files the plan depends on beyond the key, with their signatures.
    files: Vec<(PathBuf, Vec<u64>)>,
    /// Local sources, with the hash of the signatures of everything under them.
    trees: Vec<(PathBuf, String)>,
}

/// A planned request, as the cache gives it back.
#[derive(Debug)]
pub struct Hit {
    /// The root's store name.
    pub root: String,
    /// Every node's store name.
    pub names: Vec<String>,
}

/// The cache slot of one request: where its entry lives and the key it must carry.
#[derive(Debug)]
pub struct Slot {
    file: PathBuf,
    key: String,
}

/// The signature of a path and, through symlinks, of what it leads to.
fn signature_followed(path: &Path) -> Vec<u64> {
    let mut sig = signature(path, false).map(Vec::from).unwrap_or_default();
    if let Ok(m) = fs_err::metadata(path) {
        sig.extend([m.len(), m.mtime() as u64, m.mtime_nsec() as u64, m.ino()]);
    }
    sig
}

/// A hash of the signatures of `path` and, for a directory, of everything under it.
fn tree_signature(path: &Path) -> String {
    fn walk(h: &mut blake3::Hasher, path: &Path, rel: &Path) {
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        for n in signature(path, false).unwrap_or_default() {
            h.update(&n.to_le_bytes());
        }
        let is_dir = fs_err::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            return;
        }
        let Ok(rd) = fs_err::read_dir(path) else {
            h.update(b"unreadable");
            return;
        };
        let mut names: Vec<_> = rd.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            walk(h, &path.join(&n), &rel.join(&n));
        }
    }
    let mut h = blake3::Hasher::new();
    walk(&mut h, path, Path::new(""));
    h.finalize().to_hex().to_string()
}

impl Slot {
    /// The slot of `request` planned from the recipe tree at `root` for `store`. `None` when
    /// the recipe files cannot be listed or read (the normal path reports that).
    pub fn new(
        cache_dir: &Path,
        root: &Path,
        request: &str,
        store: &Path,
        padded_length: Option<usize>,
    ) -> Option<Self> {
        let mut id = blake3::Hasher::new();
        for part in [
            FORMAT.as_bytes(),
            root.as_os_str().as_encoded_bytes(),
            request.as_bytes(),
            store.as_os_str().as_encoded_bytes(),
        ] {
            id.update(&(part.len() as u64).to_le_bytes());
            id.update(part);
        }
        let file = cache_dir
            .join("plans")
            .join(format!("{}.json", &id.finalize().to_hex()[..32]));

        let mut key = blake3::Hasher::new();
        key.update(FORMAT.as_bytes());
        let exe = std::env::current_exe().ok()?;
        key.update(exe.as_os_str().as_encoded_bytes());
        for n in signature_followed(&exe) {
            key.update(&n.to_le_bytes());
        }
        key.update(root.as_os_str().as_encoded_bytes());
        key.update(b"\0");
        key.update(request.as_bytes());
        key.update(b"\0");
        key.update(store.as_os_str().as_encoded_bytes());
        key.update(format!("\0{padded_length:?}\0").as_bytes());
        let path = std::env::var_os("PATH").unwrap_or_default();
        key.update(path.as_encoded_bytes());
        for dir in std::env::split_paths(&path) {
            key.update(b"\0");
            for n in signature_followed(&dir) {
                key.update(&n.to_le_bytes());
            }
        }
        for f in forge_recipe::set::kdl_files(root).ok()? {
            let bytes = fs_err::read(&f).ok()?;
            key.update(f.as_os_str().as_encoded_bytes());
            key.update(&(bytes.len() as u64).to_le_bytes());
            key.update(&bytes);
        }
        Some(Self {
            file,
            key: key.finalize().to_hex().to_string(),
        })
    }

    /// The remembered plan, if the entry answers this key and nothing it depends on changed.
    pub fn lookup(&self) -> Option<Hit> {
        let bytes = fs_err::read(&self.file).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        if e.format != FORMAT || e.key != self.key {
            return None;
        }
        if e.files.iter().any(|(p, sig)| signature_followed(p) != *sig) {
            return None;
        }
        if e.trees.iter().any(|(p, sig)| tree_signature(p) != *sig) {
            return None;
        }
        Some(Hit {
            root: e.root,
            names: e.names,
        })
    }

    /// Remembers `plan`, which the host tools in `host` helped make. Best effort.
    pub fn record(&self, plan: &Plan, host: &Recording<'_>) {
        let mut files: Vec<PathBuf> = host.seen();
        let mut trees = Vec::new();
        for d in &plan.drvs {
            files.extend(d.patch_files.iter().cloned());
            trees.extend(d.fetch.iter().filter_map(|f| f.path.clone()));
        }
        files.sort();
        files.dedup();
        trees.sort();
        trees.dedup();
        let entry = Entry {
            format: FORMAT.to_owned(),
            key: self.key.clone(),
            root: plan.root().store_name().into_string(),
            names: forge_plan::store_names(plan)
                .into_iter()
                .map(forge_core::StoreName::into_string)
                .collect(),
            files: files
                .into_iter()
                .map(|p| {
                    let sig = signature_followed(&p);
                    (p, sig)
                })
                .collect(),
            trees: trees
                .into_iter()
                .map(|p| {
                    let sig = tree_signature(&p);
                    (p, sig)
                })
                .collect(),
        };
        let Ok(text) = serde_json::to_vec(&entry) else {
            return;
        };
        let Some(dir) = self.file.parent() else {
            return;
        };
        let _ = fs_err::create_dir_all(dir);
        let tmp = self
            .file
            .with_extension(format!("tmp{}", std::process::id()));
        if fs_err::write(&tmp, text).is_ok() && fs_err::rename(&tmp, &self.file).is_err() {
            let _ = fs_err::remove_file(&tmp);
        }
    }
}

/// A host probe that remembers which executables its answers came from.
#[derive(Debug)]
pub struct Recording<'a> {
    inner: &'a dyn HostProbe,
    seen: Mutex<Vec<PathBuf>>,
}

impl<'a> Recording<'a> {
    /// Records what `inner` answers.
    pub fn new(inner: &'a dyn HostProbe) -> Self {
        Self {
            inner,
            seen: Mutex::default(),
        }
    }

    /// The executables consulted so far.
    fn seen(&self) -> Vec<PathBuf> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl HostProbe for Recording<'_> {
    fn probe(&self, package: &str, decl: &HostDecl) -> Result<HostTool, HostError> {
        let answer = self.inner.probe(package, decl);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &answer {
            Ok(t) => seen.extend(t.executables.iter().map(|(_, p)| p.clone())),
            Err(HostError::NoVersion { path, .. }) => seen.push(path.clone()),
            // Not on PATH: the signatures of PATH's directories in the key cover a tool that
            // appears later.
            Err(HostError::NotFound { .. }) => {}
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(dir: &Path, request: &str) -> Slot {
        Slot::new(
            &dir.join("cache"),
            &dir.join("tree"),
            request,
            &dir.join("store"),
            None,
        )
        .unwrap()
    }

    fn tree(dir: &Path) {
        fs_err::create_dir_all(dir.join("tree/recipes")).unwrap();
        fs_err::write(dir.join("tree/recipes/a.kdl"), "package \"a\"\n").unwrap();
    }

    #[test]
    fn the_key_follows_the_recipe_bytes_and_the_request() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let a = slot(d.path(), "a");
        assert_eq!(a.key, slot(d.path(), "a").key);
        assert_ne!(a.key, slot(d.path(), "b").key);
        assert_ne!(a.file, slot(d.path(), "b").file);
        // Same length, same mtime second: only the bytes differ.
        fs_err::write(d.path().join("tree/recipes/a.kdl"), "package \"b\"\n").unwrap();
        let b = slot(d.path(), "a");
        assert_eq!(a.file, b.file);
        assert_ne!(a.key, b.key);
        // A new recipe file too.
        fs_err::write(d.path().join("tree/recipes/c.kdl"), "").unwrap();
        assert_ne!(b.key, slot(d.path(), "a").key);
    }

    #[test]
    fn an_entry_is_used_only_while_its_key_files_and_trees_hold() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path());
        let patch = d.path().join("tree/recipes/fix.patch");
        fs_err::write(&patch, "x").unwrap();
        let src = d.path().join("src");
        fs_err::create_dir_all(src.join("sub")).unwrap();
        fs_err::write(src.join("sub/main.c"), "int main;").unwrap();
        let s = slot(d.path(), "a");
        assert!(s.lookup().is_none(), "nothing recorded yet");
        let write = |files: Vec<(PathBuf, Vec<u64>)>, trees: Vec<(PathBuf, String)>| {
            let e = Entry {
                format: FORMAT.into(),
                key: s.key.clone(),
                root: "r".into(),
                names: vec!["r".into(), "d".into()],
                files,
                trees,
            };
            fs_err::create_dir_all(s.file.parent().unwrap()).unwrap();
            fs_err::write(&s.file, serde_json::to_vec(&e).unwrap()).unwrap();
        };
        write(
            vec![(patch.clone(), signature_followed(&patch))],
            vec![(src.clone(), tree_signature(&src))],
        );
        let hit = s.lookup().expect("a fresh entry is a hit");
        assert_eq!((hit.root.as_str(), hit.names.len()), ("r", 2));
        // A changed patch (new size) is a miss.
        fs_err::write(&patch, "xy").unwrap();
        assert!(s.lookup().is_none());
        write(
            vec![(patch.clone(), signature_followed(&patch))],
            vec![(src.clone(), tree_signature(&src))],
        );
        assert!(s.lookup().is_some());
        // A file added deep in a local source is a miss.
        fs_err::write(src.join("sub/extra.h"), "").unwrap();
        assert!(s.lookup().is_none());
        write(Vec::new(), vec![(src.clone(), tree_signature(&src))]);
        assert!(s.lookup().is_some());
        // Another key (the recipes changed) is a miss; so is a damaged entry.
        fs_err::write(d.path().join("tree/recipes/a.kdl"), "package \"z\"\n").unwrap();
        assert!(slot(d.path(), "a").lookup().is_none());
        fs_err::write(&s.file, "{not json").unwrap();
        assert!(s.lookup().is_none());
    }
}
