//! Exporting a closure of an [`ExportGraph`] into a buildcache directory.
//!
//! Order of work, which is what makes publishing crash-safe and all-or-nothing:
//! 1. validate the graph and hash it;
//! 2. for every package to export: stream its tarball into a temporary file while scanning it,
//!    check its relocation (refusing the whole export on a violation), move the tarball and the
//!    spec blob into `blobs/`. Nothing refers to these blobs yet;
//! 3. publish the public key: blob, key manifest, key index;
//! 4. write the spec manifests (clearsigned when a signer is given);
//! 5. rebuild the index from every spec manifest of the cache (so it always matches them,
//!    merging earlier exports), regenerate the stub recipe repository and the README;
//! 6. write the index blob, then, last, `index.manifest.json`.
//!
//! A package whose manifest already exists with intact blobs is not re-archived (its manifest is
//! re-signed only if it is not already signed by the signing key).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Read, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::buildinfo::BuildInfo;
use crate::cache::{CacheWriter, HashingWriter, TempFile};
use crate::cachefs::{Kind, MAX_LARGE, MAX_SMALL};
use crate::error::{ExportError, RelocationError, RelocationErrors, Violation};
use crate::graph::{ExportGraph, HashedGraph, NodeId, NodeKind};
use crate::gzip::{GzipOptions, ParallelGzip, gzip_bytes};
use crate::index::Index;
use crate::keys::{Signer, TrustedKeys};
use crate::manifest::{
    BlobRecord, MEDIA_INDEX, MEDIA_KEY, MEDIA_KEY_INDEX, MEDIA_SPEC, MEDIA_TARBALL, Manifest,
};
use crate::package::{PackageFiles, ScanSummary, write_package};
use crate::relocate::{CSTRING_TAIL_MARGIN, DEFAULT_MAX_CONSUMER_ROOT, FileClass, Ref, RefMatcher};
use crate::repo::{self, PackageMeta, REPO_DIR};

/// The `buildcache_layout_version` written into spec blobs (Spack writes 2 in v3 caches too).
pub const SPEC_BLOB_LAYOUT_VERSION: u64 = 2;

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Also export what the roots need only to build (`build` edges), e.g. a forge-built gcc.
    pub with_build_deps: bool,
    /// The longest consumer install-tree root the export must relocate into; see
    /// [`DEFAULT_MAX_CONSUMER_ROOT`].
    pub max_consumer_root: usize,
    /// Compression of the tarballs (level 6 by default, on every core).
    pub gzip: GzipOptions,
    /// Accept files that are neither ELF nor text but embed a store path (Spack leaves them as
    /// they are); each becomes a warning instead of a violation.
    pub allow_unrelocatable: bool,
    /// Descriptions, homepages and variant declarations for the stub recipes, by Spack package
    /// name (see [`PackageMeta`]).
    pub package_meta: BTreeMap<String, PackageMeta>,
    /// Re-archive packages whose manifests and blobs already exist.
    pub rebuild: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            with_build_deps: false,
            max_consumer_root: DEFAULT_MAX_CONSUMER_ROOT,
            gzip: GzipOptions::default(),
            allow_unrelocatable: false,
            package_meta: BTreeMap::new(),
            rebuild: false,
        }
    }
}

/// How many paths of a package Spack will relocate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelocationCounts {
    /// ELF files.
    pub binaries: usize,
    /// Text files.
    pub textfiles: usize,
    /// Symbolic links.
    pub links: usize,
}

/// One exported package.
#[derive(Debug, Clone)]
pub struct ExportedSpec {
    /// Spack name.
    pub name: String,
    /// Spack version.
    pub version: String,
    /// DAG hash.
    pub hash: String,
    /// The spec manifest, relative to the cache.
    pub manifest: PathBuf,
    /// The tarball blob.
    pub tarball: BlobRecord,
    /// The spec blob.
    pub spec: BlobRecord,
    /// Already in the cache: nothing was archived.
    pub reused: bool,
    /// Relocation lists (for archived packages).
    pub relocation: Option<RelocationCounts>,
    /// Regular files and their bytes (for archived packages).
    pub files: u64,
    /// Bytes of regular files.
    pub bytes: u64,
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The cache directory.
    pub cache: PathBuf,
    /// Every exported package, dependencies first.
    pub specs: Vec<ExportedSpec>,
    /// Fingerprint of the signing key.
    pub signed_by: Option<String>,
    /// Records in the index after the export.
    pub index_records: usize,
    /// Things worth telling the user (unrelocatable files accepted, unreadable manifests
    /// skipped while rebuilding the index).
    pub warnings: Vec<String>,
}

