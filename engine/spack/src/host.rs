//! Facts about the build host that the exported specs record: the glibc version binaries were
//! linked against, Spack's name for the operating system, and the host compiler as an external.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value};

use crate::graph::Node;
use crate::spec::{Arch, VariantValue};

/// Why a host fact could not be found.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No tool reported the glibc version.
    #[error(
        "cannot find the glibc version (`getconf GNU_LIBC_VERSION` and `ldd --version` failed)"
    )]
    NoGlibc,
    /// `/etc/os-release` is missing or has no `ID`.
    #[error("cannot read the operating system from `{path}`")]
    NoOsRelease {
        /// The file.
        path: String,
    },
}

fn version_token(s: &str) -> Option<String> {
    s.split_whitespace()
        .rev()
        .find(|t| {
            t.split('.').count() >= 2
                && t.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// Parses the first line of `ldd --version` (`ldd (Debian GLIBC 2.36-9+deb12u13) 2.36`) or the
/// output of `getconf GNU_LIBC_VERSION` (`glibc 2.36`).
pub fn parse_glibc_version(output: &str) -> Option<String> {
    version_token(output.lines().next()?)
}

/// The version of the host's glibc, which every binary built here links against.
pub fn glibc_version() -> Result<String, HostError> {
    for (cmd, args) in [
        ("getconf", &["GNU_LIBC_VERSION"][..]),
        ("ldd", &["--version"][..]),
    ] {
        if let Ok(out) = Command::new(cmd).args(args).output()
            && out.status.success()
            && let Some(v) = parse_glibc_version(&String::from_utf8_lossy(&out.stdout))
        {
            return Ok(v);
        }
    }
    Err(HostError::NoGlibc)
}

/// Spack's name for an OS from `/etc/os-release` text: `ID` followed by the major version
/// (`debian12`, `rhel8`, `rocky9`), or major.minor for Ubuntu (`ubuntu22.04`).
pub fn parse_platform_os(os_release: &str) -> Option<String> {
    let mut id = None;
    let mut version = None;
    for line in os_release.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            match k.trim() {
                "ID" => id = Some(v.to_string()),
                "VERSION_ID" => version = Some(v.to_string()),
                _ => {}
            }
        }
    }
    let id = id?;
    let version = version.unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    let v = if id == "ubuntu" {
        parts.iter().take(2).copied().collect::<Vec<_>>().join(".")
    } else {
        parts[0].to_string()
    };
    Some(format!("{id}{v}"))
}

/// Spack's name for the host's operating system.
pub fn platform_os() -> Result<String, HostError> {
    let path = "/etc/os-release";
    fs_err::read_to_string(path)
        .ok()
        .and_then(|t| parse_platform_os(&t))
        .ok_or(HostError::NoOsRelease { path: path.into() })
}

/// The host's glibc as Spack models it: an external `glibc@<version>` at `/usr`, namespace
/// `builtin` (a consumer reuses the binaries if its own libc is a glibc at `/usr` at least this
/// recent). Depend on it with `link` and the virtual `libc`.
pub fn glibc_node(version: &str, arch: Arch) -> Node {
    external_node("glibc", version, arch, "/usr")
}

/// The host's gcc as Spack v1.0 models compilers: an external `gcc@<version>` at `/usr` whose
/// `extra_attributes.compilers` maps languages (`c`, `cxx`, `fortran`) to executables. Depend on
/// it with `build` and the languages used as virtuals; the compiled node must also depend on
/// `gcc-runtime` (link).
pub fn gcc_external_node(version: &str, arch: Arch, compilers: &BTreeMap<String, String>) -> Node {
    let prefix = compilers
        .values()
        .next()
        .and_then(|exe| Path::new(exe).parent()?.parent())
        .map_or("/usr".to_string(), |p| p.display().to_string());
    let mut languages: Vec<String> = compilers
        .keys()
        .map(|l| {
            if l == "cxx" {
                "c++".to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    languages.sort();
    let mut map = Map::new();
    map.insert(
        "compilers".into(),
        Value::Object(
            compilers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    let mut node = external_node("gcc", version, arch, prefix);
    node.variants
        .insert("languages".into(), VariantValue::Multi(languages));
    node.extra_attributes(map)
}

/// A host tool as `spack external find` describes it: an external at `prefix` in `builtin`
/// with every variant of Spack's recipe at its default (what Spack fills in for an external it
/// found), or with `build_system=generic` alone for a package Spack has no recipe for.
pub fn external_node(name: &str, version: &str, arch: Arch, prefix: impl Into<String>) -> Node {
    let mut node = Node::external(name, version, arch, prefix);
    node.variants = match crate::builtin::builtin().package(name) {
        Some(p) => p.defaults(version),
        None => [(
            "build_system".to_owned(),
            VariantValue::Single("generic".into()),
        )]
        .into(),
    };
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_versions() {
        assert_eq!(
            parse_glibc_version("ldd (Debian GLIBC 2.36-9+deb12u13) 2.36\nCopyright…").as_deref(),
            Some("2.36")
        );
        assert_eq!(parse_glibc_version("glibc 2.28\n").as_deref(), Some("2.28"));
        assert_eq!(parse_glibc_version("musl libc"), None);
    }

    #[test]
    fn glibc_of_this_host_is_found() {
        let v = glibc_version().unwrap();
        assert!(v.starts_with("2."), "{v}");
    }

    #[test]
    fn names_operating_systems_like_spack() {
        let deb = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        assert_eq!(parse_platform_os(deb).as_deref(), Some("debian12"));
        let ubuntu = "ID=ubuntu\nVERSION_ID=\"22.04\"\n";
        assert_eq!(parse_platform_os(ubuntu).as_deref(), Some("ubuntu22.04"));
        let rhel = "ID=\"rhel\"\nVERSION_ID=\"8.9\"\n";
        assert_eq!(parse_platform_os(rhel).as_deref(), Some("rhel8"));
    }

    #[test]
    fn gcc_external_records_its_compilers() {
        let compilers: BTreeMap<String, String> = [
            ("c".to_string(), "/usr/bin/gcc".to_string()),
            ("cxx".to_string(), "/usr/bin/g++".to_string()),
        ]
        .into();
        let n = gcc_external_node("12.2.0", Arch::linux("debian12", "x86_64_v3"), &compilers);
        let crate::graph::NodeKind::External(e) = &n.kind else {
            panic!("external expected")
        };
        assert_eq!(e.path, "/usr");
        assert_eq!(
            serde_json::to_string(&e.extra_attributes).unwrap(),
            r#"{"compilers":{"c":"/usr/bin/gcc","cxx":"/usr/bin/g++"}}"#
        );
    }
}
