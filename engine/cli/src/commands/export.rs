//! `forge export`, `forge key`, `forge cache verify`: Spack buildcaches out of the store.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use forge_resolve::{EdgeRole, Origin};
use forge_spack::{
    Arch, ExportGraph, ExportOptions, Keyring, Node, NodeId, PackageMeta, SpackIdentity,
};

use crate::ExitStatus;
use crate::args::{CacheCommand, ExportArgs, KeyCommand};
use crate::context::Ctx;

fn fail(ctx: &Ctx, e: impl std::fmt::Display) -> ExitStatus {
    ctx.printer.error(&e.to_string());
    ExitStatus::Failure
}

/// What an export covers: the Spack graph of the requests' closures, its roots, and the
/// package metadata of the recipes involved.
pub(super) struct Exportable {
    pub(super) graph: ExportGraph,
    pub(super) roots: Vec<NodeId>,
    pub(super) meta: BTreeMap<String, PackageMeta>,
}

pub(super) fn export(ctx: &Ctx, a: &ExportArgs) -> Result<ExitStatus, ExitStatus> {
    let store = ctx.open_store()?;
    let Exportable {
        graph: g,
        roots,
        meta,
    } = exportable(ctx, &store, &a.requests, a.with_build_deps)?;
    let signer = match &a.sign {
        None => None,
        Some(fpr) => {
            let ring = Keyring::open(&ctx.keys).map_err(|e| fail(ctx, e))?;
            Some(ring.signer((!fpr.is_empty()).then_some(fpr.as_str())).map_err(|e| {
                ctx.printer.error(&e.to_string());
                ctx.printer.hint("`forge key generate \"Name <email>\"` makes one; `forge key list` shows the keyring");
                ExitStatus::Failure
            })?)
        }
    };
    let opts = ExportOptions {
        with_build_deps: a.with_build_deps,
        max_consumer_root: a.max_consumer_root,
        allow_unrelocatable: a.allow_unrelocatable,
        package_meta: meta,
        ..ExportOptions::default()
    };
    let report = forge_spack::export(&g, &roots, &a.to, signer.as_ref(), &opts).map_err(|e| {
        ctx.printer.error(&e.to_string());
        if matches!(e, forge_spack::ExportError::Relocation(_)) && store.config().padded_length == 0 {
            ctx.printer.hint("Spack relocates binaries only into shorter prefixes: export from a store created with `--padded-length 200` (or more)");
        }
        ExitStatus::Failure
    })?;
    for w in &report.warnings {
        ctx.printer.warn(w);
    }
    if a.json {
        let specs: Vec<serde_json::Value> = report
            .specs
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "version": s.version, "hash": s.hash, "manifest": s.manifest, "reused": s.reused, "files": s.files, "bytes": s.bytes}))
            .collect();
        ctx.printer.data(&serde_json::to_string_pretty(&serde_json::json!({"cache": report.cache, "signed_by": report.signed_by, "index_records": report.index_records, "specs": specs})).expect("serializes"));
    } else {
        let mut out = String::new();
        for s in &report.specs {
            let _ = writeln!(
                out,
                "{} {}@{} /{}",
                if s.reused { "kept    " } else { "exported" },
                s.name,
                s.version,
                &s.hash[..7]
            );
        }
        let _ = writeln!(
            out,
            "{} specs in {} ({} in the index){}",
            report.specs.len(),
            report.cache.display(),
            report.index_records,
            report
                .signed_by
                .as_ref()
                .map_or(", unsigned".to_owned(), |f| format!(", signed by {f}"))
        );
        let _ = write!(
            out,
            "consumers: see {}",
            report.cache.join("README.md").display()
        );
        ctx.printer.data(&out);
    }
    Ok(ExitStatus::Success)
}

