//! One package's install tarball: the prefix streamed into a deterministic tar, scanned for
//! store paths on the way, with the generated `.spack/` metadata.
//!
//! Member order follows Spack's own tarballs: the parent directories of the prefix, then the
//! prefix depth-first (a directory, then its non-directory entries sorted by name, then its
//! subdirectories sorted by name), and `.spack/binary_distribution` last — which is what lets the
//! relocation lists be computed during the single pass over the files.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use crate::error::{ExportError, Violation};
use crate::graph::NodeId;
use crate::relocate::{FileClass, FileScanner, Ref, RefMatcher};
use crate::tar::TarWriter;

const BUF: usize = 256 * 1024;

/// What the scan of a prefix found.
#[derive(Debug, Default)]
pub(crate) struct ScanSummary {
    /// Regular files that embed the store root.
    pub(crate) files: Vec<ScannedFile>,
    /// Symbolic links whose absolute target is a store path (or the store's `sbang`).
    pub(crate) links: Vec<(String, Ref)>,
    /// Some text file starts with a `#!` line longer than 127 bytes.
    pub(crate) long_shebang: bool,
    /// Problems independent of the graph.
    pub(crate) violations: Vec<Violation>,
    /// Regular files archived (hard links counted once).
    pub(crate) file_count: u64,
    /// Their bytes.
    pub(crate) byte_count: u64,
}

/// A regular file that embeds the store root.
#[derive(Debug)]
pub(crate) struct ScannedFile {
    /// Its path relative to the prefix.
    pub(crate) path: String,
    pub(crate) class: FileClass,
    pub(crate) refs: BTreeSet<Ref>,
    /// Prefixes it names only in sections that are not loaded at run time (its scan's
    /// `unloaded`).
    pub(crate) unloaded: BTreeSet<NodeId>,
}

/// The inputs of one tarball.
#[derive(Debug)]
pub(crate) struct PackageFiles<'a> {
    /// The store path.
    pub(crate) prefix: &'a Path,
    /// `.spack/spec.json`.
    pub(crate) spec_json: &'a [u8],
    /// The gzip'd build log, for `.spack/spack-build-out.txt.gz`, open and positioned at its
    /// start.
    pub(crate) build_log_gz: &'a fs_err::File,
}

enum Item {
    Dir(PathBuf),
    SpackDir,
}

fn member(prefix: &[u8], rel: &[u8], dir: bool) -> Vec<u8> {
    let mut m = prefix.strip_prefix(b"/").unwrap_or(prefix).to_vec();
    if !rel.is_empty() {
        m.push(b'/');
        m.extend_from_slice(rel);
    }
    if dir {
        m.push(b'/');
    }
    m
}

