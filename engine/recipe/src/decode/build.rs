//! `build`: the build system, its arguments and environment, and `phase` blocks that add to or
//! replace the standard phases.

use std::path::Path;

use kdl::{KdlNode, KdlValue};

use super::cx::{Args, Cx, Props};
use crate::diag::did_you_mean;
use crate::model::*;
use crate::template::Template;

const BUILD_CHILDREN: &[&str] = &[
    "configure",
    "build-args",
    "install-args",
    "define",
    "option",
    "env",
    "phase",
    "autoreconf",
    "build-dir",
    "source-dir",
    "configure-script",
    "build-type",
    "generator",
    "parallel",
    "destdir",
];

/// Which build-block nodes each build system accepts.
fn build_node_allowed(system: BuildSystem, node: &str) -> bool {
    use BuildSystem::*;
    match node {
        "env" | "phase" | "source-dir" | "parallel" => true,
        "configure" => matches!(system, Autotools | Cmake | Meson),
        "build-args" | "install-args" => system != Custom,
        "build-dir" => matches!(system, Autotools | Cmake | Meson),
        "define" | "generator" => system == Cmake,
        "option" => system == Meson,
        "build-type" => matches!(system, Cmake | Meson),
        "autoreconf" | "configure-script" => system == Autotools,
        "destdir" => matches!(system, Autotools | Make),
        _ => false,
    }
}

pub(super) fn decode_build(cx: &mut Cx<'_>, node: &KdlNode) -> Option<BuildDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the build system"), &[])?;
    let sys = cx.string(args[0], "the build system")?;
    let system = build_system(cx, &sys)?;
    let mut b = BuildDecl {
        system: Spanned::new(system, sys.span),
        args: Vec::new(),
        env: Vec::new(),
        phases: Vec::new(),
        autoreconf: None,
        build_dir: None,
        source_dir: None,
        configure_script: None,
        build_type: None,
        generator: None,
        parallel: true,
        destdir: true,
        span: cx.span(node.span()),
    };
    for child in cx.children(node, BUILD_CHILDREN) {
        let kind = child.name().value();
        if build_node_allowed(system, kind) {
            decode_build_child(cx, &mut b, child, kind);
        } else {
            not_for_build_system(cx, system, child);
        }
    }
    for dir in [&b.build_dir, &b.source_dir, &b.configure_script]
        .into_iter()
        .flatten()
    {
        check_relative(cx, dir);
    }
    if system == BuildSystem::Custom && b.phases.is_empty() {
        cx.err(
            "recipe::empty-build",
            "a `custom` build needs at least one `phase`",
            b.system.span,
            "no phases",
            "add `phase \"install\" { run \"make\" \"install\" }` or pick a standard build system",
        );
        return None;
    }
    Some(b)
}

/// The build system a `build` line names, or `None` once an unknown one is reported.
fn build_system(cx: &mut Cx<'_>, sys: &Spanned<String>) -> Option<BuildSystem> {
    if let Some(system) = BuildSystem::ALL
        .iter()
        .find(|(n, _)| *n == sys.value)
        .map(|(_, s)| *s)
    {
        return Some(system);
    }
    let names: Vec<&str> = BuildSystem::ALL.iter().map(|(n, _)| *n).collect();
    let help = match did_you_mean(&sys.value, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "build systems are {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    cx.err(
        "recipe::unknown-build-system",
        format!("unknown build system `{}`", sys.value),
        sys.span,
        "unknown",
        help,
    );
    None
}

