//! KDL nodes → the typed model, reporting every mistake with its span.
//!
//! This layer knows the schema of every node a maintainer can write. It never stops at the first
//! error: a bad node is reported and skipped, and decoding goes on, so one run shows all problems
//! of a file. Checks that need more than one file (does a dependency exist, does a version
//! constraint match a version) belong to [`crate::validate`].

use std::collections::BTreeMap;
use std::path::Path;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use crate::diag::{Diag, Diagnostics, FileId, Sources, Span, did_you_mean};
use crate::model::*;
use crate::spec::Spec;
use crate::template::Template;
use crate::version::{Version, VersionReq};

/// A top-level item of a KDL file.
#[derive(Debug)]
pub(crate) enum Item {
    Package(Box<Recipe>),
    Toolchain(ToolchainDecl),
    Arch(ArchDecl),
    Target(Box<TargetDecl>),
    Defaults(TargetSettings, Span),
}

pub(crate) const TOP_LEVEL: &[&str] = &[
    "package",
    "toolchain",
    "arch",
    "target",
    "matrix",
    "defaults",
];

/// How many positional arguments a node takes.
#[derive(Clone, Copy)]
enum Args {
    None,
    Exactly(usize, &'static str),
    AtLeast(usize, &'static str),
}

pub(crate) struct Cx<'a> {
    pub(crate) sources: &'a Sources,
    pub(crate) file: FileId,
    pub(crate) diags: &'a mut Diagnostics,
    /// Items whose node was reported and dropped, by kind (`toolchain`, `virtual`) and name.
    pub(crate) dropped: Vec<(&'static str, String)>,
}

/// A node's properties, by key.
struct Props<'n> {
    entries: Vec<(&'n str, &'n KdlEntry)>,
}

impl<'n> Props<'n> {
    fn get(&self, key: &str) -> Option<&'n KdlEntry> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| *e)
    }
}

impl<'a> Cx<'a> {
    fn text(&self) -> &str {
        &self.sources.get(self.file).text
    }

    fn span(&self, s: miette::SourceSpan) -> Span {
        Span::new(self.file, s)
    }

    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    fn err(
        &mut self,
        code: &'static str,
        msg: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diag::error(code, msg)
            .label(self.sources, span, label)
            .help(help);
        self.push(d);
    }

    /// The span of an entry's value (for properties, the part after `=`).
    fn value_span(&self, e: &KdlEntry) -> Span {
        let span = self.span(e.span());
        if e.name().is_some() {
            let text = &self.text()[span.offset..span.offset + span.len];
            if let Some(eq) = text.find('=') {
                return span.slice(eq + 1..span.len);
            }
        }
        span
    }

    /// The literal span of a string entry, mapping content offsets when possible.
    fn lit(&self, e: &KdlEntry) -> LitSpan {
        let span = self.value_span(e);
        let raw = &self.text()[span.offset..span.offset + span.len];
        let content_offset = match e.value() {
            KdlValue::String(s) => {
                let hashes = raw.bytes().take_while(|b| *b == b'#').count();
                let open = hashes + 1;
                let close = hashes + 1;
                (raw.len() >= open + close
                    && raw.as_bytes().get(hashes) == Some(&b'"')
                    && !raw[hashes..].starts_with("\"\"\"")
                    && &raw[open..raw.len() - close] == s.as_str())
                .then_some(open)
            }
            _ => None,
        };
        LitSpan {
            span,
            content_offset,
        }
    }

