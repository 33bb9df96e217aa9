#!/usr/bin/env bash
# Runs, with a real Spack v1.0, the requests a site makes of a cache forge exported, exactly as
# the cache's README.md tells the site to set up (nothing more): every request must install
# from the cache alone (`spack install --cache-only`, signatures checked), and every installed
# package must pass `spack verify libraries`; `spack verify manifest` is run and reported (see
# store-layout/spack-export.md for why Spack's own binary installs fail it).
#
#   SPACK_ROOT=… SPACK_PACKAGES=… tests/spack/requests.sh CACHE_DIR [REQUEST…]
#
# Without requests, the list of issue 15 for the Slurm 22.05 cache. Prints one line per request
# and a summary; exits 1 if any request failed, 77 if no Spack is set up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
cache=$(cd "${1:?usage: requests.sh CACHE_DIR [REQUEST…]}" && pwd)
shift
if [ $# -eq 0 ]; then
    set -- slurm slurm@22.05 slurm@22-05-8-1 'slurm~gtk' 'slurm+restd' 'slurm target=x86_64_v3' \
        munge 'munge localstatedir=/var' libevent openssl
fi
run=$SPACK_WORK/run
rm -rf "$run"
mkdir -p "$run"
fresh_spack_config "$run/store"
log=$run/log
# The README's steps, as written there (the cache's path stands for its URL).
steps=$(sed -n '/^```sh$/,/^```$/p' "$cache/README.md" | grep '^spack ' | grep -v '^spack install')
while IFS= read -r step; do
    step=${step//<this directory>/$cache}
    step=${step//<URL of this directory, e.g. file:\/\/\/path\/to\/it>/file://$cache}
    echo "+ $step"
    # shellcheck disable=SC2086
    "${spack[@]}" ${step#spack } >> "$log" 2>&1 || { echo "set-up step failed: $step (log: $log)"; exit 1; }
done <<< "$steps"
echo "+ spack buildcache list: $("${spack[@]}" buildcache list --allarch 2>>"$log" | grep -c '@') specs"

failed=0
for req in "$@"; do
    start=$(date +%s)
    if "${spack[@]}" install --cache-only "$req" >> "$log" 2>&1; then
        hash=$("${spack[@]}" find --format '{hash}' "$req" 2>>"$log" | head -n 1)
        libs=ok
        "${spack[@]}" verify libraries "/$hash" >> "$log" 2>&1 || libs=FAILED
        manifest=ok
        "${spack[@]}" verify manifest "/$hash" > "$run/manifest.out" 2>&1 || manifest="rc $? ($(grep -c . "$run/manifest.out") lines: $(grep -o 'install_times.json.*' "$run/manifest.out" | head -n 1 | tr -d '\n'))"
        cat "$run/manifest.out" >> "$log"
        echo "ok      $req -> /${hash:0:7}  ($(($(date +%s) - start)) s; verify libraries: $libs; verify manifest: $manifest)"
        [ "$libs" = ok ] || failed=$((failed + 1))
    else
        echo "FAILED  $req  ($(($(date +%s) - start)) s): $(grep -E 'Error|error:' "$log" | tail -n 1)"
        failed=$((failed + 1))
    fi
done
echo "$(($# - failed))/$# requests installed from the cache and verified; log: $log"
[ "$failed" -eq 0 ]
