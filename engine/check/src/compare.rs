//! Comparing two trees: hash both (in parallel), and when the roots differ, walk both entry
//! lists side by side and explain every differing entry.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use forge_core::treehash::{Entry, Kind, hash_tree_entries};
use rayon::prelude::*;

use crate::context::CompareContext;
use crate::diffoscope::{self, DiffoscopeOutcome};
use crate::error::CheckError;
use crate::explain::{Clues, explain_bytes};
use crate::regions;
use crate::report::{
    Classification, CompareStats, Difference, EntryKind, NodeComparison, TreeSummary,
};
use crate::text::{self, display_bytes};

/// Files larger than this are not read whole: only their first difference is reported.
const MAX_EXPLAINED_FILE: u64 = 512 << 20;

/// Compares the rebuilt tree with the stored one and explains every difference.
///
/// Both trees are hashed with `forge-tree-v1` at the same time. Equal root hashes mean the
/// rebuild is reproducible and nothing else is read. Otherwise every entry whose hash differs
/// is explained: files are read again (differing ones only), archives opened, regions
/// classified. Entries under a directory that exists on one side only are reported once, as
/// that directory.
pub fn compare(
    stored: &Path,
    rebuilt: &Path,
    ctx: &CompareContext,
) -> Result<NodeComparison, CheckError> {
    let start = Instant::now();
    let (a, b) = rayon::join(|| hash_tree_entries(stored), || hash_tree_entries(rebuilt));
    let (ha, ea) = a.map_err(CheckError::HashStored)?;
    let (hb, eb) = b.map_err(CheckError::HashRebuilt)?;
    let hashing = start.elapsed();
    let summary = |h: &forge_core::treehash::TreeHash| TreeSummary {
        hash: h.hex(),
        files: h.files,
        bytes: h.bytes,
    };
    let mut out = NodeComparison {
        stored: summary(&ha),
        rebuilt: summary(&hb),
        differences: Vec::new(),
        notes: Vec::new(),
        stats: CompareStats {
            hashing,
            explaining: Default::default(),
            bytes_hashed: ha.bytes + hb.bytes,
        },
    };
    if ha.root == hb.root {
        return Ok(out);
    }
    let explain_start = Instant::now();
    let clues = Clues::new(ctx);
    let walked = walk_both(&ea, &eb, &clues);
    let mut differences: Vec<Difference> = walked
        .into_par_iter()
        .map(|w| match w {
            Walked::Done(d) => Ok(*d),
            Walked::Files { rel, a, b } => explain_files(
                &join(stored, &rel),
                &join(rebuilt, &rel),
                &rel,
                a,
                b,
                &clues,
            ),
        })
        .collect::<Result<_, _>>()?;
    if let Some(opts) = &ctx.diffoscope {
        match diffoscope::resolve(&opts.program) {
            Some(program) => {
                let files = differences
                    .iter_mut()
                    .filter(|d| {
                        d.stored_kind == Some(EntryKind::File)
                            && d.rebuilt_kind == Some(EntryKind::File)
                            && d.classification != Classification::Mode
                    })
                    .take(opts.max_files);
                for d in files {
                    let rel = path_of(&d.path, &ea);
                    let outcome = diffoscope::run_on(
                        &program,
                        &join(stored, &rel),
                        &join(rebuilt, &rel),
                        opts.timeout,
                        opts.max_output,
                    )?;
                    d.diffoscope = Some(match outcome {
                        DiffoscopeOutcome::Same => "diffoscope found no difference".to_string(),
                        DiffoscopeOutcome::Differences(t) => t,
                        DiffoscopeOutcome::TimedOut(t) => format!(
                            "{t}\n[diffoscope killed after {} s]",
                            opts.timeout.as_secs()
                        ),
                        DiffoscopeOutcome::Failed { code, stderr } => {
                            format!("diffoscope failed (exit status {code:?}): {stderr}")
                        }
                    });
                }
            }
            None => out.notes.push(format!(
                "diffoscope was asked for but `{}` is not installed",
                opts.program.display()
            )),
        }
    }
    // The walk is in tree order already; sort anyway so the report never depends on how the
    // work was scheduled.
    differences.sort_by(|x, y| tree_order(&x.path, &y.path));
    out.differences = differences;
    out.stats.explaining = explain_start.elapsed();
    Ok(out)
}

