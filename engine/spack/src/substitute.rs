//! Substitution: installing a store path from a buildcache instead of building it.
//!
//! A cache forge exported holds, beside Spack's layout, one pointer per exported store path
//! (`v3/forge/store/<store name>.json`, see [`crate::export::StorePointer`]) naming its spec
//! manifest. To substitute `<name>`, forge reads the pointer, then the manifest, and checks the
//! manifest's OpenPGP signature against the trusted keys (unsigned or untrusted manifests are
//! refused unless signatures are not required). The tarball the signed manifest names is
//! downloaded through the source cache, which checks its sha256 and size; it is unpacked with
//! the hostile-archive rules of sources (absolute symlinks allowed: packages link into their
//! store); it must hold exactly one prefix, named `<name>`, below the directories of its build
//! path, and that prefix's `.spack/binary_distribution` must say so. The listed files are
//! checked to be inside the prefix without passing through a symlink, relocated from the
//! producer's store into this one as Spack relocates (text, ELF, links; binaries need the new
//! paths directory to be no longer than the old one), `.spack/` is removed, and no absolute
//! symlink may then lead out of this store. Only then is the prefix moved to its destination.
//!
//! Transports: those of `forge-remote` (a directory, `file://`, `http(s)://`, `s3://`).

use std::path::{Component, Path, PathBuf};

use forge_fetch::{FetchOptions, Limits, SourceCache};
use forge_remote::Remote;

use crate::buildinfo::BuildInfo;
use crate::export::{StorePointer, store_pointer_path};
use crate::keys::TrustedKeys;
use crate::manifest::{MEDIA_TARBALL, Manifest, is_clearsigned};
use crate::relocate::{relocate_prefix, relocation_map};

/// Manifests and pointers are small; anything larger is refused.
const MAX_METADATA: u64 = 16 << 20;

/// Where substitutes come from and what they must prove.
#[derive(Debug)]
pub struct Substituter {
    caches: Vec<Remote>,
    trusted: TrustedKeys,
    require_signature: bool,
    fetch: FetchOptions,
    blobs: PathBuf,
}

/// A path installed from a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituted {
    /// The cache's URL.
    pub from: String,
    /// The fingerprint of the key that signed its manifest (`None`: unsigned, accepted because
    /// signatures were not required).
    pub signed_by: Option<String>,
    /// Bytes of the tarball.
    pub tarball_bytes: u64,
}