/// Builds the export graph of `requests` from the store; every node they need must be valid.
pub(super) fn exportable(
    ctx: &Ctx,
    store: &forge_store::Store,
    requests: &[String],
    with_build_deps: bool,
) -> Result<Exportable, ExitStatus> {
    let set = ctx.load()?;
    let host = ctx.host();
    let os = forge_spack::host::platform_os().map_err(|e| fail(ctx, e))?;
    let glibc = forge_spack::host::glibc_version().map_err(|e| fail(ctx, e))?;
    let mut g = ExportGraph::new(store.paths_dir());
    g.set_sbang(store.sbang_path());
    // Build directories and logs live beside the padded directory: no output may name them.
    g.set_store_dir(store.root());
    let mut ids: HashMap<forge_core::StoreName, NodeId> = HashMap::new();
    let mut glibc_ids: HashMap<String, NodeId> = HashMap::new();
    let mut roots = Vec::new();
    let mut meta: BTreeMap<String, PackageMeta> = BTreeMap::new();
    for request in requests {
        let (plan, request_roots) = plan_request(ctx, &set, &host, store, request)?;
        let gr = &plan.graph;
        let spack_arch = set
            .arches
            .get(&gr.arch)
            .map_or_else(|| gr.arch.replace('-', "_"), |d| d.spack_name.clone());
        let arch = Arch::linux(os.clone(), spack_arch.clone());
        let libc = *glibc_ids
            .entry(spack_arch)
            .or_insert_with(|| g.add(forge_spack::host::glibc_node(&glibc, arch.clone())));
        let names = forge_realize::store_names(&plan);
        let missing: Vec<&forge_core::StoreName> = names
            .iter()
            .zip(plan.drvs.iter())
            .filter(|(n, d)| {
                d.inputs.kind == forge_plan::DrvKind::Build && !store.is_valid(n).unwrap_or(false)
            })
            .map(|(n, _)| n)
            .collect();
        // Build-only nodes need not be valid unless they are exported.
        let needed: std::collections::BTreeSet<usize> = request_roots
            .iter()
            .flat_map(|r| runtime_closure(&plan, *r, with_build_deps))
            .collect();
        let missing: Vec<&forge_core::StoreName> = missing
            .into_iter()
            .filter(|n| needed.contains(&names.iter().position(|x| x == *n).unwrap_or(usize::MAX)))
            .collect();
        if !missing.is_empty() {
            let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            super::report_missing(
                ctx,
                store,
                &missing,
                &format!("of `{request}`"),
                &format!("run `forge realize {request}` first"),
            );
            return Err(ExitStatus::Failure);
        }
        for i in gr.topo() {
            let name = &names[i.index()];
            if ids.contains_key(name) {
                continue;
            }
            let n = gr.node(i);
            let node = match &n.origin {
                Origin::Host(tool) => {
                    let is_compiler = gr.dependents(i).iter().any(|d| {
                        gr.deps(*d)
                            .iter()
                            .any(|(x, e)| *x == i && e.role == EdgeRole::Compiler)
                    });
                    if is_compiler {
                        let mut compilers = BTreeMap::new();
                        for (exe, path) in &tool.executables {
                            let lang = match exe.as_str() {
                                "gcc" => "c",
                                "g++" => "cxx",
                                "gfortran" => "fortran",
                                _ => continue,
                            };
                            compilers.insert(lang.to_owned(), path.display().to_string());
                        }
                        forge_spack::host::gcc_external_node(
                            n.version.as_str(),
                            arch.clone(),
                            &compilers,
                        )
                    } else {
                        let prefix = tool.executables[0]
                            .1
                            .parent()
                            .and_then(|b| b.parent())
                            .map_or_else(|| "/usr".to_owned(), |p| p.display().to_string());
                        let recipe = &set.packages[n.name()];
                        Node::external(
                            recipe.spack_name(),
                            n.version.as_str(),
                            arch.clone(),
                            prefix,
                        )
                        .namespace(recipe.spack_namespace())
                    }
                }
                Origin::Build => {
                    let recipe = &set.packages[n.name()];
                    let identity = SpackIdentity::from_recipe(recipe, &n.version, &n.variants);
                    meta.entry(identity.name.clone())
                        .or_insert_with(|| PackageMeta::from_recipe(recipe));
                    identity
                        .built_node(arch.clone(), store.path_of(name))
                        .build_log(store.log_path(name))
                        .package_hash(plan.drv(i).hash.to_string())
                }
            };
            let id = g.add(node);
            ids.insert(name.clone(), id);
            for (d, e) in gr.deps(i) {
                let virtuals: Vec<&str> = e.virtuals.iter().map(String::as_str).collect();
                g.depend(id, ids[&names[d.index()]], e.types.into(), &virtuals);
            }
            if n.toolchain.is_some() {
                g.depend(id, libc, forge_spack::DepTypes::LINK, &["libc"]);
            }
        }
        roots.extend(request_roots.iter().map(|r| ids[&names[r.index()]]));
    }
    Ok(Exportable {
        graph: g,
        roots,
        meta,
    })
}

/// The plan a request stands for and the nodes to export: a target's roots (its root and extra
/// roots) or a spec's root, or, for a store path (or an out-link to one; anything holding a `/`),
/// the node of the first target whose graph produces that path.
fn plan_request(
    ctx: &Ctx,
    set: &forge_recipe::RecipeSet,
    host: &forge_resolve::SystemHost,
    store: &forge_store::Store,
    request: &str,
) -> Result<(forge_plan::Plan, Vec<petgraph::graph::NodeIndex>), ExitStatus> {
    if !request.contains('/') {
        let plan = ctx.plan(set, host, request)?;
        let roots = plan.graph.roots();
        return Ok((plan, roots));
    }
    let path = fs_err::canonicalize(request).map_err(|e| fail(ctx, e))?;
    let Some(name) = store.name_of(&path) else {
        ctx.printer.error(&format!(
            "`{request}` is not a path of the store {}",
            store.paths_dir().display()
        ));
        return Err(ExitStatus::Failure);
    };
    if !store.is_valid(&name).unwrap_or(false) {
        ctx.printer
            .error(&format!("`{}` is not a valid store path", path.display()));
        return Err(ExitStatus::Failure);
    }
    for t in &set.targets {
        let Some(plan) = Ctx::plan_quietly(set, host, &t.name.value) else {
            continue;
        };
        let names = forge_realize::store_names(&plan);
        if let Some(i) = names.iter().position(|n| *n == name) {
            return Ok((plan, vec![petgraph::graph::NodeIndex::new(i)]));
        }
    }
    ctx.printer.error(&format!(
        "no target of the recipes produces `{name}`: forge cannot tell which recipe, variants and dependencies made it"
    ));
    ctx.printer.hint(
        "export it by the target or spec that built it (`forge plan --all` lists the targets)",
    );
    Err(ExitStatus::Failure)
}