/// The relative path an entry list knows under its displayed form.
fn path_of(display: &str, entries: &[Entry]) -> PathBuf {
    entries
        .iter()
        .find(|e| rel_display(&e.path) == display)
        .map_or_else(|| PathBuf::from(display), |e| e.path.clone())
}

fn join(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Order of displayed paths: component by component, as the tree walk lists them.
fn tree_order(x: &str, y: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<Vec<u8>> {
        if s == "." {
            Vec::new()
        } else {
            s.split('/').map(|p| p.as_bytes().to_vec()).collect()
        }
    };
    parts(x).cmp(&parts(y))
}

pub(crate) fn rel_display(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".to_string()
    } else {
        display_bytes(p.as_os_str().as_bytes())
    }
}

#[derive(Debug, Clone, Copy)]
struct FileSide {
    executable: bool,
    size: u64,
}

enum Walked {
    Done(Box<Difference>),
    Files {
        rel: PathBuf,
        a: FileSide,
        b: FileSide,
    },
}

fn kind_of(k: &Kind) -> EntryKind {
    match k {
        Kind::File { .. } => EntryKind::File,
        Kind::Symlink { .. } => EntryKind::Symlink,
        Kind::Dir => EntryKind::Directory,
    }
}

/// Fills the fields of one side of a difference.
fn side(d: &mut Difference, k: &Kind, stored: bool) {
    let (kind, size, exec, target) = match k {
        Kind::File { executable, size } => (EntryKind::File, Some(*size), Some(*executable), None),
        Kind::Symlink { target } => (
            EntryKind::Symlink,
            None,
            None,
            Some(display_bytes(target.as_os_str().as_bytes())),
        ),
        Kind::Dir => (EntryKind::Directory, None, None, None),
    };
    if stored {
        d.stored_kind = Some(kind);
        d.stored_size = size;
        d.stored_executable = exec;
        d.stored_target = target;
    } else {
        d.rebuilt_kind = Some(kind);
        d.rebuilt_size = size;
        d.rebuilt_executable = exec;
        d.rebuilt_target = target;
    }
}

/// The index after the subtree of `entries[i]` (entries are in pre-order).
fn subtree_end(entries: &[Entry], i: usize) -> usize {
    if !matches!(entries[i].kind, Kind::Dir) {
        return i + 1;
    }
    let root = &entries[i].path;
    let mut j = i + 1;
    while j < entries.len() && entries[j].path.starts_with(root) {
        j += 1;
    }
    j
}

fn one_side_note(entries: &[Entry], i: usize, end: usize, stored: bool) -> String {
    let place = if stored {
        "only in the stored output"
    } else {
        "only in the rebuilt output"
    };
    match &entries[i].kind {
        Kind::Dir => {
            let inner = &entries[i + 1..end];
            let files = inner
                .iter()
                .filter(|e| matches!(e.kind, Kind::File { .. }))
                .count();
            format!(
                "{place}: a directory of {} entr{} ({files} file{})",
                inner.len(),
                if inner.len() == 1 { "y" } else { "ies" },
                if files == 1 { "" } else { "s" }
            )
        }
        Kind::File { size, .. } => {
            format!(
                "{place}: a file of {size} byte{}",
                if *size == 1 { "" } else { "s" }
            )
        }
        Kind::Symlink { .. } => format!("{place}: a symlink"),
    }
}