impl Substituter {
    /// Substitutes from `caches` (URLs or directories, tried in order), accepting manifests
    /// signed by `trusted` (and unsigned ones unless `require_signature`). Downloaded tarballs
    /// pass through a source cache in `blobs`.
    pub fn new(
        caches: &[String],
        trusted: TrustedKeys,
        require_signature: bool,
        fetch: FetchOptions,
        blobs: PathBuf,
    ) -> Result<Self, String> {
        let caches = caches
            .iter()
            .map(|c| Remote::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            caches,
            trusted,
            require_signature,
            // Blobs come from the caches only, never the source mirrors.
            fetch: FetchOptions {
                mirrors: Vec::new(),
                ..fetch
            },
            blobs,
        })
    }

    /// The caches, as URLs.
    pub fn caches(&self) -> Vec<String> {
        self.caches.iter().map(Remote::url).collect()
    }

    /// Installs `name` at `dest` (which must not exist; on the filesystem of `scratch`) from the
    /// first cache that has it, relocated into the store whose paths directory is `paths_dir`
    /// and whose `sbang` is `sbang`. `Ok(None)`: no cache has it. `Err`: a cache has it but
    /// it was refused or could not be read, one line per cache that failed (the caller builds
    /// instead, and says why).
    pub fn substitute(
        &self,
        name: &str,
        dest: &Path,
        scratch: &Path,
        paths_dir: &Path,
        sbang: &Path,
    ) -> Result<Option<Substituted>, Vec<String>> {
        let mut problems = Vec::new();
        for cache in &self.caches {
            let _ = forge_core::fs::remove_dir_all_forced(scratch);
            match self.try_cache(cache, name, dest, scratch, paths_dir, sbang) {
                Ok(Some(s)) => {
                    let _ = forge_core::fs::remove_dir_all_forced(scratch);
                    return Ok(Some(s));
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("{}: {e}", cache.url())),
            }
        }
        let _ = forge_core::fs::remove_dir_all_forced(scratch);
        if problems.is_empty() {
            Ok(None)
        } else {
            Err(problems)
        }
    }

    fn try_cache(
        &self,
        cache: &Remote,
        name: &str,
        dest: &Path,
        scratch: &Path,
        paths_dir: &Path,
        sbang: &Path,
    ) -> Result<Option<Substituted>, String> {
        let pointer_rel = store_pointer_path(name).display().to_string();
        let pointer_url = cache.url_of(&pointer_rel);
        let Some(pointer) = cache
            .read(&pointer_rel, MAX_METADATA)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let pointer = StorePointer::parse(&pointer).map_err(|e| format!("`{pointer_url}`: {e}"))?;
        if pointer.store_name != name {
            return Err(format!(
                "`{pointer_url}` points at `{}`, not `{name}`",
                pointer.store_name
            ));
        }
        let manifest_url = cache.url_of(&pointer.spec_manifest);
        let text = cache
            .read(&pointer.spec_manifest, MAX_METADATA)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("`{manifest_url}` is missing (the cache names it)"))?;
        let text = String::from_utf8(text).map_err(|_| format!("`{manifest_url}` is not UTF-8"))?;
        let (body, signed_by) = if is_clearsigned(&text) {
            match self.trusted.verified_body(&text) {
                Ok((fpr, body)) => (
                    String::from_utf8(body)
                        .map_err(|_| format!("`{manifest_url}`: the signed text is not UTF-8"))?,
                    Some(fpr),
                ),
                Err(p)
                    if self.require_signature
                        || !matches!(p, crate::SignatureProblem::UntrustedKey { .. }) =>
                {
                    return Err(format!(
                        "`{manifest_url}`: {p}; trust the signer with `forge key trust KEYFILE`, or pass `--no-check-signature`"
                    ));
                }
                Err(_) => (
                    crate::manifest::clearsigned_body(&text)
                        .ok_or_else(|| format!("`{manifest_url}`: malformed signed message"))?,
                    None,
                ),
            }
        } else if self.require_signature {
            return Err(format!(
                "`{manifest_url}` is not signed; substitute only from signed caches, or pass `--no-check-signature`"
            ));
        } else {
            (text, None)
        };
        let manifest = Manifest::parse(&body).map_err(|e| format!("`{manifest_url}`: {e}"))?;
        let rec = manifest
            .record(MEDIA_TARBALL)
            .ok_or_else(|| format!("`{manifest_url}` names no install tarball"))?;
        let rel = rec
            .relative_path()
            .ok_or_else(|| format!("`{manifest_url}`: a blob record with an unsafe checksum"))?;
        if rec.checksum_algorithm != "sha256" {
            return Err(format!(
                "`{manifest_url}`: checksum algorithm `{}`, not sha256",
                rec.checksum_algorithm
            ));
        }
        let blobs = SourceCache::new(
            self.blobs.clone(),
            FetchOptions {
                max_bytes: rec.content_length.min(self.fetch.max_bytes),
                ..self.fetch.clone()
            },
        );
        let tarball = match cache {
            Remote::S3(_) => {
                // Downloaded whole, then added to the source cache, which checks its sha256.
                fs_err::create_dir_all(&self.blobs).map_err(|e| e.to_string())?;
                let part = self
                    .blobs
                    .join(format!("{}.s3-{}", rec.checksum, std::process::id()));
                let got = cache.download(&rel, &part, rec.content_length);
                let added = match got {
                    Ok(true) => blobs
                        .add_file(&part, &rec.checksum)
                        .map_err(|e| e.to_string()),
                    Ok(false) => Err(format!(
                        "`{}` is missing (the manifest names it)",
                        cache.url_of(&rel)
                    )),
                    Err(e) => Err(e.to_string()),
                };
                let _ = fs_err::remove_file(&part);
                added?
            }
            Remote::Dir(_) | Remote::Http(_) => blobs
                .fetch(
                    &format!("{name}.tar.gz"),
                    &rec.checksum,
                    &[cache.url_of(&rel)],
                )
                .map_err(|e| e.to_string())?,
        };
        let size = fs_err::metadata(&tarball).map_err(|e| e.to_string())?.len();
        if size != rec.content_length {
            let _ = fs_err::remove_file(&tarball);
            return Err(format!(
                "the tarball is {size} bytes, the signed manifest says {}",
                rec.content_length
            ));
        }
        let installed = install_tarball(&tarball, name, dest, scratch, paths_dir, sbang);
        // The tarball was only a means: the store keeps the installed tree.
        let _ = fs_err::remove_file(&tarball);
        installed?;
        Ok(Some(Substituted {
            from: cache.url(),
            signed_by,
            tarball_bytes: size,
        }))
    }
}

