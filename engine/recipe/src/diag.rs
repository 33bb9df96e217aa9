//! Source files, spans and the diagnostics forge reports about what maintainers wrote.
//!
//! Every mistake in a KDL file becomes a [`Diag`]: a message, a code, labels on exact spans, and a
//! `help` line. Diagnostics are collected, never thrown one at a time, so a run reports all of
//! them. This module owns the wording conventions: lower-case messages without a trailing
//! period, literals in backticks.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use forge_core::text::{escape, escape_lines};
use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceSpan};
use serde::Serialize;

/// Index of a file in [`Sources`].
pub type FileId = usize;

/// A KDL file that was read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name shown in diagnostics: the path relative to the recipe root (`recipes/munge.kdl`).
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(&self.name, Arc::clone(&self.text)).with_language("kdl")
    }
}

/// Every file read during one load, addressed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// Registers a file and returns its id.
    pub fn add(&mut self, name: String, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile {
            name,
            path,
            text: Arc::from(text),
        });
        self.files.len() - 1
    }

    /// The file with this id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    /// All files, in the order they were read.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate()
    }
}

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// A span from a miette span in `file`.
    pub fn new(file: FileId, span: SourceSpan) -> Self {
        Self {
            file,
            offset: span.offset(),
            len: span.len(),
        }
    }

    /// The sub-range `range` of this span (byte offsets relative to its start), clamped.
    pub fn slice(self, range: std::ops::Range<usize>) -> Self {
        let start = range.start.min(self.len);
        let end = range.end.clamp(start, self.len);
        Self {
            file: self.file,
            offset: self.offset + start,
            len: end - start,
        }
    }

    fn source_span(self) -> SourceSpan {
        SourceSpan::new(self.offset.into(), self.len)
    }
}

/// One finding about the recipes, with everything needed to render it.
#[derive(Debug, Clone)]
pub struct Diag {
    severity: Severity,
    code: &'static str,
    message: String,
    source: Option<NamedSource<Arc<str>>>,
    location: Option<Location>,
    labels: Vec<(Span, String)>,
    help: Option<String>,
}

/// Where a diagnostic points, for people and for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// File name as shown (`recipes/munge.kdl`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Diag {
    /// An error with a code such as `recipe::unknown-node`.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            source: None,
            location: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// A warning: reported, but does not fail `forge lint`.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    /// Adds a label on `span`. The first label decides the file and location of the diagnostic;
    /// labels in other files are dropped (miette renders one source per diagnostic), so put
    /// cross-file context in the message or help instead.
    pub fn label(mut self, sources: &Sources, span: Span, text: impl Into<String>) -> Self {
        let file = sources.get(span.file);
        if self.source.is_none() {
            let (line, column) = file.line_col(span.offset);
            self.location = Some(Location {
                file: file.name.clone(),
                line,
                column,
            });
            self.source = Some(file.named());
        }
        if self
            .labels
            .first()
            .is_none_or(|(first, _)| first.file == span.file)
        {
            self.labels.push((span, text.into()));
        }
        self
    }

    /// Adds a label on a byte range of a text that is not a recipe file (a spec given on the
    /// command line). Only used when no other label was added.
    pub fn label_text(
        mut self,
        name: &str,
        text: &str,
        range: std::ops::Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        if self.source.is_none() {
            let file = SourceFile {
                name: name.to_owned(),
                path: PathBuf::from(name),
                text: Arc::from(text),
            };
            let (line, column) = file.line_col(range.start);
            self.location = Some(Location {
                file: file.name.clone(),
                line,
                column,
            });
            self.source = Some(NamedSource::new(name, Arc::clone(&file.text)));
            let len = range
                .end
                .saturating_sub(range.start)
                .max(usize::from(range.start < text.len()));
            self.labels.push((
                Span {
                    file: usize::MAX,
                    offset: range.start,
                    len,
                },
                label.into(),
            ));
        }
        self
    }

    /// Points at a whole file without a span (for files that could not be read).
    pub fn in_file(mut self, name: impl Into<String>) -> Self {
        self.location = Some(Location {
            file: name.into(),
            line: 0,
            column: 0,
        });
        self
    }

    /// Puts `context` before the message (`context: message`), keeping code, labels and help.
    pub fn with_context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The diagnostic code.
    pub fn code_str(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where it points, if anywhere.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The help line.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The machine-readable form used by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": if self.is_error() { "error" } else { "warning" },
            "code": self.code,
            "message": self.message,
            "file": self.location.as_ref().map(|l| &l.file),
            "line": self.location.as_ref().map(|l| l.line),
            "column": self.location.as_ref().map(|l| l.column),
            "labels": self.labels.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            "help": self.help,
        })
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl Diagnostic for Diag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.source.is_none() || self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(
            |(i, (span, text))| {
                let text = (!text.is_empty()).then(|| text.clone());
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, span.source_span())
                } else {
                    LabeledSpan::new_with_span(text, span.source_span())
                }
            },
        )))
    }
}

