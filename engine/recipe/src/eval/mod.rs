//! Evaluation of decoded declarations that stand for others: a `matrix` becomes its targets.
//!
//! Runs on each file's items right after decoding, before the loader looks at them.

pub(crate) mod matrix;

use crate::decode::Item;
use crate::diag::{Diagnostics, Sources};

/// `items` with every matrix replaced, in place, by the targets of its rows.
pub(crate) fn expand_matrices(
    items: Vec<Item>,
    sources: &Sources,
    diags: &mut Diagnostics,
) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Matrix(m) => out.extend(
                matrix::expand(&m, sources, diags)
                    .into_iter()
                    .map(|t| Item::Target(Box::new(t))),
            ),
            other => out.push(other),
        }
    }
    out
}