/// Node indices an export of `root` covers: its link/run closure, plus build
/// dependencies when asked. Used only to decide which nodes must be valid.
fn runtime_closure(
    plan: &forge_plan::Plan,
    root: petgraph::graph::NodeIndex,
    with_build: bool,
) -> std::collections::BTreeSet<usize> {
    plan.graph
        .closure([root], |_, e| {
            with_build
                || e.types.contains(forge_recipe::DepType::Link)
                || e.types.contains(forge_recipe::DepType::Run)
        })
        .into_iter()
        .map(|i| i.index())
        .collect()
}

pub(super) fn key(ctx: &Ctx, cmd: &KeyCommand) -> Result<ExitStatus, ExitStatus> {
    let ring = Keyring::open(&ctx.keys).map_err(|e| fail(ctx, e))?;
    match cmd {
        KeyCommand::Generate { user_id } => {
            let k = ring.generate(user_id).map_err(|e| fail(ctx, e))?;
            ctx.printer.info(&format!(
                "generated {} for {user_id} in {}",
                k.fingerprint,
                ring.dir().display()
            ));
            ctx.printer.data(&k.fingerprint);
        }
        KeyCommand::Import { file } => {
            let keys = ring.import_file(file).map_err(|e| fail(ctx, e))?;
            for k in keys {
                ctx.printer.info(&format!(
                    "imported {} {}{}",
                    k.fingerprint,
                    k.user_ids.join(", "),
                    if k.has_secret { " (secret)" } else { "" }
                ));
            }
        }
        KeyCommand::Export { fingerprint } => {
            let armored = ring.export_public(fingerprint).map_err(|e| fail(ctx, e))?;
            ctx.printer.data(&armored);
        }
        KeyCommand::List { json } => {
            let keys = ring.list().map_err(|e| fail(ctx, e))?;
            if *json {
                let v: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| serde_json::json!({"fingerprint": k.fingerprint, "user_ids": k.user_ids, "secret": k.has_secret, "algorithm": k.algorithm, "created": k.created}))
                    .collect();
                ctx.printer
                    .data(&serde_json::to_string_pretty(&v).expect("serializes"));
            } else {
                let mut out = String::new();
                for k in &keys {
                    let _ = writeln!(
                        out,
                        "{} {} {}{}",
                        k.fingerprint,
                        k.algorithm,
                        k.user_ids.join(", "),
                        if k.has_secret { "  [can sign]" } else { "" }
                    );
                }
                if keys.is_empty() {
                    ctx.printer
                        .info(&format!("no keys in {}", ring.dir().display()));
                }
                ctx.printer.data(&out);
            }
        }
    }
    Ok(ExitStatus::Success)
}

pub(super) fn cache(ctx: &Ctx, cmd: &CacheCommand) -> Result<ExitStatus, ExitStatus> {
    let CacheCommand::Verify {
        dir,
        unsigned,
        json,
    } = cmd;
    let ring = Keyring::open(&ctx.keys).map_err(|e| fail(ctx, e))?;
    let trusted = ring.trusted().map_err(|e| fail(ctx, e))?;
    let opts = forge_spack::VerifyOptions {
        require_signatures: !*unsigned,
    };
    let report = forge_spack::verify_cache(dir, &trusted, &opts).map_err(|e| fail(ctx, e))?;
    if *json {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        ctx.printer.data(&serde_json::to_string_pretty(&serde_json::json!({"cache": dir, "manifests": report.manifests, "blobs": report.blobs, "signatures": report.signatures, "problems": problems})).expect("serializes"));
    } else {
        for p in &report.problems {
            ctx.printer.error(&p.to_string());
        }
        if report.problems.is_empty() {
            ctx.printer.info(&format!(
                "{}: {} manifests, {} blobs, {} signatures good",
                dir.display(),
                report.manifests,
                report.blobs,
                report.signatures.values().sum::<usize>()
            ));
        } else {
            ctx.printer.error(&format!(
                "{} problem{} in {}",
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" },
                dir.display()
            ));
            if trusted.is_empty() {
                ctx.printer
                    .hint("no trusted keys: import the cache's key with `forge key import`");
            }
        }
    }
    Ok(if report.problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
