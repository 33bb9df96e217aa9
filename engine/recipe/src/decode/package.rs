//! `package`: a recipe's metadata, sources and languages, each child node handed to the
//! decoder of its section, and the `spack` block that maps it onto a Spack package.

use std::collections::BTreeMap;
use std::path::Path;

use kdl::KdlNode;

use super::build::decode_build;
use super::cx::{Args, Cx};
use super::depends::{decode_conflict, decode_depends, decode_patch, decode_provides};
use super::toolchain::decode_host;
use super::variant::{decode_variant, valid_variant_name};
use super::version::decode_version;
use crate::diag::{Diag, Span, did_you_mean};
use crate::model::*;

const PACKAGE_CHILDREN: &[&str] = &[
    "description",
    "homepage",
    "license",
    "url",
    "mirror",
    "version",
    "variant",
    "languages",
    "depends",
    "provides",
    "conflicts",
    "patch",
    "build",
    "spack",
    "host",
    "runtime-for",
    "local-only",
];

pub(super) fn decode_package(cx: &mut Cx<'_>, node: &KdlNode, dir: &Path) -> Option<Recipe> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the package name"), &[])?;
    let name = cx.string(args[0], "the package name")?;
    if !valid_package_name(&name.value) {
        cx.err(
            "recipe::bad-name",
            format!("`{}` is not a valid package name", name.value),
            name.span,
            "invalid name",
            "package names use lower-case letters, digits and `-`, and start with a letter or digit",
        );
        return None;
    }
    let mut r = Recipe {
        name,
        file: cx.file,
        dir: dir.to_path_buf(),
        meta: Metadata::default(),
        url: None,
        mirrors: Vec::new(),
        versions: Vec::new(),
        variants: Vec::new(),
        languages: vec![Language::C],
        depends: Vec::new(),
        provides: Vec::new(),
        conflicts: Vec::new(),
        patches: Vec::new(),
        build: None,
        spack: SpackDecl::default(),
        host: None,
        runtime_for: None,
        local_only: false,
        span: cx.span(node.span()),
        incomplete: Default::default(),
    };
    // A misspelt child (`depend`) stands for the node it was probably meant to be.
    for child in node.children().map(|d| d.nodes()).unwrap_or_default() {
        let name = child.name().value();
        if !PACKAGE_CHILDREN.contains(&name)
            && let Some(meant) = did_you_mean(name, PACKAGE_CHILDREN.iter().copied())
        {
            r.incomplete.insert(meant);
        }
    }
    let mut seen_once: BTreeMap<&'static str, Span> = BTreeMap::new();
    for child in cx.children(node, PACKAGE_CHILDREN) {
        let kind = child.name().value();
        let kind: &'static str = PACKAGE_CHILDREN
            .iter()
            .copied()
            .find(|k| *k == kind)
            .expect("filtered by children()");
        let errors_before = cx.diags.error_count();
        decode_package_child(cx, &mut r, &mut seen_once, child, kind);
        if cx.diags.error_count() > errors_before {
            r.incomplete.insert(kind);
        }
    }
    Some(r)
}

fn decode_package_child(
    cx: &mut Cx<'_>,
    r: &mut Recipe,
    seen_once: &mut BTreeMap<&'static str, Span>,
    child: &KdlNode,
    kind: &'static str,
) {
    if !first_of_its_kind(cx, r, seen_once, child, kind) {
        return;
    }
    match kind {
        "description" => {
            r.meta.description = cx.single_string(child, "the description").map(|s| s.value)
        }
        "homepage" => {
            r.meta.homepage = cx.single_string(child, "the homepage URL").map(|s| s.value)
        }
        "license" => {
            r.meta.license = cx
                .single_string(child, "an SPDX license expression")
                .map(|s| s.value)
        }
        "url" => {
            cx.no_children(child);
            if let Some((args, _)) = cx.entries(child, Args::Exactly(1, "a URL template"), &[]) {
                r.url = cx.template(args[0], "the URL");
            }
        }
        "mirror" => {
            cx.no_children(child);
            if let Some((args, _)) = cx.entries(child, Args::AtLeast(1, "URL templates"), &[]) {
                for a in args {
                    r.mirrors.extend(cx.template(a, "a mirror URL"));
                }
            }
        }
        "version" => r.versions.extend(decode_version(cx, child)),
        "variant" => r.variants.extend(decode_variant(cx, child)),
        "languages" => decode_languages(cx, child, &mut r.languages),
        "depends" => r.depends.extend(decode_depends(cx, child)),
        "provides" => r.provides.extend(decode_provides(cx, child)),
        "conflicts" => r.conflicts.extend(decode_conflict(cx, child)),
        "patch" => r.patches.extend(decode_patch(cx, child)),
        "build" => r.build = decode_build(cx, child),
        "spack" => {
            if let Some(s) = decode_spack(cx, child) {
                r.spack = s;
            }
        }
        "host" => r.host = decode_host(cx, child),
        "runtime-for" => r.runtime_for = cx.single_string(child, "the compiler package"),
        "local-only" => {
            cx.no_children(child);
            if cx.entries(child, Args::None, &[]).is_some() {
                r.local_only = true;
            }
        }
        _ => unreachable!("filtered by children()"),
    }
}

