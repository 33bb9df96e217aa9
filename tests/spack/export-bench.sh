#!/usr/bin/env bash
# Export speed and tarball size against Spack's own `spack buildcache push`, in one run.
#
#   FORGE_STORE=<store where TARGET is realized> SPACK_ROOT=… SPACK_PACKAGES=… \
#       tests/spack/export-bench.sh [TARGET] [ROUNDS]
#
# TARGET (default slurm-22.05-host) must be realized in FORGE_STORE. The script
#   1. exports TARGET with forge (signed) and installs its roots with a real Spack v1.0 from that
#      cache, so that Spack has the same packages installed;
#   2. times, ROUNDS times each (default 3, the best is kept), into fresh directories:
#      `forge export` unsigned and signed, and `spack buildcache push` unsigned and signed
#      (a key made with `spack gpg create`) of the same roots with their dependencies;
#   3. compares the install tarballs, package by package.
# forge runs from `target/release` (built first); Spack's time is its command's wall time, as
# a user sees it. Prints the ratios; needs the set-up of tests/spack/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/env.sh"
target=${1:-slurm-22.05-host}
rounds=${2:-3}
: "${FORGE_STORE:?set FORGE_STORE to the store where $target is realized}"
(cd "$repo" && cargo build -q --release --offline -p forge-cli)
forge=("${CARGO_TARGET_DIR:-$repo/target}/release/forge" --recipes "$repo")
bench=$SPACK_WORK/export-bench
rm -rf "$bench"
mkdir -p "$bench/keys"
export FORGE_KEYS=$bench/keys
"${forge[@]}" -q key generate "export bench <bench@example.org>" > /dev/null
"${forge[@]}" -q export "$target" --sign --to "$bench/forge-signed-0"

# Spack installs the roots from forge's cache, as a site would.
fresh_spack_config "$bench/spack-store"
log=$bench/log
"${spack[@]}" repo add "$bench/forge-signed-0/spack-repo/spack_repo/forge" >> "$log" 2>&1
"${spack[@]}" mirror add forge "file://$bench/forge-signed-0" >> "$log" 2>&1
"${spack[@]}" buildcache keys --install --trust >> "$log" 2>&1
# The roots: the cached specs no other cached spec depends on (the README's list).
roots=$(python3 - "$bench/forge-signed-0" <<'PY'
import json, sys, glob, os
cache = sys.argv[1]
m = json.load(open(os.path.join(cache, "v3/manifests/index/index.manifest.json")))
blob = m["data"][0]["checksum"]
idx = json.load(open(os.path.join(cache, "blobs/sha256", blob[:2], blob)))["database"]["installs"]
deps = {d["hash"] for r in idx.values() for d in r["spec"].get("dependencies", [])}
print(" ".join("/" + h for h, r in idx.items() if r["in_buildcache"] and h not in deps))
PY
)
# shellcheck disable=SC2086
"${spack[@]}" install --cache-only $roots >> "$log" 2>&1
"${spack[@]}" mirror remove forge >> "$log" 2>&1
# Spack signs with the only secret key of its keyring.
"${spack[@]}" gpg create "spack bench" bench@example.org >> "$log" 2>&1

best() { sort -n | head -n 1; }
timed() { # label, command…: prints seconds
    local s e
    s=$(date +%s.%N)
    "$@" >> "$log" 2>&1
    e=$(date +%s.%N)
    echo "$e - $s" | bc
}
declare -A t
for kind in forge-unsigned forge-signed spack-unsigned spack-signed; do
    for i in $(seq 1 "$rounds"); do
        dir=$bench/$kind-$i
        case $kind in
            forge-unsigned) timed "${forge[@]}" -q export "$target" --to "$dir" ;;
            forge-signed) timed "${forge[@]}" -q export "$target" --sign --to "$dir" ;;
            # shellcheck disable=SC2086
            spack-unsigned) timed "${spack[@]}" buildcache push --unsigned "file://$dir" $roots ;;
            # shellcheck disable=SC2086
            spack-signed) timed "${spack[@]}" buildcache push "file://$dir" $roots ;;
        esac
    done > "$bench/$kind.times"
    t[$kind]=$(best < "$bench/$kind.times")
done

# Tarball sizes by package name (the spec manifests' tarball records).
sizes() {
    python3 - "$1" <<'PY'
import json, sys, glob, os
for f in sorted(glob.glob(os.path.join(sys.argv[1], "v3/manifests/spec/*/*.spec.manifest.json"))):
    text = open(f).read()
    body = text[text.index("{"):text.rindex("}") + 1] if "BEGIN PGP" not in text else text[text.index("\n{") + 1:text.index("-----BEGIN PGP SIGNATURE")]
    for r in json.loads(body)["data"]:
        if r["mediaType"].startswith("application/vnd.spack.install"):
            print(os.path.basename(os.path.dirname(f)), r["contentLength"])
PY
}
sizes "$bench/forge-unsigned-1" > "$bench/forge.sizes"
sizes "$bench/spack-unsigned-1" > "$bench/spack.sizes"
echo "packages: forge $(wc -l < "$bench/forge.sizes"), spack $(wc -l < "$bench/spack.sizes")"
join <(sort "$bench/forge.sizes") <(sort "$bench/spack.sizes") | awk '
    { f += $2; s += $3; printf "  %-14s forge %10d  spack %10d  %+6.2f %%\n", $1, $2, $3, 100 * ($2 - $3) / $3 }
    END { printf "tarballs: forge %d bytes, spack %d bytes: forge/spack = %.4f\n", f, s, f / s }'
for k in unsigned signed; do
    printf "%-8s export: forge %6.2f s, spack buildcache push %6.2f s: %5.1fx faster\n" \
        "$k" "${t[forge-$k]}" "${t[spack-$k]}" "$(echo "${t[spack-$k]} / ${t[forge-$k]}" | bc -l)"
done
echo "(best of $rounds each; log: $log)"
