#!/usr/bin/env bash
# Binary caches in S3, against baselines measured in the same run, on a SeaweedFS server
# started here on 127.0.0.1 (tests/install-s3.sh provides it, boto3 and the AWS CLI):
#
#   engine/bench/s3-bench.sh [--target T --recipes DIR (--store DIR | --mirror URL)]
#
# 1. export to S3 of a 1 GB prefix (a synthetic package built here: 256 files of 4 MiB, half
#    random bytes, half text) vs. the directory export plus `aws s3 cp --recursive` of its result
#    (target: <= 1.3x);
# 2. substituting that prefix from S3 into an empty store vs. `aws s3 cp --recursive` of its
#    blobs plus `tar -xzf` of its tarball (per-byte cost; target: <= 1.5x);
# 3. with --target and --recipes: the target's closure exported to S3 with its build dependencies
#    and substituted into an empty store (target: >= 20x faster than building it). With
#    --mirror URL (a source mirror, e.g. the one tests/debian-sources.sh fills) the closure is
#    first built here into an empty store, and that build's wall time is the baseline; with
#    --store DIR (a store where the target is realized, e.g. the heavy suite's) the baseline is
#    the sum of the closure's recorded build times.
#
# Uses the release `forge` (FORGE_BIN to override). Prints the ratios; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
target= recipes= store= mirror=
usage="usage: $0 [--target T --recipes DIR (--store DIR | --mirror URL)]"
while [ $# -gt 0 ]; do
    case "$1" in
        --target) target=$2; shift 2 ;;
        --recipes) recipes=$2; shift 2 ;;
        --store) store=$2; shift 2 ;;
        --mirror) mirror=$2; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
if [ -n "$target" ] && { [ -z "$recipes" ] || [ -z "$store$mirror" ]; }; then
    echo "$usage" >&2; exit 2
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${FORGE_BIN:-}" ]; then
    cargo build --release -q -p forge-cli
    FORGE_BIN=$CARGO_TARGET_DIR/release/forge
