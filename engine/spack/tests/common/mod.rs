//! Fixtures shared by the integration tests: padded fake stores, small prefixes, extraction.

#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::{Path, PathBuf};

use forge_spack::{Arch, BuildInfo, DepTypes, ExportGraph, Node, NodeId, host, package_hash_of};

/// `<base>/store/__forge_padding___…`, exactly `len` bytes long.
pub fn padded_store(base: &Path, len: usize) -> PathBuf {
    let mut s = base.join("store").display().to_string();
    if len <= s.len() + 20 {
        return PathBuf::from(s);
    }
    s.push_str("/__forge_padding");
    while s.len() < len {
        s.push('_');
    }
    s.truncate(len);
    PathBuf::from(s)
}

pub fn arch() -> Arch {
    Arch::linux("debian12", "x86_64_v3")
}

pub fn write(path: &Path, data: impl AsRef<[u8]>, exec: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, data).unwrap();
    let mode = if exec { 0o755 } else { 0o644 };
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fake ELF file that embeds `s` as a C string.
pub fn fake_elf(s: &str) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\x00".to_vec();
    v.extend_from_slice(&[0u8; 56]);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v.extend_from_slice(&[0xff, 0xfe, 0, 1, 2, 3]);
    v
}

/// The graph of a tiny closure in `store`: `app` (link) → `libdep` (link) → external glibc, and
/// `app` (build) → `tool`. Every built prefix embeds its own path; `app` also embeds `libdep`'s.
pub struct Fixture {
    pub graph: ExportGraph,
    pub app: NodeId,
    pub libdep: NodeId,
    pub tool: NodeId,
    pub glibc: NodeId,
    pub store: PathBuf,
}

pub fn prefix_of(store: &Path, hash: &str, name: &str) -> PathBuf {
    store.join(format!("{hash}-{name}-1.0"))
}

pub fn fixture(base: &Path, store_len: usize) -> Fixture {
    let store = padded_store(base, store_len);
    let lib = prefix_of(&store, "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r", "libdep");
    let app = prefix_of(&store, "1a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r", "app");
    let tool = prefix_of(&store, "2a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r", "tool");
    let logs = base.join("logs");

    write(
        &lib.join("lib/libdep.so.1"),
        fake_elf(&format!("{}/share", lib.display())),
        true,
    );
    fs_err::os::unix::fs::symlink("libdep.so.1", lib.join("lib/libdep.so")).unwrap();
    write(
        &lib.join("lib/pkgconfig/libdep.pc"),
        format!("prefix={}\nlibdir=${{prefix}}/lib\n", lib.display()),
        false,
    );
    write(&lib.join("share/doc/README"), "no paths in here\n", false);

    write(
        &app.join("bin/app"),
        fake_elf(&format!("{}/lib:{}/lib", app.display(), lib.display())),
        true,
    );
    write(
        &app.join("bin/app-wrapper"),
        format!("#!/bin/sh\nexec {}/bin/app \"$@\"\n", app.display()),
        true,
    );
    fs_err::os::unix::fs::symlink(app.join("bin/app"), app.join("bin/app-abs")).unwrap();
    fs_err::os::unix::fs::symlink("app", app.join("bin/app-rel")).unwrap();
    fs_err::hard_link(app.join("bin/app"), app.join("bin/app-hard")).unwrap();
    write(&app.join("share/app/data.bin"), [0u8, 1, 2, 3, 255], false);
    fs_err::create_dir_all(app.join("share/empty")).unwrap();

    write(&tool.join("bin/tool"), "#!/bin/sh\necho tool\n", true);

    write(&logs.join("app.log"), "building app\nok\n", false);
    write(&logs.join("libdep.log"), "building libdep\n", false);

    let mut graph = ExportGraph::new(&store);
    let glibc = graph.add(host::glibc_node("2.36", arch()));
    // Package hashes fixed, so that DAG hashes do not depend on the temporary directory.
    let libdep = graph.add(
        Node::built("libdep", "1.0", arch(), &lib)
            .build_log(logs.join("libdep.log"))
            .package_hash(package_hash_of(b"libdep")),
    );
    let toolid =
        graph.add(Node::built("tool", "1.0", arch(), &tool).package_hash(package_hash_of(b"tool")));
    let appid = graph.add(
        Node::built("app", "1.0", arch(), &app)
            .build_log(logs.join("app.log"))
            .package_hash(package_hash_of(b"app")),
    );
    graph.depend(libdep, glibc, DepTypes::LINK, &["libc"]);
    graph.depend(appid, glibc, DepTypes::LINK, &["libc"]);
    graph.depend(appid, libdep, DepTypes::BUILD_LINK, &[]);
    graph.depend(appid, toolid, DepTypes::BUILD, &[]);
    Fixture {
        graph,
        app: appid,
        libdep,
        tool: toolid,
        glibc,
        store,
    }
}

