//! Helpers for the end-to-end tests: run the real `forge` binary on recipe trees in temp dirs.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `forge` binary under test: the one cargo built with the tests, or `FORGE_TEST_BIN` (the
/// benchmarks point it at a release build).
pub fn forge_bin() -> PathBuf {
    std::env::var_os("FORGE_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_forge")), PathBuf::from)
}

/// A scratch world: a store, a cache and a recipe tree, all under one temp dir.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("forge-e2e")
                .tempdir()
                .expect("temp dir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }
    /// The directory holding the store paths: the store, or its padding directory (stores are
    /// padded by default).
    pub fn paths_dir(&self) -> PathBuf {
        let store = self.store();
        fs_err::read_dir(&store)
            .ok()
            .and_then(|rd| {
                rd.flatten().map(|e| e.path()).find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("__forge_padding"))
                })
            })
            .unwrap_or(store)
    }
    pub fn recipes(&self) -> PathBuf {
        self.path().join("tree")
    }
    /// A `forge` command with this world's store, caches and recipes.
    pub fn forge(&self) -> Command {
        let mut c = Command::new(forge_bin());
        c.env_remove("FORGE_RECIPES")
            .env_remove("FORGE_MIRRORS")
            .env_remove("FORGE_PADDED_LENGTH")
            .env("FORGE_STORE", self.store())
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("FORGE_SOURCE_CACHE", self.path().join("cache/sources"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .current_dir(self.path());
        c
    }
    /// Runs `forge ARGS` with the world's recipe tree and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.recipes(), args)
    }
    /// Runs `forge ARGS` with another recipe tree.
    pub fn run_in(&self, recipes: &Path, args: &[&str]) -> Output {
        let mut c = self.forge();
        c.arg("--recipes").arg(recipes).args(args);
        c.output().expect("forge runs")
    }
}

/// Text of an output stream.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and shows both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "forge failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// One synthetic package: a name, its dependencies, and the shell script of its install phase
/// (which must create `$out`).
pub struct Pkg<'a> {
    pub name: &'a str,
    pub deps: &'a [&'a str],
    pub script: String,
}

/// Writes a recipe tree of uncompiled packages with custom builds (no compiler needed), plus the
/// host toolchain files and targets `(name, spec)`.
pub fn write_tree(root: &Path, pkgs: &[Pkg<'_>], targets: &[(&str, &str)]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tc = repo.join("examples/hello/toolchains");
    fs_err::create_dir_all(root.join("toolchains")).unwrap();
    for e in fs_err::read_dir(&tc).unwrap() {
        let e = e.unwrap();
        fs_err::copy(e.path(), root.join("toolchains").join(e.file_name())).unwrap();
    }
    fs_err::create_dir_all(root.join("recipes")).unwrap();
    for p in pkgs {
        let src = root.join("src").join(p.name);
        fs_err::create_dir_all(&src).unwrap();
        fs_err::write(src.join("README"), format!("source of {}\n", p.name)).unwrap();
        let mut kdl = format!(
            "package \"{}\" {{\n    version \"1.0\" path=\"../src/{}\"\n    languages\n",
            p.name, p.name
        );
        if !p.deps.is_empty() {
            let deps: Vec<String> = p.deps.iter().map(|d| format!("\"{d}\"")).collect();
            kdl.push_str(&format!(
                "    depends {} type=\"build,link\"\n",
                deps.join(" ")
            ));
        }
        kdl.push_str(&format!(
            "    build \"custom\" {{\n        phase \"install\" {{\n            sh #\"\"\"\n{}\n\"\"\"#\n        }}\n    }}\n}}\n",
            p.script
        ));
        fs_err::write(root.join("recipes").join(format!("{}.kdl", p.name)), kdl).unwrap();
    }
    let mut t = String::from("defaults {\n    arch \"x86-64-v3\"\n    toolchain \"host-gcc\"\n}\n");
    for (name, spec) in targets {
        t.push_str(&format!("target \"{name}\" {{\n    spec \"{spec}\"\n}}\n"));
    }
    fs_err::write(root.join("recipes/targets.kdl"), t).unwrap();
}

/// Parses a `--json` event stream.
pub fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `cond` every 20 ms for up to a minute.
pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any process on the machine runs with `needle` in its command line.
pub fn process_running(needle: &str) -> bool {
    fs_err::read_dir("/proc").unwrap().flatten().any(|e| {
        fs_err::read(e.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}

/// The scratch directories under the store's `.forge/build/`.
pub fn scratch_dirs(w: &World) -> Vec<String> {
    fs_err::read_dir(w.store().join(".forge/build"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the example's `hello` in the store path `out` runs with an empty environment (its
/// RUNPATH finds libgreet) and greets.
pub fn assert_hello_runs(out: &Path) {
    let run = Command::new(out.join("bin/hello"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        text(&run.stdout),
        "hello, world\n",
        "{}: {}",
        out.display(),
        text(&run.stderr)
    );
}

/// The `(RUNPATH)` line `readelf -d` prints for an ELF file; panics, showing the dynamic
/// section, when there is none.
pub fn runpath(elf: &Path) -> String {
    let dynamic = text(
        &Command::new("readelf")
            .arg("-d")
            .arg(elf)
            .output()
            .unwrap()
            .stdout,
    );
    dynamic
        .lines()
        .find(|l| l.contains("(RUNPATH)"))
        .unwrap_or_else(|| panic!("no DT_RUNPATH in {}:\n{dynamic}", elf.display()))
        .to_string()
}

/// A TCP port on 127.0.0.1 that nothing listens on (as of now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to `secs` seconds until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, secs: u64, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < secs,
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A package `payload` 1.0 in `w`'s recipe tree whose source is `dist/payload-1.0.tar`, a tar
/// of `entries` (name, bytes) fetched by a `file://` URL; `install` is its install command.
/// Returns the tarball's path and sha256.
pub fn payload_source(
    w: &World,
    dist: &Path,
    entries: &[(&str, &[u8])],
    install: &str,
) -> (PathBuf, String) {
    fs_err::create_dir_all(dist).unwrap();
    let tar_path = dist.join("payload-1.0.tar");
    {
        let f = fs_err::File::create(&tar_path).unwrap();
        let mut b = tar::Builder::new(f.into_parts().0);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.finish().unwrap();
    }
    let sha = sha256_hex(&fs_err::read(&tar_path).unwrap());
    let root = w.recipes();
    write_tree(&root, &[], &[("payload", "payload")]);
    fs_err::write(
        root.join("recipes/payload.kdl"),
        format!(
            "package \"payload\" {{\n    url \"file://{}/payload-{{version}}.tar\"\n    version \"1.0\" sha256=\"{sha}\"\n    languages\n    build \"custom\" {{\n        phase \"install\" {{ sh \"{install}\" }}\n    }}\n}}\n",
            dist.display()
        ),
    )
    .unwrap();
    (tar_path, sha)
}
