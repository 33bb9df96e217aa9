#!/usr/bin/env bash
# The Slurm executor against the local one, on a real Slurm started here on 127.0.0.1 (Debian's
# slurmctld, slurmd and munge; tests/run-all.sh installs them):
#
#   engine/bench/slurm-bench.sh [SECONDS_PER_NODE]
#
# Realizes a 70-node graph (ten layers of seven, each node needing two of the layer below) whose
# builds each sleep SECONDS_PER_NODE (default 1), once with `--executor slurm` (two CPUs, one per
# job) and once with the local executor at `--jobs 2`, into fresh stores, and prints both
# makespans, their ratio, the overhead per node, when the client had submitted every job, and
# how long each job ran as the client saw it. FORGE_BENCH_SLURM_CONF adds lines to slurm.conf,
# e.g. $'SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n' (Slurm's default
# scheduler waits before dispatching a job whose dependencies just ended). Prints; asserts
# nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/install-packages.sh slurmctld slurmd slurm-client munge
export FORGE_BENCH_NODE_SECONDS=${1:-1}
cargo test -q -p forge-cli --test slurm_executor --locked -- --ignored --nocapture \
    bench_submission_overhead_of_a_70_node_graph
