//! `forge list` and `forge info PKG`: what the recipe set holds, like `spack list` and
//! `spack info`.

use std::fmt::Write as _;

use forge_recipe::model::{Recipe, SourceDecl, VariantKind};

use crate::ExitStatus;
use crate::args::{InfoArgs, ListArgs};
use crate::context::Ctx;
use crate::error::CliError;

fn versions(r: &Recipe) -> Vec<String> {
    r.versions
        .iter()
        .map(|v| v.version.value.to_string())
        .collect()
}

pub(super) fn list(ctx: &Ctx, a: &ListArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load_strict()?;
    let pkgs: Vec<&Recipe> = set
        .packages
        .values()
        .filter(|r| {
            a.filter
                .as_ref()
                .is_none_or(|f| r.name.value.contains(f.as_str()))
        })
        .collect();
    if a.json {
        let v: Vec<serde_json::Value> = pkgs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name.value,
                    "versions": versions(r),
                    "description": r.meta.description,
                })
            })
            .collect();
        ctx.printer
            .data(&serde_json::to_string_pretty(&v).expect("serializes"));
        return Ok(ExitStatus::Success);
    }
    if pkgs.is_empty() {
        ctx.printer.info("no package matches");
        return Ok(ExitStatus::Success);
    }
    let width = pkgs.iter().map(|r| r.name.value.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in &pkgs {
        let _ = writeln!(
            out,
            "{:width$}  {:<24}  {}",
            r.name.value,
            versions(r).join(" "),
            r.meta.description.as_deref().unwrap_or("")
        );
    }
    ctx.printer.data(out.trim_end());
    ctx.printer.info(&format!(
        "{}; `forge info PKG` shows one",
        crate::printer::counted(pkgs.len(), "package")
    ));
    Ok(ExitStatus::Success)
}

pub(super) fn info(ctx: &Ctx, a: &InfoArgs) -> Result<ExitStatus, CliError> {
    let set = ctx.load_strict()?;
    let Some(r) = set.packages.get(&a.package) else {
        let e = CliError::error(format!("no package is called `{}`", a.package));
        return Err(
            match forge_recipe::diag::did_you_mean(
                &a.package,
                set.packages.keys().map(String::as_str),
            ) {
                Some(s) => e.with_hint(format!("did you mean `{s}`?")),
                None => e.with_hint("`forge list` lists the packages"),
            },
        );
    };
    let targets: Vec<&str> = set
        .targets
        .iter()
        .filter(|t| {
            crate::context::Ctx::plan_quietly(&set, &ctx.host(), &t.name.value)
                .is_some_and(|p| p.graph.topo().any(|i| p.graph.node(i).name() == a.package))
        })
        .map(|t| t.name.value.as_str())
        .collect();
    let file = set.sources.get(r.file).name.clone();
    let version_rows: Vec<serde_json::Value> = r
        .versions
        .iter()
        .map(|v| {
            let (kind, sha) = match &v.source {
                SourceDecl::Remote { sha256, .. } => ("url", Some(sha256.value.to_string())),
                SourceDecl::Mirrored { sha256, .. } => {
                    ("mirror-only", Some(sha256.value.to_string()))
                }
                SourceDecl::Local { .. } => ("local", None),
            };
            serde_json::json!({
                "version": v.version.value.to_string(),
                "source": kind,
                "sha256": sha,
                "preferred": v.preferred,
                "deprecated": v.deprecated,
                "note": v.note,
            })
        })
        .collect();
    let variant = |k: &VariantKind| match k {
        VariantKind::Bool { default } => (if *default { "+" } else { "~" }).to_string(),
        VariantKind::Single { values, default } if values.is_empty() => format!("={default}"),
        VariantKind::Single { values, default } => format!("={default} ({})", values.join(", ")),
        VariantKind::Multi { values, default } => {
            format!("={} (any of {})", default.join(","), values.join(", "))
        }
    };
    let deps: Vec<(String, String, Option<String>)> = r
        .depends
        .iter()
        .map(|d| {
            (
                d.spec.spec.to_string(),
                d.types.to_string(),
                d.when.as_ref().map(|w| w.spec.to_string()),
            )
        })
        .collect();
    if a.json {
        ctx.printer.data(
            &serde_json::to_string_pretty(&serde_json::json!({
                "name": r.name.value,
                "file": file,
                "description": r.meta.description,
                "homepage": r.meta.homepage,
                "license": r.meta.license,
                "versions": version_rows,
                "variants": r.variants.iter().map(|v| serde_json::json!({
                    "name": v.name.value, "default": variant(&v.kind), "description": v.description,
                })).collect::<Vec<_>>(),
                "depends": deps.iter().map(|(s, t, w)| serde_json::json!({"spec": s, "types": t, "when": w})).collect::<Vec<_>>(),
                "targets": targets,
            }))
            .expect("serializes"),
        );
        return Ok(ExitStatus::Success);
    }
    let mut out = format!("{}  ({file})\n", r.name.value);
    for (k, v) in [
        ("description", &r.meta.description),
        ("homepage", &r.meta.homepage),
        ("license", &r.meta.license),
    ] {
        if let Some(v) = v {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    out.push_str("versions:\n");
    for v in &version_rows {
        let mut marks = Vec::new();
        if v["preferred"] == true {
            marks.push("preferred".to_owned());
        }
        if v["deprecated"] == true {
            marks.push("deprecated".to_owned());
        }
        if v["source"] == "mirror-only" {
            marks.push("mirrors only".to_owned());
        }
        if let Some(n) = v["note"].as_str() {
            marks.push(n.to_owned());
        }
        let _ = writeln!(
            out,
            "  {:<20} {}{}",
            v["version"].as_str().unwrap_or_default(),
            v["sha256"].as_str().unwrap_or("(local)"),
            if marks.is_empty() {
                String::new()
            } else {
                format!("  [{}]", marks.join("; "))
            }
        );
    }
    if !r.variants.is_empty() {
        out.push_str("variants:\n");
        for v in &r.variants {
            let _ = writeln!(
                out,
                "  {:<20} {}{}",
                v.name.value,
                variant(&v.kind),
                v.description
                    .as_ref()
                    .map_or(String::new(), |d| format!("  {d}"))
            );
        }
    }
    if !deps.is_empty() {
        out.push_str("depends:\n");
        for (s, t, w) in &deps {
            let _ = writeln!(
                out,
                "  {s:<28} {t}{}",
                w.as_ref().map_or(String::new(), |w| format!("  when {w}"))
            );
        }
    }
    let _ = write!(
        out,
        "in targets: {}",
        if targets.is_empty() {
            "none".to_owned()
        } else {
            targets.join(", ")
        }
    );
    ctx.printer.data(&out);
    Ok(ExitStatus::Success)
}