/// `v3/manifests/spec/<name>/<name>-<version>-<hash>.spec.manifest.json`.
pub fn spec_manifest_path(name: &str, version: &str, hash: &str) -> PathBuf {
    PathBuf::from(format!(
        "v3/manifests/spec/{name}/{name}-{version}-{hash}.spec.manifest.json"
    ))
}

/// `v3/forge/store/<store name>.json`: forge's pointer from a store name to its spec manifest.
pub fn store_pointer_path(store_name: &str) -> PathBuf {
    PathBuf::from(format!("v3/forge/store/{store_name}.json"))
}

/// What a store pointer says (`store-layout/spack-export.md`). Unsigned: a substituter trusts
/// only the signed manifest it leads to, and checks that the tarball is this store name's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePointer {
    /// `<hash>-<name>-<version>`.
    pub store_name: String,
    /// The spec manifest's path relative to the cache root.
    pub spec_manifest: String,
}

impl StorePointer {
    /// Compact JSON, keys in this order.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "store_name": self.store_name,
            "spec_manifest": self.spec_manifest,
        })
        .to_string()
    }

    /// Parses a pointer; the manifest path must be a plain path under `v3/manifests/spec/`.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no string `{k}`"))
        };
        let p = Self {
            store_name: field("store_name")?,
            spec_manifest: field("spec_manifest")?,
        };
        let plain = Path::new(&p.spec_manifest).components().all(|c| {
            matches!(c, std::path::Component::Normal(n) if !n.as_encoded_bytes().starts_with(b"."))
        });
        if !plain
            || !p.spec_manifest.starts_with("v3/manifests/spec/")
            || !p.spec_manifest.ends_with(".spec.manifest.json")
        {
            return Err(format!(
                "`spec_manifest` is not a spec manifest path: `{}`",
                p.spec_manifest
            ));
        }
        Ok(p)
    }
}

/// Relative path of the index manifest.
pub const INDEX_MANIFEST: &str = "v3/manifests/index/index.manifest.json";
/// Relative path of the key index manifest.
pub const KEYS_MANIFEST: &str = "v3/manifests/key/keys.manifest.json";

struct Staged {
    id: NodeId,
    rel: PathBuf,
    manifest: Manifest,
    existing: Option<String>,
    relocation: Option<RelocationCounts>,
    files: u64,
    bytes: u64,
}

