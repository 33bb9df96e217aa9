use std::io::Write as _;

use clap::CommandFactory;

use crate::ExitStatus;
use crate::args::{Cli, CompletionsArgs};

pub(super) fn run(a: &CompletionsArgs) -> Result<ExitStatus, ExitStatus> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics when its writer fails, and a reader
    // that stops early (`forge completions bash | head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "forge", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "error: writing the completions: {e}");
            Err(ExitStatus::Error)
        }
        _ => Ok(ExitStatus::Success),
    }
}