/// Whether a relative link target climbs above the prefix.
fn escapes(link_rel: &Path, target: &Path) -> bool {
    let mut depth: i64 = link_rel
        .parent()
        .map_or(0, |p| p.components().count() as i64);
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Writes the tarball of `files.prefix` into `out`. `finalize` turns the scan into the bytes of
/// `.spack/binary_distribution`, or refuses the package.
pub(crate) fn write_package<W: Write>(
    out: W,
    files: &PackageFiles<'_>,
    matcher: &RefMatcher,
    finalize: impl FnOnce(&ScanSummary) -> Result<Vec<u8>, ExportError>,
) -> Result<W, ExportError> {
    let prefix = files.prefix;
    let pb = prefix.as_os_str().as_encoded_bytes();
    let mut tw = TarWriter::new(out);
    let mut summary = ScanSummary::default();
    let mut buf = vec![0u8; BUF];
    let mut hardlinks: HashMap<(u64, u64), Vec<u8>> = HashMap::new();

    // Parent directories, down to the prefix itself.
    let mut acc = PathBuf::from("/");
    for c in prefix.components().skip(1) {
        acc.push(c);
        tw.dir(&member(acc.as_os_str().as_encoded_bytes(), b"", true))?;
    }

    let mut stack = vec![Item::Dir(PathBuf::new())];
    while let Some(item) = stack.pop() {
        let rel = match item {
            Item::SpackDir => {
                tw.dir(&member(pb, b".spack", true))?;
                let log = files.build_log_gz.metadata()?.len();
                let mut f = files.build_log_gz;
                tw.file_stream(
                    &member(pb, b".spack/spack-build-out.txt.gz", false),
                    false,
                    log,
                    &mut f,
                    &mut buf,
                    |_| {},
                )?;
                tw.file_bytes(
                    &member(pb, b".spack/spec.json", false),
                    false,
                    files.spec_json,
                )?;
                continue;
            }
            Item::Dir(rel) => rel,
        };
        let top = rel.as_os_str().is_empty();
        if !top {
            tw.dir(&member(pb, rel.as_os_str().as_encoded_bytes(), true))?;
        }
        let abs = prefix.join(&rel);
        let mut entries = Vec::new();
        for e in fs_err::read_dir(&abs)? {
            let e = e?;
            let md = fs_err::symlink_metadata(e.path())?;
            entries.push((e.file_name(), md));
        }
        entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
        let mut dirs: Vec<(Vec<u8>, Item)> = Vec::new();
        if top {
            dirs.push((b".spack".to_vec(), Item::SpackDir));
        }
        for (name, md) in entries {
            let r = rel.join(&name);
            if top && name == ".spack" {
                return Err(ExportError::PrefixHasSpackDir {
                    prefix: prefix.to_path_buf(),
                });
            }
            let rb = r.as_os_str().as_encoded_bytes().to_vec();
            let r_str = match r.to_str() {
                Some(s) => s.to_string(),
                None => {
                    summary
                        .violations
                        .push(Violation::NonUtf8Name { file: r.clone() });
                    String::new()
                }
            };
            let ft = md.file_type();
            if ft.is_dir() {
                dirs.push((name.as_encoded_bytes().to_vec(), Item::Dir(r)));
            } else if ft.is_symlink() {
                let target = fs_err::read_link(prefix.join(&r))?;
                let tb = target.as_os_str().as_encoded_bytes();
                tw.symlink(&member(pb, &rb, false), tb)?;
                if target.is_absolute() {
                    if let Some(rf) = matcher.classify_at_start(tb) {
                        summary.links.push((r_str, rf));
                    }
                } else if escapes(&r, &target) {
                    summary
                        .violations
                        .push(Violation::LinkEscapesPrefix { file: r, target });
                }
            } else if ft.is_file() {
                let name_m = member(pb, &rb, false);
                if md.nlink() > 1 {
                    if let Some(first) = hardlinks.get(&(md.dev(), md.ino())) {
                        tw.hardlink(&name_m, first)?;
                        continue;
                    }
                    hardlinks.insert((md.dev(), md.ino()), name_m.clone());
                }
                let mut f = fs_err::File::open(prefix.join(&r))?;
                let mut scanner = FileScanner::new(matcher);
                tw.file_stream(
                    &name_m,
                    md.mode() & 0o100 != 0,
                    md.len(),
                    &mut f,
                    &mut buf,
                    |c| scanner.update(c),
                )
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("`{}`: {e}", prefix.join(&r).display()))
                })?;
                summary.file_count += 1;
                summary.byte_count += md.len();
                let scan = scanner.finish();
                if scan.long_shebang && scan.class == FileClass::Text {
                    summary.long_shebang = true;
                }
                if !scan.refs.is_empty() {
                    summary.files.push(ScannedFile {
                        path: r_str,
                        class: scan.class,
                        refs: scan.refs,
                        unloaded: scan.unloaded,
                    });
                }
            } else {
                summary
                    .violations
                    .push(Violation::UnsupportedFileType { file: r });
            }
        }
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        stack.extend(dirs.into_iter().rev().map(|(_, i)| i));
    }

    let info = finalize(&summary)?;
    tw.file_bytes(
        &member(pb, b".spack/binary_distribution", false),
        false,
        &info,
    )?;
    Ok(tw.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_that_climb_out_are_caught() {
        assert!(!escapes(Path::new("bin/x"), Path::new("../lib/x")));
        assert!(escapes(Path::new("bin/x"), Path::new("../../other/lib")));
        assert!(escapes(Path::new("x"), Path::new("../x")));
        assert!(!escapes(Path::new("a/b/c"), Path::new("./d/../../e")));
    }
}
