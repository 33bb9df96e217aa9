//! Builds a tiny C library and program with the host gcc into a padded, forge-like store and
//! exports them as a signed buildcache — what to point a real Spack at.
//!
//! ```sh
//! cargo run -p forge-spack --example demo_export -- DIR
//! ```
//!
//! Writes `DIR/store/…` (the build prefixes), `DIR/keys/` (a fresh signing key) and `DIR/cache/`
//! (the buildcache with its stub recipe repository), then prints what to run.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use forge_spack::{
    Arch, DepTypes, ExportGraph, ExportOptions, Keyring, Node, VariantValue, VerifyOptions, export,
    host, package_hash_of, verify_cache,
};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: demo_export DIR"));
    let dir = std::path::absolute(dir).unwrap();
    let mut paths = dir.join("store").display().to_string();
    paths.push_str("/__forge_padding");
    while paths.len() < 180 {
        paths.push('_');
    }
    let paths = PathBuf::from(paths);
    let greet = paths.join("0dem0greet0000000000000000000000-forge-greet-1.0");
    let hello = paths.join("1dem0hell00000000000000000000000-forge-hello-1.0");
    let runtime = paths.join("2dem0runtime00000000000000000000-gcc-runtime-12.2.0");
    let src = dir.join("src");
    for d in [
        &src,
        &greet.join("lib"),
        &hello.join("bin"),
        &hello.join("share/forge-hello"),
        &runtime.join("lib"),
    ] {
        fs_err::create_dir_all(d).unwrap();
    }
    let (g, h, r) = (greet.display(), hello.display(), runtime.display());

    fs_err::write(
        src.join("greet.c"),
        "const char *greet_prefix(void) { return GREET_PREFIX; }\n",
    )
    .unwrap();
    run(Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2"])
        .arg(format!("-DGREET_PREFIX=\"{g}\""))
        .arg("-o")
        .arg(greet.join("lib/libgreet.so"))
        .arg(src.join("greet.c")));
    fs_err::write(
        src.join("hello.c"),
        "#include <stdio.h>\nconst char *greet_prefix(void);\nint main(void) {\n  printf(\"forge-hello from %s\\n\", HELLO_PREFIX);\n  printf(\"libgreet in %s\\n\", greet_prefix());\n  return 0;\n}\n",
    )
    .unwrap();
    run(Command::new("gcc")
        .arg("-O2")
        .arg(format!("-DHELLO_PREFIX=\"{h}\""))
        .arg("-o")
        .arg(hello.join("bin/forge-hello"))
        .arg(src.join("hello.c"))
        .arg(format!("-L{g}/lib"))
        .arg("-lgreet")
        .arg(format!("-Wl,-rpath,{g}/lib:{r}/lib")));
    fs_err::write(
        hello.join("share/forge-hello/prefix.txt"),
        format!("prefix={h}\n"),
    )
    .unwrap();
    fs_err::os::unix::fs::symlink(hello.join("bin/forge-hello"), hello.join("bin/fh-abs")).unwrap();
    let libgcc = run(Command::new("gcc").arg("-print-file-name=libgcc_s.so.1"));
    fs_err::copy(libgcc.trim(), runtime.join("lib/libgcc_s.so.1")).unwrap();

    let gcc_version = run(Command::new("gcc").arg("-dumpfullversion"))
        .trim()
        .to_string();
    let arch = Arch::linux(host::platform_os().unwrap(), "x86_64_v3");
    let compilers: BTreeMap<String, String> =
        [("c".to_string(), "/usr/bin/gcc".to_string())].into();
    let mut graph = ExportGraph::new(&paths);
    graph.set_sbang(dir.join("store/bin/sbang"));
    graph.set_store_dir(dir.join("store"));
    let glibc = graph.add(host::glibc_node(
        &host::glibc_version().unwrap(),
        arch.clone(),
    ));
    let gcc = graph.add(host::gcc_external_node(
        &gcc_version,
        arch.clone(),
        &compilers,
    ));
    let rt = graph.add(
        Node::built("gcc-runtime", &gcc_version, arch.clone(), &runtime)
            .namespace("builtin")
            .package_hash(package_hash_of(b"forge demo gcc-runtime")),
    );
    graph.depend(rt, gcc, DepTypes::BUILD, &[]);
    graph.depend(rt, glibc, DepTypes::LINK, &["libc"]);
    let lg = graph.add(Node::built("forge-greet", "1.0", arch.clone(), &greet));
    // Variants of the three kinds, so that the stub recipe declares them.
    let hl = graph.add(
        Node::built("forge-hello", "1.0", arch, &hello)
            .variant("shared", VariantValue::Bool(true))
            .variant("sysconfdir", VariantValue::Single("/etc/forge".into()))
            .variant(
                "languages",
                VariantValue::Multi(vec!["c".into(), "fortran".into()]),
            ),
    );
    for n in [lg, hl] {
        graph.depend(n, gcc, DepTypes::BUILD, &["c"]);
        graph.depend(n, rt, DepTypes::LINK, &[]);
        graph.depend(n, glibc, DepTypes::LINK, &["libc"]);
    }
    graph.depend(hl, lg, DepTypes::BUILD_LINK, &[]);

    let ring = Keyring::open(dir.join("keys")).unwrap();
    if ring.signer(None).is_err() {
        ring.generate("forge demo <forge-demo@example.invalid>")
            .unwrap();
    }
    let signer = ring.signer(None).unwrap();
    let cache = dir.join("cache");
    let report = export(
        &graph,
        &[hl],
        &cache,
        Some(&signer),
        &ExportOptions::default(),
    )
    .unwrap();
    for s in &report.specs {
        println!(
            "exported {}@{} /{} ({:?})",
            s.name, s.version, s.hash, s.relocation
        );
    }
    println!("cache: {}", cache.display());
    println!("signed by: {}", signer.fingerprint());
    println!(
        "recipes: {}",
        cache.join("spack-repo/spack_repo/forge").display()
    );
    let v = verify_cache(&cache, &ring.trusted().unwrap(), &VerifyOptions::default()).unwrap();
    println!(
        "verify: {} manifests, {} blobs, {} problems",
        v.manifests,
        v.blobs,
        v.problems.len()
    );
}
