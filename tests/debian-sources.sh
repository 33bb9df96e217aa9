#!/usr/bin/env bash
# Fills a forge source mirror with upstream release tarballs taken from Debian's source archive.
#
#   tests/debian-sources.sh MIRROR_DIR SRCPKG[=VERSION]@SUITE ...
#
# Upstream download sites are not reachable from CI, but Debian keeps many upstream tarballs
# byte for byte as `.orig` tarballs. This script derives a `deb-src` entry from the machine's own
# apt configuration (never naming a host itself), downloads the source packages, and files every
# orig tarball under MIRROR_DIR/sha256/<sha256>, where `forge realize --mirror file://MIRROR_DIR`
# finds it by the checksum the recipes pin. Only files whose checksum a recipe names are used, so
# a Debian repack can never stand in for an upstream tarball.
set -euo pipefail

mirror=$1
shift
mkdir -p "$mirror/sha256"

# The first `deb` entry of the machine's deb822 sources gives the archive and its keyring.
sources=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
if [ -z "$sources" ]; then
    echo "debian-sources: no deb822 sources under /etc/apt/sources.list.d" >&2
    exit 2
fi
uri=$(awk '/^URIs:/ {print $2; exit}' "$sources")
keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$sources")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

suites=$(printf '%s\n' "$@" | sed 's/.*@//' | sort -u | tr '\n' ' ')
cat > "$work/src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: $suites
Components: main
Signed-By: $keyring
SRC
apt_opts=(-o "Dir::Etc::SourceList=$work/src.sources" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Get::Only-Source=true -o APT::Sandbox::User=root)
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
apt-get "${apt_opts[@]}" -qq update

for spec in "$@"; do
    pkg=${spec%@*}
    suite=${spec##*@}
    mkdir -p "$work/dl/$pkg"
    (cd "$work/dl/$pkg" && apt-get "${apt_opts[@]}" -qq -t "$suite" source --download-only "$pkg")
    for f in "$work/dl/$pkg"/*.orig.tar.*; do
        [ -e "$f" ] || continue
        case "$f" in *.asc) continue ;; esac
        sum=$(sha256sum "$f" | cut -d' ' -f1)
        cp "$f" "$mirror/sha256/$sum.tmp" && mv "$mirror/sha256/$sum.tmp" "$mirror/sha256/$sum"
        echo "$sum  $(basename "$f")"
    done
done
