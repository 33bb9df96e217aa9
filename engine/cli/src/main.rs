//! The `forge` binary.

fn main() -> std::process::ExitCode {
    forge_cli::main()
}
