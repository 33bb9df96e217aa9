#!/usr/bin/env bash
# Reproducibility check of one forge target, for any CI system.
#
#   examples/ci/check.sh TARGET [ARTIFACTS_DIR]
#
# Realizes TARGET (building only what the store lacks), rebuilds every node forge builds and
# compares it bit for bit with the store (`forge check`), checks that two exports of the closure
# are byte-identical (`forge check --export`), and leaves in ARTIFACTS_DIR (default
# `forge-check-artifacts`) what a CI job should archive:
#
#   check-report.json    the node report (forge-check-report/1, store-layout/check-report.md)
#   check-report.txt     the same for people
#   export-report.json   the export report (same schema, one node named `buildcache`)
#   logs/<node>.check.log         the log of each rebuild
#   logs/<node>.log               the log of the stored build, for comparison
#   summary.txt          one line per check and its exit status
#
# Exit status: 0 when both checks pass, 1 when something is not reproducible, 2 when a check
# could not run (a failed rebuild, a missing path). Environment: FORGE (the forge binary,
# default `forge`), FORGE_ARGS (global options such as `--store DIR` or `--example`, split on
# spaces), FORGE_CHECK_ROUNDS (default 1), FORGE_CHECK_DIFFOSCOPE=1 (also run diffoscope on
# differing files, when installed). Export checks need a padded store (the default). Builds
# must be sealed (FORGE_SANDBOX=require, unless the environment says otherwise): a CI result
# from a weaker sandbox proves less.
set -uo pipefail
export FORGE_SANDBOX=${FORGE_SANDBOX:-require}

target=${1:?usage: check.sh TARGET [ARTIFACTS_DIR]}
out=${2:-forge-check-artifacts}
forge=${FORGE:-forge}
read -r -a global <<<"${FORGE_ARGS:-}"
rounds=${FORGE_CHECK_ROUNDS:-1}
extra=()
[ "${FORGE_CHECK_DIFFOSCOPE:-0}" = 1 ] && extra+=(--diffoscope)

mkdir -p "$out/logs"
: >"$out/summary.txt"

step() { # step NAME COMMAND... : run, record the status, never stop the script
    local name=$1
    shift
    "$@"
    local rc=$?
    printf '%s %s\n' "$name" "$rc" >>"$out/summary.txt"
    return $rc
}

if ! step realize "$forge" "${global[@]}" realize "$target"; then
    echo "check.sh: realizing $target failed; nothing to check" >&2
    exit 2
fi

step check "$forge" "${global[@]}" check "$target" --rounds "$rounds" "${extra[@]}" \
    --report "$out/check-report.json" --log-dir "$out/logs" 2>"$out/check-report.txt"
check_rc=$?
cat "$out/check-report.txt" >&2

step export "$forge" "${global[@]}" check "$target" --export --report "$out/export-report.json"
export_rc=$?

# The stored builds' logs, next to the rebuilds' logs.
for f in "$out"/logs/*.check.log; do
    [ -e "$f" ] || continue
    node=$(basename "$f" .check.log)
    node=${node%.check[0-9]*}
    path=$(grep -o "\"store_path\": \"[^\"]*-$node\"" "$out/check-report.json" | head -n1 | cut -d'"' -f4)
    [ -n "$path" ] && "$forge" "${global[@]}" log "$path" >"$out/logs/$node.log" 2>/dev/null
done

worst=0
for rc in "$check_rc" "$export_rc"; do
    if [ "$rc" -eq 2 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; }; then
        worst=2
    elif [ "$rc" -eq 1 ] && [ "$worst" -eq 0 ]; then
        worst=1
    fi
done
exit "$worst"
