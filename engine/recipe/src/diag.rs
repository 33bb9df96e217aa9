//! Source files, spans and the diagnostics forge reports about what maintainers wrote.
//!
//! Every mistake in a KDL file becomes a [`Diag`]: a message, a code, labels on exact spans, and a
//! `help` line. Diagnostics are collected, never thrown one at a time, so a run reports all of
//! them. This module owns the wording conventions: lower-case messages without a trailing
//! period, literals in backticks.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

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
            let _ = handler.render_report(&mut out, d);
        }
        out
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