/// Exports `roots` and their runtime closure (see [`ExportOptions::with_build_deps`]) into the
/// buildcache directory `cache_dir` (created if needed, merged if it exists), signing the spec
/// manifests with `signer`.
pub fn export(
    graph: &ExportGraph,
    roots: &[NodeId],
    cache_dir: &Path,
    signer: Option<&Signer>,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let hashed = graph.hashed()?;
    for r in roots {
        if !graph.node(*r).is_built() {
            return Err(ExportError::RootIsExternal {
                node: graph.node(*r).label(),
            });
        }
    }
    let closure = hashed.export_closure(roots, opts.with_build_deps);
    let cache = CacheWriter::open(cache_dir)?;
    let store_root = graph
        .store_root()
        .to_str()
        .expect("validated: the store root of a hashed graph is UTF-8")
        .trim_end_matches('/')
        .to_string();
    let prefixes: Vec<(String, NodeId)> = graph
        .ids()
        .filter_map(|i| {
            graph
                .node(i)
                .prefix()
                .and_then(|p| p.to_str())
                .map(|p| (p.to_string(), i))
        })
        .collect();
    let sbang = graph.sbang().display().to_string();
    let store_dir = graph.store_dir().and_then(|d| d.to_str());
    let matcher = RefMatcher::new(&store_root, store_dir, &sbang, &prefixes);
    let mut findings = Findings::default();

    // Blobs.
    let mut staged = Vec::new();
    let mut refused = Vec::new();
    for &id in &closure {
        let node = graph.node(id);
        let hash = hashed.dag_hash(id).to_string();
        let rel = spec_manifest_path(&node.name, &node.version, &hash);
        if !opts.rebuild
            && let Some(text) = cache.read_opt(&rel, MAX_SMALL).ok().flatten()
            && let Ok(text) = String::from_utf8(text)
            && let Ok(m) = Manifest::parse(&text)
            && [MEDIA_TARBALL, MEDIA_SPEC]
                .iter()
                .all(|t| m.record(t).is_some_and(|r| cache.blob_intact(r)))
        {
            staged.push(Staged {
                id,
                rel,
                manifest: m,
                existing: Some(text),
                relocation: None,
                files: 0,
                bytes: 0,
            });
            continue;
        }
        if !refused.is_empty() {
            // Already refused: only look for this package's problems too, writing nothing,
            // so that one run lists every package to fix.
            match check_package(&hashed, id, &matcher, &store_root, opts, &mut findings) {
                Err(ExportError::Relocation(mut e)) => refused.append(&mut e.packages),
                r => r?,
            }
            continue;
        }
        let (manifest, counts, files, bytes) = match archive(
            &hashed,
            id,
            &cache,
            &matcher,
            &store_root,
            opts,
            &mut findings,
        ) {
            Err(ExportError::Relocation(mut e)) => {
                refused.append(&mut e.packages);
                continue;
            }
            r => r?,
        };
        staged.push(Staged {
            id,
            rel,
            manifest,
            existing: None,
            relocation: Some(counts),
            files,
            bytes,
        });
    }

    if !refused.is_empty() {
        return Err(RelocationErrors { packages: refused }.into());
    }
    let mut warnings = findings.warnings;
    for (dep, (packages, files)) in findings.unloaded_only {
        warnings.push(format!(
            "build-only `{dep}` is named only in sections not loaded at run time (debug information) by {files} ELF file(s) of {packages} package(s); Spack maps the path to its own store root, where it names nothing"
        ));
    }

    // The key, before the manifests it signs: a reader never finds a manifest signed by a key
    // the cache does not publish.
    if let Some(k) = signer {
        publish_key(&cache, k)?;
    }

    // Manifests.
    let own_key = match signer {
        Some(s) => {
            let mut t = TrustedKeys::new();
            t.add(s.public_key_armored()?.as_bytes())?;
            Some(t)
        }
        None => None,
    };
    for s in &staged {
        let keep = match (&s.existing, &own_key) {
            (Some(_), None) => true,
            (Some(text), Some(keys)) => keys.verify_clearsigned(text).is_ok(),
            (None, _) => false,
        };
        if keep {
            continue;
        }
        let text = s.manifest.to_text();
        let text = match signer {
            Some(k) => k.clearsign(&text)?,
            None => text,
        };
        cache.write_atomic(&s.rel, text.as_bytes())?;
    }

    // forge's pointers from store names to the manifests just written (substitution's key),
    // after them: a pointer never names a manifest that is not there yet.
    for s in &staged {
        if let Some(name) = graph.node(s.id).prefix().and_then(|p| p.file_name()) {
            let name = name.to_string_lossy();
            let pointer = StorePointer {
                store_name: name.to_string(),
                spec_manifest: s.rel.to_string_lossy().into_owned(),
            };
            cache.write_atomic(&store_pointer_path(&name), pointer.to_json().as_bytes())?;
        }
    }

    // Index, recipes, README, and last the index manifest.
    let (index, unsigned) = rebuild_index(&cache, &mut warnings)?;
    write_repo(&cache, &index, &opts.package_meta)?;
    // Signed when every spec manifest is: Spack's signature check refuses an unsigned one,
    // so an unsigned export merged into a signed cache makes the whole cache need
    // `--unsigned` (the README then says so).
    let key_published = signer.is_some()
        || cache
            .list(Path::new("v3/manifests/key"))?
            .iter()
            .any(|(n, _)| n.to_string_lossy().ends_with(".key.manifest.json"));
    if key_published && unsigned > 0 {
        warnings.push(format!(
            "{unsigned} spec manifest(s) in the cache are not signed: Spack's signature check \
             refuses them, so the cache's README now tells sites to add it with `--unsigned`; \
             export them again with a signing key to make the whole cache signed"
        ));
    }
    let signed = key_published && unsigned == 0;
    cache.write_atomic(
        Path::new("README.md"),
        repo::readme(&index, signed).as_bytes(),
    )?;
    let (rec, _) = cache.put_blob(&index.to_bytes(), MEDIA_INDEX, "none")?;
    cache.write_atomic(
        Path::new(INDEX_MANIFEST),
        Manifest { data: vec![rec] }.to_text().as_bytes(),
    )?;

    let specs = staged
        .into_iter()
        .map(|s| {
            let node = graph.node(s.id);
            ExportedSpec {
                name: node.name.clone(),
                version: node.version.clone(),
                hash: hashed.dag_hash(s.id).to_string(),
                tarball: s.manifest.record(MEDIA_TARBALL).cloned().expect("staged"),
                spec: s.manifest.record(MEDIA_SPEC).cloned().expect("staged"),
                manifest: s.rel,
                reused: s.existing.is_some(),
                relocation: s.relocation,
                files: s.files,
                bytes: s.bytes,
            }
        })
        .collect();
    Ok(ExportReport {
        cache: cache.root().to_path_buf(),
        specs,
        signed_by: signer.map(Signer::fingerprint),
        index_records: index.records.len(),
        warnings,
    })
}