/// The diagnostics of one run, errors and warnings, in the order found.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diag>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, d: Diag) {
        self.items.push(d);
    }

    /// Whether any error (not just warnings) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diag::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    /// All diagnostics.
    pub fn iter(&self) -> impl Iterator<Item = &Diag> {
        self.items.iter()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Sorts by file, position and message, so that output does not depend on the order in
    /// which files were read or checks ran.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            let key = |d: &Diag| {
                d.location
                    .as_ref()
                    .map(|l| (l.file.clone(), l.line, l.column))
            };
            key(a).cmp(&key(b)).then_with(|| a.message.cmp(&b.message))
        });
    }

    /// Renders every diagnostic for a terminal or a snapshot.
    pub fn render(&self, color: bool, width: usize) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        for d in &self.items {
            // Rendering into a String cannot fail.
            let _ = handler.render_report(&mut out, &Rendered::new(d));
        }
        out
    }
}

/// Lines longer than this (in bytes) are cut around the labels on them when rendered: miette's
/// graphical handler panics on a label past column 65,535 (a format width is a `u16`), and a
/// line of thousands of characters helps nobody anyway.
const LONG_LINE: usize = 400;

/// Bytes kept on either side of a label's start and end on a long line.
const KEEP: usize = 60;

/// What stands for the part of a long line that was cut.
const CUT: &str = "…";

/// A diagnostic as rendered: the same message, code, help and labels, with its source's long
/// lines cut around the labels ([`Excerpt`]) and every character a terminal would act on
/// escaped (a spec or a name can hold any byte).
#[derive(Debug)]
struct Rendered<'a> {
    diag: &'a Diag,
    source: Option<NamedSource<Excerpt>>,
    labels: Vec<LabeledSpan>,
}

impl<'a> Rendered<'a> {
    fn new(diag: &'a Diag) -> Self {
        let Some(named) = &diag.source else {
            return Self {
                diag,
                source: None,
                labels: Vec::new(),
            };
        };
        let spans: Vec<(usize, usize)> = diag
            .labels
            .iter()
            .map(|(s, _)| (s.offset, s.offset + s.len))
            .collect();
        let excerpt = Excerpt::new(Arc::clone(named.inner()), &spans);
        let labels = diag
            .labels
            .iter()
            .enumerate()
            .map(|(i, (span, text))| {
                let text = (!text.is_empty()).then(|| escape(text).into_owned());
                let start = excerpt.map(span.offset, false);
                let end = excerpt.map(span.offset + span.len, true).max(start);
                let span = SourceSpan::new(start.into(), end - start);
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                }
            })
            .collect();
        Self {
            diag,
            source: Some(NamedSource::new(escape(named.name()), excerpt)),
            labels,
        }
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_lines(&self.diag.message))
    }
}

impl std::error::Error for Rendered<'_> {}

