#!/bin/sh
# Seeds fuzz/corpus/<target> for every target. load_recipes: from the fixture trees, every KDL
# file alone, the whole feature fixture as one multi-file input, and every malformed case laid
# over its base tree. The others: see below.
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

# --- Seeds of the other targets: small real inputs, plus hand-made ones for the corners. ---
repo="$here/.."
fixtures="$repo/engine/spack/tests/fixtures/spack-v1.0"
reference="$repo/../shared/reference/spack-v1.0-examples"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# unpack: one selector byte (the name the archive is unpacked under: 0 .tar, 1 .tar.gz,
# 2 .tar.xz, 3 .zip, 4 .tar.bz2, 5 .tar.zst, 6 no suffix), then the archive. Trees written by
# tar and zip, and hostile entries (`..`, absolute names, escaping links, devices, setuid,
# long names) written with Python's tarfile and zipfile, which do not refuse them.
out="$here/corpus/unpack"
mkdir -p "$out"
python3 - "$scratch/archives" <<'PY'
import io, os, sys, tarfile, zipfile
d = sys.argv[1]
os.makedirs(d, exist_ok=True)

def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.linkname, t.size, t.mtime = kind, mode, link, len(data), 1_000_000_000
    return t, data

tree = [
    member("pkg/", tarfile.DIRTYPE, mode=0o755),
    member("pkg/configure", data=b"#!/bin/sh\necho ok\n", mode=0o755),
    member("pkg/README", data=b"hello\n"),
    member("pkg/sub/", tarfile.DIRTYPE, mode=0o700),
    member("pkg/sub/deep.txt", data=b"deep\n" * 40),
    member("pkg/link", tarfile.SYMTYPE, link="README"),
    member("pkg/sub/up", tarfile.SYMTYPE, link="../README"),
    member("pkg/hard", tarfile.LNKTYPE, link="pkg/README"),
    member("pkg/old-style-dir/", tarfile.REGTYPE),
]
hostile = {
    "dotdot": [member("../evil", data=b"x")],
    "deep-dotdot": [member("pkg/../../evil", data=b"x")],
    "absolute": [member("/tmp/forge-evil", data=b"x")],
    "symlink-out": [member("esc", tarfile.SYMTYPE, link="../../.."), member("esc/x", data=b"x")],
    "symlink-abs": [member("esc", tarfile.SYMTYPE, link="/tmp")],
    "symlink-name-dotdot": [
        member("a/", tarfile.DIRTYPE, mode=0o755),
        member("a/l", tarfile.SYMTYPE, link="b/../../x"),
    ],
    "write-through-link": [member("l", tarfile.SYMTYPE, link="pkg"), member("pkg/", tarfile.DIRTYPE),
                           member("l/x", data=b"x")],
    "hardlink-out": [member("h", tarfile.LNKTYPE, link="../sentinel")],
    "hardlink-abs": [member("h", tarfile.LNKTYPE, link="/etc/passwd")],
    "hardlink-dir": [member("d/", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, link="d")],
    "setuid": [member("suid", data=b"x", mode=0o6755), member("sticky/", tarfile.DIRTYPE, mode=0o1777)],
    "device": [member("dev", tarfile.CHRTYPE), member("fifo", tarfile.FIFOTYPE)],
    "repeated": [member("f", data=b"one"), member("f", tarfile.SYMTYPE, link="g"), member("f", data=b"two")],
    "root-file": [member(".", data=b"x")],
}
def tarball(members, fmt):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data))
    return b.getvalue()

long = "pkg/" + "long-directory-name/" * 8 + "file-with-a-long-name.txt"
with open(f"{d}/tree-ustar.tar", "wb") as f:
    f.write(tarball(tree, tarfile.USTAR_FORMAT))
with open(f"{d}/tree-gnu.tar", "wb") as f:
    f.write(tarball(tree + [member(long, data=b"long\n"), member("pkg/ln", tarfile.SYMTYPE, link=long[4:])],
                    tarfile.GNU_FORMAT))
with open(f"{d}/tree-pax.tar", "wb") as f:
    info, data = member(long, data=b"long\n")
    info.pax_headers = {"mtime": "1000000000.5", "comment": "pax"}
    f.write(tarball(tree + [(info, data)], tarfile.PAX_FORMAT))
for name, members in hostile.items():
    with open(f"{d}/hostile-{name}.tar", "wb") as f:
        f.write(tarball(members, tarfile.GNU_FORMAT))

def zipped(entries):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for name, mode, data, method in entries:
            i = zipfile.ZipInfo(name, (2001, 9, 9, 1, 46, 40))
            i.external_attr = mode << 16
            i.compress_type = method
            z.writestr(i, data)
    return b.getvalue()