/// The spec document of a node as its blob holds it (with `buildcache_layout_version`).
pub fn spec_blob_json(hashed: &HashedGraph<'_>, id: NodeId) -> String {
    let mut doc = hashed.spec_document(id);
    if let Value::Object(m) = &mut doc {
        m.insert(
            "buildcache_layout_version".into(),
            json!(SPEC_BLOB_LAYOUT_VERSION),
        );
    }
    forge_core::json::python_compact(&doc)
}

fn gzip_log(
    cache: &CacheWriter,
    log: Option<&Path>,
    gzip: GzipOptions,
) -> Result<TempFile, ExportError> {
    let mut t = cache.temp_file("log")?;
    match gzip_log_into(&mut t.file, log, gzip) {
        Ok(()) => Ok(t),
        Err(e) => {
            cache.remove_temp(t);
            Err(e)
        }
    }
}

/// Writes the gzip'd build log into `out` and rewinds it.
fn gzip_log_into(
    out: &mut fs_err::File,
    log: Option<&Path>,
    gzip: GzipOptions,
) -> Result<(), ExportError> {
    let Some(p) = log else {
        let mut gz = ParallelGzip::new(BufWriter::new(&mut *out), gzip)?;
        gz.write_all(b"forge: no build log was recorded for this package\n")?;
        gz.finish()?.flush()?;
        out.seek(SeekFrom::Start(0))?;
        return Ok(());
    };
    let mut magic = [0u8; 4];
    let n = fs_err::File::open(p)?.read(&mut magic)?;
    let f = fs_err::File::open(p)?;
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        // Already gzip'd: shipped as it is.
        let mut w = BufWriter::new(&mut *out);
        std::io::copy(&mut std::io::BufReader::new(f), &mut w)?;
        w.flush()?;
    } else {
        // forge's store keeps logs zstd-compressed.
        let mut reader: Box<dyn Read> = if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(zstd::stream::read::Decoder::new(f)?)
        } else {
            Box::new(f)
        };
        let mut gz = ParallelGzip::new(BufWriter::new(&mut *out), gzip)?;
        std::io::copy(&mut reader, &mut gz)?;
        gz.finish()?.flush()?;
    }
    out.seek(SeekFrom::Start(0))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn archive(
    hashed: &HashedGraph<'_>,
    id: NodeId,
    cache: &CacheWriter,
    matcher: &RefMatcher,
    store_root: &str,
    opts: &ExportOptions,
    findings: &mut Findings,
) -> Result<(Manifest, RelocationCounts, u64, u64), ExportError> {
    let graph = hashed.graph();
    let node = graph.node(id);
    let NodeKind::Built { prefix, build_log } = &node.kind else {
        unreachable!("only built nodes are archived")
    };
    let doc = hashed.spec_document(id);
    let prefix_spec = forge_core::json::python_compact(&doc);
    let spec_gz = gzip_bytes(spec_blob_json(hashed, id).as_bytes(), 6)?;
    let log_gz = gzip_log(cache, build_log.as_deref(), opts.gzip)?;

    let tar_tmp = match cache.temp_file("tarball") {
        Ok(t) => t,
        Err(e) => {
            cache.remove_temp(log_gz);
            return Err(e.into());
        }
    };
    let TempFile { file, .. } = &tar_tmp;
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let gz = ParallelGzip::new(out, opts.gzip)?;
    let files = PackageFiles {
        prefix,
        spec_json: prefix_spec.as_bytes(),
        build_log_gz: &log_gz.file,
    };
    let mut counts = RelocationCounts::default();
    let mut totals = (0, 0);
    let result = write_package(gz, &files, matcher, |summary| {
        totals = (summary.file_count, summary.byte_count);
        let info = build_info(hashed, id, summary, store_root, opts, findings)?;
        counts = RelocationCounts {
            binaries: info.relocate_binaries.len(),
            textfiles: info.relocate_textfiles.len(),
            links: info.relocate_links.len(),
        };
        Ok(info.to_yaml().into_bytes())
    });
    let finished = result.and_then(|gz| Ok(gz.finish()?)).and_then(|hw| {
        let (bufw, sha, len) = hw.finish();
        let file = bufw.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((sha, len))
    });
    cache.remove_temp(log_gz);
    let (sha, len) = match finished {
        Ok(r) => r,
        Err(e) => {
            cache.remove_temp(tar_tmp);
            return Err(e);
        }
    };
    cache.commit_blob(tar_tmp, &sha, len)?;
    let tarball = BlobRecord::sha256(MEDIA_TARBALL, "gzip", sha, len);
    let (spec, _) = cache.put_blob(&spec_gz, MEDIA_SPEC, "gzip")?;
    Ok((
        Manifest {
            data: vec![tarball, spec],
        },
        counts,
        totals.0,
        totals.1,
    ))
}

