//! forge's command line: argument parsing, settings, and one module per command.
//!
//! The `forge` binary is a thin shell around [`main`]. Commands return an [`ExitStatus`] or an
//! [`error::CliError`], which [`commands::run`] renders once; all terminal output goes through
//! [`printer::Printer`].

pub mod args;
pub mod commands;
pub mod context;
pub mod error;
pub mod examples;
pub mod plan_cache;
pub mod printer;
pub mod progress;

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
    /// A signal (its number) interrupted the command, which cleaned up and stopped.
    Interrupted(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
            ExitStatus::Interrupted(signal) => ExitCode::from(128u8.saturating_add(signal)),
        }
    }
}

/// Runs forge: as a compiler wrapper or the sandbox shim when invoked as one, else the command
/// line.
pub fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let base = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    if forge_builder::wrapper::TOOLS
        .iter()
        .any(|(n, _)| *n == base)
        && std::env::var_os(forge_builder::wrapper::CONFIG_ENV).is_some()
    {
        forge_builder::wrapper::main(&base, argv.collect());
    }
    let rest: Vec<std::ffi::OsString> = argv.collect();
    if rest
        .first()
        .is_some_and(|a| a == forge_builder::sandbox::SHIM_ARG)
    {
        forge_builder::sandbox::shim_main(&rest[1..]);
    }
    let cli = args::Cli::parse();
    commands::run(cli).into()
}