/// Merges the two pre-order entry lists (ordered by path components, so `Path`'s order) and
/// lists what differs. File pairs are returned unexplained, to be read in parallel.
fn walk_both(ea: &[Entry], eb: &[Entry], clues: &Clues) -> Vec<Walked> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let ord = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => x.path.cmp(&y.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let end = subtree_end(ea, i);
                let mut d = Difference::new(rel_display(&ea[i].path), Classification::Missing);
                side(&mut d, &ea[i].kind, true);
                d.note = one_side_note(ea, i, end, true);
                out.push(Walked::Done(Box::new(d)));
                i = end;
            }
            std::cmp::Ordering::Greater => {
                let end = subtree_end(eb, j);
                let mut d = Difference::new(rel_display(&eb[j].path), Classification::Extra);
                side(&mut d, &eb[j].kind, false);
                d.note = one_side_note(eb, j, end, false);
                out.push(Walked::Done(Box::new(d)));
                j = end;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ea[i], &eb[j]);
                if x.hash == y.hash {
                    // Equal subtrees: skip them whole.
                    i = subtree_end(ea, i);
                    j = subtree_end(eb, j);
                    continue;
                }
                match (&x.kind, &y.kind) {
                    (Kind::Dir, Kind::Dir) => {
                        // Their contents differ: the children say how.
                        i += 1;
                        j += 1;
                    }
                    (
                        Kind::File {
                            executable: xa,
                            size: sa,
                        },
                        Kind::File {
                            executable: xb,
                            size: sb,
                        },
                    ) => {
                        out.push(Walked::Files {
                            rel: x.path.clone(),
                            a: FileSide {
                                executable: *xa,
                                size: *sa,
                            },
                            b: FileSide {
                                executable: *xb,
                                size: *sb,
                            },
                        });
                        i += 1;
                        j += 1;
                    }
                    (Kind::Symlink { target: ta }, Kind::Symlink { target: tb }) => {
                        out.push(Walked::Done(Box::new(symlink_difference(x, ta, tb, clues))));
                        i += 1;
                        j += 1;
                    }
                    (ka, kb) => {
                        let mut d = Difference::new(rel_display(&x.path), Classification::Mode);
                        side(&mut d, ka, true);
                        side(&mut d, kb, false);
                        d.note = format!(
                            "a {} in the stored output, a {} in the rebuilt output",
                            kind_of(ka).as_str(),
                            kind_of(kb).as_str()
                        );
                        out.push(Walked::Done(Box::new(d)));
                        i = subtree_end(ea, i);
                        j = subtree_end(eb, j);
                    }
                }
            }
        }
    }
    out
}

fn symlink_difference(x: &Entry, ta: &Path, tb: &Path, clues: &Clues) -> Difference {
    let mut d = Difference::new(rel_display(&x.path), Classification::SymlinkTarget);
    side(&mut d, &x.kind, true);
    d.rebuilt_kind = Some(EntryKind::Symlink);
    d.rebuilt_target = Some(display_bytes(tb.as_os_str().as_bytes()));
    d.note = format!(
        "points to `{}` in the stored output, to `{}` in the rebuilt output",
        display_bytes(ta.as_os_str().as_bytes()),
        display_bytes(tb.as_os_str().as_bytes())
    );
    refine_symlink(
        &mut d,
        ta.as_os_str().as_bytes(),
        tb.as_os_str().as_bytes(),
        clues,
    );
    d
}

/// Explains a differing symlink with the build's clues: a target inside a build directory is
/// an embedded build path.
fn refine_symlink(d: &mut Difference, ta: &[u8], tb: &[u8], clues: &Clues) {
    let e = explain_bytes(ta, tb, clues, u32::MAX);
    if matches!(
        e.class,
        Classification::EmbeddedBuildPath
            | Classification::EmbeddedTimestamp
            | Classification::EmbeddedHostInfo
    ) {
        d.classification = e.class;
        d.also = vec![Classification::SymlinkTarget];
    }
}

/// Explains two differing regular files.
fn explain_files(
    pa: &Path,
    pb: &Path,
    rel: &Path,
    a: FileSide,
    b: FileSide,
    clues: &Clues,
) -> Result<Difference, CheckError> {
    let mut d = Difference::new(rel_display(rel), Classification::Binary);
    side(
        &mut d,
        &Kind::File {
            executable: a.executable,
            size: a.size,
        },
        true,
    );
    side(
        &mut d,
        &Kind::File {
            executable: b.executable,
            size: b.size,
        },
        false,
    );
    let mode_note = (a.executable != b.executable).then(|| {
        format!(
            "executable in the {} output only",
            if a.executable { "stored" } else { "rebuilt" }
        )
    });
    if a.size > MAX_EXPLAINED_FILE || b.size > MAX_EXPLAINED_FILE {
        return large_files(d, pa, pb, a, b, mode_note);
    }
    let da = fs_err::read(pa).map_err(CheckError::io(pa))?;
    let db = fs_err::read(pb).map_err(CheckError::io(pb))?;
    let Some(first) = regions::first_difference(&da, &db) else {
        d.classification = Classification::Mode;
        d.note = mode_note.unwrap_or_else(|| "the file changed while it was compared".into());
        return Ok(d);
    };
    d.offset = Some(first as u64);
    let e = explain_bytes(&da, &db, clues, 0);
    d.classification = e.class;
    d.also = e.also.into_iter().collect();
    if mode_note.is_some() {
        d.also.push(Classification::Mode);
        d.also.sort();
    }
    d.members = e.members;
    if let Some(x) = e.excerpt {
        d.excerpt_offset = Some(x.offset);
        d.line = x.line;
        d.excerpt_format = Some(x.format);
        d.stored_excerpt = Some(x.stored);
        d.rebuilt_excerpt = Some(x.rebuilt);
    }
    d.note = match mode_note {
        Some(m) => format!("{}; {m}", e.note),
        None => e.note,
    };
    Ok(d)
}

