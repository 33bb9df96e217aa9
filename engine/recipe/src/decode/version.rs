//! `version`: one version of a package and where its source comes from (downloaded, mirrored
//! or beside the recipe).

use kdl::{KdlEntry, KdlNode};

use super::cx::{Args, Cx, Props};
use crate::diag::Span;
use crate::model::*;
use crate::version::Version;

pub(super) fn decode_version(cx: &mut Cx<'_>, node: &KdlNode) -> Option<VersionDecl> {
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
            "preferred",
            "note",
            "inner",
            "inner-sha256",
            "allow-control-chars",
        ],
    )?;
    let version = cx.version(args[0])?;
    let span = cx.span(node.span());
    let deprecated = match props.get("deprecated") {
        Some(e) => cx.boolean(e, "`deprecated`")?,
        None => false,
    };
    let preferred = match props.get("preferred") {
        Some(e) => cx.boolean(e, "`preferred`")?,
        None => false,
    };
    let allow_control_chars = match props.get("allow-control-chars") {
        Some(e) => cx.boolean(e, "`allow-control-chars`")?,
        None => false,
    };
    let note = match props.get("note") {
        Some(e) => Some(cx.string(e, "`note`")?.value),
        None => None,
    };
    let source = match props.get("path") {
        Some(path) => local_source(cx, &props, path)?,
        None => downloaded_source(cx, &props, &version, span)?,
    };
    let inner = inner_archive(cx, &props, &source, span).ok()?;
    Some(VersionDecl {
        version,
        source,
        inner,
        deprecated,
        preferred,
        note,
        allow_control_chars,
        span,
    })
}

/// `path=`: a source beside the recipe, which takes none of the download properties.
fn local_source(cx: &mut Cx<'_>, props: &Props<'_>, path: &KdlEntry) -> Option<SourceDecl> {
    for key in ["sha256", "url", "file", "expand", "inner", "inner-sha256"] {
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
    Some(SourceDecl::Local {
        path: cx.string(path, "`path`")?,
    })
}

/// A downloaded source: checked by `sha256`, from `url` (or the package's URL) or, with `file=`,
/// only from mirrors.
fn downloaded_source(
    cx: &mut Cx<'_>,
    props: &Props<'_>,
    version: &Spanned<Version>,
    span: Span,
) -> Option<SourceDecl> {
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
            None
        }
        (Some(f), None) => Some(SourceDecl::Mirrored {
            file: mirrored_file(cx, f)?,
            sha256,
            expand,
        }),
        (None, url) => Some(SourceDecl::Remote {
            url: match url {
                Some(e) => Some(cx.template(e, "`url`")?),
                None => None,
            },
            sha256,
            expand,
        }),
    }
}

/// `file=`: the name mirrors hold the source under, a plain file name.
fn mirrored_file(cx: &mut Cx<'_>, f: &KdlEntry) -> Option<Spanned<String>> {
    let file = cx.string(f, "`file`")?;
    if file.value.is_empty() || file.value.contains('/') || file.value == "." || file.value == ".."
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
    Some(file)
}

/// `inner=` and `inner-sha256=`: the archive inside a wrapper archive, both or neither.
/// `Err` means a diagnostic was given.
fn inner_archive(
    cx: &mut Cx<'_>,
    props: &Props<'_>,
    source: &SourceDecl,
    span: Span,
) -> Result<Option<InnerDecl>, ()> {
    let (pattern, sha) = match (props.get("inner"), props.get("inner-sha256")) {
        (None, None) => return Ok(None),
        (Some(p), Some(s)) => (p, s),
        (Some(_), None) | (None, Some(_)) => {
            cx.err(
                "recipe::inner-without-sha256",
                "`inner` and `inner-sha256` go together",
                span,
                "one of the two is missing",
                "name the archive inside the wrapper with `inner=\"NAME-*.tar.*\"` and give its own checksum with `inner-sha256=\"…\"`",
            );
            return Err(());
        }
    };
    let expanded = matches!(
        source,
        SourceDecl::Remote { expand: true, .. } | SourceDecl::Mirrored { expand: true, .. }
    );
    let pattern_span = cx.span(pattern.span());
    if !expanded {
        cx.err(
            "recipe::conflicting-properties",
            "`inner` needs a source that is unpacked",
            pattern_span,
            "the wrapper is not unpacked",
            "remove `expand=#false`: the wrapper is unpacked to reach the archive inside it",
        );
        return Err(());
    }
    let pattern = cx.string(pattern, "`inner`").ok_or(())?;
    let p = &pattern.value;
    if p.is_empty() || p.contains('/') || p.chars().any(|c| c.is_control()) {
        cx.err(
            "recipe::bad-file-name",
            format!("`{p}` is not a file name pattern"),
            pattern.span,
            "not a file name pattern",
            "give the inner archive's file name, with `*` for any run of characters and `?` for one (`gcc-13.4.0*.tar.*`)",
        );
        return Err(());
    }
    let sha256 = cx.sha256(sha).ok_or(())?;
    Ok(Some(InnerDecl { pattern, sha256 }))
}