impl Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.diag.severity()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let help = self.diag.help.as_deref()?;
        Some(Box::new(escape_lines(help)))
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.source.is_none() || self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// A source text as shown: every line longer than [`LONG_LINE`] cut to the pieces around the
/// labels' ends (or its start, when no label ends on it), the rest replaced by [`CUT`], and
/// every character a terminal would act on replaced by a visible stand-in ([`stand_in`]). Line
/// breaks are all kept, so line numbers stay right; columns reported for a span start are those
/// of the whole text.
#[derive(Debug)]
struct Excerpt {
    whole: Arc<str>,
    /// The text as shown; `None` when it is the whole text.
    cut: Option<String>,
    /// The pieces of the whole text kept as they are in `cut`, in order: (offset in `cut`,
    /// offset in `whole`, length). Between two pieces is a replacement.
    kept: Vec<(usize, usize, usize)>,
}

/// What a character a terminal would act on looks like in a rendered source line: its Unicode
/// control picture (`␛` for escape), or `�`.
fn stand_in(c: char) -> char {
    match u32::from(c) {
        n @ 0..0x20 => char::from_u32(0x2400 + n).unwrap_or('�'),
        0x7f => '␡',
        _ => '�',
    }
}

/// Builds an [`Excerpt`]'s text.
struct Cutter<'t> {
    text: &'t str,
    cut: String,
    kept: Vec<(usize, usize, usize)>,
}

impl Cutter<'_> {
    /// Whether the character `c` at `at` is replaced: a line break (`\n`, or `\r` before one)
    /// and a tab are kept, any other character a terminal acts on is not.
    fn replaced(&self, at: usize, c: char) -> bool {
        match c {
            '\n' | '\t' => false,
            '\r' => !self.text[at + 1..].starts_with('\n'),
            c => forge_core::text::is_unsafe(c),
        }
    }

    /// Copies `text[from..to]`, replacing what [`Self::replaced`] says.
    fn copy(&mut self, from: usize, to: usize) {
        let mut piece = from;
        for (i, c) in self.text[from..to].char_indices() {
            let at = from + i;
            if self.replaced(at, c) {
                self.keep(piece, at);
                self.cut.push(stand_in(c));
                piece = at + c.len_utf8();
            }
        }
        self.keep(piece, to);
    }

    fn keep(&mut self, from: usize, to: usize) {
        if from < to {
            self.kept.push((self.cut.len(), from, to - from));
            self.cut.push_str(&self.text[from..to]);
        }
    }
}

