//! `version`: one version of a package and where its source comes from (downloaded, mirrored
//! or beside the recipe).

use kdl::KdlNode;

use super::cx::{Args, Cx};
use crate::model::*;

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