    fn kind_name(v: &KdlValue) -> &'static str {
        match v {
            KdlValue::String(_) => "a string",
            KdlValue::Integer(_) => "an integer",
            KdlValue::Float(_) => "a number",
            KdlValue::Bool(_) => "a boolean",
            KdlValue::Null => "#null",
        }
    }

    fn string(&mut self, e: &KdlEntry, what: &str) -> Option<Spanned<String>> {
        match e.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), self.value_span(e))),
            other => {
                let span = self.value_span(e);
                let found = Self::kind_name(other);
                self.err(
                    "recipe::wrong-type",
                    format!("{what} must be a string, found {found}"),
                    span,
                    "expected a string",
                    "quote the value, as in `\"1.2.3\"`",
                );
                None
            }
        }
    }

    fn boolean(&mut self, e: &KdlEntry, what: &str) -> Option<bool> {
        match e.value() {
            KdlValue::Bool(b) => Some(*b),
            other => {
                let span = self.value_span(e);
                let found = Self::kind_name(other);
                self.err(
                    "recipe::wrong-type",
                    format!("{what} must be a boolean, found {found}"),
                    span,
                    "expected `#true` or `#false`",
                    "KDL v2 writes booleans as `#true` and `#false`",
                );
                None
            }
        }
    }

    fn integer(&mut self, e: &KdlEntry, what: &str, max: i128) -> Option<i128> {
        match e.value() {
            KdlValue::Integer(i) if (0..=max).contains(i) => Some(*i),
            other => {
                let span = self.value_span(e);
                let found = Self::kind_name(other);
                self.err(
                    "recipe::wrong-type",
                    format!("{what} must be an integer from 0 to {max}, found {found}"),
                    span,
                    "out of range or not an integer",
                    "write a number such as `1`".to_string(),
                );
                None
            }
        }
    }

    /// Splits a node's entries into positional arguments and properties, reporting unknown or
    /// repeated properties and a wrong number of arguments.
    fn entries<'n>(
        &mut self,
        node: &'n KdlNode,
        args: Args,
        known: &[&str],
    ) -> Option<(Vec<&'n KdlEntry>, Props<'n>)> {
        let name = node.name().value().to_owned();
        let mut positional = Vec::new();
        let mut props = Props {
            entries: Vec::new(),
        };
        let mut ok = true;
        for e in node.entries() {
            match e.name() {
                None => positional.push(e),
                Some(k) => {
                    let key = k.value();
                    if !known.contains(&key) {
                        let span = self.span(k.span());
                        let help = match did_you_mean(key, known.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None if known.is_empty() => format!("`{name}` takes no properties"),
                            None => format!(
                                "`{name}` accepts {}",
                                known
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        };
                        self.err(
                            "recipe::unknown-property",
                            format!("unknown property `{key}` on `{name}`"),
                            span,
                            "unknown property",
                            help,
                        );
                        ok = false;
                    } else if props.get(key).is_some() {
                        let span = self.span(e.span());
                        self.err(
                            "recipe::duplicate-property",
                            format!("property `{key}` is given twice on `{name}`"),
                            span,
                            "given again here",
                            "keep one of them",
                        );
                        ok = false;
                    } else {
                        props.entries.push((key, e));
                    }
                }
            }
        }
        let n = positional.len();
        let (min, max, what) = match args {
            Args::None => (0, 0, ""),
            Args::Exactly(k, w) => (k, k, w),
            Args::AtLeast(k, w) => (k, usize::MAX, w),
        };
        if n < min {
            let span = self.span(node.span());
            let expect = if min == max {
                format!("{min}")
            } else {
                format!("at least {min}")
            };
            self.err(
                "recipe::missing-argument",
                format!(
                    "`{name}` needs {expect} argument{}: {what}",
                    if min == 1 { "" } else { "s" }
                ),
                span,
                "argument missing",
                format!("write it as `{name} {}`", example_args(what)),
            );
            ok = false;
        } else if n > max {
            let first_extra = positional[max];
            let last = positional[n - 1];
            let start = first_extra.span().offset();
            let end = last.span().offset() + last.span().len();
            let span = Span {
                file: self.file,
                offset: start,
                len: end - start,
            };
            let help = if max == 0 {
                format!("`{name}` takes no arguments")
            } else {
                format!(
                    "`{name}` takes {max} argument{}: {what}",
                    if max == 1 { "" } else { "s" }
                )
            };
            self.err(
                "recipe::extra-argument",
                format!("too many arguments for `{name}`"),
                span,
                "not expected",
                help,
            );
            ok = false;
        }
        ok.then_some((positional, props))
    }

    /// The node's children, reporting unknown ones (with a suggestion) and skipping them.
    fn children<'n>(&mut self, node: &'n KdlNode, known: &[&str]) -> Vec<&'n KdlNode> {
        let Some(doc) = node.children() else {
            return Vec::new();
        };
        let parent = node.name().value().to_owned();
        let mut out = Vec::new();
        for child in doc.nodes() {
            let name = child.name().value();
            if known.contains(&name) {
                out.push(child);
            } else {
                self.unknown_node(child, &parent, known);
            }
        }
        out
    }

    fn unknown_node(&mut self, node: &KdlNode, parent: &str, known: &[&str]) {
        let name = node.name().value();
        let span = self.span(node.name().span());
        let help = match did_you_mean(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => format!("`{parent}` has no children"),
            None => format!(
                "inside `{parent}` you can write {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let where_ = if parent.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("inside `{parent}`")
        };
        self.err(
            "recipe::unknown-node",
            format!("unknown node `{name}` {where_}"),
            span,
            "unknown node",
            help,
        );
    }

    fn no_children(&mut self, node: &KdlNode) {
        if let Some(doc) = node.children() {
            let name = node.name().value().to_owned();
            let span = self.span(doc.span());
            self.err(
                "recipe::unexpected-children",
                format!("`{name}` does not take a block"),
                span,
                "unexpected block",
                format!("remove the `{{ … }}` after `{name}`"),
            );
        }
    }

    /// A single string argument, as for `description "…"`.
    fn single_string(&mut self, node: &KdlNode, what: &'static str) -> Option<Spanned<String>> {
        self.no_children(node);
        let (args, _) = self.entries(node, Args::Exactly(1, what), &[])?;
        self.string(args[0], what)
    }

    fn spec_lit(&mut self, e: &KdlEntry, what: &str) -> Option<SpecLit> {
        let s = self.string(e, what)?;
        let lit = self.lit(e);
        match Spec::parse(&s.value, true) {
            Ok(spec) => Some(SpecLit { spec, lit }),
            Err(err) => {
                let span = lit.at(err.span.clone());
                let help = err
                    .help
                    .unwrap_or_else(|| "a spec looks like `pmix@4.2: +munge`".into());
                self.err(
                    "recipe::bad-spec",
                    format!("invalid spec: {}", err.message),
                    span,
                    "here",
                    help,
                );
                None
            }
        }
    }

    fn condition(&mut self, e: &KdlEntry) -> Option<Condition> {
        let s = self.string(e, "`when`")?;
        let lit = self.lit(e);
        match Spec::parse(&s.value, false) {
            Ok(spec) if spec.name.is_some() => {
                let span = lit.at(spec.name.as_ref().map_or(0..0, |n| n.span.clone()));
                self.err(
                    "recipe::bad-condition",
                    "a `when` condition cannot name a package",
                    span,
                    "package name",
                    "a condition is about the package itself: `@25:`, `+pmix`, `%gcc@:10`, `target=x86-64-v3`",
                );
                None
            }
            Ok(spec) if !spec.deps.is_empty() => {
                let span = lit.at(spec.deps[0].span.clone());
                self.err(
                    "recipe::bad-condition",
                    "a `when` condition cannot constrain dependencies",
                    span,
                    "dependency clause",
                    "write the condition about the package itself: `@25:`, `+pmix`, `%gcc@:10`",
                );
                None
            }
            Ok(spec) => Some(Condition { spec, lit }),
            Err(err) => {
                let span = lit.at(err.span.clone());
                let help = err
                    .help
                    .unwrap_or_else(|| "a condition looks like `@25: +pmix`".into());
                self.err(
                    "recipe::bad-condition",
                    format!("invalid condition: {}", err.message),
                    span,
                    "here",
                    help,
                );
                None
            }
        }
    }

    fn when(&mut self, props: &Props<'_>) -> Result<Option<Condition>, ()> {
        match props.get("when") {
            None => Ok(None),
            Some(e) => self.condition(e).map(Some).ok_or(()),
        }
    }

    fn template(&mut self, e: &KdlEntry, what: &str) -> Option<Spanned<Template>> {
        let s = self.string(e, what)?;
        let lit = self.lit(e);
        match Template::parse(&s.value) {
            Ok(t) => Some(Spanned::new(t, s.span)),
            Err(err) => {
                let span = lit.at(err.span.clone());
                self.err("recipe::bad-template", err.message, span, "here", err.help);
                None
            }
        }
    }

    fn sha256(&mut self, e: &KdlEntry) -> Option<Spanned<Sha256>> {
        let s = self.string(e, "`sha256`")?;
        match Sha256::from_hex(&s.value) {
            Some(h) => Some(Spanned::new(h, s.span)),
            None => {
                let n = s.value.len();
                let (msg, label) = if n != 64 {
                    (
                        format!("sha256 must have 64 hex digits, this one has {n}"),
                        format!("{n} characters"),
                    )
                } else {
                    (
                        "sha256 must be hexadecimal".to_owned(),
                        "not hex".to_owned(),
                    )
                };
                self.err(
                    "recipe::bad-sha256",
                    msg,
                    s.span,
                    label,
                    "compute it with `sha256sum FILE`, or let `forge recipe add-version` do it",
                );
                None
            }
        }
    }

    fn version(&mut self, e: &KdlEntry) -> Option<Spanned<Version>> {
        let s = self.string(e, "a version")?;
        let lit = self.lit(e);
        match Version::parse(&s.value) {
            Ok(v) => Some(Spanned::new(v, s.span)),
            Err(err) => {
                let span = match &err {
                    crate::version::VersionError::BadChar { offset, ch } => {
                        lit.at(*offset..*offset + ch.len_utf8())
                    }
                    _ => s.span,
                };
                self.err(
                    "recipe::bad-version",
                    format!("invalid version: {err}"),
                    span,
                    "here",
                    "versions are numbers and letters separated by `.`, `-` or `_`, as in `2.1.12-stable`",
                );
                None
            }
        }
    }

    fn names(&mut self, args: &[&KdlEntry], what: &str) -> Vec<Spanned<String>> {
        args.iter().filter_map(|e| self.string(e, what)).collect()
    }
}

