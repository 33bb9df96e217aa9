#!/bin/sh
# Seeds fuzz/corpus/load_recipes from the fixture trees: every KDL file alone, the whole
# feature fixture as one multi-file input, and every malformed case laid over its base tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tests="$here/../tests"
out="$here/corpus/load_recipes"
mkdir -p "$out"

# One input from a list of files: `=== <dir>/<name>.kdl` before each.
bundle() {
    for f in "$@"; do
        printf '=== %s\n' "$(basename "$(dirname "$f")")/$(basename "$f")"
        cat "$f"
        printf '\n'
    done
}

n=0
for f in $(find "$tests/fixtures" "$tests/malformed" -name '*.kdl' -path '*/recipes/*' -o -name '*.kdl' -path '*/toolchains/*' | sort); do
    n=$((n + 1))
    cp "$f" "$out/file-$n.kdl"
done
bundle $(find "$tests/fixtures/full/toolchains" "$tests/fixtures/full/recipes" -name '*.kdl' | sort) > "$out/tree-full"
# The same tree without files beside the recipes (the fuzz target reads none), so that it loads
# cleanly and mutations of it reach resolution and planning.
sed -e '/^ *patch "/d' \
    -e 's|path="[^"]*"|sha256="0000000000000000000000000000000000000000000000000000000000000000" url="https://example.org/src-{version}.tar.gz"|' \
    "$out/tree-full" > "$out/tree-full-remote"
for case in "$tests"/malformed/[0-9]*/; do
    name=$(basename "$case")
    files=""
    for f in $(find "$tests/malformed/_base" -name '*.kdl' | sort); do
        rel=${f#"$tests/malformed/_base/"}
        if [ -f "$case/$rel" ]; then files="$files $case/$rel"; else files="$files $f"; fi
    done
    for f in $(cd "$case" && find recipes toolchains -name '*.kdl' 2>/dev/null | sort); do
        [ -f "$tests/malformed/_base/$f" ] || files="$files $case/$f"
    done
    bundle $files > "$out/tree-$name"
done
echo "seeded $(ls "$out" | wc -l) inputs into $out"
