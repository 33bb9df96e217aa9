//! The report of `forge check`: types, JSON form (`forge-check-report/1`, specified in
//! `store-layout/check-report.md`) and the per-node result of [`compare`](crate::compare).
//!
//! Everything here is deterministic: no times, no temporary paths of forge's own, lists in a
//! fixed order, so two reports of the same situation are byte-identical.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CheckError;

/// The schema name and version every report carries.
pub const SCHEMA: &str = "forge-check-report/1";

/// Why an entry differs. Serialized in kebab-case (`embedded-timestamp`, …). The declaration
/// order is the order of [`Summary::by_classification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    /// The differing bytes are a date or time: Unix seconds near a build's time window,
    /// ISO-8601, `ctime`/`date`, `__DATE__`/`__TIME__`, RFC 2822 strings, years; or member times
    /// in archive headers.
    EmbeddedTimestamp,
    /// A build directory, temporary output or temporary path appears where the other side has
    /// something else.
    EmbeddedBuildPath,
    /// A host name or user name appears where the other side has something else.
    EmbeddedHostInfo,
    /// The same lines, words or archive members in another order.
    FileOrder,
    /// The sizes differ and nothing more specific explains it.
    Size,
    /// Only the executable bit differs, or the entry's type (file, directory, symlink).
    Mode,
    /// A symbolic link points somewhere else.
    SymlinkTarget,
    /// In the stored output only: the rebuild did not produce it.
    Missing,
    /// In the rebuilt output only.
    Extra,
    /// Any other difference of contents.
    Binary,
}

impl Classification {
    /// Every classification, in declaration order.
    pub const ALL: [Classification; 10] = [
        Classification::EmbeddedTimestamp,
        Classification::EmbeddedBuildPath,
        Classification::EmbeddedHostInfo,
        Classification::FileOrder,
        Classification::Size,
        Classification::Mode,
        Classification::SymlinkTarget,
        Classification::Missing,
        Classification::Extra,
        Classification::Binary,
    ];

    /// The kebab-case name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::EmbeddedTimestamp => "embedded-timestamp",
            Classification::EmbeddedBuildPath => "embedded-build-path",
            Classification::EmbeddedHostInfo => "embedded-host-info",
            Classification::FileOrder => "file-order",
            Classification::Size => "size",
            Classification::Mode => "mode",
            Classification::SymlinkTarget => "symlink-target",
            Classification::Missing => "missing",
            Classification::Extra => "extra",
            Classification::Binary => "binary",
        }
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an entry is on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Directory,
}

impl EntryKind {
    /// The name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::Directory => "directory",
        }
    }
}

/// How the excerpts of a [`Difference`] are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExcerptFormat {
    /// UTF-8 text of one line; control characters as `\t`, `\r`, `\u{1b}`, invalid bytes as
    /// `\xHH`, a backslash as `\\`.
    Text,
    /// Lower-case hex bytes separated by single spaces.
    Hex,
}

/// One differing entry, with the evidence for its classification.
///
/// Every field is always present in JSON (`null` when it does not apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The entry's path relative to the output (`.` for the output itself), `/`-separated;
    /// bytes that are not UTF-8 as `\xHH`.
    pub path: String,
    /// The most specific explanation found.
    pub classification: Classification,
    /// Other explanations that apply to parts of the difference, sorted, without
    /// `classification` itself.
    pub also: Vec<Classification>,
    /// What the entry is in the stored output (`null`: absent there).
    pub stored_kind: Option<EntryKind>,
    /// What it is in the rebuilt output (`null`: absent there).
    pub rebuilt_kind: Option<EntryKind>,
    /// Size in bytes of the stored file.
    pub stored_size: Option<u64>,
    /// Size in bytes of the rebuilt file.
    pub rebuilt_size: Option<u64>,
    /// Whether the stored file is executable.
    pub stored_executable: Option<bool>,
    /// Whether the rebuilt file is executable.
    pub rebuilt_executable: Option<bool>,
    /// The stored symlink's target.
    pub stored_target: Option<String>,
    /// The rebuilt symlink's target.
    pub rebuilt_target: Option<String>,
    /// Archive members the evidence lies in, outermost first (`lib/foo.o` inside an `ar`
    /// archive; `<gzip>` for the decompressed data of a gzip file). Empty when the evidence is
    /// in the file itself. When not empty, `excerpt_offset` and the excerpts refer to the
    /// innermost member's bytes.
    pub members: Vec<String>,
    /// The first byte offset at which the two files differ (`null` unless both are files with
    /// different contents).
    pub offset: Option<u64>,
    /// Where the excerpts start (in the innermost member when `members` is not empty).
    pub excerpt_offset: Option<u64>,
    /// The 1-based line of the stored file the text excerpt comes from (`null` for hex).
    pub line: Option<u64>,
    /// How the excerpts are written.
    pub excerpt_format: Option<ExcerptFormat>,
    /// The stored side's bytes around the evidence.
    pub stored_excerpt: Option<String>,
    /// The rebuilt side's bytes at the same place.
    pub rebuilt_excerpt: Option<String>,
    /// One sentence for people.
    pub note: String,
    /// `diffoscope`'s text output for this file, when it was asked for and ran.
    pub diffoscope: Option<String>,
}

impl Difference {
    pub(crate) fn new(path: String, classification: Classification) -> Difference {
        Difference {
            path,
            classification,
            also: Vec::new(),
            stored_kind: None,
            rebuilt_kind: None,
            stored_size: None,
            rebuilt_size: None,
            stored_executable: None,
            rebuilt_executable: None,
            stored_target: None,
            rebuilt_target: None,
            members: Vec::new(),
            offset: None,
            excerpt_offset: None,
            line: None,
            excerpt_format: None,
            stored_excerpt: None,
            rebuilt_excerpt: None,
            note: String::new(),
            diffoscope: None,
        }
    }
}

