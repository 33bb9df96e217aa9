//! `forge export`, `forge key`, `forge cache verify`: Spack buildcaches out of the store.

use std::fmt::Write as _;

use forge_spack::{ExportOptions, Exportable, Keyring};

use crate::ExitStatus;
use crate::args::{CacheCommand, ExportArgs, KeyCommand};
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn export(ctx: &Ctx, a: &ExportArgs) -> Result<ExitStatus, CliError> {
    let store = ctx.open_store()?;
    let (Some(to), false) = (&a.to, a.dry_run) else {
        return dry_run(ctx, &store, a);
    };
    let Exportable {
        graph: g,
        roots,
        meta,
    } = exportable(ctx, &store, &a.requests, a.with_build_deps, true)?;
    let signer = match &a.sign {
        None => None,
        Some(fpr) => {
            let ring = Keyring::open(&ctx.keys)?;
            Some(ring.signer((!fpr.is_empty()).then_some(fpr.as_str())).map_err(|e| {
                CliError::from(e).with_hint("`forge key generate \"Name <email>\"` makes one; `forge key list` shows the keyring")
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
    // An S3 cache is published from a local staging copy of its metadata (see
    // `forge_spack::remote`): pulled first so the index merges with what the bucket holds,
    // exported into like a directory, then uploaded in publishing order.
    let to_text = to.to_string_lossy().into_owned();
    let remote = if to_text.starts_with("s3://") {
        Some(forge_remote::Remote::parse(&to_text).map_err(|e| CliError::error(e.to_string()))?)
    } else {
        None
    };
    let dir = match &remote {
        Some(r) => {
            let id = blake3::hash(r.url().as_bytes()).to_hex();
            let staging = crate::context::cache_dir()
                .join("s3-staging")
                .join(&id[..16]);
            fs_err::create_dir_all(&staging).map_err(|e| CliError::error(e.to_string()))?;
            let pulled = forge_spack::remote::pull_metadata(r, &staging)
                .map_err(|e| CliError::error(e.to_string()).with_hint("check the bucket, the endpoint (`AWS_ENDPOINT_URL`) and the credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` or a profile)"))?;
            if pulled.metadata > 0 {
                ctx.printer.info(&format!(
                    "merged {} metadata objects and {} spec blobs from {}",
                    pulled.metadata,
                    pulled.spec_blobs,
                    r.url()
                ));
            }
            staging
        }
        None => to.clone(),
    };
    let report = forge_spack::export(&g, &roots, &dir, signer.as_ref(), &opts).map_err(|e| {
        let unpadded = matches!(e, forge_spack::ExportError::Relocation(_))
            && store.config().padded_length == 0;
        let err = CliError::failure(e);
        if unpadded {
            err.with_hint("Spack relocates binaries only into shorter prefixes: export from a store created with `--padded-length 200` (or more)")
        } else {
            err
        }
    })?;
    for w in &report.warnings {
        ctx.printer.warn(w);
    }
    let pushed = match &remote {
        Some(r) => Some(upload(ctx, &dir, r)?),
        None => None,
    };
    if a.json {
        let specs: Vec<serde_json::Value> = report
            .specs
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "version": s.version, "hash": s.hash, "manifest": s.manifest, "reused": s.reused, "files": s.files, "bytes": s.bytes}))
            .collect();
        let cache = match &remote {
            Some(r) => serde_json::json!(r.url()),
            None => serde_json::json!(report.cache),
        };
        let uploaded = pushed.as_ref().map(|p| serde_json::json!({"blobs_sent": p.blobs_sent, "blobs_present": p.blobs_present, "metadata_sent": p.metadata_sent, "bytes": p.bytes, "seconds": p.seconds}));
        ctx.printer.data(&serde_json::to_string_pretty(&serde_json::json!({"cache": cache, "signed_by": report.signed_by, "index_records": report.index_records, "specs": specs, "uploaded": uploaded})).expect("serializes"));
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
        if let Some(p) = &pushed {
            let _ = writeln!(
                out,
                "uploaded {} blobs ({} already there) and {} metadata objects, {:.1} MB in {:.1}s ({:.1} MB/s)",
                p.blobs_sent,
                p.blobs_present,
                p.metadata_sent,
                p.bytes as f64 / 1e6,
                p.seconds,
                p.bytes as f64 / 1e6 / p.seconds.max(1e-3)
            );
        }
        let shown = match &remote {
            Some(r) => r.url(),
            None => report.cache.display().to_string(),
        };
        let _ = writeln!(
            out,
            "{} specs in {} ({} in the index){}",
            report.specs.len(),
            shown,
            report.index_records,
            report
                .signed_by
                .as_ref()
                .map_or(", unsigned".to_owned(), |f| format!(", signed by {f}"))
        );
        let readme = match &remote {
            Some(r) => r.url_of("README.md"),
            None => report.cache.join("README.md").display().to_string(),
        };
        let _ = write!(out, "consumers: see {readme}");
        // `--quiet` prints only errors: the summary is for people (`--json` is for programs).
        if !ctx.printer.quiet() {
            ctx.printer.data(&out);
        }
    }
    Ok(ExitStatus::Success)
}

/// Uploads the staged cache `dir` to `remote`, with a progress bar of bytes and rate.
fn upload(
    ctx: &Ctx,
    dir: &std::path::Path,
    remote: &forge_remote::Remote,
) -> Result<forge_spack::remote::Pushed, CliError> {
    let bar = if ctx.printer.live_progress() {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  uploading {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        );
        Some(b)
    } else {
        None
    };
    let pushed = forge_spack::remote::push(dir, remote, &|sent, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(sent);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    pushed.map_err(|e| {
        CliError::error(e.to_string()).with_hint(
            "nothing the index names is missing: run the export again to upload the rest",
        )
    })
}

/// `export --dry-run`: the specs an export of the requests would publish, from their plans.
fn dry_run(ctx: &Ctx, store: &forge_store::Store, a: &ExportArgs) -> Result<ExitStatus, CliError> {
    let Exportable { graph, roots, .. } =
        exportable(ctx, store, &a.requests, a.with_build_deps, false)?;
    let hashed = graph.hashed().map_err(CliError::failure)?;
    let closure = hashed.export_closure(&roots, a.with_build_deps);
    if a.json {
        let specs: Vec<serde_json::Value> = closure
            .iter()
            .map(|&id| {
                let n = graph.node(id);
                serde_json::json!({
                    "name": n.name,
                    "version": n.version,
                    "namespace": n.namespace,
                    "hash": hashed.dag_hash(id),
                    "spec": hashed.spec_document(id),
                })
            })
            .collect();
        ctx.printer.data(
            &serde_json::to_string_pretty(&serde_json::json!({ "specs": specs }))
                .expect("serializes"),
        );
    } else {
        for &id in &closure {
            let n = graph.node(id);
            ctx.printer.data(&format!(
                "{}@{} /{} ({})",
                n.name,
                n.version,
                &hashed.dag_hash(id)[..7],
                n.namespace
            ));
        }
        ctx.printer.info(&format!(
            "{} spec{} would be exported",
            closure.len(),
            if closure.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(ExitStatus::Success)
}

/// Plans `requests` and builds their export graph from the store; with `require_built`, every
/// node they need must be valid.
pub(super) fn exportable(
    ctx: &Ctx,
    store: &forge_store::Store,
    requests: &[String],
    with_build_deps: bool,
    require_built: bool,
) -> Result<Exportable, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let mut plans = Vec::with_capacity(requests.len());
    for request in requests {
        plans.push(plan_request(ctx, &set, &host, store, request)?);
    }
    let reqs: Vec<forge_spack::Request<'_>> = requests
        .iter()
        .zip(&plans)
        .map(|(name, (plan, roots))| forge_spack::Request {
            name,
            plan,
            roots: roots.clone(),
        })
        .collect();
    if require_built {
        forge_spack::exportable(store, &reqs, with_build_deps)
    } else {
        forge_spack::describe(store, &reqs)
    }
    .map_err(|e| crate::error::from_plan_export(e, store))
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
) -> Result<(forge_plan::Plan, Vec<petgraph::graph::NodeIndex>), CliError> {
    if !request.contains('/') {
        let plan = ctx.plan(set, host, request)?;
        let roots = plan.graph.roots();
        return Ok((plan, roots));
    }
    let path = fs_err::canonicalize(request).map_err(CliError::failure)?;
    let Some(name) = store.name_of(&path) else {
        return Err(CliError::failure(format!(
            "`{request}` is not a path of the store {}",
            store.paths_dir().display()
        )));
    };
    if !store.is_valid(&name).unwrap_or(false) {
        return Err(CliError::failure(format!(
            "`{}` is not a valid store path",
            path.display()
        )));
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
    Err(CliError::failure(format!(
        "no target of the recipes produces `{name}`: forge cannot tell which recipe, variants and dependencies made it"
    ))
    .with_hint(
        "export it by the target or spec that built it (`forge plan --all` lists the targets)",
    ))
}

pub(super) fn key(ctx: &Ctx, cmd: &KeyCommand) -> Result<ExitStatus, CliError> {
    let ring = Keyring::open(&ctx.keys)?;
    match cmd {
        KeyCommand::Generate { user_id } => {
            let k = ring.generate(user_id)?;
            ctx.printer.info(&format!(
                "generated {} for {user_id} in {}",
                k.fingerprint,
                ring.dir().display()
            ));
            ctx.printer.data(&k.fingerprint);
        }
        KeyCommand::Import { file } => {
            let keys = ring.import_file(file)?;
            for k in keys {
                ctx.printer.info(&format!(
                    "imported {} {}{}",
                    k.fingerprint,
                    k.user_ids.join(", "),
                    if k.has_secret { " (secret)" } else { "" }
                ));
            }
        }
        KeyCommand::Trust { file } => {
            for k in ring.trust_file(file)? {
                ctx.printer.info(&format!(
                    "trusting {} {}",
                    k.fingerprint,
                    k.user_ids.join(", ")
                ));
            }
        }
        KeyCommand::Export { fingerprint } => {
            let armored = ring.export_public(fingerprint)?;
            ctx.printer.data(&armored);
        }
        KeyCommand::List { json } => {
            let keys = ring.list()?;
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

pub(super) fn cache(ctx: &Ctx, cmd: &CacheCommand) -> Result<ExitStatus, CliError> {
    let (dir, unsigned, json) = match cmd {
        CacheCommand::Verify {
            dir,
            unsigned,
            json,
        } => (dir, unsigned, json),
        CacheCommand::List { url, json } => return cache_list(ctx, url, *json),
    };
    let ring = Keyring::open(&ctx.keys)?;
    let trusted = ring.trusted()?;
    let opts = forge_spack::VerifyOptions {
        require_signatures: !*unsigned,
    };
    // An S3 cache is copied whole into a temporary directory and verified there.
    let dir_text = dir.to_string_lossy().into_owned();
    let shown = dir_text.clone();
    let _pulled;
    let dir: &std::path::Path = if dir_text.starts_with("s3://") {
        let remote =
            forge_remote::Remote::parse(&dir_text).map_err(|e| CliError::error(e.to_string()))?;
        let tmp = tempfile::tempdir().map_err(|e| CliError::error(e.to_string()))?;
        let n = forge_spack::remote::pull_all(&remote, tmp.path(), ctx.fetch_options().max_bytes)
            .map_err(|e| CliError::error(e.to_string()))?;
        ctx.printer.info(&format!(
            "copied {n} objects of {} to verify them",
            remote.url()
        ));
        _pulled = tmp;
        _pulled.path()
    } else {
        dir
    };
    let report = forge_spack::verify_cache(dir, &trusted, &opts)?;
    if *json {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        ctx.printer.data(&serde_json::to_string_pretty(&serde_json::json!({"cache": shown, "manifests": report.manifests, "blobs": report.blobs, "signatures": report.signatures, "problems": problems, "notes": report.notes})).expect("serializes"));
    } else {
        for n in &report.notes {
            ctx.printer.info(&format!("note: {n}"));
        }
        for p in &report.problems {
            ctx.printer.error(&p.to_string());
        }
        if report.problems.is_empty() {
            ctx.printer.info(&format!(
                "{shown}: {} manifests, {} blobs, {} signatures good",
                report.manifests,
                report.blobs,
                report.signatures.values().sum::<usize>()
            ));
        } else {
            let e = CliError::failure(format!(
                "{} problem{} in {}",
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" },
                shown
            ));
            let unsigned = report
                .problems
                .iter()
                .any(|p| matches!(p, forge_spack::Problem::Unsigned { .. }));
            let untrusted = report
                .problems
                .iter()
                .any(|p| matches!(p, forge_spack::Problem::UntrustedSignature { .. }));
            let mut hints = Vec::new();
            if unsigned {
                hints.push(
                    "manifests are not signed: `--unsigned` checks everything else (re-export with `--sign` to sign them)".to_owned(),
                );
            }
            if untrusted {
                hints.push(format!(
                    "a signer is not trusted: trust the cache's key (under {shown}/v3/manifests/key/, or from its publisher) with `forge key trust FILE`"
                ));
            }
            return Err(if hints.is_empty() {
                e
            } else {
                hints.into_iter().fold(e, CliError::with_hint)
            });
        }
    }
    Ok(if report.problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// `forge cache list URL`: what a buildcache holds, from its index (any Spack v1.0 cache), with
/// each spec's signature state.
fn cache_list(ctx: &Ctx, url: &str, json: bool) -> Result<ExitStatus, CliError> {
    let remote = forge_remote::Remote::parse(url).map_err(|e| CliError::error(e.to_string()))?;
    let trusted = Keyring::open(&ctx.keys)?.trusted()?;
    let listing = forge_spack::list_cache(&remote, &trusted).map_err(CliError::error)?;
    if json {
        let specs: Vec<serde_json::Value> = listing
            .iter()
            .map(|e| serde_json::json!({"name": e.name, "version": e.version, "hash": e.hash, "target": e.target, "platform_os": e.platform_os, "in_buildcache": e.in_buildcache, "signature": e.signature}))
            .collect();
        ctx.printer.data(
            &serde_json::to_string_pretty(
                &serde_json::json!({"cache": remote.url(), "specs": specs}),
            )
            .expect("serializes"),
        );
        return Ok(ExitStatus::Success);
    }
    let mut out = String::new();
    for e in &listing {
        let _ = writeln!(
            out,
            "{:<24} {:<16} /{}  {:<12} {}",
            e.name,
            e.version,
            &e.hash[..7.min(e.hash.len())],
            e.target,
            if e.in_buildcache {
                e.signature.as_str()
            } else {
                "(not in this cache)"
            }
        );
    }
    let _ = write!(
        out,
        "{} specs in {} ({} with a tarball)",
        listing.len(),
        remote.url(),
        listing.iter().filter(|e| e.in_buildcache).count()
    );
    ctx.printer.data(&out);
    Ok(ExitStatus::Success)
}