/// What the relocation checks of an export noticed without refusing it.
#[derive(Debug, Default)]
struct Findings {
    warnings: Vec<String>,
    /// Build-only packages named only in unloaded ELF sections → (packages, files).
    unloaded_only: BTreeMap<String, (usize, usize)>,
}

/// Scans a prefix as [`archive`] does and checks it, writing nothing.
fn check_package(
    hashed: &HashedGraph<'_>,
    id: NodeId,
    matcher: &RefMatcher,
    store_root: &str,
    opts: &ExportOptions,
    findings: &mut Findings,
) -> Result<(), ExportError> {
    let NodeKind::Built { prefix, .. } = &hashed.graph().node(id).kind else {
        unreachable!("only built nodes are archived")
    };
    let no_log = fs_err::File::open("/dev/null")?;
    let files = PackageFiles {
        prefix,
        spec_json: b"",
        build_log_gz: &no_log,
    };
    write_package(std::io::sink(), &files, matcher, |summary| {
        build_info(hashed, id, summary, store_root, opts, findings)?;
        Ok(Vec::new())
    })?;
    Ok(())
}

/// Turns a scan into `binary_distribution`, or the violations that forbid it.
fn build_info(
    hashed: &HashedGraph<'_>,
    id: NodeId,
    summary: &ScanSummary,
    store_root: &str,
    opts: &ExportOptions,
    findings: &mut Findings,
) -> Result<BuildInfo, ExportError> {
    let graph = hashed.graph();
    let node = graph.node(id);
    let prefix = node.prefix().expect("built node");
    let reloc: BTreeSet<NodeId> = hashed.relocation_set(id).into_iter().collect();
    let mut violations = summary.violations.clone();
    let mut info = BuildInfo {
        buildpath: store_root.to_string(),
        relative_prefix: prefix
            .strip_prefix(store_root)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        hardlinks_deduped: true,
        ..BuildInfo::default()
    };
    let sbang = graph.sbang().display().to_string();
    let mut uses_sbang = summary.long_shebang;

    // The length a consumer prefix of node `n` can reach, plus the C-string tail margin.
    let needed_for = |n: NodeId| -> usize {
        let nd = graph.node(n);
        opts.max_consumer_root
            + 1
            + nd.arch.platform.len()
            + 1
            + nd.arch.target.name().len()
            + 1
            + nd.name.len()
            + 1
            + nd.version.len()
            + 1
            + 32
            + CSTRING_TAIL_MARGIN
    };
    let path_of = |n: NodeId| -> String {
        graph
            .node(n)
            .prefix()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    // Build-only prefixes named only where the running program never looks (debug
    // information): Spack's fallback maps the store root to its own, so the path then names
    // nothing, as the build-stage paths in its own binaries do. Allowed, and reported.
    let mut unloaded_only: BTreeMap<NodeId, usize> = BTreeMap::new();
    // Checks one reference; `unloaded` are the prefixes the file names only in sections that
    // are not loaded at run time.
    let mut check = |file: &str,
                     r: &Ref,
                     binary: bool,
                     unloaded: &BTreeSet<NodeId>,
                     violations: &mut Vec<Violation>| {
        let file_p = PathBuf::from(file);
        let root_needed = opts.max_consumer_root + CSTRING_TAIL_MARGIN;
        let (path, len, needed) = match r {
            Ref::Node(n) if reloc.contains(n) => {
                let p = path_of(*n);
                (p.clone(), p.len(), needed_for(*n))
            }
            Ref::Node(n) if unloaded.contains(n) => {
                *unloaded_only.entry(*n).or_default() += 1;
                (store_root.to_string(), store_root.len(), root_needed)
            }
            Ref::Node(n) => {
                violations.push(Violation::NotADependency {
                    file: file_p,
                    package: graph.node(*n).label(),
                    path: path_of(*n),
                });
                return;
            }
            Ref::Root => (store_root.to_string(), store_root.len(), root_needed),
            Ref::Sbang => {
                uses_sbang = true;
                (
                    sbang.clone(),
                    sbang.len(),
                    opts.max_consumer_root + "/bin/sbang".len() + CSTRING_TAIL_MARGIN,
                )
            }
            Ref::Unknown(p) => {
                violations.push(Violation::UnexportedStorePath {
                    file: file_p,
                    path: p.clone(),
                });
                return;
            }
        };
        if binary && len < needed {
            violations.push(Violation::PrefixTooShort {
                file: file_p,
                path,
                len,
                needed,
            });
        }
    };

    for f in &summary.files {
        let (file, class, refs) = (&f.path, &f.class, &f.refs);
        let binary = matches!(class, FileClass::Elf | FileClass::Binary);
        for r in refs {
            check(file, r, binary, &f.unloaded, &mut violations);
        }
        match class {
            FileClass::Elf => info.relocate_binaries.push(file.clone()),
            FileClass::Text => info.relocate_textfiles.push(file.clone()),
            FileClass::Binary => {
                let path = refs
                    .iter()
                    .map(|r| match r {
                        Ref::Node(n) => path_of(*n),
                        Ref::Unknown(p) => p.clone(),
                        Ref::Root => store_root.to_string(),
                        Ref::Sbang => sbang.clone(),
                    })
                    .next()
                    .unwrap_or_default();
                if opts.allow_unrelocatable {
                    findings.warnings.push(format!(
                        "{}: `{file}` embeds `{path}` but is neither ELF nor text; Spack leaves it unrelocated",
                        node.label()
                    ));
                } else {
                    violations.push(Violation::Unrelocatable {
                        file: PathBuf::from(file),
                        path,
                    });
                }
            }
        }
    }
    for (file, r) in &summary.links {
        check(file, r, false, &BTreeSet::new(), &mut violations);
        info.relocate_links.push(file.clone());
    }
    if !violations.is_empty() {
        return Err(RelocationErrors::from(RelocationError {
            package: node.label(),
            prefix: prefix.to_path_buf(),
            violations,
        })
        .into());
    }
    // Counted only for a package the export accepts.
    for (n, files) in unloaded_only {
        let e = findings
            .unloaded_only
            .entry(graph.node(n).label())
            .or_default();
        e.0 += 1;
        e.1 += files;
    }
    for n in &reloc {
        info.hash_to_prefix
            .insert(hashed.dag_hash(*n).to_string(), path_of(*n));
    }
    if uses_sbang {
        info.sbang_install_path = Some(sbang);
    }
    info.relocate_binaries.sort();
    info.relocate_textfiles.sort();
    info.relocate_links.sort();
    Ok(info)
}

fn read_blob(cache: &CacheWriter, rec: &BlobRecord) -> Option<Vec<u8>> {
    let rel = rec.relative_path()?;
    let data = cache.read_opt(Path::new(&rel), MAX_LARGE).ok()??;
    (crate::cache::sha256_hex(&data) == rec.checksum).then_some(data)
}

fn publish_key(cache: &CacheWriter, signer: &Signer) -> Result<(), ExportError> {
    let fpr = signer.fingerprint();
    let armored = signer.public_key_armored()?;
    let (rec, _) = cache.put_blob(armored.as_bytes(), MEDIA_KEY, "none")?;
    cache.write_atomic(
        &PathBuf::from(format!("v3/manifests/key/{fpr}.key.manifest.json")),
        Manifest { data: vec![rec] }.to_text().as_bytes(),
    )?;
    // The key index lists every key manifest present.
    let mut fprs = BTreeSet::new();
    for (name, _) in cache.list(Path::new("v3/manifests/key"))? {
        if let Some(f) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".key.manifest.json"))
        {
            fprs.insert(f.to_string());
        }
    }
    let mut keys = serde_json::Map::new();
    for f in fprs {
        keys.insert(f, json!({}));
    }
    let blob = forge_core::json::python_compact(&json!({"keys": Value::Object(keys)}));
    let (rec, _) = cache.put_blob(blob.as_bytes(), MEDIA_KEY_INDEX, "none")?;
    cache.write_atomic(
        Path::new(KEYS_MANIFEST),
        Manifest { data: vec![rec] }.to_text().as_bytes(),
    )?;
    Ok(())
}

