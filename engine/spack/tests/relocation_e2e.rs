//! End to end: a real C program built with gcc into a long padded store, exported, extracted
//! into a much shorter consumer prefix, relocated as Spack v1.0 does, and run there with the
//! store gone.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use forge_spack::relocate::{relocate_prefix, relocation_map};
use forge_spack::{DepTypes, ExportGraph, ExportOptions, Node, export, host, package_hash_of};

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn gcc(args: &[&str]) {
    sh(Command::new("gcc").args(args));
}

const GREET_C: &str = r#"
const char *greet_prefix(void) { return GREET_PREFIX; }
"#;

const HELLO_C: &str = r#"
#include <stdio.h>
const char *greet_prefix(void);
int main(void) {
    char line[512];
    FILE *f;
    printf("prefix=%s\n", HELLO_PREFIX);
    printf("share=%s\n", HELLO_PREFIX "/share/hello");
    printf("greet=%s\n", greet_prefix());
    f = fopen(HELLO_PREFIX "/share/hello/prefix.txt", "r");
    if (!f) { printf("file: missing\n"); return 1; }
    if (fgets(line, sizeof line, f)) printf("file: %s", line);
    fclose(f);
    return 0;
}
"#;

#[test]
fn a_gcc_built_program_runs_from_a_shorter_consumer_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let store = padded_store(base, 200);
    let greet = store.join("0r2s3t4v5w6x7y8z9a0b1c2d3f4g5h6i-libgreet-1.0");
    let hello = store.join("1r2s3t4v5w6x7y8z9a0b1c2d3f4g5h6i-hello-1.0");
    let runtime = store.join("2r2s3t4v5w6x7y8z9a0b1c2d3f4g5h6i-gcc-runtime-12.2.0");
    let src = base.join("src");
    let (g, h, r) = (
        greet.display().to_string(),
        hello.display().to_string(),
        runtime.display().to_string(),
    );

    // libgreet: a shared library that embeds its own prefix.
    write(&src.join("greet.c"), GREET_C, false);
    fs_err::create_dir_all(greet.join("lib")).unwrap();
    gcc(&[
        "-shared",
        "-fPIC",
        "-O2",
        &format!("-DGREET_PREFIX=\"{g}\""),
        "-o",
        &format!("{g}/lib/libgreet.so"),
        src.join("greet.c").to_str().unwrap(),
    ]);
    // gcc-runtime: the compiler's libgcc_s, as Spack ships it.
    let libgcc = sh(Command::new("gcc").arg("-print-file-name=libgcc_s.so.1"));
    fs_err::create_dir_all(runtime.join("lib")).unwrap();
    fs_err::copy(libgcc.trim(), runtime.join("lib/libgcc_s.so.1")).unwrap();
    // hello: RUNPATH to its own lib, libgreet and the runtime; compiled-in prefix strings (one a
    // whole C string, one followed by more path); a text file; an absolute symlink; a script.
    write(&src.join("hello.c"), HELLO_C, false);
    fs_err::create_dir_all(hello.join("bin")).unwrap();
    fs_err::create_dir_all(hello.join("lib")).unwrap();
    gcc(&[
        "-O2",
        &format!("-DHELLO_PREFIX=\"{h}\""),
        "-o",
        &format!("{h}/bin/hello"),
        src.join("hello.c").to_str().unwrap(),
        &format!("-L{g}/lib"),
        "-lgreet",
        &format!("-Wl,-rpath,{h}/lib:{g}/lib:{r}/lib"),
    ]);
    write(
        &hello.join("share/hello/prefix.txt"),
        format!("prefix={h}\n"),
        false,
    );
    write(
        &hello.join("bin/hello.sh"),
        format!("#!/bin/sh\nexec {h}/bin/hello \"$@\"\n"),
        true,
    );
    fs_err::os::unix::fs::symlink(format!("{h}/bin/hello"), hello.join("bin/hello-abs")).unwrap();
    let before = sh(&mut Command::new(hello.join("bin/hello")));
    assert!(before.contains(&format!("greet={g}")), "{before}");

    // The Spack view of it: host gcc and glibc as externals, gcc-runtime exported.
    let glibc_version = host::glibc_version().unwrap();
    let compilers: BTreeMap<String, String> =
        [("c".to_string(), "/usr/bin/gcc".to_string())].into();
    let mut graph = ExportGraph::new(&store);
    let glibc = graph.add(host::glibc_node(&glibc_version, arch()));
    let gcc_node = graph.add(host::gcc_external_node("12.2.0", arch(), &compilers));
    let rt = graph.add(
        Node::built("gcc-runtime", "12.2.0", arch(), &runtime)
            .namespace("builtin")
            .package_hash(package_hash_of(b"gcc-runtime")),
    );
    let lg = graph
        .add(Node::built("libgreet", "1.0", arch(), &greet).package_hash(package_hash_of(b"g")));
    let hl =
        graph.add(Node::built("hello", "1.0", arch(), &hello).package_hash(package_hash_of(b"h")));
    graph.depend(rt, gcc_node, DepTypes::BUILD, &[]);
    graph.depend(rt, glibc, DepTypes::LINK, &["libc"]);
    for n in [lg, hl] {
        graph.depend(n, gcc_node, DepTypes::BUILD, &["c"]);
        graph.depend(n, rt, DepTypes::LINK, &[]);
        graph.depend(n, glibc, DepTypes::LINK, &["libc"]);
    }
    graph.depend(hl, lg, DepTypes::BUILD_LINK, &[]);

    let cache = base.join("cache");
    let o = ExportOptions {
        max_consumer_root: 96,
        ..ExportOptions::default()
    };
    let report = export(&graph, &[hl], &cache, None, &o).unwrap();
    let names: Vec<_> = report.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gcc-runtime", "libgreet", "hello"]);
    let hello_spec = &report.specs[2];
    assert_eq!(
        hello_spec.relocation.unwrap(),
        forge_spack::RelocationCounts {
            binaries: 1,
            textfiles: 2,
            links: 1
        }
    );

    // The store disappears; a consumer installs into <root>/linux-x86_64_v3/<name>-<ver>-<hash>.
    fs_err::rename(base.join("store"), base.join("gone")).unwrap();
    let root = base.join("c");
    let consumer = |name: &str, hash: &str| -> PathBuf {
        root.join("linux-x86_64_v3").join(format!("{name}-{hash}"))
    };
    let new_prefixes: Vec<(String, String)> = report
        .specs
        .iter()
        .map(|s| {
            (
                s.hash.clone(),
                consumer(&format!("{}-{}", s.name, s.version), &s.hash)
                    .display()
                    .to_string(),
            )
        })
        .collect();
    for s in &report.specs {
        let dest = consumer(&format!("{}-{}", s.name, s.version), &s.hash);
        let tarball = fs_err::read(cache.join(s.tarball.relative_path().unwrap())).unwrap();
        let info = extract(&tarball, &dest);
        let root_s = root.display().to_string();
        let map = relocation_map(
            &info,
            &new_prefixes,
            &root_s,
            &format!("{root_s}/bin/sbang"),
        );
        relocate_prefix(&dest, &info, &map).unwrap();
    }

    let new_h = consumer("hello-1.0", &hello_spec.hash);
    let new_g = consumer("libgreet-1.0", &report.specs[1].hash);
    let new_r = consumer("gcc-runtime-12.2.0", &report.specs[0].hash);
    let (nh, ng, nr) = (
        new_h.display().to_string(),
        new_g.display().to_string(),
        new_r.display().to_string(),
    );
    let out = sh(&mut Command::new(new_h.join("bin/hello")));
    let lines: Vec<&str> = out.lines().collect();
    // A prefix that ends a C string became the new prefix plus NUL (the C-string tail rule)...
    assert_eq!(lines[0], format!("prefix={nh}"));
    // ...one followed by more path was left-padded with `/`, as Spack does.
    let share = lines[1].strip_prefix("share=").unwrap();
    let path = share.trim_start_matches('/');
    assert_eq!(format!("/{path}"), format!("{nh}/share/hello"));
    assert!(share.len() > path.len() + 100, "{share}");
    assert_eq!(lines[2], format!("greet={ng}"));
    assert_eq!(lines[3], format!("file: prefix={nh}"));
    let out = sh(&mut Command::new(new_h.join("bin/hello.sh")));
    assert!(out.starts_with(&format!("prefix={nh}\n")), "{out}");
    assert_eq!(
        fs_err::read_link(new_h.join("bin/hello-abs")).unwrap(),
        PathBuf::from(format!("{nh}/bin/hello"))
    );
    let dynamic =
        sh(Command::new("readelf").args(["-d", new_h.join("bin/hello").to_str().unwrap()]));
    assert!(
        dynamic.contains(&format!("[{nh}/lib:{ng}/lib:{nr}/lib]")),
        "{dynamic}"
    );
    // Nothing of the build store is left in the relocated binary.
    let bin = fs_err::read(new_h.join("bin/hello")).unwrap();
    let old_root = store.display().to_string();
    assert!(memmem(&bin, old_root.as_bytes()).is_none());
    let _ = Path::new(&h);
}

fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
