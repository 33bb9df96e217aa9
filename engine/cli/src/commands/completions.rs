//! `forge completions`: a shell completion script on stdout.

use clap::CommandFactory;

use crate::ExitStatus;
use crate::args::{Cli, CompletionsArgs};
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &CompletionsArgs) -> Result<ExitStatus, CliError> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics when its writer fails, and a reader
    // that stops early (`forge completions bash | head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "forge", &mut script);
    ctx.printer
        .raw_data(&script)
        .map_err(|e| CliError::error(format!("writing the completions: {e}")))?;
    Ok(ExitStatus::Success)
}