/// Files too large to read whole: the first difference, streamed.
fn large_files(
    mut d: Difference,
    pa: &Path,
    pb: &Path,
    a: FileSide,
    b: FileSide,
    mode_note: Option<String>,
) -> Result<Difference, CheckError> {
    const CHUNK: usize = 1 << 20;
    let mut fa = fs_err::File::open(pa).map_err(CheckError::io(pa))?;
    let mut fb = fs_err::File::open(pb).map_err(CheckError::io(pb))?;
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    let first = loop {
        let na = read_full(&mut fa, &mut ba).map_err(CheckError::io(pa))?;
        let nb = read_full(&mut fb, &mut bb).map_err(CheckError::io(pb))?;
        if let Some(p) = regions::first_difference(&ba[..na], &bb[..nb]) {
            break Some((offset + p as u64, ba[..na].to_vec(), bb[..nb].to_vec(), p));
        }
        if na == 0 {
            break None;
        }
        offset += na as u64;
    };
    let Some((at, ca, cb, p)) = first else {
        d.classification = Classification::Mode;
        d.note = mode_note.unwrap_or_else(|| "the file changed while it was compared".into());
        return Ok(d);
    };
    d.offset = Some(at);
    let x = text::excerpt(&ca, p..p, &cb, p..p, false);
    d.excerpt_offset = Some(at - p as u64 + x.offset);
    d.excerpt_format = Some(x.format);
    d.stored_excerpt = Some(x.stored);
    d.rebuilt_excerpt = Some(x.rebuilt);
    d.classification = if a.size == b.size {
        Classification::Binary
    } else {
        Classification::Size
    };
    if mode_note.is_some() {
        d.also.push(Classification::Mode);
    }
    d.note = format!(
        "too large to explain (over {} MiB): only the first difference is shown{}",
        MAX_EXPLAINED_FILE >> 20,
        mode_note.map(|m| format!("; {m}")).unwrap_or_default()
    );
    Ok(d)
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(size: u64) -> FileSide {
        FileSide {
            executable: false,
            size,
        }
    }

    #[test]
    fn large_files_report_their_first_difference_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
        // Three chunks and a bit; the difference lies in the third chunk.
        let mut data = vec![0x11u8; 3 * (1 << 20) + 100];
        fs_err::write(&pa, &data).unwrap();
        let at = 2 * (1 << 20) + 77;
        data[at] = 0x22;
        fs_err::write(&pb, &data).unwrap();
        let n = data.len() as u64;
        let d = Difference::new("big".into(), Classification::Binary);
        let d = large_files(d, &pa, &pb, side(n), side(n), None).unwrap();
        assert_eq!(d.classification, Classification::Binary);
        assert_eq!(d.offset, Some(at as u64));
        let start = d.excerpt_offset.unwrap();
        assert!(start <= at as u64 && at as u64 - start < 32);
        assert!(d.rebuilt_excerpt.unwrap().contains("22"));
        assert!(d.note.starts_with("too large to explain"));
        // A longer rebuilt file: a size difference at the old end.
        data[at] = 0x11;
        data.push(0);
        fs_err::write(&pb, &data).unwrap();
        let d = Difference::new("big".into(), Classification::Binary);
        let d = large_files(d, &pa, &pb, side(n), side(n + 1), None).unwrap();
        assert_eq!(d.classification, Classification::Size);
        assert_eq!(d.offset, Some(n));
    }
}
