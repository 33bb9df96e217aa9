//! A build's inputs on disk: its sources copied or unpacked into the scratch directory, and the
//! realization of host tools (links to the machine's programs).

use std::path::{Path, PathBuf};

use forge_plan::Derivation;

use crate::fs::copy_tree;
use crate::phases::Log;
use crate::request::{BuildError, BuildRequest, setup};

/// Links a host tool's executables into `out/bin` (the realization of a host package).
pub fn realize_host(drv: &Derivation, out: &Path) -> Result<(), BuildError> {
    let bin = out.join("bin");
    fs_err::create_dir_all(&bin).map_err(|e| setup("creating the host tool's directory", e))?;
    let names = drv
        .inputs
        .host
        .as_ref()
        .map(|h| h.executables.clone())
        .unwrap_or_default();
    for (name, f) in names.iter().zip(&drv.fetch) {
        let Some(target) = &f.path else { continue };
        fs_err::os::unix::fs::symlink(target, bin.join(name))
            .map_err(|e| setup(format!("linking host `{name}`"), e))?;
    }
    Ok(())
}

/// Copies or unpacks every source into the scratch directory; returns the first one's root,
/// where the build's commands run.
pub(crate) fn prepare_sources(req: &BuildRequest, log: &Log) -> Result<PathBuf, BuildError> {
    let src_dir = req.scratch.join("src");
    let mut root = src_dir.clone();
    for (i, (s, path)) in req.drv.inputs.sources.iter().zip(&req.sources).enumerate() {
        let dest = if i == 0 {
            src_dir.clone()
        } else {
            req.scratch.join(format!("src-{i}"))
        };
        let limits = forge_fetch::Limits {
            allow_control_chars: s.allow_control_chars,
            ..forge_fetch::Limits::default()
        };
        fs_err::create_dir_all(&dest).map_err(|e| setup("creating the source directory", e))?;
        if s.tree.is_some() {
            let target = dest.join(&s.name);
            copy_tree(path, &target)
                .map_err(|e| setup(format!("copying source `{}`", path.display()), e))?;
            if i == 0 {
                root = target;
            }
        } else if let (true, Some(inner)) = (s.unpack, &s.inner) {
            log.line(&format!(
                "forge: unpacking `{}` from the wrapper {}",
                inner.pattern, s.name
            ));
            let work = req.scratch.join(format!("wrapper-{i}"));
            let (_, found) = forge_fetch::unpack_inner(
                path,
                &s.name,
                &inner.pattern,
                &inner.sha256,
                &work,
                &dest,
                limits,
            )
            .map_err(|e| setup(format!("unpacking `{}`", s.name), e))?;
            log.line(&format!(
                "forge: unpacked {} (sha256 {})",
                found.strip_prefix(&work).unwrap_or(&found).display(),
                inner.sha256
            ));
            // The rest of the wrapper is not the source.
            crate::fs::remove_dir_all_forced(&work)
                .map_err(|e| setup("removing the unpacked wrapper", e))?;
            if i == 0 {
                root = forge_fetch::source_root(&dest)
                    .map_err(|e| setup("finding the source root", e))?;
            }
        } else if s.unpack {
            log.line(&format!("forge: unpacking {}", s.name));
            forge_fetch::unpack(path, &s.name, &dest, limits)
                .map_err(|e| setup(format!("unpacking `{}`", s.name), e))?;
            if i == 0 {
                root = forge_fetch::source_root(&dest)
                    .map_err(|e| setup("finding the source root", e))?;
            }
        } else {
            let target = dest.join(&s.name);
            fs_err::copy(path, &target)
                .map_err(|e| setup(format!("copying source `{}`", s.name), e))?;
        }
    }
    Ok(root)
}
