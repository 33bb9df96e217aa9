//! Build systems → explicit phases.
//!
//! A derivation spells out every command the builder runs, so that a change in how forge drives
//! autotools or CMake changes hashes like any other input. This module owns those conventions.

use std::collections::BTreeMap;

use forge_recipe::{
    ArgSlot, BuildDecl, BuildSystem, CommandDecl, Condition, Diag, Facts, PhasePosition, Spanned,
    Template,
};

use crate::arg::{Arg, Piece};
use crate::derivation::{DrvBuild, DrvCommand, DrvPhase};

/// Renders a template of the recipe for this node.
pub(crate) type Render<'a> = dyn FnMut(&Spanned<Template>) -> Result<Arg, Box<Diag>> + 'a;

fn join_rel(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{}/{}", a.trim_end_matches('/'), b),
    }
}

/// `{src}/REL`, or `{src}` for an empty `rel`.
fn in_src(rel: &str) -> Arg {
    if rel.is_empty() {
        Arg::of([Piece::Src])
    } else {
        Arg::of([Piece::Src, Piece::Lit(format!("/{rel}"))])
    }
}

/// `script` (relative to the source directory) as seen from `build_dir` inside it: the configure
/// script of an out-of-tree build is run by a relative path, as autotools intends, so `srcdir`
/// is relative too. An absolute one ends up in what the build keeps: GCC's `Configured with:`
/// line, and the file names its target libraries compile in (gfortran's runtime error messages
/// name the source file as given, past any `-ffile-prefix-map`).
fn up_to(build_dir: &str, script: &str) -> String {
    let depth = std::path::Path::new(build_dir)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    if depth == 0 {
        format!("./{script}")
    } else {
        format!("{}{script}", "../".repeat(depth))
    }
}

/// `--flag={out}`-style arguments.
fn with_out(flag: &str) -> Arg {
    Arg::of([Piece::Lit(flag.to_owned()), Piece::Out])
}

fn argv(cmd: &[&str], rest: Vec<Arg>, cwd: &str) -> DrvCommand {
    let mut v: Vec<Arg> = cmd.iter().map(|s| Arg::lit(*s)).collect();
    v.extend(rest);
    DrvCommand {
        argv: Some(v),
        sh: None,
        cwd: cwd.to_owned(),
    }
}

