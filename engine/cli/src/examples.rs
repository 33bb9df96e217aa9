//! The example recipe set built into the binary (`--example`): a tiny C library and a program
//! that links it, so that `forge realize --example` works anywhere without a recipe tree.

use std::path::PathBuf;

macro_rules! files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../examples/hello/", $path)))),*]
    };
}

/// `(path relative to the example root, contents)`.
const FILES: &[(&str, &str)] = files![
    "recipes/hello.kdl",
    "recipes/libgreet.kdl",
    "recipes/targets.kdl",
    "toolchains/arch.kdl",
    "toolchains/gcc.kdl",
    "toolchains/gcc-runtime.kdl",
    "toolchains/toolchains.kdl",
    "src/hello/Makefile",
    "src/hello/hello.c",
    "src/libgreet/Makefile",
    "src/libgreet/greet.c",
    "src/libgreet/greet.h",
];

/// The target `--example` realizes when none is named.
pub const DEFAULT_TARGET: &str = "hello";

/// Writes the example tree under the cache directory (once per content) and returns its root.
pub fn materialize() -> std::io::Result<PathBuf> {
    let mut h = blake3::Hasher::new();
    for (p, c) in FILES {
        h.update(p.as_bytes());
        h.update(&[0]);
        h.update(c.as_bytes());
        h.update(&[0]);
    }
    let id = h.finalize().to_hex();
    let root = crate::context::cache_dir()
        .join("examples")
        .join(&id.as_str()[..16]);
    if root.join(".complete").exists() {
        return Ok(root);
    }
    let tmp = root.with_extension(format!("tmp{}", std::process::id()));
    for (p, c) in FILES {
        let dest = tmp.join(p);
        fs_err::create_dir_all(dest.parent().expect("files have parents"))?;
        fs_err::write(&dest, c)?;
    }
    fs_err::write(tmp.join(".complete"), "")?;
    match fs_err::rename(&tmp, &root) {
        Ok(()) => Ok(root),
        // Another forge process got there first.
        Err(_) if root.join(".complete").exists() => {
            let _ = fs_err::remove_dir_all(&tmp);
            Ok(root)
        }
        Err(e) => Err(e),
    }
}
