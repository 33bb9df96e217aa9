//! `forge plan`: the DAG of a target or spec as a tree, or as JSON.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use forge_plan::Plan;
use forge_recipe::VariantValue;
use forge_resolve::{EdgeRole, Origin, Request, SystemHost};
use petgraph::graph::NodeIndex;

use crate::ExitStatus;
use crate::args::PlanArgs;
use crate::context::Ctx;
use crate::error::CliError;

pub(super) fn run(ctx: &Ctx, a: &PlanArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load()?;
    let host = ctx.host();
    let mode = super::lock::Mode::from_flags(a.lock, a.locked);
    if a.all {
        return all(ctx, &set, &host, a.json, mode);
    }
    let request = a
        .request
        .as_deref()
        .expect("clap requires it without --all");
    let plan = ctx.plan(&set, &host, request)?;
    super::lock::apply(ctx, &set, request, &plan, mode)?;
    if a.json {
        ctx.printer.data(
            &serde_json::to_string_pretty(&plan_json(&plan, &ctx.paths_dir())).expect("serializes"),
        );
    } else {
        // Which nodes the store already holds (none when there is no store yet).
        let valid: BTreeSet<String> = ctx
            .open_store_read_only()
            .ok()
            .and_then(|st| {
                let names = forge_realize::store_names(&plan);
                st.valid_subset(names.iter().map(|n| n.as_str()))
                    .ok()
                    .map(|v| v.into_iter().map(|n| n.to_string()).collect())
            })
            .unwrap_or_default();
        ctx.printer
            .data(&tree(&plan, &ctx.paths_dir(), &valid, a.paths));
    }
    Ok(ExitStatus::Success)
}

