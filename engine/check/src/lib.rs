//! The comparison and explanation library of `forge check`.
//!
//! `forge check` rebuilds a node into a temporary output (a path as long as the stored one),
//! rewrites that path to the stored one, and hands both trees to [`compare`]. This crate owns
//! what happens then:
//!
//! - hashing both trees with `forge-tree-v1` (in parallel) and, when the hashes differ,
//!   listing every differing entry — missing, extra, other type, other mode, other symlink
//!   target, other contents;
//! - explaining each one ([`Classification`]): embedded timestamps, embedded build paths, host
//!   or user names, the same lines or archive members (`ar`, tar, zip) in another order, sizes,
//!   modes — with the first differing offset and excerpts of both sides;
//! - running `diffoscope` on differing files when asked and installed ([`DiffoscopeOptions`]);
//! - the report: [`Report`] with its stable JSON form (`forge-check-report/1`, specified in
//!   `store-layout/check-report.md`) and its text form ([`render_text`]).
//!
//! [`compare`] does not build or touch the store: the caller says what it knows about the two
//! builds in a [`CompareContext`]. [`Checker`] is that caller for `forge check`: it rebuilds
//! realized nodes with `forge-realize` at their stored paths and compares them with the store;
//! [`check_export`] exports a closure twice and compares the caches. Nothing here prints: progress
//! reaches the caller as [`Progress`] values.
//!
//! ```no_run
//! use forge_check::{CompareContext, NodeReport, Report, TimeWindow, compare, render_text};
//! # fn main() -> Result<(), forge_check::CheckError> {
//! let mut ctx = CompareContext::default();
//! ctx.stored_output = Some("/s/abc-hello-1.0".into());
//! ctx.rebuilt_output = Some("/s/.forge/tmp/abc-hello-1.0".into());
//! ctx.stored_build_dir = Some("/s/.forge/build/abc-hello-1.0.build".into());
//! ctx.rebuilt_build_dir = Some("/s/.forge/build/abc-hello-1.0.check".into());
//! ctx.stored_window = Some(TimeWindow::ending_at(1_767_225_600, 12.0));
//! let cmp = compare("/s/abc-hello-1.0".as_ref(), "/s/.forge/tmp/abc-hello-1.0".as_ref(), &ctx)?;
//! let report = Report::new("hello", vec![NodeReport::new("hello-1.0", "/s/abc-hello-1.0", 1, cmp)]);
//! print!("{}", report.to_json());
//! eprint!("{}", render_text(&report));
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod archive;
mod compare;
mod context;
mod diffoscope;
mod error;
mod explain;
mod export;
mod rebuild;
mod regions;
mod render;
mod report;
mod text;
mod timestamp;

pub use compare::compare;
pub use context::{CompareContext, DiffoscopeOptions, TimeWindow};
pub use diffoscope::{DiffoscopeOutcome, diffoscope_available, run_diffoscope};
pub use error::CheckError;
pub use export::check_export;
pub use rebuild::{CheckRun, Checker, Progress, RebuildError, RebuildOptions};
pub use render::{render_node_text, render_text};
pub use report::{
    Classification, CompareStats, Difference, EntryKind, ExcerptFormat, NodeComparison, NodeReport,
    Report, SCHEMA, Summary, TreeSummary,
};

/// An `ar` member as [`ar_members`] gives it: name, contents, and the time its header records.
pub type ArMember<'a> = (Vec<u8>, std::borrow::Cow<'a, [u8]>, Option<i64>);

/// The members of an `ar` archive (a static library) as `forge check` reads them, in order;
/// symbol indexes and the GNU long-name table are not members. `None` when the archive is
/// malformed. For fuzzing and tools; comparisons go through [`compare`].
pub fn ar_members(data: &[u8]) -> Option<Vec<ArMember<'_>>> {
    archive::ar::parse(data).map(|members| {
        members
            .into_iter()
            .map(|m| (m.name, m.data, m.time))
            .collect()
    })
}
