# Sourced by the scripts of this directory: an isolated real Spack v1.0, as
# ../../store-layout/spack-export.md and the consumer README describe it.
#
#   SPACK_ROOT      a checkout of Spack v1.0.x (tag v1.0.0 is what the transcripts used)
#   SPACK_PACKAGES  a checkout of spack-packages, branch releases/v2025.07 (what v1.0.0 pins)
#   SPACK_WORK      where the isolated configuration, caches and install tree go
#                   (default: a directory under $TMPDIR, kept so that the recipe index is reused)
#
# Nothing here reads or writes the user's ~/.spack.
if [ -z "${SPACK_ROOT:-}" ] || [ ! -x "$SPACK_ROOT/bin/spack" ]; then
    echo "SKIP: set SPACK_ROOT to a Spack v1.0 checkout (see tests/spack/README.md)" >&2
    exit 77
fi
if [ -z "${SPACK_PACKAGES:-}" ] || [ ! -f "$SPACK_PACKAGES/repos/spack_repo/builtin/repo.yaml" ]; then
    echo "SKIP: set SPACK_PACKAGES to a spack-packages checkout (branch releases/v2025.07)" >&2
    exit 77
fi
if ! python3 -c 'import clingo' 2>/dev/null; then
    echo "SKIP: Spack's concretizer needs clingo: python3 -m pip install clingo" >&2
    exit 77
fi
SPACK_WORK=${SPACK_WORK:-${TMPDIR:-/tmp}/forge-real-spack}
mkdir -p "$SPACK_WORK"/{user,system,cache,gnupg}
chmod 700 "$SPACK_WORK/gnupg"
export SPACK_USER_CONFIG_PATH=$SPACK_WORK/user
export SPACK_SYSTEM_CONFIG_PATH=$SPACK_WORK/system
export SPACK_USER_CACHE_PATH=$SPACK_WORK/cache
export SPACK_GNUPGHOME=$SPACK_WORK/gnupg
spack=("$SPACK_ROOT/bin/spack")

# A fresh configuration and GnuPG home: Spack's install tree at $1, builtin's recipes.
fresh_spack_config() {
    rm -rf "$SPACK_GNUPGHOME" "$SPACK_USER_CONFIG_PATH"
    mkdir -p "$SPACK_GNUPGHOME" "$SPACK_USER_CONFIG_PATH"
    chmod 700 "$SPACK_GNUPGHOME"
    cat > "$SPACK_USER_CONFIG_PATH/config.yaml" <<YAML
config:
  install_tree:
    root: $1
YAML
    cat > "$SPACK_USER_CONFIG_PATH/repos.yaml" <<YAML
repos:
  builtin: $SPACK_PACKAGES/repos/spack_repo/builtin
YAML
}
