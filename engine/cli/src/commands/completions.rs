use clap::CommandFactory;

use crate::ExitStatus;
use crate::args::{Cli, CompletionsArgs};

pub(super) fn run(a: &CompletionsArgs) -> Result<ExitStatus, ExitStatus> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "forge", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}
