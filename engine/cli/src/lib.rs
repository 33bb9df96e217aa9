//! forge's command line: argument parsing, settings, and one module per command.
//!
//! The `forge` binary is a thin shell around [`main`]. Commands return an [`ExitStatus`]; all
//! terminal output goes through [`printer::Printer`].

pub mod args;
pub mod commands;
pub mod context;
pub mod printer;

use std::process::ExitCode;

use clap::Parser;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// The command ran and found a problem (lint errors, a failed build, a difference).
    Failure,
    /// The command could not run (bad input, missing files).
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
        }
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    commands::run(cli).into()
}