fn all(
    ctx: &Ctx,
    set: &forge_recipe::RecipeSet,
    host: &SystemHost,
    json: bool,
    mode: super::lock::Mode,
) -> Result<ExitStatus, CliError> {
    let mut rows = Vec::new();
    let mut failed = 0;
    let requests: Vec<Request> = set
        .targets
        .iter()
        .map(|t| Request::for_target(set, t))
        .collect();
    let results = forge_plan::Planner::new(set).resolve_and_plan_all(host, &requests);
    let mut lock = super::lock::Session::open(ctx, mode)?;
    for (t, result) in set.targets.iter().zip(results) {
        match result {
            Ok(plan) => {
                lock.apply(set, &t.name.value, &plan)?;
                rows.push(serde_json::json!({
                    "name": t.name.value,
                    "status": "ok",
                    "nodes": plan.graph.len(),
                    "root": plan.root().store_name(),
                }));
            }
            Err(d) => {
                let status = if d.code_str() == "resolve::conflict" {
                    "conflict"
                } else {
                    "error"
                };
                if status == "error" {
                    failed += 1;
                    if !json {
                        ctx.printer.diag(&d);
                    }
                }
                rows.push(serde_json::json!({
                    "name": t.name.value,
                    "status": status,
                    "message": d.message(),
                }));
            }
        }
    }
    lock.finish(ctx)?;
    if json {
        ctx.printer.data(
            &serde_json::to_string_pretty(&serde_json::json!({ "targets": rows }))
                .expect("serializes"),
        );
    } else {
        let mut out = String::new();
        let width = set
            .targets
            .iter()
            .map(|t| t.name.value.len())
            .max()
            .unwrap_or(0);
        for r in &rows {
            let name = r["name"].as_str().unwrap_or_default();
            match r["status"].as_str() {
                Some("ok") => {
                    let _ = writeln!(
                        out,
                        "{name:width$}  {:>3} nodes  {}",
                        r["nodes"],
                        r["root"].as_str().unwrap_or_default()
                    );
                }
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{name:width$}  {s}: {}",
                        r["message"].as_str().unwrap_or_default()
                    );
                }
                None => {}
            }
        }
        ctx.printer.data(&out);
    }
    Ok(if failed > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn variants_text(v: &std::collections::BTreeMap<String, VariantValue>) -> String {
    v.iter()
        .map(|(k, x)| match x {
            VariantValue::Bool(true) => format!("+{k}"),
            VariantValue::Bool(false) => format!("~{k}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plan as a tree: each node once in full, later occurrences referring back. Each line
/// starts with `[+]` when the store holds the node, ` - ` when it is to be built (as `spack
/// spec -I` marks installs); `paths` adds each node's store path under it.
pub(super) fn tree(plan: &Plan, store: &Path, valid: &BTreeSet<String>, paths: bool) -> String {
    let g = &plan.graph;
    let mut out = String::new();
    let built = g
        .topo()
        .filter(|i| valid.contains(plan.drv(*i).store_name().as_str()))
        .count();
    let _ = writeln!(
        out,
        "{}  ({} nodes, {built} in the store, target {})",
        g.name,
        g.len(),
        g.arch
    );
    let mut seen = BTreeSet::new();
    let t = Tree {
        plan,
        store,
        valid,
        paths,
    };
    // The root, then each extra root as a tree of its own (shared nodes refer back).
    for r in g.roots() {
        t.line(r, "", "", None, &mut seen, &mut out);
    }
    out
}

struct Tree<'a> {
    plan: &'a Plan,
    store: &'a Path,
    valid: &'a BTreeSet<String>,
    paths: bool,
}

impl Tree<'_> {
    fn line(
        &self,
        i: NodeIndex,
        first: &str,
        rest: &str,
        edge: Option<String>,
        seen: &mut BTreeSet<NodeIndex>,
        out: &mut String,
    ) {
        let g = &self.plan.graph;
        let n = g.node(i);
        let drv = self.plan.drv(i);
        let mark = if self.valid.contains(drv.store_name().as_str()) {
            "[+] "
        } else {
            " -  "
        };
        let mut head = format!("{}@{}", n.name(), n.version);
        // A host tool has no variants: the recipe's say how forge would build it, not what
        // the machine's tool is (the host gcc need not have the `fortran` of its defaults).
        let vars = match n.origin {
            Origin::Host(_) => String::new(),
            Origin::Build => variants_text(&n.variants),
        };
        if !vars.is_empty() {
            head.push(' ');
            head.push_str(&vars);
        }
        let how = match (&n.origin, &n.toolchain) {
            (Origin::Host(t), _) => format!("host {}", t.executables[0].1.display()),
            (Origin::Build, Some(t)) => format!("{}@{}", t.name, t.compiler_version),
            (Origin::Build, None) => "not compiled".to_owned(),
        };
        let edge = edge.map(|e| format!("{e}: ")).unwrap_or_default();
        let hash = drv.hash.to_string();
        if !seen.insert(i) {
            let _ = writeln!(out, "{mark}{first}{edge}{head}  (see above)");
            return;
        }
        let _ = writeln!(out, "{mark}{first}{edge}{head}  /{}  [{how}]", &hash[..7]);
        let deps = g.deps(i);
        if self.paths {
            let bar = if deps.is_empty() { "    " } else { "│   " };
            let _ = writeln!(
                out,
                "    {rest}{bar}{}",
                drv.store_path(self.store).display()
            );
        }
        for (k, (d, e)) in deps.iter().enumerate() {
            let last = k + 1 == deps.len();
            let (f, r) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let role = match e.role {
                EdgeRole::Declared => e.types.to_string(),
                EdgeRole::Compiler => "compiler".to_owned(),
                EdgeRole::Runtime => "runtime".to_owned(),
            };
            let role = if e.virtuals.is_empty() || e.role == EdgeRole::Compiler {
                role
            } else {
                format!("{role} ({})", e.virtuals.join(","))
            };
            self.line(
                *d,
                &format!("{rest}{f}"),
                &format!("{rest}{r}"),
                Some(role),
                seen,
                out,
            );
        }
    }
}

static EMPTY: std::collections::BTreeMap<String, VariantValue> = std::collections::BTreeMap::new();

/// The plan as JSON: every node with its derivation hash, store path and edges (a host tool
/// without variants, as in the tree).
pub(super) fn plan_json(plan: &Plan, store: &Path) -> serde_json::Value {
    let g = &plan.graph;
    let nodes: Vec<serde_json::Value> = g
        .topo()
        .map(|i| {
            let n = g.node(i);
            let d = plan.drv(i);
            serde_json::json!({
                "name": n.name(),
                "version": n.version.to_string(),
                "variants": match n.origin { Origin::Host(_) => &EMPTY, Origin::Build => &n.variants },
                "context": n.key.context.to_string(),
                "origin": match &n.origin { Origin::Build => "build", Origin::Host(_) => "host" },
                "hash": d.hash.to_string(),
                "store_path": d.store_path(store),
                "sources": d.inputs.sources.iter().zip(&d.fetch).map(|(s, f)| serde_json::json!({
                    "name": s.name,
                    "sha256": s.sha256,
                    "urls": f.urls,
                    "path": f.path,
                })).collect::<Vec<_>>(),
                "toolchain": n.toolchain.as_ref().map(|t| serde_json::json!({
                    "name": t.name, "compiler": t.compiler, "compiler_version": t.compiler_version.to_string(),
                    "arch": t.arch, "flags": t.arch_flags,
                })),
                "deps": g.deps(i).into_iter().map(|(x, e)| serde_json::json!({
                    "name": g.node(x).name(),
                    "hash": plan.drv(x).hash.to_string(),
                    "types": e.types.names(),
                    "role": format!("{:?}", e.role).to_lowercase(),
                    "virtuals": e.virtuals,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "name": g.name,
        "arch": g.arch,
        "root": plan.root().hash.to_string(),
        "extra_roots": g.extra_roots.iter().map(|r| plan.drv(*r).hash.to_string()).collect::<Vec<_>>(),
        "nodes": nodes,
    })
}