/// Hash and totals of one tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    /// The `forge-tree-v1` hash, 64 hex digits.
    pub hash: String,
    /// Number of regular files.
    pub files: u64,
    /// Bytes of regular files.
    pub bytes: u64,
}

/// Timings of one comparison (not part of the report: they differ from run to run).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompareStats {
    /// Wall time spent hashing both trees.
    pub hashing: Duration,
    /// Wall time spent explaining differences (including `diffoscope`).
    pub explaining: Duration,
    /// Bytes of regular files hashed (both trees).
    pub bytes_hashed: u64,
}

/// The result of comparing one node's rebuilt output with its stored output.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeComparison {
    /// The stored tree.
    pub stored: TreeSummary,
    /// The rebuilt tree.
    pub rebuilt: TreeSummary,
    /// Every differing entry, in tree order (see [`Difference::path`]); empty exactly when the
    /// hashes are equal.
    pub differences: Vec<Difference>,
    /// Remarks about the comparison itself (diffoscope missing, limits reached).
    pub notes: Vec<String>,
    /// How long it took.
    pub stats: CompareStats,
}

impl NodeComparison {
    /// Whether the two trees hash the same.
    pub fn reproducible(&self) -> bool {
        self.stored.hash == self.rebuilt.hash
    }
}

/// One node of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node, `<name>-<version>`.
    pub name: String,
    /// Its store path.
    pub store_path: String,
    /// Whether every round rebuilt the stored output exactly.
    pub reproducible: bool,
    /// How many times the node was rebuilt.
    pub rounds: u32,
    /// The stored output's `forge-tree-v1` hash.
    pub stored_hash: String,
    /// The hash of the rebuilt output the differences describe.
    pub rebuilt_hash: String,
    /// Regular files in the stored output.
    pub stored_files: u64,
    /// Bytes of regular files in the stored output.
    pub stored_bytes: u64,
    /// Regular files in the rebuilt output.
    pub rebuilt_files: u64,
    /// Bytes of regular files in the rebuilt output.
    pub rebuilt_bytes: u64,
    /// Every difference, in tree order.
    pub differences: Vec<Difference>,
    /// Remarks about the comparison.
    pub notes: Vec<String>,
}

impl NodeReport {
    /// The report of a node rebuilt `rounds` times, from the comparison of the first round whose
    /// output differed (or of the last round when none did).
    pub fn new(
        name: impl Into<String>,
        store_path: impl Into<String>,
        rounds: u32,
        comparison: NodeComparison,
    ) -> NodeReport {
        NodeReport {
            name: name.into(),
            store_path: store_path.into(),
            reproducible: comparison.reproducible(),
            rounds,
            stored_hash: comparison.stored.hash,
            rebuilt_hash: comparison.rebuilt.hash,
            stored_files: comparison.stored.files,
            stored_bytes: comparison.stored.bytes,
            rebuilt_files: comparison.rebuilt.files,
            rebuilt_bytes: comparison.rebuilt.bytes,
            differences: comparison.differences,
            notes: comparison.notes,
        }
    }
}

/// Totals over all nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Nodes checked.
    pub nodes: u64,
    /// Nodes rebuilt exactly.
    pub reproducible: u64,
    /// Nodes whose rebuild differed.
    pub not_reproducible: u64,
    /// Differences over all nodes.
    pub differences: u64,
    /// Differences per classification; every classification is present, in declaration order.
    pub by_classification: BTreeMap<Classification, u64>,
}

/// A whole `forge check` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What was checked: the target or node as given on the command line.
    pub target: String,
    /// The nodes, sorted by name, then store path.
    pub nodes: Vec<NodeReport>,
    /// Totals.
    pub summary: Summary,
}

impl Report {
    /// A report over `nodes` (sorted here) with its summary.
    pub fn new(target: impl Into<String>, mut nodes: Vec<NodeReport>) -> Report {
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.store_path.cmp(&b.store_path)));
        let summary = Summary::of(&nodes);
        Report {
            schema: SCHEMA.to_string(),
            target: target.into(),
            nodes,
            summary,
        }
    }

    /// Whether every node was reproducible.
    pub fn reproducible(&self) -> bool {
        self.nodes.iter().all(|n| n.reproducible)
    }

    /// The JSON form: pretty-printed with two-space indentation, fields in the documented order,
    /// a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report always serializes");
        s.push('\n');
        s
    }

    /// Reads a report written by [`Report::to_json`], refusing other schema versions.
    pub fn from_json(text: &str) -> Result<Report, CheckError> {
        #[derive(Deserialize)]
        struct Head {
            schema: String,
        }
        let head: Head = serde_json::from_str(text)?;
        if head.schema != SCHEMA {
            return Err(CheckError::Schema {
                found: head.schema,
                expected: SCHEMA,
            });
        }
        Ok(serde_json::from_str(text)?)
    }
}

impl Summary {
    fn of(nodes: &[NodeReport]) -> Summary {
        let mut by_classification: BTreeMap<Classification, u64> =
            Classification::ALL.iter().map(|c| (*c, 0)).collect();
        let mut differences = 0;
        for d in nodes.iter().flat_map(|n| &n.differences) {
            differences += 1;
            *by_classification.entry(d.classification).or_default() += 1;
        }
        let reproducible = nodes.iter().filter(|n| n.reproducible).count() as u64;
        Summary {
            nodes: nodes.len() as u64,
            reproducible,
            not_reproducible: nodes.len() as u64 - reproducible,
            differences,
            by_classification,
        }
    }
}
