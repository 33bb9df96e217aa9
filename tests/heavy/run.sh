#!/usr/bin/env bash
# The heavy suite: the headline graph really built on this machine, from a cold store.
#
#   tests/heavy/run.sh toolchain|closure|all [--warm]
#
# toolchain  gcc 13.4.0 from Debian's sources with its own closure, then gmp +cxx compiled by it
#            for x86-64-v3 (target gcc-13.4.0-deb); about an hour on two cores
# closure    Slurm 24.11.5 and its whole closure compiled by that gcc (slurm-24.11-gcc13-deb),
#            then munged, slurmctld and slurmd started on 127.0.0.1 and a job and a PMIx job run,
#            and the closure exported as a Spack buildcache (its relocation check); hours on two
#            cores
# all        both, in that order
#
# Each prints a table per node (build time, size, bit-identical in `forge check`) and the
# schedule's efficiency. The store, source mirror and caches live in $HEAVY_DIR (default
# target/heavy); the store is removed first unless --warm. FORGE_HEAVY_NO_CHECK=1 stops the
# closure run after its functional checks (for iterating on recipes; it proves no reproducibility). Not part of CI (.ci/run): it needs
# hours and Debian's source archive.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-all}
warm=${2:-}
case "$mode" in
    toolchain) filter=toolchain_ ;;
    closure) filter=closure_ ;;
    all) filter="" ;;
    *) echo "usage: tests/heavy/run.sh toolchain|closure|all [--warm]" >&2; exit 2 ;;
esac

# What the builds take from the host (their versions are part of the hashes), GNU time for the
# peak memory, and the tools the functional checks use.
packages=(gcc g++ make patch file binutils pkg-config autoconf automake libtool m4 cmake flex bison
          texinfo gawk perl python3 xz-utils bzip2 zstd procps time)
tests/install-packages.sh "${packages[@]}"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export HEAVY_DIR=${HEAVY_DIR:-$CARGO_TARGET_DIR/heavy}
mkdir -p "$HEAVY_DIR"
if [ "$warm" != "--warm" ]; then
    # A cold store; the source mirror and cache are kept (they hold only verified downloads).
    rm -rf "$HEAVY_DIR/store" "$HEAVY_DIR/cluster"
fi
started=$(date +%s)
cargo test -p forge-cli --test heavy --locked -- --ignored --nocapture --test-threads 1 $filter 2>&1 \
    | tee "$HEAVY_DIR/$mode.log"
echo "heavy $mode: $(( $(date +%s) - started )) s; log in $HEAVY_DIR/$mode.log"
