#!/usr/bin/env python3
"""Tests of debian-mirror.py on a fixture archive: no network, a few seconds.

    FORGE=path/to/forge python3 -m unittest discover -s tests/sources -p 'test_*.py'

The fixture is written at run time into a temp dir: a recipe tree of packages that compile
nothing, tiny source tarballs, a fake Sources index naming them (some listed files are missing,
to answer 404, and one served file is listed nowhere), and a name map. The archive is served by
an HTTP server on 127.0.0.1 started by the test. The real `forge` binary lists the sources.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "debian-mirror.py"
REPO = HERE.parent.parent


def find_forge() -> str | None:
    if os.environ.get("FORGE"):
        return os.environ["FORGE"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for p in (target / "debug" / "forge", target / "release" / "forge"):
        if p.is_file():
            return str(p)
    return shutil.which("forge")


def tarball(top: str, files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class DebianMirrorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.forge = find_forge()
        if not cls.forge:
            raise unittest.SkipTest("no forge binary: set FORGE or build it (cargo build -p forge-cli)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="debian-mirror-test.")
        root = Path(cls.tmp.name)
        cls.root = root
        archive = root / "archive"
        pool = archive / "pool" / "main"

        # Source files, as upstream and Debian have them.
        install = {"build.sh": "mkdir -p \"$out/share\" && cp README \"$out/share/\"\n", "README": "alpha\n"}
        files = {
            "alpha": tarball("alpha-1.0", install),                      # pristine
            "beta-up": tarball("beta-2.0", {"README": "beta\n"}),         # upstream's file (not served)
            "beta-dfsg": tarball("beta-2.0", {"README": "beta, repacked\n"}),
            "gamma-3.0": tarball("gamma-3.0", {"README": "gamma 3.0\n"}),
            "gamma-3.1": tarball("gamma-3.1", {"README": "gamma 3.1\n"}),  # not served
            "gamma-3.2": tarball("gamma-3.2", {"README": "gamma 3.2\n"}),  # listed, 404
            "delta": tarball("delta-1.5", {"README": "delta\n"}),         # listed, 404
            "eps": tarball("libepsilon-0.9", {"README": "epsilon repack\n"}),
            "wrapped": tarball("wrapped-13-13.4.0", {"inner.txt": "a tarball inside\n"}),
        }
        cls.sha = {k: sha(v) for k, v in files.items()}
        served = {
            "a/alpha/alpha_1.0.orig.tar.gz": files["alpha"],
            "b/beta/beta_2.0+dfsg.orig.tar.gz": files["beta-dfsg"],
            "g/gamma/gamma_3.0.orig.tar.gz": files["gamma-3.0"],
            "libe/libepsilon/libepsilon_0.9+dfsg1.orig.tar.gz": files["eps"],
            "w/wrapped-13/wrapped-13_13.4.0.orig.tar.gz": files["wrapped"],
        }
        for rel, data in served.items():
            p = pool / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)

        def para(pkg, version, directory, entries):
            rows = "".join(f" {h} {n} {f}\n" for f, h, n in entries)
            return f"Package: {pkg}\nVersion: {version}\nDirectory: {directory}\nChecksums-Sha256:\n{rows}\n"

        def e(name, key):
            return (name, cls.sha[key], len(files[key]))

        sources = "".join([
            para("alpha", "1.0-2", "pool/main/a/alpha", [e("alpha_1.0.orig.tar.gz", "alpha"),
                                                          ("alpha_1.0-2.debian.tar.xz", "0" * 64, 10)]),
            para("beta", "2.0+dfsg-1", "pool/main/b/beta", [e("beta_2.0+dfsg.orig.tar.gz", "beta-dfsg")]),
            para("gamma", "3.0-1", "pool/main/g/gamma", [e("gamma_3.0.orig.tar.gz", "gamma-3.0")]),
            para("gamma", "1:3.2-1", "pool/main/g/gamma", [e("gamma_3.2.orig.tar.gz", "gamma-3.2")]),
            para("delta", "1.5-1", "pool/main/d/delta", [e("delta_1.5.orig.tar.gz", "delta")]),
            para("libepsilon", "0.9+dfsg1-1", "pool/main/libe/libepsilon",
                 [e("libepsilon_0.9+dfsg1.orig.tar.gz", "eps")]),
            para("wrapped-13", "13.3.0-1", "pool/main/w/wrapped-13",
                 [("wrapped-13_13.3.0.orig.tar.gz", "1" * 64, 10)]),
        ])  # fmt: skip
        (root / "Sources").write_text(sources)
        (root / "names.tsv").write_text(
            "# fixture name map\n"
            "name  epsilon  libepsilon\n"
            "name  wrapped  wrapped-{version.major}  wrapper\n"
            "name  ghost    -\n"
            f"file  wrapped-13  13.4.0  pool/main/w/wrapped-13/wrapped-13_13.4.0.orig.tar.gz  {cls.sha['wrapped']}\n"
        )

        # A recipe tree: nothing is compiled, so no toolchain is involved.
        tree = root / "tree"
        (tree / "recipes").mkdir(parents=True)
        (tree / "toolchains").mkdir()
        (tree / "toolchains" / "arch.kdl").write_text(
            'arch "x86-64-v3" {\n    flags compiler="gcc" versions="11.1:" "-march=x86-64-v3"\n}\n'
        )
        (tree / "toolchains" / "toolchains.kdl").write_text(
            'toolchain "host-gcc" {\n    compiler "gcc" host=#true\n    runtime "gcc-runtime"\n}\n'
        )
        (tree / "toolchains" / "gcc.kdl").write_text(
            'package "gcc" {\n    host "gcc" version-arg="-dumpfullversion"\n    languages "c"\n}\n'
        )
        (tree / "toolchains" / "gcc-runtime.kdl").write_text(
            'package "gcc-runtime" {\n    runtime-for "gcc"\n    build "custom" {\n'
            '        phase "install" { sh "mkdir -p \\"$out/lib\\"" }\n    }\n}\n'
        )

        def recipe(name, version_line, build='build "custom" {\n        phase "install" { sh "true" }\n    }'):
            (tree / "recipes" / f"{name}.kdl").write_text(
                f'package "{name}" {{\n    url "https://example.org/{name}-{{version}}.tar.gz"\n'
                f"    {version_line}\n    languages\n    {build}\n}}\n"
            )

        recipe("alpha", f'version "1.0" sha256="{cls.sha["alpha"]}"',
               'build "custom" {\n        phase "install" { run "sh" "build.sh" }\n    }')  # fmt: skip
        recipe("beta", f'version "2.0" sha256="{cls.sha["beta-up"]}"')
        recipe("gamma", f'version "3.1" sha256="{cls.sha["gamma-3.1"]}"')
        recipe("delta", f'version "1.5" sha256="{cls.sha["delta"]}"')
        recipe("epsilon", f'version "0.9-dfsg1" sha256="{cls.sha["eps"]}" file="libepsilon_0.9+dfsg1.orig.tar.gz"')
        recipe("wrapped", f'version "13.4.0" sha256="{"2" * 64}"')
        recipe("ghost", f'version "1.0" sha256="{"3" * 64}"')
        recipe("nodeb", f'version "1.0" sha256="{"4" * 64}"')
        (tree / "recipes" / "targets.kdl").write_text(
            'defaults {\n    arch "x86-64-v3"\n    toolchain "host-gcc"\n}\n'
            'target "all" {\n    spec "alpha"\n'
            + "".join(f'    extra-root "{p}"\n' for p in ["beta", "gamma", "delta", "epsilon", "wrapped", "ghost", "nodeb"])
            + "}\n"
        )
        cls.tree = tree

        handler = lambda *a, **kw: Quiet(*a, directory=str(archive), **kw)  # noqa: E731
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.httpd.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        cls.tmp.cleanup()

    def run_script(self, *args, env=None, mirror="mirror"):
        cmd = [sys.executable, str(SCRIPT), "--forge", self.forge, "--recipes", str(self.tree),
               "--names", str(self.root / "names.tsv"), "--index", f"fixture={self.root / 'Sources'}",
               "--archive", self.url, "--mirror", str(self.root / mirror), *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)

    def rows(self, **kw):
        r = self.run_script("--json", "all", **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        return {row["node"]: row for row in json.loads(r.stdout)}

    def check_verdicts(self, rows, mirror):
        verdicts = {n: (r["verdict"], r["served"], r["filed"]) for n, r in rows.items()}
        self.assertEqual(
            verdicts,
            {
                "alpha": ("pristine", "1.0", True),
                "beta": ("repack", "2.0", False),
                "gamma": ("other-version", "3.0", False),
                "delta": ("unavailable", "-", False),
                "epsilon": ("repack", "0.9", True),
                "wrapped": ("wrapper", "13.4.0", False),
                "ghost": ("unavailable", "-", False),
                "nodeb": ("unavailable", "-", False),
            },
        )
        self.assertEqual(rows["alpha"]["file"], "alpha_1.0.orig.tar.gz")
        self.assertEqual(rows["alpha"]["sha256"], self.sha["alpha"])
        self.assertEqual(rows["wrapped"]["suites"], "unlisted")
        self.assertIn("gamma_3.2.orig.tar.gz listed but not served", rows["gamma"]["note"])
        self.assertIn("delta_1.5.orig.tar.gz", rows["delta"]["note"])
        # Every verified download is filed by its sha256, and nothing that failed is.
        filed = sorted(p.name for p in (self.root / mirror / "sha256").iterdir())
        expect = ["alpha", "beta-dfsg", "gamma-3.0", "eps", "wrapped"]
        self.assertEqual(filed, sorted(self.sha[k] for k in expect))
        for k in expect:
            self.assertEqual(sha((self.root / mirror / "sha256" / self.sha[k]).read_bytes()), self.sha[k])

    def test_verdicts_through_apt(self):
        if not os.access("/usr/lib/apt/apt-helper", os.X_OK):
            self.skipTest("no apt-helper on this machine")
        self.check_verdicts(self.rows(mirror="m-apt"), "m-apt")

    def test_verdicts_through_urllib(self):
        self.check_verdicts(self.rows(env={"DEBIAN_MIRROR_URLLIB": "1"}, mirror="m-urllib"), "m-urllib")

    def test_table(self):
        r = self.run_script("all", mirror="m-table")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("NODE"), r.stdout)
        self.assertIn("pristine*", next(l for l in lines if l.startswith("alpha ")))
        self.assertIn("8 sources: 1 pristine, 2 repack, 1 wrapper, 1 other-version, 3 unavailable", r.stdout)

    def test_forge_realizes_from_the_mirror(self):
        self.rows(mirror="m-realize")
        store = self.root / "store"
        r = subprocess.run(
            [self.forge, "--recipes", str(self.tree), "--store", str(store), "--source-cache",
             str(self.root / "cache"), "--mirror", f"file://{self.root / 'm-realize'}", "realize", "alpha"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        out = Path(r.stdout.strip().splitlines()[-1])
        self.assertEqual((out / "share" / "README").read_text(), "alpha\n")

    def test_bad_name_map_names_the_line(self):
        bad = self.root / "bad.tsv"
        bad.write_text("name  alpha  alpha\nname  beta\n")
        r = subprocess.run([sys.executable, str(SCRIPT), "--forge", self.forge, "--names", str(bad), "alpha"],
                           capture_output=True, text=True)  # fmt: skip
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{bad}:2: expected `name FORGE-PACKAGE DEBIAN-SOURCE [wrapper]`", r.stderr)

    def test_index_needs_archive(self):
        r = subprocess.run([sys.executable, str(SCRIPT), "--forge", self.forge, "--index", "x", "alpha"],
                           capture_output=True, text=True)  # fmt: skip
        self.assertEqual(r.returncode, 2)
        self.assertIn("--index needs --archive URL", r.stderr)


if __name__ == "__main__":
    unittest.main()