/// Unpacks, checks and relocates one tarball, then moves its prefix to `dest`.
fn install_tarball(
    tarball: &Path,
    name: &str,
    dest: &Path,
    scratch: &Path,
    paths_dir: &Path,
    sbang: &Path,
) -> Result<(), String> {
    let unpacked = scratch.join("unpacked");
    fs_err::create_dir_all(&unpacked).map_err(|e| e.to_string())?;
    let limits = Limits {
        allow_absolute_symlinks: true,
        ..Limits::default()
    };
    forge_fetch::unpack(tarball, "install.tar.gz", &unpacked, limits)
        .map_err(|e| format!("the tarball was refused: {e}"))?;
    // Exactly one chain of real directories down to the prefix.
    let mut prefix = unpacked.clone();
    let mut chain = PathBuf::from("/");
    loop {
        let entries: Vec<_> = fs_err::read_dir(&prefix)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .collect();
        let [only] = entries.as_slice() else {
            return Err(format!(
                "the tarball holds more than one prefix (`{}` has {} entries)",
                chain.display(),
                entries.len()
            ));
        };
        let ft = only.file_type().map_err(|e| e.to_string())?;
        if !ft.is_dir() {
            return Err(format!(
                "the tarball's `{}` is not a directory",
                chain.join(only.file_name()).display()
            ));
        }
        prefix = only.path();
        chain.push(only.file_name());
        if only.file_name() == name {
            break;
        }
        if chain.components().count() > 64 {
            return Err(format!("the tarball holds no prefix named `{name}`"));
        }
    }
    let info = Remote::Dir(prefix.clone())
        .read(".spack/binary_distribution", MAX_METADATA)
        .map_err(|e| e.to_string())?
        .ok_or("the tarball has no `.spack/binary_distribution`")?;
    let info = BuildInfo::from_yaml(&String::from_utf8_lossy(&info))
        .map_err(|e| format!("`.spack/binary_distribution`: {e}"))?;
    let claimed = format!(
        "{}/{}",
        info.buildpath.trim_end_matches('/'),
        info.relative_prefix
    );
    if Path::new(&claimed) != chain {
        return Err(format!(
            "`.spack/binary_distribution` says the prefix was `{claimed}`, the tarball holds `{}`",
            chain.display()
        ));
    }
    let files = info
        .relocate_binaries
        .iter()
        .chain(&info.relocate_textfiles);
    for rel in files {
        check_inside(&prefix, rel, false)?;
    }
    for rel in &info.relocate_links {
        check_inside(&prefix, rel, true)?;
    }
    forge_core::fs::remove_dir_all_forced(&prefix.join(".spack")).map_err(|e| e.to_string())?;
    let new_root = paths_dir.display().to_string();
    let new_sbang = sbang.display().to_string();
    let map = relocation_map(&info, &[], &new_root, &new_sbang);
    relocate_prefix(&prefix, &info, &map).map_err(|e| format!("relocation failed: {e}"))?;
    let store_dir = paths_dir.parent().unwrap_or(paths_dir);
    check_links(&prefix, &prefix, store_dir)?;
    fs_err::rename(&prefix, dest).map_err(|e| e.to_string())?;
    Ok(())
}

