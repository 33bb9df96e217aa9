//! `forge fmt`: the canonical layout of a KDL file, comments kept.

use kdl::KdlDocument;

/// Formats KDL text canonically: four-space indentation, one node per line, entries separated
/// by one space, comments kept. Blank lines between top-level nodes are normalized to one.
pub fn format_kdl(text: &str) -> Result<String, kdl::KdlError> {
    let mut doc: KdlDocument = text.parse()?;
    doc.autoformat();
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
