//! The error a command returns: what stopped it and everything needed to say so. Commands do
//! not print their errors; [`crate::commands::run`] renders the one they return, once, through
//! [`Printer::report`](crate::printer::Printer::report).

use std::fmt;

use forge_recipe::{Diag, Diagnostics};

use crate::ExitStatus;

/// Why a command stopped: its exit status ([`ExitStatus::Failure`]: it ran and found a problem;
/// [`ExitStatus::Error`]: it could not run) and what to tell the user, rendered in this order:
/// recipe diagnostics, the `error:` line, detail lines (normal text, hidden with `--quiet`), and
/// `hint:` lines.
#[derive(Debug)]
#[must_use]
pub struct CliError {
    status: ExitStatus,
    diagnostics: Diagnostics,
    message: Option<String>,
    details: Vec<String>,
    hints: Vec<String>,
}

impl CliError {
    fn new(status: ExitStatus, message: Option<String>) -> Self {
        Self {
            status,
            diagnostics: Diagnostics::default(),
            message,
            details: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// The command could not run (bad input, missing files): exit 2.
    pub fn error(message: impl fmt::Display) -> Self {
        Self::new(ExitStatus::Error, Some(message.to_string()))
    }

    /// The command ran and found a problem: exit 1.
    pub fn failure(message: impl fmt::Display) -> Self {
        Self::new(ExitStatus::Failure, Some(message.to_string()))
    }

    /// Recipe diagnostics that stopped the command (exit 1): they say everything themselves.
    /// Warnings among them are shown too, unless `--quiet`.
    pub fn diagnostics(diagnostics: Diagnostics) -> Self {
        Self {
            diagnostics,
            ..Self::new(ExitStatus::Failure, None)
        }
    }

    /// One diagnostic that stopped the command (exit 1).
    pub fn diag(d: Diag) -> Self {
        let mut diagnostics = Diagnostics::default();
        diagnostics.push(d);
        Self::diagnostics(diagnostics)
    }

    /// An `error:` line after the diagnostics (a summary of them).
    pub fn with_message(mut self, message: impl fmt::Display) -> Self {
        self.message = Some(message.to_string());
        self
    }

    /// A line of detail under the `error:` line (e.g. one missing path); hidden with `--quiet`.
    pub fn with_detail(mut self, line: impl fmt::Display) -> Self {
        self.details.push(line.to_string());
        self
    }

    /// A `hint:` line: what to do about it.
    pub fn with_hint(mut self, hint: impl fmt::Display) -> Self {
        self.hints.push(hint.to_string());
        self
    }

    /// The same error with another exit status (a command that treats a problem found by a
    /// shared step as a failure to run, or the reverse).
    pub fn with_status(mut self, status: ExitStatus) -> Self {
        debug_assert_ne!(status, ExitStatus::Success, "an error cannot succeed");
        self.status = status;
        self
    }

    /// The exit status the command ends with.
    pub fn status(&self) -> ExitStatus {
        self.status
    }

    /// The recipe diagnostics, rendered first.
    pub fn recipe_diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// The `error:` line, if there is one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Detail lines under the `error:` line.
    pub fn details(&self) -> &[String] {
        &self.details
    }

    /// `hint:` lines, last.
    pub fn hints(&self) -> &[String] {
        &self.hints
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => {
                let mut first = true;
                for d in self.diagnostics.iter() {
                    if !first {
                        f.write_str("; ")?;
                    }
                    first = false;
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CliError {}

/// A request that does not parse, resolve or plan: its diagnostic says why (exit 1).
impl From<Box<Diag>> for CliError {
    fn from(d: Box<Diag>) -> Self {
        Self::diag(*d)
    }
}

/// A store that cannot be opened or read: the command cannot run.
impl From<forge_store::StoreError> for CliError {
    fn from(e: forge_store::StoreError) -> Self {
        let err = Self::error(&e);
        match e {
            forge_store::StoreError::PaddingMismatch { .. } => err.with_hint(
                "drop `--padded-length` (or `FORGE_PADDED_LENGTH`), or use another `--store`",
            ),
            forge_store::StoreError::OutLinkTaken { .. } => {
                err.with_hint("move it away, or pass another path to `--out-link`")
            }
            forge_store::StoreError::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                err.with_hint("the file system is full: `forge gc` deletes what no root keeps; read-only commands (`verify`, `path-info`, `roots`, `gc --dry-run`) work meanwhile")
            }
            _ => err,
        }
    }
}

/// A keyring that cannot be read or does not hold the key asked for (exit 1).
impl From<forge_spack::KeyError> for CliError {
    fn from(e: forge_spack::KeyError) -> Self {
        Self::failure(e)
    }
}

/// A buildcache that cannot be verified at all (exit 1); problems found in a cache are the
/// command's findings, not this error.
impl From<forge_spack::VerifyError> for CliError {
    fn from(e: forge_spack::VerifyError) -> Self {
        Self::failure(e)
    }
}

/// A rebuild of `forge check` that cannot start (exit 2): nodes that were never realized (their
/// paths), the store, or a file.
pub(crate) fn from_rebuild(e: forge_check::RebuildError, store: &forge_store::Store) -> CliError {
    match e {
        forge_check::RebuildError::NotRealized { target, missing } => {
            let missing: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
            missing_paths(
                store,
                &missing,
                &format!("needed to check `{target}`"),
                &format!(
                    "`forge check` compares rebuilds with realized outputs: run `forge realize {target}` first"
                ),
            )
            .with_status(ExitStatus::Error)
        }
        other => CliError::error(other),
    }
}

/// An export graph that cannot be built (exit 1): nodes that were never realized (their paths),
/// the host's identity, or the store.
pub(crate) fn from_plan_export(
    e: forge_spack::PlanExportError,
    store: &forge_store::Store,
) -> CliError {
    match e {
        forge_spack::PlanExportError::NotRealized { request, missing } => {
            let missing: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
            missing_paths(
                store,
                &missing,
                &format!("of `{request}`"),
                &format!("run `forge realize {request}` first"),
            )
        }
        other => CliError::failure(other),
    }
}

/// Some store paths a command needs are not valid (exit 1): the first five of them, and what to
/// do about it. `what` says whose paths they are, e.g. "of `hello`".
fn missing_paths(store: &forge_store::Store, missing: &[&str], what: &str, hint: &str) -> CliError {
    let mut e = CliError::failure(format!(
        "{} path{} {what} {} not in the store",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" },
        if missing.len() == 1 { "is" } else { "are" }
    ));
    for m in missing.iter().take(5) {
        e = e.with_detail(format!("  {}", store.path_of(m).display()));
    }
    e.with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_constructor_and_can_be_overridden() {
        assert_eq!(CliError::error("x").status(), ExitStatus::Error);
        assert_eq!(CliError::failure("x").status(), ExitStatus::Failure);
        assert_eq!(
            CliError::diag(Diag::error("t::x", "bad")).status(),
            ExitStatus::Failure
        );
        assert_eq!(
            CliError::failure("x")
                .with_status(ExitStatus::Error)
                .status(),
            ExitStatus::Error
        );
    }

    #[test]
    fn parts_are_kept_in_order() {
        let e = CliError::failure("3 paths are missing")
            .with_detail("  /a")
            .with_detail("  /b")
            .with_hint("realize first");
        assert_eq!(e.message(), Some("3 paths are missing"));
        assert_eq!(e.details(), ["  /a", "  /b"]);
        assert_eq!(e.hints(), ["realize first"]);
        assert!(e.recipe_diagnostics().is_empty());
    }

    #[test]
    fn display_is_the_message_or_the_diagnostics() {
        assert_eq!(CliError::error("no tree").to_string(), "no tree");
        let mut ds = Diagnostics::default();
        ds.push(Diag::error("t::a", "first"));
        ds.push(Diag::warning("t::b", "second"));
        let e = CliError::diagnostics(ds);
        assert_eq!(e.to_string(), "first; second");
        assert_eq!(e.with_message("2 problems").to_string(), "2 problems");
    }

    #[test]
    fn a_padding_mismatch_says_how_to_open_the_store() {
        let e = CliError::from(forge_store::StoreError::PaddingMismatch {
            root: "/s".into(),
            existing: 160,
            requested: 0,
        });
        assert_eq!(e.status(), ExitStatus::Error);
        assert_eq!(
            e.message(),
            Some("the store at `/s` pads its paths to 160 bytes; it cannot be reopened with 0")
        );
        assert_eq!(
            e.hints(),
            ["drop `--padded-length` (or `FORGE_PADDED_LENGTH`), or use another `--store`"]
        );
        let other = CliError::from(forge_store::StoreError::Corrupt {
            path: "/s/x".into(),
            reason: "truncated".into(),
        });
        assert!(other.hints().is_empty());
    }
}