/// The phases and environment of a node's build.
pub(crate) fn build(
    b: &BuildDecl,
    facts: &Facts<'_>,
    render: &mut Render<'_>,
) -> Result<DrvBuild, Box<Diag>> {
    let holds = |w: &Option<Condition>| w.as_ref().is_none_or(|c| c.holds_for(facts));
    let mut configure = Vec::new();
    let mut build_args = Vec::new();
    let mut install_args = Vec::new();
    let mut defines: Vec<(String, Arg)> = Vec::new();
    let mut options: Vec<(String, Arg)> = Vec::new();
    for a in &b.args {
        if !holds(&a.when) {
            continue;
        }
        let mut values = Vec::with_capacity(a.values.len());
        for v in &a.values {
            values.push(render(v)?);
        }
        match &a.slot {
            ArgSlot::Configure => configure.extend(values),
            ArgSlot::Build => build_args.extend(values),
            ArgSlot::Install => install_args.extend(values),
            ArgSlot::Define(n) => defines.push((n.clone(), Arg::concat(values))),
            ArgSlot::Option(n) => options.push((n.clone(), Arg::concat(values))),
        }
    }
    let mut env = BTreeMap::new();
    for e in &b.env {
        if holds(&e.when) {
            env.insert(e.name.value.clone(), render(&e.value)?);
        }
    }
    let src = b
        .source_dir
        .as_ref()
        .map_or(String::new(), |s| s.value.clone());
    let jobs: Vec<Arg> = if b.parallel {
        vec![Arg::of([Piece::Lit("-j".into()), Piece::Jobs])]
    } else {
        Vec::new()
    };
    let mut standard: Vec<DrvPhase> = Vec::new();
    let phase = |name: &str, commands: Vec<DrvCommand>, destdir: bool| DrvPhase {
        name: name.to_owned(),
        commands,
        destdir,
    };
    match b.system.value {
        BuildSystem::Autotools => {
            let (cwd, script) = match &b.build_dir {
                Some(d) => {
                    let script = b
                        .configure_script
                        .as_ref()
                        .map_or("configure", |s| s.value.as_str());
                    (join_rel(&src, &d.value), Arg::lit(up_to(&d.value, script)))
                }
                None => {
                    let script = b
                        .configure_script
                        .as_ref()
                        .map_or("configure", |s| s.value.as_str());
                    (src.clone(), Arg::lit(format!("./{script}")))
                }
            };
            let mut conf = vec![script, with_out("--prefix=")];
            conf.extend(configure);
            standard.push(phase("configure", vec![argv(&[], conf, &cwd)], false));
            let mut bargs = jobs.clone();
            bargs.extend(build_args);
            standard.push(phase("build", vec![argv(&["make"], bargs, &cwd)], false));
            let mut iargs = vec![Arg::lit("install")];
            iargs.extend(install_args);
            standard.push(phase(
                "install",
                vec![argv(&["make"], iargs, &cwd)],
                b.destdir,
            ));
        }
        BuildSystem::Cmake => {
            let bdir = in_src(&join_rel(
                &src,
                b.build_dir
                    .as_ref()
                    .map_or("forge-build", |d| d.value.as_str()),
            ));
            let build_type = b
                .build_type
                .as_ref()
                .map_or("Release", |t| t.value.as_str());
            let mut conf = vec![
                Arg::lit("-S"),
                in_src(&src),
                Arg::lit("-B"),
                bdir.clone(),
                with_out("-DCMAKE_INSTALL_PREFIX="),
                Arg::lit(format!("-DCMAKE_BUILD_TYPE={build_type}")),
            ];
            if let Some(g) = &b.generator {
                conf.push(Arg::lit("-G"));
                conf.push(Arg::lit(g.value.clone()));
            }
            conf.extend(
                defines
                    .into_iter()
                    .map(|(k, v)| Arg::lit(format!("-D{k}=")).then(v)),
            );
            conf.extend(configure);
            standard.push(phase(
                "configure",
                vec![argv(&["cmake"], conf, &src)],
                false,
            ));
            let mut bargs = vec![Arg::lit("--build"), bdir.clone()];
            if b.parallel {
                bargs.extend([Arg::lit("--parallel"), Arg::of([Piece::Jobs])]);
            }
            bargs.extend(build_args);
            standard.push(phase("build", vec![argv(&["cmake"], bargs, &src)], false));
            let mut iargs = vec![Arg::lit("--install"), bdir];
            iargs.extend(install_args);
            standard.push(phase("install", vec![argv(&["cmake"], iargs, &src)], true));
        }
        BuildSystem::Meson => {
            let bdir = in_src(&join_rel(
                &src,
                b.build_dir
                    .as_ref()
                    .map_or("forge-build", |d| d.value.as_str()),
            ));
            let build_type = b
                .build_type
                .as_ref()
                .map_or("release", |t| t.value.as_str());
            let mut conf = vec![
                Arg::lit("setup"),
                bdir.clone(),
                in_src(&src),
                with_out("--prefix="),
                Arg::lit("--libdir=lib"),
                Arg::lit(format!("--buildtype={build_type}")),
            ];
            conf.extend(
                options
                    .into_iter()
                    .map(|(k, v)| Arg::lit(format!("-D{k}=")).then(v)),
            );
            conf.extend(configure);
            standard.push(phase(
                "configure",
                vec![argv(&["meson"], conf, &src)],
                false,
            ));
            let mut bargs = vec![Arg::lit("compile"), Arg::lit("-C"), bdir.clone()];
            if b.parallel {
                bargs.extend([Arg::lit("-j"), Arg::of([Piece::Jobs])]);
            }
            bargs.extend(build_args);
            standard.push(phase("build", vec![argv(&["meson"], bargs, &src)], false));
            let mut iargs = vec![Arg::lit("install"), Arg::lit("-C"), bdir];
            iargs.extend(install_args);
            standard.push(phase("install", vec![argv(&["meson"], iargs, &src)], true));
        }
        BuildSystem::Make => {
            let mut bargs = jobs;
            bargs.extend(build_args);
            standard.push(phase("build", vec![argv(&["make"], bargs, &src)], false));
            let mut iargs = vec![Arg::lit("install")];
            iargs.extend(install_args);
            standard.push(phase(
                "install",
                vec![argv(&["make"], iargs, &src)],
                b.destdir,
            ));
        }
        BuildSystem::Custom => {}
    }
    if b.system.value == BuildSystem::Autotools && b.autoreconf.as_ref().is_some_and(&holds) {
        standard.insert(
            0,
            phase(
                "autoreconf",
                vec![argv(&["autoreconf", "-fi"], Vec::new(), &src)],
                false,
            ),
        );
    }
    // The recipe's own phases: in order for custom builds, else around the standard ones.
    let mut before: BTreeMap<&str, Vec<DrvPhase>> = BTreeMap::new();
    let mut after: BTreeMap<&str, Vec<DrvPhase>> = BTreeMap::new();
    let mut in_order = Vec::new();
    for p in &b.phases {
        if !holds(&p.when) {
            continue;
        }
        let mut commands = Vec::new();
        for c in &p.commands {
            commands.push(match c {
                CommandDecl::Run(args) => {
                    let mut v = Vec::with_capacity(args.len());
                    for a in args {
                        v.push(render(a)?);
                    }
                    DrvCommand {
                        argv: Some(v),
                        sh: None,
                        cwd: src.clone(),
                    }
                }
                CommandDecl::Sh(t) => DrvCommand {
                    argv: None,
                    sh: Some(t.value.clone()),
                    cwd: src.clone(),
                },
            });
        }
        let dp = DrvPhase {
            name: p.name.value.clone(),
            commands,
            destdir: false,
        };
        match &p.position {
            PhasePosition::InOrder => {
                // A custom phase named like a standard one replaces it.
                if let Some(slot) = standard.iter_mut().find(|s| s.name == dp.name) {
                    let destdir = slot.destdir;
                    *slot = DrvPhase { destdir, ..dp };
                } else {
                    in_order.push(dp);
                }
            }
            PhasePosition::Before(x) => before.entry(x.value.as_str()).or_default().push(dp),
            PhasePosition::After(x) => after.entry(x.value.as_str()).or_default().push(dp),
        }
    }
    let mut phases = Vec::new();
    for s in standard {
        if let Some(v) = before.remove(s.name.as_str()) {
            phases.extend(v);
        }
        let name = s.name.clone();
        phases.push(s);
        if let Some(v) = after.remove(name.as_str()) {
            phases.extend(v);
        }
    }
    phases.extend(in_order);
    Ok(DrvBuild {
        system: b.system.value,
        phases,
        env,
    })
}
