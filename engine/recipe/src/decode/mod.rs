//! KDL nodes → the typed model, reporting every mistake with its span.
//!
//! This layer knows the schema of every node a maintainer can write. It never stops at the first
//! error: a bad node is reported and skipped, and decoding goes on, so one run shows all problems
//! of a file. Checks that need more than one file (does a dependency exist, does a version
//! constraint match a version) belong to [`crate::validate`].
//!
//! One file per section of the language: `cx` holds the decoding context and its value
//! helpers; `package`, `version`, `variant`, `depends`, `build`, `toolchain`, `target` and
//! `matrix` decode the nodes of that name. A matrix is decoded, not expanded: `crate::eval`
//! turns it into targets.

mod build;
mod cx;
mod depends;
mod matrix;
mod package;
mod target;
mod toolchain;
mod variant;
mod version;

use std::path::Path;

use kdl::KdlDocument;

use crate::diag::Span;
use crate::model::*;

use cx::Args;
pub(crate) use cx::Cx;
pub(crate) use matrix::{Also, Axis, ExcludeCell, MatrixDecl};
pub use toolchain::DEFAULT_VERSION_REGEX;

/// A top-level item of a KDL file.
#[derive(Debug)]
pub(crate) enum Item {
    Package(Box<Recipe>),
    Toolchain(ToolchainDecl),
    Arch(ArchDecl),
    Target(Box<TargetDecl>),
    /// Expanded into targets by [`crate::eval::expand_matrices`] before the loader sees it.
    Matrix(Box<MatrixDecl>),
    Defaults(TargetSettings, Span),
}

const TOP_LEVEL: &[&str] = &[
    "package",
    "toolchain",
    "arch",
    "target",
    "matrix",
    "defaults",
];

/// Decodes one file's top-level nodes.
pub(crate) fn decode_document(cx: &mut Cx<'_>, doc: &KdlDocument, dir: &Path) -> Vec<Item> {
    let mut items = Vec::new();
    for node in doc.nodes() {
        match node.name().value() {
            "package" => {
                if let Some(r) = package::decode_package(cx, node, dir) {
                    items.push(Item::Package(Box::new(r)));
                }
            }
            "toolchain" => items.extend(toolchain::decode_toolchain(cx, node).map(Item::Toolchain)),
            "arch" => items.extend(toolchain::decode_arch(cx, node).map(Item::Arch)),
            "target" => {
                items.extend(target::decode_target(cx, node).map(|t| Item::Target(Box::new(t))))
            }
            "matrix" => {
                items.extend(matrix::decode_matrix(cx, node).map(|m| Item::Matrix(Box::new(m))))
            }
            "defaults" => {
                let span = cx.span(node.span());
                if cx.entries(node, Args::None, &[]).is_some() {
                    let settings = target::decode_settings(cx, node, &[]);
                    items.push(Item::Defaults(settings, span));
                }
            }
            _ => cx.unknown_node(node, "", TOP_LEVEL),
        }
    }
    items
}