S, D = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
zips = {
    "tree": [("pkg/", 0o040755, b"", S), ("pkg/configure", 0o100755, b"#!/bin/sh\n", S),
             ("pkg/README", 0o100644, b"hello\n" * 30, D), ("pkg/link", 0o120777, b"README", S),
             ("pkg/plain", 0, b"no mode", S)],
    "dotdot": [("../evil", 0o100644, b"x", S)],
    "absolute": [("/tmp/forge-evil", 0o100644, b"x", S)],
    "symlink-out": [("esc", 0o120777, b"../../..", S), ("esc/x", 0o100644, b"x", S)],
    "setuid": [("suid", 0o106755, b"x", S)],
    "device": [("fifo", 0o010644, b"", S)],
}
for name, entries in zips.items():
    with open(f"{d}/{name}.zip", "wb") as f:
        f.write(zipped(entries))
PY
for t in "$scratch"/archives/*.tar; do
    base=$(basename "$t" .tar)
    { printf '\000'; cat "$t"; } > "$out/$base.tar"
    { printf '\001'; gzip -9n < "$t"; } > "$out/$base.tar.gz"
    { printf '\002'; xz -6 < "$t"; } > "$out/$base.tar.xz"
done
for t in "$scratch"/archives/tree-*.tar; do
    base=$(basename "$t" .tar)
    { printf '\004'; bzip2 -9 < "$t"; } > "$out/$base.tar.bz2"
    { printf '\005'; zstd -q -19 < "$t"; } > "$out/$base.tar.zst"
    { printf '\006'; cat "$t"; } > "$out/$base.sniffed-tar"
    { printf '\006'; gzip -9n < "$t"; } > "$out/$base.sniffed-gz"
done
for z in "$scratch"/archives/*.zip; do
    { printf '\003'; cat "$z"; } > "$out/$(basename "$z")"
done
echo "seeded $(ls "$out" | wc -l) inputs into $out"

# elf: a few small programs, shared libraries and objects of this machine, and hand-made
# files of every class and byte order with an interpreter, run paths, sections and a build ID.
out="$here/corpus/elf"
mkdir -p "$out"
for f in /usr/bin/true /usr/bin/mesg /usr/bin/mountpoint /usr/lib/x86_64-linux-gnu/libdl.so.2; do
    [ -f "$f" ] && cp "$f" "$out/$(basename "$f")"
done
(cd "$scratch" && ar x /usr/lib/x86_64-linux-gnu/libBrokenLocale.a 2>/dev/null && for o in *.o; do cp "$o" "$out/obj-$o"; done) || true
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]

def elf(is64, le):
    e = "<" if le else ">"
    interp = b"/lib64/ld-linux-x86-64.so.2\0"
    dynstr = b"\0/opt/forge/lib:$ORIGIN/../lib\0/old/rpath\0"
    note = struct.pack(e + "III", 4, 20, 3) + b"GNU\0" + bytes(range(1, 21))
    shstr = b"\0.interp\0.dynstr\0.dynamic\0.note.gnu.build-id\0.bss\0.shstrtab\0"
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    phnum, shnum = 3, 7
    word = "Q" if is64 else "I"
    dyn_ent = struct.calcsize(e + word * 2)
    phoff = ehsize
    body = phoff + phnum * phentsize
    o_interp = body
    o_dynstr = o_interp + len(interp)
    o_dyn = o_dynstr + len(dynstr)
    dyn = b"".join(struct.pack(e + word * 2, t, v) for t, v in
                   [(5, 0x400000 + o_dynstr), (29, 1), (15, 31), (0, 0)])
    o_note = o_dyn + len(dyn)
    o_shstr = o_note + len(note)
    shoff = o_shstr + len(shstr)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if le else 2, 1]) + bytes(9)
    if is64:
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, 62, 1, 0x401000, phoff, shoff, 0,
                                  ehsize, phentsize, phnum, shentsize, shnum, shnum - 1)
        ph = lambda t, off, va, sz: struct.pack(e + "IIQQQQQQ", t, 4, off, va, va, sz, sz, 8)
    else:
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, 3, 1, 0x401000, phoff, shoff, 0,
                                  ehsize, phentsize, phnum, shentsize, shnum, shnum - 1)
        ph = lambda t, off, va, sz: struct.pack(e + "IIIIIIII", t, off, va, va, sz, sz, 4, 4)
    end = shoff
    phs = ph(3, o_interp, 0x400000 + o_interp, len(interp)) \
        + ph(1, 0, 0x400000, end) + ph(2, o_dyn, 0x400000 + o_dyn, len(dyn))
    def sh(name, kind, off, size):
        if is64:
            return struct.pack(e + "IIQQQQIIQQ", name, kind, 0, 0, off, size, 0, 0, 1, 0)
        return struct.pack(e + "IIIIIIIIII", name, kind, 0, 0, off, size, 0, 0, 1, 0)
    n = lambda s: shstr.index(s.encode() + b"\0")
    shs = sh(0, 0, 0, 0) + sh(n(".interp"), 1, o_interp, len(interp)) \
        + sh(n(".dynstr"), 3, o_dynstr, len(dynstr)) + sh(n(".dynamic"), 6, o_dyn, len(dyn)) \
        + sh(n(".note.gnu.build-id"), 7, o_note, len(note)) + sh(n(".bss"), 8, shoff, 4096) \
        + sh(n(".shstrtab"), 3, o_shstr, len(shstr))
    data = hdr + phs + interp + dynstr + dyn + note + shstr + shs
    assert len(hdr) == ehsize and len(phs) == phnum * phentsize
    return data

for is64 in (True, False):
    for le in (True, False):
        with open(f"{out}/made-{64 if is64 else 32}{'le' if le else 'be'}.elf", "wb") as f:
            f.write(elf(is64, le))
PY
# Inputs that once crashed the reader (regression tests of forge-core) are seeds too.
for f in "$repo"/engine/core/tests/fuzz-regressions/elf/*; do
    [ -f "$f" ] && cp "$f" "$out/regression-$(basename "$f")"
done
echo "seeded $(ls "$out" | wc -l) inputs into $out"

# ar: static libraries of this machine, and archives written by GNU ar (long names, symbol
# index) and llvm-ar in the BSD and Darwin formats.
out="$here/corpus/ar"
mkdir -p "$out"
for f in /usr/lib/x86_64-linux-gnu/libBrokenLocale.a /usr/lib/x86_64-linux-gnu/libXau.a; do
    [ -f "$f" ] && cp "$f" "$out/$(basename "$f")"
done
mkdir -p "$scratch/ar" && (
    cd "$scratch/ar"
    printf 'int f(void) { return 1; }\n' > a.c
    cc -c -o short.o a.c 2>/dev/null || printf 'not an object\n' > short.o
    cp short.o a_member_name_longer_than_sixteen.o
    printf 'odd\n' > odd.txt
    ar rcs "$out/gnu-long-names.a" short.o a_member_name_longer_than_sixteen.o odd.txt
    ar rcS "$out/gnu-no-index.a" odd.txt a_member_name_longer_than_sixteen.o
    if command -v llvm-ar >/dev/null; then
        llvm-ar --format=bsd rcs "$out/bsd.a" short.o a_member_name_longer_than_sixteen.o odd.txt
        llvm-ar --format=darwin rcs "$out/darwin.a" short.o odd.txt
    fi
)
echo "seeded $(ls "$out" | wc -l) inputs into $out"

# manifest: every manifest and layout file Spack wrote for the fixture caches, signed and not.
out="$here/corpus/manifest"
mkdir -p "$out"
n=0
for f in $(find "$fixtures/mirror-signed" "$fixtures/mirror-unsigned" -name '*.json' | sort); do
    n=$((n + 1))
    cp "$f" "$out/$(basename "$(dirname "$(dirname "$f")")")-$n.json"
done
echo "seeded $(ls "$out" | wc -l) inputs into $out"

# buildinfo: what forge writes (the snapshots) and what Spack wrote (flow-style YAML, which
# forge's reader refuses, so mutations explore the refusals).
out="$here/corpus/buildinfo"
mkdir -p "$out"
for f in "$repo"/engine/spack/src/snapshots/*buildinfo* "$repo"/engine/spack/tests/snapshots/*binary_distribution*; do
    [ -f "$f" ] && sed '1,/^---$/d' "$f" > "$out/forge-$(basename "$f" .snap)"
done
for f in "$reference"/tarballs/*.binary_distribution.yaml; do
    [ -f "$f" ] && cat "$f" > "$out/spack-$(basename "$f")"
done
echo "seeded $(ls "$out" | wc -l) inputs into $out"

# tarball: small install tarballs laid out as forge and Spack write them (the prefix's parents,
# the prefix, `.spack/spec.json`, files, `.spack/binary_distribution` last).
out="$here/corpus/tarball"
mkdir -p "$out"
pfx=opt/store/abcdefghijklmnopqrstuvwxyz012345-app-1.0
mkdir -p "$scratch/t/$pfx/.spack" "$scratch/t/$pfx/bin"
printf '{"spec":{"_meta":{"version":5},"nodes":[{"name":"app","version":"1.0","hash":"abcdefghijklmnopqrstuvwxyz012345"}]}}' > "$scratch/t/$pfx/.spack/spec.json"
printf 'buildpath: "/opt/store"\nhardlinks_deduped: true\nhash_to_prefix:\n  "abcdefghijklmnopqrstuvwxyz012345": "/%s"\nrelative_prefix: "abcdefghijklmnopqrstuvwxyz012345-app-1.0"\nrelocate_binaries: []\nrelocate_links: []\nrelocate_textfiles: []\n' "$pfx" > "$scratch/t/$pfx/.spack/binary_distribution"
printf '#!/bin/sh\necho app\n' > "$scratch/t/$pfx/bin/app"
(cd "$scratch/t" && tar --format=gnu -cf "$out/forge-style.tar" opt/ "$pfx/.spack/spec.json" "$pfx/bin/app" "$pfx/.spack/binary_distribution")
(cd "$scratch/t" && tar --format=pax -cf "$out/pax.tar" "$pfx")
printf '{"buildpath": "/opt/store", "hash_to_prefix": {"abcdefghijklmnopqrstuvwxyz012345": "/%s"}}\n' "$pfx" > "$scratch/t/$pfx/.spack/binary_distribution"
(cd "$scratch/t" && tar --format=gnu -cf "$out/spack-flow-yaml.tar" "$pfx")
echo "seeded $(ls "$out" | wc -l) inputs into $out"