/// A path listed in `binary_distribution` must name, inside the prefix and through real
/// directories only, a regular file (or a symlink, for `relocate_links`): relocation reads and
/// writes it, and must never do so through a link.
fn check_inside(prefix: &Path, rel: &str, want_link: bool) -> Result<(), String> {
    let bad = |why: &str| format!("`.spack/binary_distribution` lists `{rel}`, which {why}");
    let p = Path::new(rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_))) || rel.is_empty() {
        return Err(bad("is not a plain relative path"));
    }
    let mut at = prefix.to_path_buf();
    let parts: Vec<_> = p.components().collect();
    for (i, c) in parts.iter().enumerate() {
        at.push(c);
        let m = fs_err::symlink_metadata(&at).map_err(|_| bad("does not exist"))?;
        let last = i + 1 == parts.len();
        if !last && !m.is_dir() {
            return Err(bad("passes through a symlink or a file"));
        }
        if last {
            let ok = if want_link {
                m.file_type().is_symlink()
            } else {
                m.is_file()
            };
            if !ok {
                return Err(bad(if want_link {
                    "is not a symlink"
                } else {
                    "is not a regular file"
                }));
            }
        }
    }
    Ok(())
}

/// After relocation, no absolute symlink may lead out of the store.
fn check_links(prefix: &Path, dir: &Path, store_dir: &Path) -> Result<(), String> {
    for e in fs_err::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let p = e.path();
        let ft = e.file_type().map_err(|e| e.to_string())?;
        if ft.is_symlink() {
            let t = fs_err::read_link(&p).map_err(|e| e.to_string())?;
            if t.is_absolute()
                && (!t.starts_with(store_dir)
                    || t.components().any(|c| matches!(c, Component::ParentDir)))
            {
                return Err(format!(
                    "`{}` is a symlink to `{}`, outside the store",
                    p.strip_prefix(prefix).unwrap_or(&p).display(),
                    t.display()
                ));
            }
        } else if ft.is_dir() {
            check_links(prefix, &p, store_dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_paths_stay_inside_and_never_pass_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("prefix");
        fs_err::create_dir_all(p.join("lib")).unwrap();
        fs_err::write(p.join("lib/libx.so"), "x").unwrap();
        fs_err::os::unix::fs::symlink("/etc", p.join("etc")).unwrap();
        fs_err::os::unix::fs::symlink("lib/libx.so", p.join("link")).unwrap();
        assert!(check_inside(&p, "lib/libx.so", false).is_ok());
        assert!(check_inside(&p, "link", true).is_ok());
        for (rel, link, why) in [
            ("../outside", false, "plain relative"),
            ("/etc/passwd", false, "plain relative"),
            ("etc/passwd", false, "through a symlink"),
            ("link", false, "not a regular file"),
            ("lib/libx.so", true, "not a symlink"),
            ("lib/none", false, "does not exist"),
        ] {
            let e = check_inside(&p, rel, link).unwrap_err();
            assert!(e.contains(why), "{rel}: {e}");
        }
    }

    #[test]
    fn absolute_links_must_stay_in_the_store() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        let p = d.path().join("prefix");
        fs_err::create_dir_all(p.join("sub")).unwrap();
        fs_err::os::unix::fs::symlink(store.join("abc-dep/lib"), p.join("sub/ok")).unwrap();
        fs_err::os::unix::fs::symlink("relative", p.join("rel")).unwrap();
        assert!(check_links(&p, &p, &store).is_ok());
        fs_err::os::unix::fs::symlink(store.join("../etc"), p.join("sub/climb")).unwrap();
        let e = check_links(&p, &p, &store).unwrap_err();
        assert!(
            e.contains("sub/climb") && e.contains("outside the store"),
            "{e}"
        );
        fs_err::remove_file(p.join("sub/climb")).unwrap();
        fs_err::os::unix::fs::symlink("/etc/shadow", p.join("sub/out")).unwrap();
        assert!(check_links(&p, &p, &store).is_err());
    }
}