/// Reports a build-block node that the build system does not accept.
fn not_for_build_system(cx: &mut Cx<'_>, system: BuildSystem, child: &KdlNode) {
    let kind = child.name().value();
    let span = cx.span(child.name().span());
    let allowed: Vec<&str> = BUILD_CHILDREN
        .iter()
        .copied()
        .filter(|n| build_node_allowed(system, n))
        .collect();
    cx.err(
        "recipe::not-for-build-system",
        format!(
            "`{kind}` does not apply to the `{}` build system",
            system.as_str()
        ),
        span,
        "not for this build system",
        format!(
            "a `{}` build accepts {}",
            system.as_str(),
            allowed
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

/// One child of a `build` block that its build system accepts.
fn decode_build_child(cx: &mut Cx<'_>, b: &mut BuildDecl, child: &KdlNode, kind: &str) {
    match kind {
        "configure" | "build-args" | "install-args" => b.args.extend(decode_args(cx, child, kind)),
        "define" | "option" => b.args.extend(decode_define(cx, child, kind)),
        "env" => b.env.extend(decode_env(cx, child)),
        "phase" => b.phases.extend(decode_phase(cx, child, b.system.value)),
        "autoreconf" => {
            cx.no_children(child);
            let Some((_, props)) = cx.entries(child, Args::None, &["when"]) else {
                return;
            };
            let Ok(when) = cx.when(&props) else { return };
            b.autoreconf = Some(when);
        }
        "build-dir" => b.build_dir = cx.single_string(child, "a directory"),
        "source-dir" => b.source_dir = cx.single_string(child, "a directory"),
        "configure-script" => b.configure_script = cx.single_string(child, "a path"),
        "build-type" => b.build_type = cx.single_string(child, "a build type"),
        "generator" => b.generator = cx.single_string(child, "a generator"),
        "parallel" | "destdir" => {
            cx.no_children(child);
            let Some((args, _)) = cx.entries(child, Args::Exactly(1, "#true or #false"), &[])
            else {
                return;
            };
            let Some(v) = cx.boolean(args[0], &format!("`{kind}`")) else {
                return;
            };
            if kind == "parallel" {
                b.parallel = v;
            } else {
                b.destdir = v;
            }
        }
        _ => unreachable!("filtered by children()"),
    }
}

/// `configure`, `build-args` or `install-args`: arguments for one step.
fn decode_args(cx: &mut Cx<'_>, child: &KdlNode, kind: &str) -> Option<ArgDecl> {
    cx.no_children(child);
    let (args, props) = cx.entries(child, Args::AtLeast(1, "arguments"), &["when"])?;
    let when = cx.when(&props).ok()?;
    let values: Vec<_> = args
        .iter()
        .filter_map(|a| cx.template(a, "an argument"))
        .collect();
    let slot = match kind {
        "configure" => ArgSlot::Configure,
        "build-args" => ArgSlot::Build,
        _ => ArgSlot::Install,
    };
    Some(ArgDecl { slot, values, when })
}

/// `define` (CMake) or `option` (Meson): a name and a value, booleans written the tool's way.
fn decode_define(cx: &mut Cx<'_>, child: &KdlNode, kind: &str) -> Option<ArgDecl> {
    cx.no_children(child);
    let (args, props) = cx.entries(child, Args::Exactly(2, "the name and the value"), &["when"])?;
    let when = cx.when(&props).ok()?;
    let name = cx.string(args[0], "the name")?;
    let value = match args[1].value() {
        KdlValue::Bool(v) => {
            let text = if kind == "define" {
                if *v { "ON" } else { "OFF" }
            } else if *v {
                "true"
            } else {
                "false"
            };
            Template::parse(text)
                .ok()
                .map(|t| Spanned::new(t, cx.value_span(args[1])))
        }
        _ => cx.template(args[1], "the value"),
    }?;
    let slot = if kind == "define" {
        ArgSlot::Define(name.value)
    } else {
        ArgSlot::Option(name.value)
    };
    Some(ArgDecl {
        slot,
        values: vec![value],
        when,
    })
}

/// `env "NAME" "value"`.
fn decode_env(cx: &mut Cx<'_>, child: &KdlNode) -> Option<EnvDecl> {
    cx.no_children(child);
    let (args, props) = cx.entries(
        child,
        Args::Exactly(2, "the variable and its value"),
        &["when"],
    )?;
    let when = cx.when(&props).ok()?;
    let name = cx.string(args[0], "the variable name")?;
    if name.value.is_empty()
        || !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        cx.err(
            "recipe::bad-name",
            format!("`{}` is not a valid environment variable name", name.value),
            name.span,
            "invalid",
            "use letters, digits and `_`",
        );
        return None;
    }
    let value = cx.template(args[1], "the value")?;
    Some(EnvDecl { name, value, when })
}

fn check_relative(cx: &mut Cx<'_>, p: &Spanned<String>) {
    let path = Path::new(&p.value);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        cx.err(
            "recipe::bad-path",
            format!(
                "`{}` must be a relative path inside the source tree",
                p.value
            ),
            p.span,
            "leaves the source tree",
            "remove leading `/` and any `..`",
        );
    }
}

fn decode_phase(cx: &mut Cx<'_>, node: &KdlNode, system: BuildSystem) -> Option<PhaseDecl> {
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the phase name"),
        &["before", "after", "when"],
    )?;
    let name = cx.string(args[0], "the phase name")?;
    let when = cx.when(&props).ok()?;
    let position = phase_position(cx, &props, system)?;
    let standard = system.phases();
    if system != BuildSystem::Custom
        && matches!(position, PhasePosition::InOrder)
        && !standard.contains(&name.value.as_str())
    {
        cx.err(
            "recipe::bad-phase",
            format!(
                "phase `{}` needs `before=` or `after=` to find its place",
                name.value
            ),
            name.span,
            "no position",
            format!(
                "for example `phase \"{}\" before=\"{}\"`",
                name.value,
                standard.first().copied().unwrap_or("install")
            ),
        );
        return None;
    }
    let commands = decode_commands(cx, node);
    if commands.is_empty() {
        cx.err(
            "recipe::empty-phase",
            format!("phase `{}` has no commands", name.value),
            name.span,
            "empty",
            "add `run \"program\" \"arg\"` or `sh \"command line\"` inside its block",
        );
        return None;
    }
    Some(PhaseDecl {
        name,
        position,
        commands,
        when,
    })
}

