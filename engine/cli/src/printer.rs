//! The one place that decides what reaches the terminal: data on stdout, people on stderr.

use std::io::{IsTerminal, Write};

use forge_recipe::Diagnostics;

use crate::args::ColorChoice;

/// Output settings for one run.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Colour on stderr.
    pub color: bool,
    /// Only errors.
    pub quiet: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice, quiet: bool) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Self { color, quiet }
    }

    /// Width for rendered diagnostics.
    fn width(self) -> usize {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100)
    }

    /// Writes data to stdout.
    pub fn data(self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }

    /// A line for people, on stderr.
    pub fn info(self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// A warning line.
    pub fn warn(self, text: &str) {
        if !self.quiet {
            let prefix = if self.color {
                "\x1b[33mwarning\x1b[0m"
            } else {
                "warning"
            };
            let _ = writeln!(std::io::stderr().lock(), "{prefix}: {text}");
        }
    }

    /// An error line.
    pub fn error(self, text: &str) {
        let prefix = if self.color {
            "\x1b[31merror\x1b[0m"
        } else {
            "error"
        };
        let _ = writeln!(std::io::stderr().lock(), "{prefix}: {text}");
    }

    /// A `hint:` line.
    pub fn hint(self, text: &str) {
        let prefix = if self.color {
            "\x1b[36mhint\x1b[0m"
        } else {
            "hint"
        };
        let _ = writeln!(std::io::stderr().lock(), "{prefix}: {text}");
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
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// One diagnostic.
    pub fn diag(self, d: &forge_recipe::Diag) {
        let mut ds = Diagnostics::default();
        ds.push(d.clone());
        self.diagnostics(&ds);
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