/// Every `*.spec.manifest.json` below `v3/manifests/spec/`, relative to the cache, sorted.
fn spec_manifests(cache: &CacheWriter) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let dir = Path::new("v3/manifests/spec");
    for (pkg, kind) in cache.list(dir)? {
        if kind != Kind::Dir {
            continue;
        }
        for (name, _) in cache.list(&dir.join(&pkg))? {
            if name
                .to_str()
                .is_some_and(|n| n.ends_with(".spec.manifest.json"))
            {
                out.push(dir.join(&pkg).join(name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes a spec blob (gzip'd or not) into its JSON document.
pub(crate) fn decode_spec_blob(data: &[u8]) -> Result<Value, String> {
    let text = if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .take(MAX_LARGE + 1)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        if out.len() as u64 > MAX_LARGE {
            return Err(format!(
                "the spec document is larger than {} MiB",
                MAX_LARGE >> 20
            ));
        }
        out
    } else {
        data.to_vec()
    };
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

/// The index of everything the cache's spec manifests describe (Spack's `update-index`).
/// The index of every spec manifest in the cache, and how many of them are not clearsigned.
fn rebuild_index(
    cache: &CacheWriter,
    warnings: &mut Vec<String>,
) -> Result<(Index, usize), ExportError> {
    let mut index = Index::default();
    let mut unsigned = 0;
    for path in spec_manifests(cache)? {
        let shown = path.display().to_string();
        let nodes = cache
            .read_opt(&path, MAX_SMALL)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .inspect(|text| unsigned += usize::from(!crate::manifest::is_clearsigned(text)))
            .and_then(|text| Manifest::parse(&text).ok())
            .and_then(|m| m.record(MEDIA_SPEC).cloned())
            .and_then(|r| read_blob(cache, &r))
            .and_then(|b| decode_spec_blob(&b).ok())
            .and_then(|doc| {
                doc.pointer("/spec/nodes")
                    .and_then(Value::as_array)
                    .cloned()
            });
        let Some(nodes) = nodes else {
            warnings.push(format!(
                "skipped `{shown}` in the index: unreadable manifest or spec"
            ));
            continue;
        };
        for (i, n) in nodes.iter().enumerate() {
            let Some(obj) = n.as_object() else { continue };
            let Some(hash) = obj.get("hash").and_then(Value::as_str) else {
                continue;
            };
            index.insert(hash, obj.clone(), i == 0);
        }
    }
    Ok((index, unsigned))
}

fn write_repo(
    cache: &CacheWriter,
    index: &Index,
    meta: &BTreeMap<String, PackageMeta>,
) -> Result<(), ExportError> {
    let files = repo::generate(index, meta);
    let wanted: BTreeSet<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    for (rel, content) in &files {
        // Anything unreadable (or not a regular file) is simply replaced.
        let current = cache.read_opt(rel, MAX_SMALL).ok().flatten();
        if current.as_deref() != Some(content.as_bytes()) {
            cache.write_atomic(rel, content.as_bytes())?;
        }
    }
    // Stub packages no longer in the cache.
    let base = Path::new(REPO_DIR).join("spack_repo");
    for (ns, kind) in cache.list(&base)? {
        if kind != Kind::Dir {
            continue;
        }
        let pkgs = base.join(ns).join("packages");
        for (p, kind) in cache.list(&pkgs)? {
            let dir = pkgs.join(p);
            if kind == Kind::Dir && !wanted.contains(&dir.join("package.py")) {
                cache.remove_tree(&dir)?;
            }
        }
    }
    Ok(())
}