/// Whether `child` may be decoded: nodes a package has once are reported when given again.
fn first_of_its_kind(
    cx: &mut Cx<'_>,
    r: &Recipe,
    seen_once: &mut BTreeMap<&'static str, Span>,
    child: &KdlNode,
    kind: &'static str,
) -> bool {
    let once = matches!(
        kind,
        "description"
            | "homepage"
            | "license"
            | "url"
            | "languages"
            | "build"
            | "spack"
            | "host"
            | "runtime-for"
            | "local-only"
    );
    if !once {
        return true;
    }
    let child_span = cx.span(child.name().span());
    if let Some(prev) = seen_once.get(kind) {
        let d = Diag::error(
            "recipe::duplicate-node",
            format!("`{kind}` is given twice in package `{}`", r.name.value),
        )
        .label(cx.sources, child_span, "given again here")
        .label(cx.sources, *prev, "first given here")
        .help(format!("a package has one `{kind}`; remove one of them"));
        cx.push(d);
        return false;
    }
    seen_once.insert(kind, child_span);
    true
}

/// `languages c cxx`: what the package compiles (none when the line has no arguments).
fn decode_languages(cx: &mut Cx<'_>, child: &KdlNode, languages: &mut Vec<Language>) {
    cx.no_children(child);
    let Some((args, _)) = cx.entries(child, Args::AtLeast(0, "languages"), &[]) else {
        return;
    };
    languages.clear();
    for a in args {
        let Some(s) = cx.string(a, "a language") else {
            continue;
        };
        match Language::parse(&s.value) {
            Some(l) if !languages.contains(&l) => languages.push(l),
            Some(_) => {}
            None => cx.err(
                "recipe::unknown-language",
                format!("unknown language `{}`", s.value),
                s.span,
                "unknown",
                "languages are `c`, `cxx` and `fortran`; `languages` with no arguments means nothing is compiled",
            ),
        }
    }
}

