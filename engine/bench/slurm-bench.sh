#!/usr/bin/env bash
# The Slurm executor against the local one, on a real Slurm started here on 127.0.0.1 (Debian's
# slurmctld, slurmd and munge; tests/run-all.sh installs them):
#
#   engine/bench/slurm-bench.sh [SECONDS_PER_NODE]
#
# Realizes a 70-node graph (ten layers of seven, each node needing two of the layer below) whose
# builds each sleep SECONDS_PER_NODE (default 1) with the local executor at `--jobs 2`, then with
# `--executor slurm` on a cluster of two CPUs (one per job) configured as Slurm ships, then on
# one configured as sites run it (an Epilog, no scheduling delay), into fresh stores. Prints each
# makespan against the local one, and where the time went: when the client submitted, when Slurm
# started the first job, how long the slots stood idle between jobs, what `forge build-node`
# costs beyond the build, and the run less the jobs' span (submitting and following). Prints;
# asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/install-packages.sh slurmctld slurmd slurm-client munge
export FORGE_BENCH_NODE_SECONDS=${1:-1}
# The release forge runs the builds and the jobs (FORGE_TEST_BIN to override).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${FORGE_TEST_BIN:-}" ]; then
    cargo build --release -q -p forge-cli --locked
    export FORGE_TEST_BIN=$CARGO_TARGET_DIR/release/forge
fi
cargo test -q -p forge-cli --test slurm_executor --locked -- --ignored --nocapture \
    bench_submission_overhead_of_a_70_node_graph