fi
venv=$(tests/install-s3.sh "${FORGE_S3_VENV:-$CARGO_TARGET_DIR/s3-venv}")
work=$(mktemp -d "${TMPDIR:-/var/tmp}/forge-s3-bench.XXXXXX")
weed_pid=
cleanup() { [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The server, on free ports.
base=$(python3 - <<'EOF'
import socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for b in range(31000, 39000, 10):
    if all(free(b + k) and free(b + k + 10000) for k in range(6)):
        print(b); break
EOF
)
cat > "$work/s3.json" <<'EOF'
{"identities":[{"name":"forge","credentials":[{"accessKey":"forgebench","secretKey":"forgebenchsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
mkdir -p "$work/weed"
"$venv/bin/weed" mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -webdav=false -admin.ui=false -master.port=$base -volume.port=$((base + 1)) \
    -filer.port=$((base + 2)) -s3.port=$((base + 3)) -admin.port=$((base + 4)) \
    -debug.port=$((base + 5)) -s3.config="$work/s3.json" >"$work/weed.log" 2>&1 &
weed_pid=$!
export AWS_ACCESS_KEY_ID=forgebench AWS_SECRET_ACCESS_KEY=forgebenchsecret AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$((base + 3)) \
    AWS_EC2_METADATA_DISABLED=true
aws() { "$venv/bin/aws" --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
for _ in $(seq 120); do aws s3 mb s3://bench >/dev/null 2>&1 && break; sleep 0.5; done

export XDG_CACHE_HOME=$work/cache FORGE_KEYS=$work/keys
forge() { "$FORGE_BIN" "$@"; }
now() { date +%s.%N; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
forge key generate "bench <bench@example.invalid>" >/dev/null

# The 1 GB package: compressible text and incompressible bytes, like an install tree.
tree=$work/tree
mkdir -p "$tree/recipes" "$tree/toolchains" "$tree/src/big"
cp examples/hello/toolchains/* "$tree/toolchains/"
echo "source of big" > "$tree/src/big/README"
cat > "$tree/recipes/big.kdl" <<'EOF'
package "big" {
    version "1.0" path="../src/big"
    languages
    build "custom" {
        phase "install" {
            sh #"""
for d in $(seq 0 15); do
    mkdir -p "$out/share/d$d"
    for f in $(seq 0 15); do
        if [ $(( (d + f) % 2 )) -eq 1 ]; then
            head -c 4194304 /dev/urandom > "$out/share/d$d/f$f"
        else
            seq -w $((d * 1000000 + f * 50000)) 999999999 | head -c 4194304 > "$out/share/d$d/f$f"
        fi
    done
done
"""#
        }
    }
}
EOF
printf 'defaults {\n    arch "x86-64-v3"\n    toolchain "host-gcc"\n}\ntarget "big" {\n    spec "big"\n}\n' \
    > "$tree/recipes/targets.kdl"
forge --recipes "$tree" --store "$work/a" realize big >/dev/null 2>&1
prefix_bytes=$(du -sb "$(forge --recipes "$tree" --store "$work/a" realize big 2>/dev/null)" | cut -f1)

# 1. Export: directory + aws s3 cp, against forge's S3 export (fresh staging).
t0=$(now); forge --recipes "$tree" --store "$work/a" export big --to "$work/dir" --sign >/dev/null; t1=$(now)
aws s3 cp --recursive --quiet "$work/dir" s3://bench/baseline; t2=$(now)
forge --recipes "$tree" --store "$work/a" export big --to s3://bench/forge --sign >/dev/null; t3=$(now)
dir_s=$(python3 -c "print($t1 - $t0)"); cp_s=$(python3 -c "print($t2 - $t1)"); s3_s=$(python3 -c "print($t3 - $t2)")
echo "forge-s3-bench: a $((prefix_bytes / 1000000)) MB prefix, SeaweedFS on 127.0.0.1"
printf '  export to S3:            %6.2f s\n' "$s3_s"
printf '  baseline: directory export %.2f s + aws s3 cp --recursive %.2f s = %.2f s\n' "$dir_s" "$cp_s" "$(python3 -c "print($dir_s + $cp_s)")"
echo "  ratio: $(ratio "$s3_s" "$(python3 -c "print($dir_s + $cp_s)")")   (target: <= 1.3)"

# 2. Substitution: forge realize --substituter against aws s3 cp of the blobs + tar -xzf.
t0=$(now)
forge --recipes "$tree" --store "$work/b" realize big --substituter s3://bench/forge >/dev/null 2>&1
t1=$(now)
mkdir -p "$work/baseline-dl" "$work/baseline-x"
aws s3 cp --recursive --quiet s3://bench/baseline/blobs "$work/baseline-dl"
tarball=$(find "$work/baseline-dl" -type f -size +100M | head -1)
tar -xzf "$tarball" -C "$work/baseline-x"
t2=$(now)
sub_s=$(python3 -c "print($t1 - $t0)"); base_s=$(python3 -c "print($t2 - $t1)")
printf '  substitute from S3:      %6.2f s\n' "$sub_s"
printf '  baseline: aws s3 cp --recursive + tar -xzf: %.2f s\n' "$base_s"
echo "  ratio: $(ratio "$sub_s" "$base_s")   (target: <= 1.5)"

# 3. A real closure: built here (with --mirror) or taken from a store, then substituted.
if [ -n "$target" ]; then
    baseline="its builds took"
    if [ -n "$mirror" ]; then
        store=$work/built
        t0=$(now)
        forge --recipes "$recipes" --store "$store" realize "$target" --jobs 2 --mirror "$mirror" >/dev/null
        t1=$(now)
        build_s=$(python3 -c "print($t1 - $t0)")
        baseline="building it here took"
    else
        build_s=$(forge --recipes "$recipes" --store "$store" path-info --json \
            $(forge --recipes "$recipes" --store "$store" plan "$target" --json | python3 -c 'import json,sys; print(" ".join(n["store_path"] for n in json.load(sys.stdin)["nodes"]))') \
            | python3 -c 'import json,sys; print(sum(p["build_seconds"] for p in json.load(sys.stdin)))')
    fi
    forge --recipes "$recipes" --store "$store" export "$target" --with-build-deps \
        --to s3://bench/closure --sign >/dev/null
    t0=$(now)
    forge --recipes "$recipes" --store "$work/c" realize "$target" --jobs 2 \
        --substituter s3://bench/closure --json > "$work/closure.json"
    t1=$(now)
    built=$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get('how') == 'built'))" "$work/closure.json")
    substituted=$(python3 -c "import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get('event') == 'substituted'))" "$work/closure.json")
    bytes=$(du -sb "$work/c" | cut -f1)
    sub_s=$(python3 -c "print($t1 - $t0)")
    printf '  %s: %s nodes substituted (%s built, %s MB) in %.1f s; %s %.0f s\n' "$target" "$substituted" "$built" "$((bytes / 1000000))" "$sub_s" "$baseline" "$build_s"
    echo "  speed-up: $(ratio "$build_s" "$sub_s")x   (target: >= 20)"
fi
