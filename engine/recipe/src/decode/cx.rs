//! The decoding context: the file being decoded, where diagnostics go, and the helpers every
//! section uses to read a node's arguments, properties and children as typed, spanned values.

use kdl::{KdlEntry, KdlNode, KdlValue};

use crate::diag::{Diag, Diagnostics, FileId, Sources, Span, did_you_mean};
use crate::model::*;
use crate::spec::Spec;
use crate::template::Template;
use crate::version::Version;

/// How many positional arguments a node takes.
#[derive(Clone, Copy)]
pub(super) enum Args {
    None,
    Exactly(usize, &'static str),
    AtLeast(usize, &'static str),
}

/// The decoding context of one file.
pub(crate) struct Cx<'a> {
    pub(crate) sources: &'a Sources,
    pub(crate) file: FileId,
    pub(crate) diags: &'a mut Diagnostics,
    /// Items whose node was reported and dropped, by kind (`toolchain`, `virtual`) and name.
    pub(crate) dropped: Vec<(&'static str, String)>,
}

/// A node's properties, by key.
pub(super) struct Props<'n> {
    pub(super) entries: Vec<(&'n str, &'n KdlEntry)>,
}

impl<'n> Props<'n> {
    pub(super) fn get(&self, key: &str) -> Option<&'n KdlEntry> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| *e)
    }
}

impl<'a> Cx<'a> {
    pub(super) fn text(&self) -> &str {
        &self.sources.get(self.file).text
    }

    pub(super) fn span(&self, s: miette::SourceSpan) -> Span {
        Span::new(self.file, s)
    }

    pub(super) fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    pub(super) fn err(
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
    pub(super) fn value_span(&self, e: &KdlEntry) -> Span {
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
    pub(super) fn lit(&self, e: &KdlEntry) -> LitSpan {
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

    pub(super) fn kind_name(v: &KdlValue) -> &'static str {
        match v {
            KdlValue::String(_) => "a string",
            KdlValue::Integer(_) => "an integer",
            KdlValue::Float(_) => "a number",
            KdlValue::Bool(_) => "a boolean",
            KdlValue::Null => "#null",
        }
    }

    pub(super) fn string(&mut self, e: &KdlEntry, what: &str) -> Option<Spanned<String>> {
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

    pub(super) fn boolean(&mut self, e: &KdlEntry, what: &str) -> Option<bool> {
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

    pub(super) fn integer(&mut self, e: &KdlEntry, what: &str, max: i128) -> Option<i128> {
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
    pub(super) fn entries<'n>(
        &mut self,
        node: &'n KdlNode,
        args: Args,
        known: &[&str],
    ) -> Option<(Vec<&'n KdlEntry>, Props<'n>)> {
        let mut positional = Vec::new();
        let mut props = Props {
            entries: Vec::new(),
        };
        let mut ok = true;
        for e in node.entries() {
            match e.name() {
                None => positional.push(e),
                Some(k) => ok &= self.property(node, e, k, known, &mut props),
            }
        }
        ok &= self.argument_count(node, &positional, args);
        ok.then_some((positional, props))
    }

    /// Adds the property `e` (named `k`) to `props`, or reports it unknown or repeated.
    fn property<'n>(
        &mut self,
        node: &KdlNode,
        e: &'n KdlEntry,
        k: &'n kdl::KdlIdentifier,
        known: &[&str],
        props: &mut Props<'n>,
    ) -> bool {
        let name = node.name().value();
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
            false
        } else if props.get(key).is_some() {
            let span = self.span(e.span());
            self.err(
                "recipe::duplicate-property",
                format!("property `{key}` is given twice on `{name}`"),
                span,
                "given again here",
                "keep one of them",
            );
            false
        } else {
            props.entries.push((key, e));
            true
        }
    }

    /// Whether the node has as many positional arguments as `args` says, reporting it if not.
    fn argument_count(&mut self, node: &KdlNode, positional: &[&KdlEntry], args: Args) -> bool {
        let name = node.name().value();
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
            false
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
            false
        } else {
            true
        }
    }

    /// The node's children, reporting unknown ones (with a suggestion) and skipping them.
    pub(super) fn children<'n>(&mut self, node: &'n KdlNode, known: &[&str]) -> Vec<&'n KdlNode> {
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

    pub(super) fn unknown_node(&mut self, node: &KdlNode, parent: &str, known: &[&str]) {
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

    pub(super) fn no_children(&mut self, node: &KdlNode) {
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
    pub(super) fn single_string(
        &mut self,
        node: &KdlNode,
        what: &'static str,
    ) -> Option<Spanned<String>> {
        self.no_children(node);
        let (args, _) = self.entries(node, Args::Exactly(1, what), &[])?;
        self.string(args[0], what)
    }

    pub(super) fn spec_lit(&mut self, e: &KdlEntry, what: &str) -> Option<SpecLit> {
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

    pub(super) fn condition(&mut self, e: &KdlEntry) -> Option<Condition> {
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

    pub(super) fn when(&mut self, props: &Props<'_>) -> Result<Option<Condition>, ()> {
        match props.get("when") {
            None => Ok(None),
            Some(e) => self.condition(e).map(Some).ok_or(()),
        }
    }

    pub(super) fn template(&mut self, e: &KdlEntry, what: &str) -> Option<Spanned<Template>> {
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

    pub(super) fn sha256(&mut self, e: &KdlEntry) -> Option<Spanned<Sha256>> {
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

    pub(super) fn version(&mut self, e: &KdlEntry) -> Option<Spanned<Version>> {
        let s = self.string(e, "a version")?;
        let lit = self.lit(e);
        match Version::parse(&s.value) {
            Ok(v) => Some(Spanned::new(v, s.span)),
            Err(err) => {
                let span = match &err {
                    crate::version::VersionError::BadChar { offset, ch } => {
                        lit.at(*offset..*offset + ch.len_utf8())
                    }
                    crate::version::VersionError::TooLarge { offset, digits } => {
                        lit.at(*offset..*offset + digits.len())
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

    pub(super) fn names(&mut self, args: &[&KdlEntry], what: &str) -> Vec<Spanned<String>> {
        args.iter().filter_map(|e| self.string(e, what)).collect()
    }
}

pub(super) fn example_args(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!("<{what}>")
    }
}