/// Every file below `dir` (but `.forge-tmp`), relative, sorted, with the sha256 of its bytes
/// (symlinks as `-> target`).
pub fn tree(dir: &Path) -> Vec<(String, String)> {
    tree_bytes(dir)
        .into_iter()
        .filter(|(n, _)| !n.starts_with(".forge-tmp"))
        .map(|(n, b)| {
            use sha2::Digest as _;
            let h = sha2::Sha256::digest(&b);
            (n, h.iter().map(|x| format!("{x:02x}")).collect())
        })
        .collect()
}

/// What a cache publishes: every file but unreferenced blobs and temporary files.
pub fn published(dir: &Path) -> Vec<(String, String)> {
    let all = tree(dir);
    let mut referenced = std::collections::BTreeSet::new();
    for (name, _) in &all {
        if name.ends_with(".manifest.json") {
            let text = fs_err::read_to_string(dir.join(name)).unwrap();
            for r in forge_spack::Manifest::parse(&text).unwrap().data {
                referenced.insert(r.relative_path().unwrap());
            }
        }
    }
    all.into_iter()
        .filter(|(n, _)| !n.starts_with("blobs/") || referenced.contains(n))
        .collect()
}

/// Every file below `dir`, relative, sorted, with its bytes (symlinks as `-> target`).
pub fn tree_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let md = fs_err::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
            } else if md.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", fs_err::read_link(&p).unwrap().display()).into_bytes(),
                ));
            } else {
                out.push((rel, fs_err::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Decompresses a gzip'd blob.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A tarball member: name, type, mode, link target, content.
pub type Member = (String, tar::EntryType, u32, Option<String>, Vec<u8>);

/// The members of a tarball blob.
pub fn members(tarball: &[u8]) -> Vec<Member> {
    let data = gunzip(tarball);
    let mut ar = tar::Archive::new(&data[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let kind = e.header().entry_type();
            let mode = e.header().mode().unwrap();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (name, kind, mode, link, content)
        })
        .collect()
}

/// Extracts a tarball the way Spack does: the grand-parent of the shortest member ending in
/// `.spack/binary_distribution` is the package prefix; it is stripped from every member and the
/// rest lands in `dest`. Returns the `binary_distribution`.
pub fn extract(tarball: &[u8], dest: &Path) -> BuildInfo {
    let all = members(tarball);
    let bd = all
        .iter()
        .map(|m| &m.0)
        .filter(|n| n.ends_with(".spack/binary_distribution"))
        .min_by_key(|n| n.len())
        .expect("binary_distribution");
    let prefix = bd
        .trim_end_matches(".spack/binary_distribution")
        .to_string();
    fs_err::create_dir_all(dest).unwrap();
    let mut info = None;
    for (name, kind, mode, link, content) in all {
        let Some(rel) = name.strip_prefix(&prefix) else {
            assert!(
                prefix.starts_with(&name),
                "member `{name}` outside the prefix"
            );
            continue;
        };
        let rel = rel.trim_end_matches('/');
        assert!(!rel.split('/').any(|c| c == ".."), "unsafe member {name}");
        let out = dest.join(rel);
        match kind {
            tar::EntryType::Directory => fs_err::create_dir_all(&out).unwrap(),
            tar::EntryType::Symlink => fs_err::os::unix::fs::symlink(link.unwrap(), &out).unwrap(),
            tar::EntryType::Link => {
                let target = link.unwrap();
                let target = target.strip_prefix(&prefix).unwrap();
                fs_err::hard_link(dest.join(target), &out).unwrap();
            }
            _ => {
                write(&out, &content, mode & 0o100 != 0);
                if rel == ".spack/binary_distribution" {
                    info =
                        Some(BuildInfo::from_yaml(std::str::from_utf8(&content).unwrap()).unwrap());
                }
            }
        }
    }
    info.unwrap()
}
