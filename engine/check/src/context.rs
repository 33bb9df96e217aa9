//! What the caller knows about the two builds, so that differences can be explained.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the stored output path is named in notes.
pub(crate) const OUTPUT_LABEL: &str = "the output path";

/// An interval of wall-clock time, in seconds since the Unix epoch, during which a build ran.
/// Used to recognize Unix times (decimal, or 32/64-bit little-endian binary) that a build
/// embedded in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// When the build started (seconds since the epoch).
    pub start: i64,
    /// When it ended.
    pub end: i64,
}

impl TimeWindow {
    /// The window from `start` to `end`.
    pub fn new(start: SystemTime, end: SystemTime) -> TimeWindow {
        TimeWindow {
            start: unix_seconds(start),
            end: unix_seconds(end),
        }
    }

    /// The window of a build registered at `registered` (Unix seconds) that took `seconds`, as
    /// the store's `ValidPaths` row records it.
    pub fn ending_at(registered: i64, seconds: f64) -> TimeWindow {
        let secs = if seconds.is_finite() && seconds > 0.0 {
            seconds.ceil() as i64
        } else {
            0
        };
        TimeWindow {
            start: registered - secs,
            end: registered,
        }
    }

    /// Whether `t` lies in the window, widened by `slack` seconds on both sides.
    pub(crate) fn contains(&self, t: i64, slack: i64) -> bool {
        let (lo, hi) = if self.start <= self.end {
            (self.start, self.end)
        } else {
            (self.end, self.start)
        };
        t >= lo.saturating_sub(slack) && t <= hi.saturating_add(slack)
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// How to run `diffoscope` on differing files, when the caller asks for it.
#[derive(Debug, Clone)]
pub struct DiffoscopeOptions {
    /// The program: a name looked up in `PATH`, or a path.
    pub program: PathBuf,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
    /// How many bytes of its output are kept per run.
    pub max_output: usize,
    /// On how many differing files (the first ones in path order) it runs at most.
    pub max_files: usize,
}

impl Default for DiffoscopeOptions {
    fn default() -> Self {
        DiffoscopeOptions {
            program: PathBuf::from("diffoscope"),
            timeout: Duration::from_secs(60),
            max_output: 64 * 1024,
            max_files: 10,
        }
    }
}

/// What helps explain differences: where each build ran, where its output was, and when.
///
/// Every field is optional; the more the caller fills in, the more differences get a specific
/// classification. Paths are matched as bytes inside files and symlink targets, so they must be
/// spelled as the builds saw them (no canonicalization happens here).
///
/// ```
/// use forge_check::{CompareContext, TimeWindow};
/// let mut ctx = CompareContext::default();
/// ctx.stored_build_dir = Some("/s/.forge/build/abc-hello-1.0.build".into());
/// ctx.rebuilt_build_dir = Some("/s/.forge/build/abc-hello-1.0.check".into());
/// ctx.stored_window = Some(TimeWindow::ending_at(1_767_225_600, 42.0));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CompareContext {
    /// The stored output, `<paths dir>/<hash>-<name>-<version>`. It legitimately appears in both
    /// trees; listed so that a difference overlapping it is recognized as a path difference.
    pub stored_output: Option<PathBuf>,
    /// The temporary output the rebuild wrote to, before it was rewritten to the stored path.
    /// Found in the rebuilt tree where the rewrite could not reach (compressed data, for example).
    pub rebuilt_output: Option<PathBuf>,
    /// The scratch directory of the stored build (`<root>/.forge/build/<name>.build`).
    pub stored_build_dir: Option<PathBuf>,
    /// The scratch directory of the rebuild (`<root>/.forge/build/<name>.check`).
    pub rebuilt_build_dir: Option<PathBuf>,
    /// Other directories one of the builds could see and might embed (a `TMPDIR` elsewhere, a
    /// second build directory of several rounds…).
    pub extra_paths: Vec<PathBuf>,
    /// When the stored build ran.
    pub stored_window: Option<TimeWindow>,
    /// When the rebuild ran.
    pub rebuilt_window: Option<TimeWindow>,
    /// The host name of the machine that built the stored output.
    pub stored_host: Option<String>,
    /// The host name of the machine that rebuilt it.
    pub rebuilt_host: Option<String>,
    /// The user names the builds ran as (one, or one per side).
    pub user_names: Vec<String>,
    /// Run `diffoscope` on differing files and keep its text output in the report. Ignored
    /// (with a note in the comparison) when the program is not installed.
    pub diffoscope: Option<DiffoscopeOptions>,
}

impl CompareContext {
    /// Byte strings that are build paths, each with a label for notes. Longest first, so that a
    /// difference is attributed to the most specific path.
    pub(crate) fn path_needles(&self) -> Vec<(Vec<u8>, &'static str)> {
        use std::os::unix::ffi::OsStrExt;
        let mut v: Vec<(Vec<u8>, &'static str)> = Vec::new();
        let mut add = |p: &Option<PathBuf>, label: &'static str| {
            if let Some(p) = p {
                let b = p.as_os_str().as_bytes();
                if b.len() >= 4 {
                    v.push((b.to_vec(), label));
                }
            }
        };
        add(&self.stored_build_dir, "the stored build's directory");
        add(&self.rebuilt_build_dir, "the rebuild's directory");
        add(&self.rebuilt_output, "the rebuild's temporary output path");
        add(&self.stored_output, OUTPUT_LABEL);
        for p in &self.extra_paths {
            add(&Some(p.clone()), "a build path");
        }
        v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// Host and user names, for the same purpose.
    pub(crate) fn host_needles(&self) -> Vec<(Vec<u8>, &'static str)> {
        let mut v: Vec<(Vec<u8>, &'static str)> = Vec::new();
        for (h, label) in [
            (&self.stored_host, "the stored build's host name"),
            (&self.rebuilt_host, "the rebuild's host name"),
        ] {
            if let Some(h) = h
                && h.len() >= 3
            {
                v.push((h.as_bytes().to_vec(), label));
            }
        }
        for u in &self.user_names {
            if u.len() >= 3 {
                v.push((u.as_bytes().to_vec(), "a user name"));
            }
        }
        v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_from_registration() {
        let w = TimeWindow::ending_at(1000, 41.2);
        assert_eq!(
            w,
            TimeWindow {
                start: 958,
                end: 1000
            }
        );
        assert!(w.contains(958, 0));
        assert!(!w.contains(957, 0));
        assert!(w.contains(1100, 100));
        assert!(!w.contains(1101, 100));
    }

    #[test]
    fn needles_longest_first_and_deduplicated() {
        let ctx = CompareContext {
            stored_output: Some("/s/abc-x-1".into()),
            stored_build_dir: Some("/s/.forge/build/abc-x-1.build".into()),
            extra_paths: vec!["/s/abc-x-1".into(), "/t".into()],
            ..CompareContext::default()
        };
        let n: Vec<_> = ctx.path_needles().into_iter().map(|(b, _)| b).collect();
        assert_eq!(
            n,
            vec![
                b"/s/.forge/build/abc-x-1.build".to_vec(),
                b"/s/abc-x-1".to_vec()
            ]
        );
    }
}
