#!/usr/bin/env bash
# Writes engine/spack/data/builtin-v2025.07.json: the versions, variants and dependencies of
# Spack's builtin recipes for every package forge's recipes name (by Spack name), read from a
# spack-packages checkout through a real Spack v1.0 (`spack python`). The file is test data for
# the export's spec-level checks, which then run in CI without Spack.
#
#   SPACK_ROOT=… SPACK_PACKAGES=… tests/spack/vendor-metadata.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/env.sh"
cat > "$SPACK_USER_CONFIG_PATH/repos.yaml" <<YAML
repos::
  builtin: $SPACK_PACKAGES/repos/spack_repo/builtin
YAML
# Every package a recipe declares (no recipe renames its package for Spack), and libc.
names=$(cd "$repo" && cargo run -q --offline -p forge-cli -- --recipes "$repo" list --json \
    | python3 -c 'import json,sys; print(" ".join(sorted(p["name"] for p in json.load(sys.stdin))))')
out=$repo/engine/spack/data/builtin-v2025.07.json
mkdir -p "$(dirname "$out")"
"${spack[@]}" python "$here/builtin-metadata.py" $names glibc gcc-runtime > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(python3 -c "import json; print(len(json.load(open('$out'))))" ) packages)"
