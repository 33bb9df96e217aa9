#!/usr/bin/env python3
"""Builds a forge source mirror from Debian's source archive and says what it serves.

    tests/sources/debian-mirror.py [--mirror DIR] [--json] TARGET|SPEC ...

For every source of every node of the given forge targets (asked of the `forge` binary with
`forge plan --json` and `forge show-derivation`), this looks for Debian's orig tarball of that
package in the deb-src Sources indexes of bookworm, trixie, forky, sid and experimental (and
their -updates, -backports and -security suites), downloads it, and prints one row per source:

    pristine       Debian's file has exactly the recipe's sha256, and the recipe names it by
                   its upstream version (filed under MIRROR/sha256/<sha256>, where
                   `forge realize --mirror file://MIRROR` finds it)
    repack         Debian serves this version, but as other bytes (a +dfsg/+ds/+repack tree, or
                   another upstream file); or the recipe declares Debian's repack itself with
                   `file=` (then it is filed too)
    wrapper        Debian's orig of this version is a tarball holding the upstream tarball (gcc)
    other-version  Debian serves only other versions; the newest one that downloads is shown
    unavailable    nothing downloads (not packaged, or every listed file answers 404)

A file counts only once a download of it succeeded and its sha256 matched the index: the
archive answers 404 for some files its indexes list, and serves a few that none lists (those
are named in debian-names.tsv). Every verified download is filed under MIRROR/sha256/<sha256>;
a recipe only ever gets the bytes its own sha256 names.

The deb-src entry is derived at run time from the machine's apt configuration
(/etc/apt/sources.list.d/*.sources); no archive host is written here. For tests, `--index FILE`
(a Sources file, plain or .gz/.xz) and `--archive URL` (what the index's Directory: paths are
relative to: file:// or http://) replace the machine's archive.

Python 3.11 standard library only; downloads go through apt's own client (apt-helper) when the
machine has it, else through urllib.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASES = ["bookworm", "trixie", "forky", "sid", "experimental"]
POCKETS = ["", "-updates", "-backports"]
APT_HELPER = "/usr/lib/apt/apt-helper"
VERDICT_ORDER = ["pristine", "repack", "wrapper", "other-version", "unavailable"]


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


# ---------------------------------------------------------------------------------------------
# Versions


def vkey(v: str) -> tuple:
    """Orders versions like forge does: numeric parts numerically, separators ignored, and a
    trailing letter part (`1.0rc1`) before the plain release."""
    parts = re.findall(r"\d+|[A-Za-z]+", v)
    key = []
    for p in parts:
        key.append((1, int(p), "") if p.isdigit() else (0, 0, p.lower()))
    return tuple(key)


def same_version(a: str, b: str) -> bool:
    return vkey(a) == vkey(b)


REPACK = re.compile(r"([+~.](dfsg|ds|repack)\d*)+$", re.IGNORECASE)


def upstream_of(debian_version: str) -> tuple[str, bool]:
    """Debian version -> (upstream version, is a repack): `2:6.3.0+dfsg-5` -> (`6.3.0`, True),
    `2.12.7+dfsg+really2.9.14-2` -> (`2.9.14`, True), `3.1-20250104-1` -> (`3.1-20250104`, False)."""
    v = debian_version.split(":", 1)[-1]
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    repack = False
    if "+really" in v:
        v = v.split("+really", 1)[1]
        repack = True
    m = REPACK.search(v)
    if m:
        v = v[: m.start()]
        repack = True
    return v, repack


# ---------------------------------------------------------------------------------------------
# The name map


@dataclass
class NameMap:
    names: dict[str, tuple[str, bool]] = field(default_factory=dict)  # forge -> (template, wrapper)
    files: list[dict] = field(default_factory=list)  # unlisted served files

    def debian_source(self, package: str, version: str) -> tuple[str | None, bool]:
        template, wrapper = self.names.get(package, (package, False))
        if template == "-":
            return None, False
        parts = re.findall(r"\d+", version)
        subst = {
            "version.major": parts[0] if parts else version,
            "version.minor": parts[1] if len(parts) > 1 else "",
            "version.major_minor": ".".join(parts[:2]) if parts else version,
        }
        return re.sub(r"\{([a-z_.]+)\}", lambda m: subst.get(m.group(1), m.group(0)), template), wrapper


def load_names(path: Path) -> NameMap:
    nm = NameMap()
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"{path}: cannot read the name map: {e.strerror}")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cols = line.split()
        where = f"{path}:{lineno}"
        if cols[0] == "name":
            if len(cols) not in (3, 4) or (len(cols) == 4 and cols[3] != "wrapper"):
                raise UserError(
                    f"{where}: expected `name FORGE-PACKAGE DEBIAN-SOURCE [wrapper]`, got `{line}`"
                )
            if cols[1] in nm.names:
                raise UserError(f"{where}: `{cols[1]}` is mapped twice; keep one line")
            nm.names[cols[1]] = (cols[2], len(cols) == 4)
        elif cols[0] == "file":
            if len(cols) != 5 or not re.fullmatch(r"[0-9a-f]{64}", cols[4]):
                raise UserError(
                    f"{where}: expected `file DEBIAN-SOURCE UPSTREAM-VERSION POOL-PATH SHA256` "
                    f"(64 lower-case hex digits), got `{line}`"
                )
            nm.files.append({"source": cols[1], "version": cols[2], "path": cols[3], "sha256": cols[4]})
        else:
            raise UserError(f"{where}: unknown line kind `{cols[0]}`; lines start with `name` or `file`")
    return nm


# ---------------------------------------------------------------------------------------------
# Sources indexes


@dataclass
class Orig:
    source: str
    debian_version: str
    upstream: str
    repack: bool
    name: str
    sha256: str
    size: int
    urls: list[str]  # one per archive that lists it
    suites: list[str]


def read_index_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    elif path.suffix == ".xz":
        data = lzma.decompress(data)
    elif path.suffix in (".lz4", ".zst", ".bz2"):
        # apt keeps its lists compressed as it likes; its own helper reads every format.
        data = subprocess.run([APT_HELPER, "cat-file", str(path)], check=True, capture_output=True).stdout
    return data.decode("utf-8", "replace")


def parse_sources(text: str, suite: str, base: str, wanted: set[str], into: dict[str, dict[str, Orig]]):
    """Adds every orig tarball of the wanted source packages to into[source][sha256]."""
    for para in text.split("\n\n"):
        m = re.search(r"^Package: (\S+)$", para, re.M)
        if not m or not any(fnmatch.fnmatchcase(m.group(1), w) for w in wanted):
            continue
        src = m.group(1)
        ver = re.search(r"^Version: (\S+)$", para, re.M)
        d = re.search(r"^Directory: (\S+)$", para, re.M)
        sums = re.search(r"^Checksums-Sha256:\n((?: .*\n?)+)", para, re.M)
        if not (ver and d and sums):
            continue
        up, repack = upstream_of(ver.group(1))
        for row in sums.group(1).splitlines():
            f = row.split()
            if len(f) != 3:
                continue
            sha, size, name = f
            if not re.fullmatch(re.escape(src) + r"_[^_]+\.orig\.tar\.(gz|xz|bz2|lzma|zst)", name):
                continue  # .dsc, .debian.tar.*, signatures, orig-COMPONENT tarballs
            url = f"{base.rstrip('/')}/{d.group(1)}/{name}"
            o = into.setdefault(src, {}).get(sha)
            if o is None:
                into[src][sha] = Orig(src, ver.group(1), up, repack, name, sha, int(size), [url], [suite])
            else:
                if url not in o.urls:
                    o.urls.append(url)
                if suite not in o.suites:
                    o.suites.append(suite)


def apt_indexes(work: Path) -> list[tuple[str, str, Path]]:
    """Runs `apt-get update` on a private deb-src list derived from the machine's own deb822
    sources, and returns (suite, archive URI, index file) per Sources index obtained."""
    entries = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields = dict(
                (k.strip(), v.strip())
                for k, v in (ln.split(":", 1) for ln in stanza.splitlines() if ":" in ln and not ln.startswith("#"))
            )
            if "deb" not in fields.get("Types", "").split() or "URIs" not in fields:
                continue
            suites = fields.get("Suites", "").split()
            if any(s.endswith("-security") for s in suites):
                mine = [r + "-security" for r in RELEASES if r not in ("sid", "experimental")]
            else:
                mine = [r + p for r in RELEASES for p in POCKETS if not (p and r in ("sid", "experimental"))]
            # A keyring path is kept; an inline key block (a multi-line field) is left to apt's
            # own trusted keys.
            key = fields.get("Signed-By", "")
            entries.append((fields["URIs"].split()[0], key if key.startswith("/") else "", mine))
    if not entries:
        raise UserError(
            "no deb822 `Types: deb` entry under /etc/apt/sources.list.d/*.sources to derive Debian's "
            "archive from; pass --index FILE and --archive URL instead"
        )
    src = work / "src.sources"
    src.write_text(
        "\n".join(
            f"Types: deb-src\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
            + (f"Signed-By: {key}\n" if key else "")
            for uri, key, suites in entries
        )
    )
    (work / "lists/partial").mkdir(parents=True, exist_ok=True)
    (work / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    opts = [
        "-o", f"Dir::Etc::SourceList={src}", "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip
    # Suites the archive does not have (forky-backports before forky's release) make apt-get
    # exit non-zero; what matters is which indexes arrived, listed below.
    subprocess.run(["apt-get", *opts, "-qq", "update"], capture_output=True)
    out = subprocess.run(
        ["apt-get", *opts, "indextargets", "--format", "$(FILENAME)\t$(REPO_URI)", "Created-By: Sources"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = []
    for line in out.splitlines():
        fn, uri = line.split("\t")
        m = re.search(r"_dists_([^_]+)_main_source_Sources", fn)
        if m and Path(fn).exists():
            found.append((m.group(1), uri, Path(fn)))
    if not found:
        raise UserError("apt-get update obtained no Sources index from the machine's archive")
    return found


# ---------------------------------------------------------------------------------------------
# Downloads


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Fetcher:
    def __init__(self, store: Path):
        self.store = store  # holds sha256/<hex>
        (store / "sha256").mkdir(parents=True, exist_ok=True)
        self.tried: dict[str, bool] = {}
        self.use_apt = os.access(APT_HELPER, os.X_OK) and not os.environ.get("DEBIAN_MIRROR_URLLIB")

    def have(self, sha: str) -> bool:
        p = self.store / "sha256" / sha
        return p.is_file() and sha256_of(p) == sha

    def fetch(self, o: Orig) -> bool:
        """True once the file is in the store with its sha256 checked; tries each URL once."""
        if o.sha256 in self.tried:
            return self.tried[o.sha256]
        ok = self.have(o.sha256)
        for url in [] if ok else o.urls:
            ok = self._download(url, o.sha256)
            if ok:
                break
        self.tried[o.sha256] = ok
        return ok

    def _download(self, url: str, sha: str) -> bool:
        final = self.store / "sha256" / sha
        tmp = final.with_name(f".{sha}.{os.getpid()}.part")
        try:
            if self.use_apt:
                r = subprocess.run(
                    [APT_HELPER, "-o", "APT::Sandbox::User=root", "download-file", url, str(tmp), f"SHA256:{sha}"],
                    capture_output=True,
                )
                if r.returncode != 0 or not tmp.exists():
                    return False
                if tmp.is_symlink():  # file:// URLs are linked, not copied
                    target = tmp.resolve()
                    tmp.unlink()
                    shutil.copyfile(target, tmp)
            else:
                try:
                    with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                        shutil.copyfileobj(resp, out)
                except (urllib.error.URLError, OSError):
                    return False
            if sha256_of(tmp) != sha:
                return False
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            return True
        finally:
            if tmp.exists() or tmp.is_symlink():
                tmp.unlink()


# ---------------------------------------------------------------------------------------------
# forge


@dataclass
class Source:
    package: str
    version: str
    file: str
    sha256: str
    declared_file: bool  # `file=`: a distribution's file, fetched only from mirrors


def forge_json(forge: list[str], *args: str):
    r = subprocess.run([*forge, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"`forge {' '.join(args)}` failed:\n{r.stderr.strip()}")
    return json.loads(r.stdout)


def forge_sources(forge: list[str], targets: list[str]) -> list[Source]:
    seen: dict[tuple[str, str, str], Source] = {}
    for t in targets:
        plan = forge_json(forge, "plan", t, "--json")
        done = set()
        for n in plan["nodes"]:
            key = (n["name"], n["version"])
            if n.get("origin") != "build" or key in done:
                continue
            done.add(key)
            d = forge_json(forge, "show-derivation", t, "--node", f"{n['name']}@{n['version']}")
            fetch = d.get("fetch", [])
            for i, s in enumerate(d["inputs"].get("sources", [])):
                urls = fetch[i].get("urls") if i < len(fetch) else None
                src = Source(n["name"], n["version"], s["name"], s["sha256"], not urls)
                seen.setdefault((src.package, src.version, src.sha256), src)
    return sorted(seen.values(), key=lambda s: (s.package, vkey(s.version)))


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass
class Row:
    node: str
    version: str
    served: str
    verdict: str
    file: str
    sha256: str
    suites: str
    note: str
    filed: bool


def candidates(debsrc: str, origs: dict[str, dict[str, Orig]]) -> list[Orig]:
    """Every orig of the Debian source packages a (possibly globbed) name stands for."""
    return [o for src, by_sha in origs.items() if fnmatch.fnmatchcase(src, debsrc) for o in by_sha.values()]


def judge(s: Source, nm: NameMap, origs: dict[str, dict[str, Orig]], fetcher: Fetcher) -> Row:
    debsrc, wrapper = nm.debian_source(s.package, s.version)
    if debsrc is None:
        return Row(s.package, s.version, "-", "unavailable", "-", "-", "-", "not packaged by Debian", False)
    cands = candidates(debsrc, origs)
    if not cands:
        return Row(s.package, s.version, "-", "unavailable", "-", "-", "-", f"no source package `{debsrc}`", False)

    def row(o: Orig, verdict: str, note: str) -> Row:
        filed = o.sha256 == s.sha256
        return Row(s.package, s.version, o.upstream, verdict, o.name, o.sha256, ",".join(o.suites), note, filed)

    # 1. The recipe's own bytes.
    for o in [o for o in cands if o.sha256 == s.sha256]:
        if fetcher.fetch(o):
            if wrapper:
                return row(o, "wrapper", "the recipe pins Debian's wrapper itself")
            if s.declared_file:
                return row(o, "repack", "the recipe declares this Debian file (file=)")
            return row(o, "pristine", "")
    # 2. The same version as other bytes.
    same = [o for o in cands if same_version(o.upstream, s.version)]
    for o in sorted(same, key=lambda o: (not o.repack, o.name)):
        if fetcher.fetch(o):
            if wrapper:
                return row(o, "wrapper", "upstream tarball inside Debian's orig")
            why = "Debian repack" if o.repack else "another file of this version than the recipe's"
            return row(o, "repack", why)
    # 3. Another version: the newest that downloads.
    failed = [o.name for o in same]
    for o in sorted((o for o in cands if o not in same), key=lambda o: vkey(o.upstream), reverse=True):
        if fetcher.fetch(o):
            kind = "wrapper; " if wrapper else "repack; " if o.repack else ""
            note = kind + (f"{', '.join(failed)} listed but not served" if failed else "")
            return row(o, "other-version", note.strip("; "))
        failed.append(o.name)
    return Row(s.package, s.version, "-", "unavailable", "-", "-", "-",
               f"listed but not served: {', '.join(failed)}" if failed else "", False)  # fmt: skip


def print_table(rows: list[Row], out=sys.stdout):
    head = ("NODE", "PINNED", "SERVED", "VERDICT", "DEBIAN FILE", "SHA256", "SUITES", "NOTE")
    cells = [head] + [
        (r.node, r.version, r.served, r.verdict + ("*" if r.filed else ""), r.file, r.sha256, r.suites, r.note)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)) + "  " + c[-1], file=out)
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICT_ORDER}
    print(
        f"\n{len(rows)} sources: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        + f"; * = the recipe's exact bytes, filed in the mirror ({sum(r.filed for r in rows)})",
        file=out,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring for details.")
    ap.add_argument("targets", nargs="+", metavar="TARGET|SPEC")
    ap.add_argument("--mirror", type=Path, help="file every verified download under DIR/sha256/<sha256>")
    ap.add_argument("--forge", default=os.environ.get("FORGE", "forge"), help="the forge binary [$FORGE or forge]")
    ap.add_argument("--recipes", help="passed to forge")
    ap.add_argument("--names", type=Path, default=HERE / "debian-names.tsv", help="the name map")
    ap.add_argument("--index", action="append", default=[], metavar="[SUITE=]FILE",
                    help="a Sources index to use instead of the machine's archive (repeatable)")  # fmt: skip
    ap.add_argument("--archive", help="the URL --index's Directory: paths are relative to")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--candidates", action="store_true",
                    help="also try every other orig Debian lists for each node and list what is served")  # fmt: skip
    a = ap.parse_args(argv)

    forge = [a.forge] + (["--recipes", a.recipes] if a.recipes else [])
    if shutil.which(a.forge) is None:
        raise UserError(f"no forge binary `{a.forge}`: pass --forge PATH or set FORGE")
    if a.index and not a.archive:
        raise UserError("--index needs --archive URL (what the index's Directory: paths are relative to)")
    nm = load_names(a.names)
    sources = forge_sources(forge, a.targets)
    wanted = {d for s in sources for d in [nm.debian_source(s.package, s.version)[0]] if d}

    with tempfile.TemporaryDirectory(prefix="debian-mirror.") as tmp:
        work = Path(tmp)
        if a.index:
            indexes = []
            for spec in a.index:
                suite, _, fn = spec.rpartition("=")
                p = Path(fn)
                if not p.is_file():
                    raise UserError(f"--index {spec}: no such file")
                indexes.append((suite or p.name, a.archive, p))
        else:
            indexes = apt_indexes(work)
        origs: dict[str, dict[str, Orig]] = {}
        for suite, base, path in indexes:
            parse_sources(read_index_text(path), suite, base, wanted, origs)
        bases = sorted({base for _, base, _ in indexes})
        for f in nm.files:
            if any(fnmatch.fnmatchcase(f["source"], w) for w in wanted) and f["sha256"] not in origs.get(
                f["source"], {}
            ):
                name = f["path"].rsplit("/", 1)[-1]
                origs.setdefault(f["source"], {})[f["sha256"]] = Orig(
                    f["source"], f["version"], f["version"], False, name, f["sha256"], 0,
                    [f"{b.rstrip('/')}/{f['path']}" for b in bases], ["unlisted"],
                )  # fmt: skip
        fetcher = Fetcher(a.mirror if a.mirror else work / "store")
        rows = [judge(s, nm, origs, fetcher) for s in sources]
        extra = []
        if a.candidates:
            done = set()
            for s in sources:
                debsrc, _ = nm.debian_source(s.package, s.version)
                if debsrc is None or (s.package, debsrc) in done:
                    continue
                done.add((s.package, debsrc))
                for o in sorted(candidates(debsrc, origs), key=lambda o: vkey(o.upstream)):
                    served = fetcher.fetch(o)
                    extra.append({"node": s.package, "served": served, **o.__dict__})

    if a.json:
        json.dump({"rows": [r.__dict__ for r in rows], "candidates": extra} if a.candidates else
                  [r.__dict__ for r in rows], sys.stdout, indent=1)  # fmt: skip
        print()
    else:
        print_table(rows)
        if extra:
            print("\nEvery orig listed for these nodes (- = listed but not served):")
            for c in extra:
                flag = "+" if c["served"] else "-"
                print(f"  {flag} {c['node']:<24} {c['upstream']:<16} {c['name']:<44} {c['sha256']}  "
                      f"{','.join(c['suites'])}{'  repack' if c['repack'] else ''}")  # fmt: skip
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"debian-mirror: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
