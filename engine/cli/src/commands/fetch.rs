//! `forge fetch`: download what targets need, into the source cache and optionally a mirror.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ExitStatus;
use crate::args::FetchArgs;
use crate::context::Ctx;
use crate::error::CliError;
use crate::printer::{counted, human};

/// One source file the requests need: what names it, where it may come from, who needs it.
#[derive(Debug, Clone)]
pub(super) struct Needed {
    pub name: String,
    pub sha256: String,
    pub urls: Vec<String>,
    pub nodes: Vec<String>,
}

/// Every downloadable source of `plan`'s nodes (local paths and host tools have none), by
/// sha256, merged into `into`.
pub(super) fn sources_of(plan: &forge_plan::Plan, into: &mut BTreeMap<String, Needed>) {
    for i in plan.graph.topo() {
        sources_of_node(plan, i, into);
    }
}

/// The downloadable sources of node `i`, merged into `into`.
pub(super) fn sources_of_node(
    plan: &forge_plan::Plan,
    i: petgraph::graph::NodeIndex,
    into: &mut BTreeMap<String, Needed>,
) {
    let d = plan.drv(i);
    let node = format!("{}-{}", d.inputs.name, d.inputs.version);
    for (s, f) in d.inputs.sources.iter().zip(&d.fetch) {
        let (Some(sha), None) = (&s.sha256, &f.path) else {
            continue;
        };
        let e = into.entry(sha.clone()).or_insert_with(|| Needed {
            name: s.name.clone(),
            sha256: sha.clone(),
            urls: Vec::new(),
            nodes: Vec::new(),
        });
        for u in &f.urls {
            if !e.urls.contains(u) {
                e.urls.push(u.clone());
            }
        }
        if !e.nodes.contains(&node) {
            e.nodes.push(node.clone());
        }
    }
}

pub(super) fn run(ctx: &Ctx, a: &FetchArgs) -> Result<ExitStatus, CliError> {
    let root = ctx.recipes_root()?;
    let (set, _) = ctx.load_at(&root)?;
    let host = ctx.host();
    let mut needed = BTreeMap::new();
    for r in &a.requests {
        sources_of(&ctx.plan(&set, &host, r)?, &mut needed);
    }
    let cache = ctx.source_cache();
    let mirror = match &a.to {
        Some(dir) => {
            let d = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            fs_err::create_dir_all(d.join("sha256")).map_err(|e| {
                CliError::error(format!("cannot create the mirror {}: {e}", d.display()))
            })?;
            Some(d)
        }
        None => None,
    };
    let total = needed.len();
    let mut failed = Vec::new();
    let mut bytes = 0u64;
    for (k, n) in needed.values().enumerate() {
        let before = cache.get(&n.sha256).is_some();
        let outcome = cache
            .fetch(&n.name, &n.sha256, &n.urls)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                let size = fs_err::metadata(&p).map(|m| m.len()).unwrap_or(0);
                match &mirror {
                    Some(m) => file_into_mirror(&p, m, &n.sha256).map(|()| size),
                    None => Ok(size),
                }
            });
        let status = match &outcome {
            Ok(_) if before => "cached",
            Ok(_) => "fetched",
            Err(_) => "failed",
        };
        if let Ok(size) = outcome {
            bytes += size;
        }
        if a.json {
            ctx.printer.json_line(&serde_json::json!({
                "name": n.name,
                "sha256": n.sha256,
                "urls": n.urls,
                "nodes": n.nodes,
                "status": status,
                "path": cache.get(&n.sha256),
                "error": outcome.as_ref().err(),
            }));
        } else {
            match &outcome {
                Ok(size) => ctx.printer.info(&format!(
                    "[{}/{total}] {status} {} ({})",
                    k + 1,
                    n.name,
                    human(*size)
                )),
                Err(e) => ctx.printer.warn(&format!(
                    "[{}/{total}] {} (for {}): {e}",
                    k + 1,
                    n.name,
                    n.nodes.join(", ")
                )),
            }
        }
        if outcome.is_err() {
            failed.push(n.name.clone());
        }
    }
    if !failed.is_empty() {
        return Err(CliError::failure(format!(
            "{} of {} could not be fetched: {}",
            failed.len(),
            counted(total, "source"),
            failed.join(", ")
        ))
        .with_hint(
            "each error lists the locations tried; add a mirror that has them (`--mirror DIR|URL`), or run `forge fetch … --to DIR` where the recipes' URLs are reachable and bring DIR here",
        ));
    }
    if !a.json {
        let place = match &mirror {
            Some(m) => format!(
                "; the mirror {} serves them to `--mirror {}`",
                m.display(),
                m.display()
            ),
            None => String::new(),
        };
        ctx.printer.info(&format!(
            "{} ({}) in the source cache {}{place}",
            counted(total, "source"),
            human(bytes),
            cache.dir().display()
        ));
    }
    Ok(ExitStatus::Success)
}

/// Files the verified cache file `cached` as `<mirror>/sha256/<sha256>`: a hard link when the
/// two share a file system, else a copy; written under a temporary name and renamed, so a
/// killed run never leaves a partial file under the final name. An entry already there is
/// kept when its size matches (the cache verified the bytes it came from).
fn file_into_mirror(cached: &Path, mirror: &Path, sha256: &str) -> Result<(), String> {
    let dest = mirror.join("sha256").join(sha256);
    let size = fs_err::metadata(cached).map_err(|e| e.to_string())?.len();
    if fs_err::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size) {
        return Ok(());
    }
    let tmp: PathBuf = mirror
        .join("sha256")
        .join(format!(".{sha256}.{}.tmp", std::process::id()));
    let _ = fs_err::remove_file(&tmp);
    if fs_err::hard_link(cached, &tmp).is_err() {
        fs_err::copy(cached, &tmp).map_err(|e| e.to_string())?;
        fs_err::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
    }
    fs_err::rename(&tmp, &dest).map_err(|e| {
        let _ = fs_err::remove_file(&tmp);
        e.to_string()
    })
}
