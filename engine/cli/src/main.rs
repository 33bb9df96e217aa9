//! The `forge` binary.

fn main() -> std::process::ExitCode {
    forge_cli::main()
}

// Planning allocates many small objects on several threads; glibc's malloc spent a third of
// `forge plan --all` in malloc/free (perf), mimalloc cuts the whole run by about 30 %.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
