//! The one place that decides what reaches the terminal: data on stdout, people on stderr.
//!
//! stdout carries data only: a command's result ([`Printer::data`]) or, with `--json`, one JSON
//! object per line ([`Printer::json_line`]). stderr carries text for people, at two levels of
//! importance: *important* text (errors, hints, anything the user must see to understand a
//! failure) is shown even with `--quiet`; *normal* text (progress, info, warnings) is not. Live
//! progress bars draw on stderr too, and only when [`Printer::live_progress`] says so. No other
//! module writes to the terminal.
//!
//! Text from outside (names, specs, paths, build output) may hold control characters; every
//! line written here for people or as text data has them escaped
//! ([`forge_core::text::escape_lines`]), so only the colours this module adds reach the
//! terminal as codes. Bytes written with [`Printer::raw_data`] (a build log) go out as they are.

use std::io::{IsTerminal, Write};

use forge_core::text::escape_lines;
use forge_recipe::Diagnostics;
use indicatif::ProgressDrawTarget;

use crate::args::ColorChoice;
use crate::error::CliError;

/// How much a line on stderr matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Importance {
    /// Shown even with `--quiet`.
    Important,
    /// Hidden with `--quiet`.
    Normal,
}

/// A byte count for people: `512 B`, `3.4 MiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `n` and the noun, plural (with an `s`) unless `n` is 1: `1 path`, `3 paths`.
pub(crate) fn counted(n: usize, noun: &str) -> String {
    counted_as(n, noun, &format!("{noun}s"))
}

/// [`counted`] for a noun whose plural is not its singular with an `s`.
pub(crate) fn counted_as(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Output settings for one run.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Colour on stderr.
    color: bool,
    /// Only important text on stderr.
    quiet: bool,
    /// Whether stderr is a terminal (live progress is drawn only on one).
    stderr_is_terminal: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice, quiet: bool) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stderr_is_terminal
            }
        };
        Self {
            color,
            quiet,
            stderr_is_terminal,
        }
    }

    /// Whether `--quiet` hides normal text.
    pub fn quiet(self) -> bool {
        self.quiet
    }

    /// Width for rendered diagnostics.
    fn width(self) -> usize {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100)
    }

    /// Writes `bytes` to stdout and flushes. The only place that touches stdout.
    fn stdout(self, bytes: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// Writes `text` to stderr as it is, unless it is normal text and `--quiet` is on. The only
    /// place that touches stderr (besides the progress target, which draws there).
    fn stderr(self, importance: Importance, text: &str) {
        if importance == Importance::Normal && self.quiet {
            return;
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// A line on stderr with a coloured `prefix: `.
    fn prefixed(self, importance: Importance, prefix: &str, ansi: &str, text: &str) {
        let text = escape_lines(text);
        let prefix = if self.color {
            format!("\x1b[{ansi}m{prefix}\x1b[0m")
        } else {
            prefix.to_owned()
        };
        self.stderr(importance, &format!("{prefix}: {text}\n"));
    }

    /// Writes data to stdout, ending it with a newline if it has none.
    pub fn data(self, text: &str) {
        let text = escape_lines(text);
        let mut bytes = text.as_bytes().to_vec();
        if !text.ends_with('\n') {
            bytes.push(b'\n');
        }
        let _ = self.stdout(&bytes);
    }

    /// Writes bytes to stdout as they are. A reader that stops early (`forge completions bash |
    /// head`: a broken pipe) is not an error; any other failure is returned.
    pub fn raw_data(self, bytes: &[u8]) -> std::io::Result<()> {
        match self.stdout(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// One line of a JSON-lines stream on stdout (`--json` event streams).
    pub fn json_line(self, value: &serde_json::Value) {
        let _ = self.stdout(format!("{value}\n").as_bytes());
    }

    /// A line for people, on stderr.
    pub fn info(self, text: &str) {
        let text = escape_lines(text);
        self.stderr(Importance::Normal, &format!("{text}\n"));
    }

    /// A warning line.
    pub fn warn(self, text: &str) {
        self.prefixed(Importance::Normal, "warning", "33", text);
    }

    /// An error line.
    pub fn error(self, text: &str) {
        self.prefixed(Importance::Important, "error", "31", text);
    }

    /// Text that must be seen even with `--quiet` (the explanation of a failure too long for
    /// one error line), written as it is.
    pub fn important(self, text: &str) {
        self.stderr(Importance::Important, &escape_lines(text));
    }

    /// A `hint:` line; hints come with the error a command returns ([`Self::report`]).
    fn hint(self, text: &str) {
        self.prefixed(Importance::Important, "hint", "36", text);
    }

    /// Renders diagnostics on stderr (warnings are dropped when quiet).
    pub fn diagnostics(self, diags: &Diagnostics) {
        let mut shown = Diagnostics::default();
        for d in diags.iter() {
            if d.is_error() || !self.quiet {
                shown.push(d.clone());
            }
        }
        if shown.is_empty() {
            return;
        }
        let text = shown.render(self.color, self.width());
        self.stderr(Importance::Important, &text);
    }

    /// One diagnostic.
    pub fn diag(self, d: &forge_recipe::Diag) {
        let mut ds = Diagnostics::default();
        ds.push(d.clone());
        self.diagnostics(&ds);
    }

    /// Renders the error a command ended with: its diagnostics, its `error:` line, its details
    /// (normal text) and its hints.
    pub fn report(self, e: &CliError) {
        self.diagnostics(e.recipe_diagnostics());
        if let Some(m) = e.message() {
            self.error(m);
        }
        for d in e.details() {
            self.info(d);
        }
        for h in e.hints() {
            self.hint(h);
        }
    }

    /// Whether live progress (bars redrawn in place) goes to the terminal: only when stderr is
    /// one and `--quiet` is off. Otherwise progress is plain lines.
    pub fn live_progress(self) -> bool {
        self.stderr_is_terminal && !self.quiet
    }

    /// Where live progress draws: stderr when [`Self::live_progress`], else nowhere.
    pub fn progress_target(self) -> ProgressDrawTarget {
        if self.live_progress() {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// Bold text when colour is on.
    pub fn bold(self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}