/// Where `before=` or `after=` puts a phase among the standard ones (in order when neither is
/// given), or `None` once a mistake is reported.
fn phase_position(
    cx: &mut Cx<'_>,
    props: &Props<'_>,
    system: BuildSystem,
) -> Option<PhasePosition> {
    let standard = system.phases();
    let mut position = PhasePosition::InOrder;
    for key in ["before", "after"] {
        let Some(e) = props.get(key) else { continue };
        let target = cx.string(e, &format!("`{key}`"))?;
        if system == BuildSystem::Custom {
            cx.err(
                "recipe::bad-phase",
                format!("`{key}` has no meaning in a `custom` build"),
                target.span,
                "custom phases run in the order written",
                format!("remove `{key}=`"),
            );
            return None;
        }
        if !standard.contains(&target.value.as_str()) {
            let help = match did_you_mean(&target.value, standard.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "the `{}` phases are {}",
                    system.as_str(),
                    standard.join(", ")
                ),
            };
            cx.err(
                "recipe::bad-phase",
                format!(
                    "no standard phase `{}` to put this phase {key}",
                    target.value
                ),
                target.span,
                "unknown phase",
                help,
            );
            return None;
        }
        if !matches!(position, PhasePosition::InOrder) {
            let s = cx.span(e.span());
            cx.err(
                "recipe::bad-phase",
                "give either `before` or `after`, not both",
                s,
                "second position",
                "keep one of them",
            );
            return None;
        }
        position = if key == "before" {
            PhasePosition::Before(target)
        } else {
            PhasePosition::After(target)
        };
    }
    Some(position)
}

/// The `run` and `sh` lines of a phase; a line with a mistake is reported and left out.
fn decode_commands(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<CommandDecl> {
    let mut commands = Vec::new();
    for c in cx.children(node, &["run", "sh"]) {
        cx.no_children(c);
        match c.name().value() {
            "run" => {
                let Some((args, _)) =
                    cx.entries(c, Args::AtLeast(1, "a program and its arguments"), &[])
                else {
                    continue;
                };
                let argv: Vec<_> = args
                    .iter()
                    .filter_map(|a| cx.template(a, "an argument"))
                    .collect();
                if argv.len() == args.len() {
                    commands.push(CommandDecl::Run(argv));
                }
            }
            _ => {
                let Some((args, _)) = cx.entries(c, Args::Exactly(1, "a shell command line"), &[])
                else {
                    continue;
                };
                if let Some(t) = cx.string(args[0], "a shell command") {
                    commands.push(CommandDecl::Sh(t));
                }
            }
        }
    }
    commands
}