impl Excerpt {
    fn new(whole: Arc<str>, spans: &[(usize, usize)]) -> Self {
        let text: &str = &whole;
        let mut x = Cutter {
            text,
            cut: String::new(),
            kept: Vec::new(),
        };
        if !text.split('\n').any(|l| l.len() > LONG_LINE)
            && !text.char_indices().any(|(i, c)| x.replaced(i, c))
        {
            return Self {
                whole,
                cut: None,
                kept: Vec::new(),
            };
        }
        x.cut.reserve(text.len().min(1 << 16));
        let floor = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let ceil = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i += 1;
            }
            i
        };
        let mut start = 0;
        loop {
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            if end - start <= LONG_LINE {
                x.copy(start, end);
            } else {
                let mut windows: Vec<(usize, usize)> = spans
                    .iter()
                    .flat_map(|&(s, e)| [s, e])
                    .filter(|p| (start..=end).contains(p))
                    .map(|p| {
                        (
                            floor(p.saturating_sub(KEEP).max(start)),
                            ceil((p + KEEP).min(end)),
                        )
                    })
                    .collect();
                if windows.is_empty() {
                    windows.push((start, ceil(start + 2 * KEEP)));
                }
                windows.sort_unstable();
                let mut at = start;
                for (from, to) in windows {
                    if from > at {
                        x.cut.push_str(CUT);
                    }
                    x.copy(from.max(at), to);
                    at = at.max(to);
                }
                if at < end {
                    x.cut.push_str(CUT);
                }
            }
            if end == text.len() {
                break;
            }
            x.copy(end, end + 1);
            start = end + 1;
        }
        let Cutter { cut, kept, .. } = x;
        Self {
            whole,
            cut: Some(cut),
            kept,
        }
    }

    /// Where offset `at` of the whole text is in the cut text; an offset in a replaced part is
    /// the start of its replacement, or its end when `end` (so a span keeps the replacement).
    fn map(&self, at: usize, end: bool) -> usize {
        let Some(cut) = &self.cut else {
            return at;
        };
        let i = self.kept.partition_point(|&(_, w, _)| w <= at);
        let before = i.checked_sub(1).and_then(|i| self.kept.get(i));
        if let Some(&(c, w, len)) = before
            && at <= w + len
        {
            return c + (at - w);
        }
        if end {
            self.kept.get(i).map_or(cut.len(), |&(c, _, _)| c)
        } else {
            before.map_or(0, |&(c, _, len)| c + len)
        }
    }

    /// Where offset `at` of the cut text is in the whole text; a [`CUT`] mark stands for the
    /// start of what it replaced.
    fn unmap(&self, at: usize) -> usize {
        let i = self.kept.partition_point(|&(c, _, _)| c <= at);
        match i.checked_sub(1).and_then(|i| self.kept.get(i)) {
            None => 0,
            Some(&(c, w, len)) => w + (at - c).min(len),
        }
    }
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let Some(cut) = &self.cut else {
            return self.whole.read_span(span, before, after);
        };
        let contents = cut.as_str().read_span(span, before, after)?;
        if before != 0 {
            return Ok(contents);
        }
        // Without lines before, the contents start at the span and their column is the span's:
        // report the whole text's (in bytes, as miette counts).
        let at = self.unmap(contents.span().offset());
        let line_start = self.whole.as_bytes()[..at]
            .iter()
            .rposition(|b| matches!(b, b'\n' | b'\r'))
            .map_or(0, |i| i + 1);
        Ok(Box::new(miette::MietteSpanContents::new(
            contents.data(),
            *contents.span(),
            contents.line(),
            at - line_start,
            contents.line_count(),
        )))
    }
}
impl IntoIterator for Diagnostics {
    type Item = Diag;
    type IntoIter = std::vec::IntoIter<Diag>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// The closest candidate to `word`, for "did you mean" help lines.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_one(name: &str, text: &str, range: std::ops::Range<usize>) -> String {
        let mut ds = Diagnostics::default();
        ds.push(Diag::error("t::x", "bad").label_text(name, text, range, "here"));
        ds.render(false, 100)
    }

    #[test]
    fn a_label_past_column_65535_is_shown_on_a_cut_line() {
        let text = format!(
            "{}é{}!{}",
            "é".repeat(40_000),
            " ".repeat(30_000),
            "x".repeat(500)
        );
        let at = text.find('!').unwrap();
        let out = render_one("spec", &text, at..at + 1);
        assert!(out.contains(&format!("[spec:1:{}]", at + 1)), "{out:.3000}");
        assert!(out.lines().all(|l| l.chars().count() < 200), "{out:.3000}");
        let line = out
            .lines()
            .find(|l| l.contains('!'))
            .expect("the span's text");
        assert!(line.starts_with(" 1 │ …") && line.ends_with('…'), "{line}");
    }

    #[test]
    fn short_lines_are_rendered_whole_and_long_context_lines_are_cut() {
        let text = format!("{}\nshort line here\n", "y".repeat(70_000));
        let at = text.find("here").unwrap();
        let out = render_one("f", &text, at..at + 4);
        assert!(out.contains("[f:2:12]"), "{out:.3000}");
        assert!(out.contains(" 2 │ short line here\n"), "{out:.3000}");
        assert!(
            out.contains(" 1 │ yyy") && out.lines().all(|l| l.len() < 400),
            "{out:.3000}"
        );
    }

    #[test]
    fn a_span_over_a_cut_part_keeps_the_mark() {
        let text = format!("\"{}\"", "z".repeat(10_000));
        let e = Excerpt::new(Arc::from(text.as_str()), &[(0, text.len())]);
        let cut = e.cut.as_deref().unwrap();
        let (start, end) = (e.map(0, false), e.map(text.len(), true));
        assert_eq!((start, end), (0, cut.len()));
        assert!(cut.contains(CUT) && cut.len() < 300, "{cut}");
        assert_eq!(e.unmap(e.map(text.len() - 1, false)), text.len() - 1);
    }
}