fn example_args(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!("<{what}>")
    }
}

/// Decodes one file's top-level nodes.
pub(crate) fn decode_document(cx: &mut Cx<'_>, doc: &KdlDocument, dir: &Path) -> Vec<Item> {
    let mut items = Vec::new();
    for node in doc.nodes() {
        match node.name().value() {
            "package" => {
                if let Some(r) = decode_package(cx, node, dir) {
                    items.push(Item::Package(Box::new(r)));
                }
            }
            "toolchain" => items.extend(decode_toolchain(cx, node).map(Item::Toolchain)),
            "arch" => items.extend(decode_arch(cx, node).map(Item::Arch)),
            "target" => items.extend(decode_target(cx, node).map(|t| Item::Target(Box::new(t)))),
            "matrix" => items.extend(
                decode_matrix(cx, node)
                    .into_iter()
                    .map(|t| Item::Target(Box::new(t))),
            ),
            "defaults" => {
                let span = cx.span(node.span());
                if cx.entries(node, Args::None, &[]).is_some() {
                    let settings = decode_settings(cx, node, &[]);
                    items.push(Item::Defaults(settings, span));
                }
            }
            _ => cx.unknown_node(node, "", TOP_LEVEL),
        }
    }
    items
}

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
];

fn decode_package(cx: &mut Cx<'_>, node: &KdlNode, dir: &Path) -> Option<Recipe> {
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
    let child_span = cx.span(child.name().span());
    if matches!(
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
    ) {
        if let Some(prev) = seen_once.get(kind) {
            let d = Diag::error(
                "recipe::duplicate-node",
                format!("`{kind}` is given twice in package `{}`", r.name.value),
            )
            .label(cx.sources, child_span, "given again here")
            .label(cx.sources, *prev, "first given here")
            .help(format!("a package has one `{kind}`; remove one of them"));
            cx.push(d);
            return;
        }
        seen_once.insert(kind, child_span);
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
        "languages" => {
            cx.no_children(child);
            if let Some((args, _)) = cx.entries(child, Args::AtLeast(0, "languages"), &[]) {
                r.languages.clear();
                for a in args {
                    let Some(s) = cx.string(a, "a language") else {
                        continue;
                    };
                    match Language::parse(&s.value) {
                        Some(l) if !r.languages.contains(&l) => r.languages.push(l),
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
        }
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
        _ => unreachable!("filtered by children()"),
    }
}

pub(crate) fn valid_package_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn decode_version(cx: &mut Cx<'_>, node: &KdlNode) -> Option<VersionDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the version"),
        &[
            "sha256",
            "url",
            "file",
            "path",
            "expand",
            "deprecated",
            "note",
        ],
    )?;
    let version = cx.version(args[0])?;
    let span = cx.span(node.span());
    let deprecated = match props.get("deprecated") {
        Some(e) => cx.boolean(e, "`deprecated`")?,
        None => false,
    };
    let note = match props.get("note") {
        Some(e) => Some(cx.string(e, "`note`")?.value),
        None => None,
    };
    let source = if let Some(path) = props.get("path") {
        for key in ["sha256", "url", "file", "expand"] {
            if let Some(e) = props.get(key) {
                let s = cx.span(e.span());
                cx.err(
                    "recipe::conflicting-properties",
                    format!("`{key}` cannot be combined with `path`"),
                    s,
                    "not allowed with `path`",
                    "a local source is hashed by its content; remove this property, or remove `path` to download",
                );
                return None;
            }
        }
        SourceDecl::Local {
            path: cx.string(path, "`path`")?,
        }
    } else {
        let Some(sha) = props.get("sha256") else {
            cx.err(
                "recipe::missing-sha256",
                format!("version `{}` has no `sha256`", version.value),
                span,
                "no checksum",
                "every downloaded source is verified: add `sha256=\"…\"` (`forge recipe add-version` computes it), or use `path=` for a source beside the recipe",
            );
            return None;
        };
        let sha256 = cx.sha256(sha)?;
        let expand = match props.get("expand") {
            Some(e) => cx.boolean(e, "`expand`")?,
            None => true,
        };
        match (props.get("file"), props.get("url")) {
            (Some(_), Some(u)) => {
                let s = cx.span(u.span());
                cx.err(
                    "recipe::conflicting-properties",
                    "`url` cannot be combined with `file`",
                    s,
                    "not allowed with `file`",
                    "`file=` names a source that only mirrors hold; remove it to download from `url`, or remove `url`",
                );
                return None;
            }
            (Some(f), None) => {
                let file = cx.string(f, "`file`")?;
                if file.value.is_empty()
                    || file.value.contains('/')
                    || file.value == "."
                    || file.value == ".."
                {
                    cx.err(
                        "recipe::bad-file-name",
                        format!("`{}` is not a file name", file.value),
                        file.span,
                        "not a plain file name",
                        "give the file's name as mirrors hold it, without a directory (`gmp_6.2.1+dfsg1.orig.tar.xz`)",
                    );
                    return None;
                }
                SourceDecl::Mirrored {
                    file,
                    sha256,
                    expand,
                }
            }
            (None, url) => SourceDecl::Remote {
                url: match url {
                    Some(e) => Some(cx.template(e, "`url`")?),
                    None => None,
                },
                sha256,
                expand,
            },
        }
    };
    Some(VersionDecl {
        version,
        source,
        deprecated,
        note,
        span,
    })
}

fn decode_variant(cx: &mut Cx<'_>, node: &KdlNode) -> Option<VariantDecl> {
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the variant name"),
        &["default", "multi", "description"],
    )?;
    let name = cx.string(args[0], "the variant name")?;
    if !name
        .value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || !name.value.starts_with(|c: char| c.is_ascii_alphabetic())
        || name.value == "target"
    {
        cx.err(
            "recipe::bad-name",
            format!("`{}` is not a valid variant name", name.value),
            name.span,
            "invalid name",
            "variant names start with a letter and use letters, digits, `_` and `-`; `target` is reserved",
        );
        return None;
    }
    let description = match props.get("description") {
        Some(e) => Some(cx.string(e, "`description`")?.value),
        None => None,
    };
    let multi = match props.get("multi") {
        Some(e) => cx.boolean(e, "`multi`")?,
        None => false,
    };
    let mut values: Option<(Vec<Spanned<String>>, Span)> = None;
    for child in cx.children(node, &["values"]) {
        cx.no_children(child);
        if let Some((args, _)) = cx.entries(child, Args::AtLeast(1, "the allowed values"), &[]) {
            let vs = cx.names(&args, "a variant value");
            values = Some((vs, cx.span(child.span())));
        }
    }
    let Some(default) = props.get("default") else {
        cx.err(
            "recipe::missing-default",
            format!("variant `{}` has no default", name.value),
            name.span,
            "no `default`",
            "give one: `default=#true` for an on/off variant, `default=\"value\"` otherwise",
        );
        return None;
    };
    let default_span = cx.value_span(default);
    let kind =
        match default.value() {
            KdlValue::Bool(b) => {
                if let Some((_, span)) = &values {
                    cx.err(
                    "recipe::conflicting-defaults",
                    format!("on/off variant `{}` cannot list values", name.value),
                    *span,
                    "values of a boolean variant",
                    "remove `values`, or give a string default to make it a multi-choice variant",
                );
                    return None;
                }
                if multi {
                    cx.err(
                    "recipe::conflicting-defaults",
                    format!("variant `{}` has a boolean default but `multi=#true`", name.value),
                    default_span,
                    "boolean default",
                    "a multi-valued variant takes a string default such as `default=\"slurm,tm\"`",
                );
                    return None;
                }
                VariantKind::Bool { default: *b }
            }
            KdlValue::String(s) => {
                let allowed: Vec<String> = values
                    .as_ref()
                    .map(|(vs, _)| vs.iter().map(|v| v.value.clone()).collect())
                    .unwrap_or_default();
                let defaults: Vec<String> = if multi {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect()
                } else {
                    vec![s.clone()]
                };
                if multi && allowed.is_empty() {
                    cx.err(
                        "recipe::missing-values",
                        format!("multi-valued variant `{}` must list its values", name.value),
                        name.span,
                        "no `values`",
                        "add a block: `{ values \"a\" \"b\" }`",
                    );
                    return None;
                }
                if !multi && s.contains(',') && !allowed.is_empty() {
                    cx.err(
                        "recipe::conflicting-defaults",
                        format!(
                            "single-valued variant `{}` has several defaults",
                            name.value
                        ),
                        default_span,
                        "several values",
                        "pick one default, or add `multi=#true`",
                    );
                    return None;
                }
                for d in &defaults {
                    if !allowed.is_empty() && !allowed.contains(d) {
                        let help = match did_you_mean(d, allowed.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("allowed values: {}", allowed.join(", ")),
                        };
                        cx.err(
                            "recipe::conflicting-defaults",
                            format!(
                                "default `{d}` of variant `{}` is not one of its values",
                                name.value
                            ),
                            default_span,
                            "not an allowed value",
                            help,
                        );
                        return None;
                    }
                }
                if let Some((vs, _)) = &values {
                    let mut seen = std::collections::BTreeSet::new();
                    for v in vs {
                        if !seen.insert(&v.value) {
                            cx.err(
                                "recipe::duplicate-value",
                                format!("value `{}` is listed twice", v.value),
                                v.span,
                                "repeated",
                                "remove the repetition",
                            );
                        }
                    }
                }
                if multi {
                    VariantKind::Multi {
                        values: allowed,
                        default: defaults,
                    }
                } else {
                    VariantKind::Single {
                        values: allowed,
                        default: s.clone(),
                    }
                }
            }
            other => {
                let found = Cx::kind_name(other);
                cx.err(
                    "recipe::wrong-type",
                    format!(
                        "default of variant `{}` must be a boolean or a string, found {found}",
                        name.value
                    ),
                    default_span,
                    "wrong type",
                    "write `default=#true`, `default=#false` or `default=\"value\"`",
                );
                return None;
            }
        };
    Some(VariantDecl {
        name,
        kind,
        default_span,
        description,
    })
}

fn parse_types(cx: &mut Cx<'_>, e: &KdlEntry) -> Option<DepTypes> {
    let s = cx.string(e, "`type`")?;
    let lit = cx.lit(e);
    let mut types = DepTypes::NONE;
    let mut offset = 0;
    for part in s.value.split(',') {
        let t = match part.trim() {
            "build" => DepType::Build,
            "link" => DepType::Link,
            "run" => DepType::Run,
            "test" => DepType::Test,
            other => {
                let span = lit.at(offset..offset + part.len());
                let help = match did_you_mean(other, ["build", "link", "run", "test"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "dependency types are `build`, `link`, `run` and `test`, joined by `,`"
                        .to_owned(),
                };
                cx.err(
                    "recipe::bad-dep-type",
                    format!("unknown dependency type `{other}`"),
                    span,
                    "unknown type",
                    help,
                );
                return None;
            }
        };
        types = types.with(t);
        offset += part.len() + 1;
    }
    Some(types)
}

fn decode_depends(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<DependDecl> {
    cx.no_children(node);
    let Some((args, props)) = cx.entries(
        node,
        Args::AtLeast(1, "dependency specs"),
        &["type", "when"],
    ) else {
        return Vec::new();
    };
    let types = match props.get("type") {
        Some(e) => match parse_types(cx, e) {
            Some(t) => t,
            None => return Vec::new(),
        },
        None => DepTypes::BUILD_LINK,
    };
    let Ok(when) = cx.when(&props) else {
        return Vec::new();
    };
    let span = cx.span(node.span());
    args.iter()
        .filter_map(|a| cx.spec_lit(a, "a dependency"))
        .map(|spec| DependDecl {
            spec,
            types,
            when: when.clone(),
            span,
        })
        .collect()
}

fn decode_provides(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<ProvideDecl> {
    cx.no_children(node);
    let Some((args, props)) =
        cx.entries(node, Args::AtLeast(1, "virtual package names"), &["when"])
    else {
        return Vec::new();
    };
    let Ok(when) = cx.when(&props) else {
        return Vec::new();
    };
    let span = cx.span(node.span());
    let mut specs = Vec::new();
    for a in &args {
        match cx.spec_lit(a, "a virtual package") {
            Some(spec) => specs.push(spec),
            // Dependents of the virtual this line meant must not be told it does not exist.
            None => {
                if let KdlValue::String(text) = a.value() {
                    let name: String = text
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        cx.dropped.push(("virtual", name));
                    }
                }
            }
        }
    }
    specs
        .into_iter()
        .filter_map(|spec| {
            if !spec.spec.variants.is_empty()
                || spec.spec.toolchain.is_some()
                || !spec.spec.deps.is_empty()
            {
                cx.dropped.push(("virtual", spec.name().to_owned()));
                let s = spec.lit.span;
                cx.err(
                    "recipe::bad-spec",
                    "`provides` takes a virtual name and optionally its version",
                    s,
                    "too much here",
                    "write it as `provides \"mpi@3.1\"`",
                );
                return None;
            }
            Some(ProvideDecl {
                spec,
                when: when.clone(),
                span,
            })
        })
        .collect()
}

fn decode_conflict(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ConflictDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the conflicting configuration"),
        &["when", "message"],
    )?;
    let cond = cx.condition(args[0])?;
    let when = cx.when(&props).ok()?;
    let message = match props.get("message") {
        Some(e) => Some(cx.string(e, "`message`")?.value),
        None => None,
    };
    Some(ConflictDecl {
        cond,
        when,
        message,
        span: cx.span(node.span()),
    })
}

fn decode_patch(cx: &mut Cx<'_>, node: &KdlNode) -> Option<PatchDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::Exactly(1, "the patch file"),
        &["sha256", "level", "when"],
    )?;
    let file = cx.string(args[0], "the patch file")?;
    let Some(sha) = props.get("sha256") else {
        cx.err(
            "recipe::missing-sha256",
            format!("patch `{}` has no `sha256`", file.value),
            file.span,
            "no checksum",
            "add `sha256=\"…\"`; compute it with `sha256sum` on the patch file",
        );
        return None;
    };
    let sha256 = cx.sha256(sha)?;
    let level = match props.get("level") {
        Some(e) => u32::try_from(cx.integer(e, "`level`", 10)?).ok()?,
        None => 1,
    };
    let when = cx.when(&props).ok()?;
    Some(PatchDecl {
        file,
        sha256,
        level,
        when,
        span: cx.span(node.span()),
    })
}

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

fn decode_build(cx: &mut Cx<'_>, node: &KdlNode) -> Option<BuildDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the build system"), &[])?;
    let sys = cx.string(args[0], "the build system")?;
    let Some(system) = BuildSystem::ALL
        .iter()
        .find(|(n, _)| *n == sys.value)
        .map(|(_, s)| *s)
    else {
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
        return None;
    };
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
        if !build_node_allowed(system, kind) {
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
            continue;
        }
        match kind {
            "configure" | "build-args" | "install-args" => {
                cx.no_children(child);
                let Some((args, props)) =
                    cx.entries(child, Args::AtLeast(1, "arguments"), &["when"])
                else {
                    continue;
                };
                let Ok(when) = cx.when(&props) else { continue };
                let values: Vec<_> = args
                    .iter()
                    .filter_map(|a| cx.template(a, "an argument"))
                    .collect();
                let slot = match kind {
                    "configure" => ArgSlot::Configure,
                    "build-args" => ArgSlot::Build,
                    _ => ArgSlot::Install,
                };
                b.args.push(ArgDecl { slot, values, when });
            }
            "define" | "option" => {
                cx.no_children(child);
                let Some((args, props)) =
                    cx.entries(child, Args::Exactly(2, "the name and the value"), &["when"])
                else {
                    continue;
                };
                let Ok(when) = cx.when(&props) else { continue };
                let Some(name) = cx.string(args[0], "the name") else {
                    continue;
                };
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
                };
                let Some(value) = value else { continue };
                let slot = if kind == "define" {
                    ArgSlot::Define(name.value)
                } else {
                    ArgSlot::Option(name.value)
                };
                b.args.push(ArgDecl {
                    slot,
                    values: vec![value],
                    when,
                });
            }
            "env" => {
                cx.no_children(child);
                let Some((args, props)) = cx.entries(
                    child,
                    Args::Exactly(2, "the variable and its value"),
                    &["when"],
                ) else {
                    continue;
                };
                let Ok(when) = cx.when(&props) else { continue };
                let Some(name) = cx.string(args[0], "the variable name") else {
                    continue;
                };
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
                    continue;
                }
                let Some(value) = cx.template(args[1], "the value") else {
                    continue;
                };
                b.env.push(EnvDecl { name, value, when });
            }
            "phase" => {
                if let Some(p) = decode_phase(cx, child, system) {
                    b.phases.push(p);
                }
            }
            "autoreconf" => {
                cx.no_children(child);
                let Some((_, props)) = cx.entries(child, Args::None, &["when"]) else {
                    continue;
                };
                let Ok(when) = cx.when(&props) else { continue };
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
                    continue;
                };
                let Some(v) = cx.boolean(args[0], &format!("`{kind}`")) else {
                    continue;
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

fn decode_spack(cx: &mut Cx<'_>, node: &KdlNode) -> Option<SpackDecl> {
    let (_, props) = cx.entries(node, Args::None, &["name", "namespace"])?;
    let mut s = SpackDecl::default();
    if let Some(e) = props.get("name") {
        s.name = Some(cx.string(e, "`name`")?);
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
    for c in cx.children(node, &["variant", "version"]) {
        cx.no_children(c);
        match c.name().value() {
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
                s.version = cx.template(args[0], "the Spack version");
            }
        }
    }
    Some(s)
}

fn decode_host(cx: &mut Cx<'_>, node: &KdlNode) -> Option<HostDecl> {
    cx.no_children(node);
    let (args, props) = cx.entries(
        node,
        Args::AtLeast(1, "executables"),
        &["version-arg", "version-regex"],
    )?;
    let executables = cx.names(&args, "an executable");
    for e in &executables {
        if e.value.contains('/') || e.value.is_empty() {
            cx.err(
                "recipe::bad-name",
                format!("`{}` is not an executable name", e.value),
                e.span,
                "a path",
                "give the program's name; forge finds it on `PATH`",
            );
            return None;
        }
    }
    let version_arg = match props.get("version-arg") {
        Some(e) => cx.string(e, "`version-arg`")?.value,
        None => "--version".to_owned(),
    };
    let version_regex = match props.get("version-regex") {
        Some(e) => {
            let s = cx.string(e, "`version-regex`")?;
            match regex::Regex::new(&s.value) {
                Ok(re) if re.captures_len() >= 2 => s,
                Ok(_) => {
                    cx.err(
                        "recipe::bad-regex",
                        "`version-regex` needs a capture group for the version",
                        s.span,
                        "no group",
                        "wrap the version part in parentheses, as in `version ([0-9.]+)`",
                    );
                    return None;
                }
                Err(err) => {
                    cx.err(
                        "recipe::bad-regex",
                        format!("invalid regular expression: {err}"),
                        s.span,
                        "here",
                        "see the `regex` crate's syntax",
                    );
                    return None;
                }
            }
        }
        None => Spanned::new(DEFAULT_VERSION_REGEX.to_owned(), cx.span(node.span())),
    };
    Some(HostDecl {
        executables,
        version_arg,
        version_regex,
        span: cx.span(node.span()),
    })
}

/// The version pattern used when a `host` block gives none: the first dotted number.
pub const DEFAULT_VERSION_REGEX: &str = r"([0-9]+(?:\.[0-9]+)+)";

fn decode_toolchain(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ToolchainDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the toolchain name"), &[])?;
    let name = cx.string(args[0], "the toolchain name")?;
    let mut compiler = None;
    let mut host = false;
    let mut runtime = None;
    let mut bootstrap = None;
    let mut description = None;
    for c in cx.children(node, &["compiler", "runtime", "bootstrap", "description"]) {
        cx.no_children(c);
        match c.name().value() {
            "compiler" => {
                let Some((args, props)) =
                    cx.entries(c, Args::Exactly(1, "the compiler package"), &["host"])
                else {
                    continue;
                };
                compiler = cx.string(args[0], "the compiler package");
                if let Some(e) = props.get("host") {
                    host = cx.boolean(e, "`host`").unwrap_or(false);
                }
            }
            "runtime" => runtime = cx.single_string(c, "the runtime package"),
            "bootstrap" => bootstrap = cx.single_string(c, "a toolchain name"),
            _ => description = cx.single_string(c, "a description").map(|s| s.value),
        }
    }
    let span = cx.span(node.span());
    let compiler_written = node
        .children()
        .is_some_and(|d| d.nodes().iter().any(|n| n.name().value() == "compiler"));
    let Some(compiler) = compiler else {
        cx.dropped.push(("toolchain", name.value.clone()));
        if compiler_written {
            // The `compiler` line itself was malformed, and that was reported.
            return None;
        }
        cx.err(
            "recipe::missing-compiler",
            format!("toolchain `{}` names no compiler", name.value),
            name.span,
            "no `compiler`",
            "add `compiler \"gcc\"` (built by forge) or `compiler \"gcc\" host=#true` (the machine's own)",
        );
        return None;
    };
    if host && bootstrap.is_some() {
        cx.err(
            "recipe::conflicting-properties",
            format!(
                "toolchain `{}` uses the host compiler, so it has nothing to bootstrap",
                name.value
            ),
            bootstrap.as_ref().map_or(span, |b| b.span),
            "not needed",
            "remove `bootstrap`",
        );
    }
    if !host && bootstrap.is_none() {
        cx.dropped.push(("toolchain", name.value.clone()));
        cx.err(
            "recipe::missing-bootstrap",
            format!(
                "toolchain `{}` builds its compiler but does not say with what",
                name.value
            ),
            name.span,
            "no `bootstrap`",
            "add `bootstrap \"host-gcc\"`: the toolchain that compiles this compiler",
        );
        return None;
    }
    Some(ToolchainDecl {
        name,
        compiler,
        host,
        runtime,
        bootstrap,
        description,
        span,
    })
}

fn decode_arch(cx: &mut Cx<'_>, node: &KdlNode) -> Option<ArchDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the architecture name"), &[])?;
    let name = cx.string(args[0], "the architecture name")?;
    let mut spack_name = None;
    let mut flags = Vec::new();
    for c in cx.children(node, &["spack", "flags"]) {
        cx.no_children(c);
        if c.name().value() == "spack" {
            spack_name = cx.single_string(c, "the archspec name").map(|s| s.value);
            continue;
        }
        let Some((args, props)) = cx.entries(
            c,
            Args::AtLeast(1, "compiler flags"),
            &["compiler", "versions"],
        ) else {
            continue;
        };
        let Some(compiler) = props
            .get("compiler")
            .and_then(|e| cx.string(e, "`compiler`"))
        else {
            let s = cx.span(c.span());
            cx.err(
                "recipe::missing-property",
                "`flags` needs `compiler=`",
                s,
                "which compiler?",
                "write `flags compiler=\"gcc\" versions=\"11:\" \"-march=x86-64-v3\"`",
            );
            continue;
        };
        let versions = match props.get("versions") {
            Some(e) => {
                let Some(s) = cx.string(e, "`versions`") else {
                    continue;
                };
                match VersionReq::parse(&s.value) {
                    Ok(v) => v,
                    Err(err) => {
                        cx.err(
                            "recipe::bad-version",
                            format!("invalid version range: {err}"),
                            s.span,
                            "here",
                            "write a range such as `11:` or `4.8:10`",
                        );
                        continue;
                    }
                }
            }
            None => VersionReq::any(),
        };
        let fl = cx.names(&args, "a flag");
        flags.push(ArchFlags {
            compiler: compiler.value,
            versions,
            flags: fl.into_iter().map(|f| f.value).collect(),
            span: cx.span(c.span()),
        });
    }
    let span = cx.span(node.span());
    Some(ArchDecl {
        spack_name: spack_name.unwrap_or_else(|| name.value.replace('-', "_")),
        name,
        flags,
        span,
    })
}

const SETTINGS_CHILDREN: &[&str] = &["arch", "toolchain", "provider", "from-source"];

fn decode_settings(cx: &mut Cx<'_>, node: &KdlNode, extra: &[&str]) -> TargetSettings {
    let mut s = TargetSettings::default();
    let known: Vec<&str> = SETTINGS_CHILDREN.iter().chain(extra).copied().collect();
    for c in cx.children(node, &known) {
        let kind = c.name().value();
        if !SETTINGS_CHILDREN.contains(&kind) {
            continue;
        }
        match kind {
            "arch" => s.arch = cx.single_string(c, "an architecture"),
            "toolchain" => s.toolchain = cx.single_string(c, "a toolchain name"),
            "provider" => {
                cx.no_children(c);
                let Some((args, _)) = cx.entries(
                    c,
                    Args::Exactly(2, "the virtual and the package providing it"),
                    &[],
                ) else {
                    continue;
                };
                if let (Some(v), Some(p)) = (
                    cx.string(args[0], "the virtual"),
                    cx.string(args[1], "the provider"),
                ) {
                    s.providers.insert(v.value, p);
                }
            }
            _ => {
                cx.no_children(c);
                let Some((args, _)) = cx.entries(c, Args::AtLeast(1, "package names"), &[]) else {
                    continue;
                };
                s.from_source.extend(cx.names(&args, "a package name"));
            }
        }
    }
    s
}

fn decode_target(cx: &mut Cx<'_>, node: &KdlNode) -> Option<TargetDecl> {
    let (args, _) = cx.entries(node, Args::Exactly(1, "the target name"), &[])?;
    let name = cx.string(args[0], "the target name")?;
    let settings = decode_settings(cx, node, &["spec", "extra-root", "description"]);
    let mut spec = None;
    let mut extra_roots = Vec::new();
    let mut description = None;
    if let Some(doc) = node.children() {
        for c in doc.nodes() {
            match c.name().value() {
                "spec" => {
                    cx.no_children(c);
                    if let Some((args, _)) = cx.entries(c, Args::Exactly(1, "the root spec"), &[]) {
                        spec = cx.spec_lit(args[0], "the root spec");
                    }
                }
                "extra-root" => {
                    cx.no_children(c);
                    if let Some((args, _)) =
                        cx.entries(c, Args::Exactly(1, "a further root spec"), &[])
                        && let Some(s) = cx.spec_lit(args[0], "a further root spec")
                    {
                        extra_roots.push(s);
                    }
                }
                "description" => {
                    description = cx.single_string(c, "a description").map(|s| s.value)
                }
                _ => {}
            }
        }
    }
    let span = cx.span(node.span());
    let Some(spec) = spec else {
        if !cx.diags.has_errors() || node.children().is_none_or(|d| d.get("spec").is_none()) {
            cx.err(
                "recipe::missing-spec",
                format!("target `{}` has no `spec`", name.value),
                name.span,
                "no root spec",
                "add `spec \"slurm@25.11 +pmix\"` inside its block",
            );
        }
        return None;
    };
    Some(TargetDecl {
        name,
        spec,
        extra_roots,
        settings,
        description,
        matrix: None,
        span,
    })
}

/// Fills `{axis}` and `{axis.FORM}` in a matrix template. An error comes with the byte range of
/// the placeholder at fault.
fn fill_axes(
    template: &str,
    row: &[(&str, &str)],
) -> Result<String, (String, std::ops::Range<usize>)> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let at = template.len() - rest.len() + start;
        let Some(len) = rest[start..].find('}') else {
            return Err(("unclosed `{`".to_owned(), at..template.len()));
        };
        let range = at..at + len + 1;
        let key = &rest[start + 1..start + len];
        let (axis, form) = match key.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (key, None),
        };
        let Some((_, value)) = row.iter().find(|(a, _)| *a == axis) else {
            return Err((format!("`{{{key}}}` names no axis"), range));
        };
        match form {
            None => out.push_str(value),
            Some(form) => {
                let v = Version::parse(value).map_err(|e| {
                    (
                        format!("axis value `{value}` is not a version: {e}"),
                        range.clone(),
                    )
                })?;
                let d = v.derived(form).ok_or_else(|| {
                    let help = match did_you_mean(form, Version::DERIVED_FORMS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("forms are {}", Version::DERIVED_FORMS.join(", ")),
                    };
                    (
                        format!("`{form}` is not a version form of `{value}`; {help}"),
                        range.clone(),
                    )
                })?;
                out.push_str(&d);
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn decode_matrix(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<TargetDecl> {
    let Some((args, _)) = cx.entries(node, Args::Exactly(1, "the name template"), &[]) else {
        return Vec::new();
    };
    let Some(name_tpl) = cx.string(args[0], "the name template") else {
        return Vec::new();
    };
    let name_lit = cx.lit(args[0]);
    let settings = decode_settings(
        cx,
        node,
        &["axis", "spec", "description", "exclude", "also"],
    );
    let span = cx.span(node.span());
    let mut axes: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
    let mut spec: Option<(Spanned<String>, LitSpan)> = None;
    let mut description = None;
    // Each `exclude` row: (axis, value, span of the axis name).
    let mut excludes: Vec<Vec<(String, String, Span)>> = Vec::new();
    let mut also: Vec<(String, String, LitSpan)> = Vec::new();
    if let Some(doc) = node.children() {
        for c in doc.nodes() {
            match c.name().value() {
                "axis" => {
                    cx.no_children(c);
                    let Some((args, _)) =
                        cx.entries(c, Args::AtLeast(2, "the axis name and its values"), &[])
                    else {
                        continue;
                    };
                    let Some(n) = cx.string(args[0], "the axis name") else {
                        continue;
                    };
                    let vals = cx.names(&args[1..], "an axis value");
                    axes.push((n, vals));
                }
                "spec" => {
                    cx.no_children(c);
                    let Some((args, _)) = cx.entries(c, Args::Exactly(1, "the spec template"), &[])
                    else {
                        continue;
                    };
                    let lit = cx.lit(args[0]);
                    spec = cx.string(args[0], "the spec template").map(|s| (s, lit));
                }
                "description" => {
                    description = cx.single_string(c, "a description").map(|s| s.value)
                }
                "exclude" => {
                    cx.no_children(c);
                    let keys: Vec<String> = c
                        .entries()
                        .iter()
                        .filter_map(|e| e.name().map(|n| n.value().to_owned()))
                        .collect();
                    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let Some((_, props)) = cx.entries(c, Args::None, &key_refs) else {
                        continue;
                    };
                    let mut row = Vec::new();
                    for (k, e) in &props.entries {
                        let key_span = e.name().map_or(cx.span(c.span()), |n| cx.span(n.span()));
                        if let Some(v) = cx.string(e, "an axis value") {
                            row.push(((*k).to_owned(), v.value, key_span));
                        }
                    }
                    excludes.push(row);
                }
                "also" => {
                    cx.no_children(c);
                    let Some((args, props)) =
                        cx.entries(c, Args::Exactly(1, "the name suffix"), &["spec"])
                    else {
                        continue;
                    };
                    let Some(suffix) = cx.string(args[0], "the name suffix") else {
                        continue;
                    };
                    let Some(e) = props.get("spec") else {
                        cx.err(
                            "recipe::missing-property",
                            "`also` needs `spec=` with the clauses to add",
                            suffix.span,
                            "what changes?",
                            "write `also \"-gpu\" spec=\"+nvml +rsmi\"`",
                        );
                        continue;
                    };
                    let lit = cx.lit(e);
                    if let Some(s) = cx.string(e, "`spec`") {
                        also.push((suffix.value, s.value, lit));
                    }
                }
                _ => {}
            }
        }
    }
    let Some((spec_tpl, spec_lit)) = spec else {
        cx.err(
            "recipe::missing-spec",
            format!("matrix `{}` has no `spec`", name_tpl.value),
            name_tpl.span,
            "no spec template",
            "add `spec \"slurm@{series} %gcc@{gcc}\"`",
        );
        return Vec::new();
    };
    if axes.is_empty() {
        cx.err(
            "recipe::missing-axis",
            format!("matrix `{}` has no `axis`", name_tpl.value),
            name_tpl.span,
            "nothing to expand",
            "add `axis \"gcc\" \"13.4.0\" \"14.2.0\"`",
        );
        return Vec::new();
    }
    for row in &excludes {
        for (k, _, key_span) in row {
            if !axes.iter().any(|(a, _)| &a.value == k) {
                let help = match did_you_mean(k, axes.iter().map(|(a, _)| a.value.as_str())) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "axes: {}",
                        axes.iter()
                            .map(|(a, _)| a.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                cx.err(
                    "recipe::unknown-axis",
                    format!("`exclude` names no axis `{k}`"),
                    *key_span,
                    "unknown axis",
                    help,
                );
            }
        }
    }
    // Cartesian product, first axis outermost, so the order follows the file.
    let mut rows: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for (axis, values) in &axes {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                values.iter().map(move |v| {
                    let mut r = row.clone();
                    r.push((axis.value.as_str(), v.value.as_str()));
                    r
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for row in rows {
        let excluded = excludes.iter().any(|ex| {
            ex.iter()
                .all(|(k, v, _)| row.iter().any(|(a, val)| a == k && val == v))
        });
        if excluded {
            continue;
        }
        let name = match fill_axes(&name_tpl.value, &row) {
            Ok(n) => n,
            Err((e, range)) => {
                cx.err(
                    "recipe::bad-template",
                    format!("in the matrix name: {e}"),
                    name_lit.at(range),
                    "here",
                    "placeholders are axis names, optionally with a version form: `{gcc.major}`",
                );
                return out;
            }
        };
        let spec_text = match fill_axes(&spec_tpl.value, &row) {
            Ok(s) => s,
            Err((e, range)) => {
                cx.err(
                    "recipe::bad-template",
                    format!("in the matrix spec: {e}"),
                    spec_lit.at(range),
                    "here",
                    "placeholders are axis names, optionally with a version form: `{gcc.major}`",
                );
                return out;
            }
        };
        let description = description.as_ref().and_then(|d| fill_axes(d, &row).ok());
        let mut variants = vec![(
            name.clone(),
            spec_text.clone(),
            LitSpan {
                span: spec_lit.span,
                content_offset: None,
            },
        )];
        for (suffix, extra, lit) in &also {
            variants.push((
                format!("{name}{suffix}"),
                format!("{spec_text} {extra}"),
                *lit,
            ));
        }
        for (tname, text, lit) in variants {
            match Spec::parse(&text, true) {
                Ok(spec) => out.push(TargetDecl {
                    name: Spanned::new(tname, name_tpl.span),
                    spec: SpecLit {
                        spec,
                        lit: LitSpan {
                            content_offset: None,
                            ..lit
                        },
                    },
                    extra_roots: Vec::new(),
                    settings: settings.clone(),
                    description: description.clone(),
                    matrix: Some(name_tpl.value.clone()),
                    span,
                }),
                Err(err) => {
                    cx.err(
                        "recipe::bad-spec",
                        format!(
                            "matrix row `{tname}` gives an invalid spec `{text}`: {}",
                            err.message
                        ),
                        lit.span,
                        "this template",
                        err.help.unwrap_or_else(|| "check the spec template".into()),
                    );
                }
            }
        }
    }
    out
}
