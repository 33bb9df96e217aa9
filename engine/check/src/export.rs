//! `forge check --export`: the exporter's reproducibility. A closure is exported twice to the
//! same place, a second apart, and the two buildcaches must be byte-identical.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use forge_spack::{ExportOptions, Exportable};

use crate::rebuild::{remove, unix_seconds, wait_until_after};
use crate::{CompareContext, NodeComparison};

/// The comparison of two exports of `ex`, made under `work` (created, then removed unless
/// `keep`). With `keep`, also where the two exports are.
pub fn check_export(
    ex: &Exportable,
    work: &Path,
    keep: bool,
) -> Result<(NodeComparison, Option<(PathBuf, PathBuf)>), String> {
    remove(work)?;
    let cache = work.join("cache");
    let first = work.join("first");
    let opts = ExportOptions {
        package_meta: ex.meta.clone(),
        ..ExportOptions::default()
    };
    let result = (|| -> Result<NodeComparison, String> {
        fs_err::create_dir_all(work).map_err(|e| e.to_string())?;
        forge_spack::export(&ex.graph, &ex.roots, &cache, None, &opts)
            .map_err(|e| e.to_string())?;
        fs_err::rename(&cache, &first).map_err(|e| e.to_string())?;
        // A second later, so that a time written into the cache shows.
        wait_until_after(unix_seconds(SystemTime::now()));
        forge_spack::export(&ex.graph, &ex.roots, &cache, None, &opts)
            .map_err(|e| e.to_string())?;
        let c = CompareContext {
            extra_paths: vec![work.to_path_buf()],
            ..CompareContext::default()
        };
        crate::compare(&first, &cache, &c).map_err(|e| e.to_string())
    })();
    if keep && result.is_ok() {
        return result.map(|cmp| (cmp, Some((first, cache))));
    }
    remove(work)?;
    result.map(|cmp| (cmp, None))
}