fn valid_package_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn decode_spack(cx: &mut Cx<'_>, node: &KdlNode) -> Option<SpackDecl> {
    let (_, props) = cx.entries(node, Args::None, &["name", "namespace"])?;
    let mut s = SpackDecl::default();
    if let Some(e) = props.get("name") {
        let name = cx.string(e, "`name`")?;
        // Spack package names: lower-case letters, digits, `-` and `_`. They become directory
        // and file names of the buildcache, so nothing else may pass.
        let valid =
            name.value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && name.value.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
        if !valid {
            cx.err(
                "recipe::bad-name",
                format!(
                    "`{}` is not a valid Spack package name",
                    forge_core::text::escape(&name.value)
                ),
                name.span,
                "invalid",
                "Spack package names are lower-case letters, digits, `-` and `_`, as in `py-numpy`",
            );
            return None;
        }
        s.name = Some(name);
    }
    if let Some(e) = props.get("namespace") {
        let ns = cx.string(e, "`namespace`")?;
        if !ns
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || ns.value.is_empty()
        {
            cx.err(
                "recipe::bad-name",
                format!("`{}` is not a valid Spack namespace", ns.value),
                ns.span,
                "invalid",
                "Spack namespaces are Python identifiers such as `forge` or `builtin`",
            );
            return None;
        }
        s.namespace = Some(ns);
    }
    for c in cx.children(node, &["variant", "version", "set", "omit"]) {
        cx.no_children(c);
        match c.name().value() {
            "set" => {
                if let Some(f) = decode_spack_set(cx, c) {
                    s.fixed.push(f);
                }
            }
            "omit" => {
                let Some((args, _)) = cx.entries(c, Args::AtLeast(1, "forge variants"), &[]) else {
                    continue;
                };
                for n in cx.names(&args, "a forge variant") {
                    s.omit.insert(n.value, n.span);
                }
            }
            "variant" => {
                let Some((args, _)) = cx.entries(
                    c,
                    Args::Exactly(2, "the forge variant and the Spack variant"),
                    &[],
                ) else {
                    continue;
                };
                let (Some(f), Some(sv)) = (
                    cx.string(args[0], "the forge variant"),
                    cx.string(args[1], "the Spack variant"),
                ) else {
                    continue;
                };
                s.variants.insert(f.value, sv);
            }
            _ => {
                let Some((args, _)) = cx.entries(c, Args::Exactly(1, "a version template"), &[])
                else {
                    continue;
                };
                let Some(t) = cx.template(args[0], "the Spack version") else {
                    continue;
                };
                // The rendered version names buildcache files: its own text may hold only
                // what versions hold (placeholders give valid versions).
                let bad = t.value.pieces().iter().find_map(|p| match p {
                    crate::template::Piece::Lit(l)
                        if l.contains("..")
                            || !l
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)) =>
                    {
                        Some(l.clone())
                    }
                    _ => None,
                });
                if let Some(l) = bad {
                    cx.err(
                        "recipe::bad-version",
                        format!(
                            "the Spack version `{}` may not contain `{}`",
                            forge_core::text::escape(&t.value.to_string()),
                            forge_core::text::escape(&l)
                        ),
                        t.span,
                        "invalid",
                        "a Spack version is letters, digits, `.`, `-`, `_` and `+` (no `..`), with placeholders such as `{version}`",
                    );
                    continue;
                }
                s.version = Some(t);
            }
        }
    }
    Some(s)
}

/// `set NAME VALUE… [multi=#true] [when=…]`: one Spack variant with a fixed value —
/// `#true`/`#false`, one string (single-valued), or strings with `multi=#true` (multi-valued,
/// sorted) — for every build, or for those the condition holds for.
fn decode_spack_set(cx: &mut Cx<'_>, c: &KdlNode) -> Option<SpackFixed> {
    let (args, props) = cx.entries(
        c,
        Args::AtLeast(2, "the Spack variant and its value"),
        &["multi", "when"],
    )?;
    let when = cx.when(&props).ok()?;
    let name = cx.string(args[0], "the Spack variant")?;
    if !valid_variant_name(&name.value) {
        cx.err(
            "recipe::bad-name",
            format!(
                "`{}` is not a valid variant name",
                forge_core::text::escape(&name.value)
            ),
            name.span,
            "invalid name",
            "Spack variant names are letters, digits and `_`, as in `localstatedir`",
        );
        return None;
    }
    let multi = match props.get("multi") {
        Some(e) => cx.boolean(e, "`multi`")?,
        None => false,
    };
    let span = cx.value_span(args[1]);
    let value = if let Some(b) = args[1].value().as_bool() {
        if args.len() > 2 || multi {
            cx.err(
                "recipe::wrong-type",
                format!(
                    "`{}` is set to an on/off value and something else",
                    name.value
                ),
                span,
                "a boolean",
                "an on/off variant takes exactly one of `#true` or `#false`",
            );
            return None;
        }
        VariantValue::Bool(b)
    } else {
        let mut values = Vec::new();
        for a in &args[1..] {
            values.push(cx.string(a, "a variant value")?.value);
        }
        if values.len() > 1 && !multi {
            cx.err(
                "recipe::wrong-type",
                format!("`{}` is given {} values", name.value, values.len()),
                span,
                "several values",
                "add `multi=#true` for a multi-valued Spack variant",
            );
            return None;
        }
        if multi {
            values.sort();
            values.dedup();
            VariantValue::Multi(values)
        } else {
            VariantValue::Single(values.remove(0))
        }
    };
    Some(SpackFixed {
        name: name.value,
        value: Spanned::new(value, span),
        when,
    })
}
