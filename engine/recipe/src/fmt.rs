//! `forge fmt`: the canonical layout of a KDL file, comments kept.
//!
//! The layout: four spaces per level; one node per line; one space between entries; plain
//! strings in double quotes (identifier-looking strings are quoted too, so every file reads the
//! same); raw (`#"…"#`) and multi-line (`"""`) strings, numbers and booleans kept as written, with
//! multi-line strings re-indented to their node; comments kept and re-indented; at most one blank
//! line between nodes, where the author had one. Formatting a formatted file changes nothing.

use std::fmt::Write as _;

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

const INDENT: &str = "    ";

/// Formats KDL text canonically.
pub fn format_kdl(text: &str) -> Result<String, FormatError> {
    // The linear check first: the KDL parser takes exponential time on some broken input.
    if let Some(e) = crate::lex::check(text) {
        return Err(FormatError::Lex(e));
    }
    let doc: KdlDocument = text.parse().map_err(FormatError::Kdl)?;
    let mut out = String::with_capacity(text.len());
    write_document(&doc, 0, &mut out);
    // Comments after the last node.
    if let Some(f) = doc.format() {
        let trailing = comment_lines(&f.trailing);
        if !trailing.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            for l in trailing {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Why a file could not be formatted: it is not valid KDL.
#[derive(Debug)]
pub enum FormatError {
    /// Unclosed strings, comments or blocks, or nesting too deep (found before parsing).
    Lex(crate::lex::LexError),
    /// The KDL parser's error.
    Kdl(kdl::KdlError),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Lex(e) => write!(f, "{} (at byte {})", e.message, e.range.start),
            FormatError::Kdl(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// The comment lines of a leading or trailing decoration, trimmed.
fn comment_lines(decor: &str) -> Vec<String> {
    decor
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether the author left a blank line before a node: its leading text holds a line with
/// nothing but whitespace between two line ends.
fn had_blank_line(leading: &str) -> bool {
    let text = format!("\n{leading}");
    let mut last_nl: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            if let Some(prev) = last_nl
                && text[prev + 1..i].trim().is_empty()
            {
                return true;
            }
            last_nl = Some(i);
        } else if !c.is_whitespace() {
            last_nl = None;
        }
    }
    false
}

fn write_document(doc: &KdlDocument, level: usize, out: &mut String) {
    let indent = INDENT.repeat(level);
    for (i, node) in doc.nodes().iter().enumerate() {
        let leading = node
            .format()
            .map(|f| f.leading.as_str())
            .unwrap_or_default();
        if i > 0 && had_blank_line(leading) {
            out.push('\n');
        }
        for c in comment_lines(leading) {
            let _ = writeln!(out, "{indent}{c}");
        }
        write_node(node, level, out);
    }
}

fn write_node(node: &KdlNode, level: usize, out: &mut String) {
    let indent = INDENT.repeat(level);
    out.push_str(&indent);
    if let Some(ty) = node.ty() {
        let _ = write!(out, "({})", ident(ty.value(), ty.repr()));
    }
    out.push_str(&ident(node.name().value(), node.name().repr()));
    for e in node.entries() {
        // Block comments and `/-` slashdashed entries between entries stay where they were.
        if let Some(f) = e.format() {
            let lead = f.leading.trim();
            if !lead.is_empty() {
                out.push(' ');
                out.push_str(lead);
            }
        }
        out.push(' ');
        write_entry(e, level, out);
        if let Some(f) = e.format() {
            let trail = f.trailing.trim();
            if !trail.is_empty() && !trail.starts_with("//") {
                out.push(' ');
                out.push_str(trail);
            }
        }
    }
    let fmt = node.format();
    if let Some(children) = node.children() {
        if let Some(before) = fmt
            .map(|f| f.before_children.trim())
            .filter(|b| !b.is_empty())
        {
            out.push(' ');
            out.push_str(before);
        }
        out.push_str(" {\n");
        write_document(children, level + 1, out);
        // Comments after the last child.
        if let Some(f) = children.format() {
            for c in comment_lines(&f.trailing) {
                let _ = writeln!(out, "{indent}{INDENT}{c}");
            }
        }
        let _ = write!(out, "{indent}}}");
    }
    // A comment at the end of the line may sit in any of these, depending on the parser's view.
    let mut end: Vec<String> = Vec::new();
    if let Some(f) = fmt {
        for part in [&f.before_terminator, &f.terminator, &f.trailing] {
            let t = part.trim().trim_matches(';').trim();
            if !t.is_empty() {
                end.push(t.to_owned());
            }
        }
    }
    for e in node.entries() {
        if let Some(f) = e.format() {
            let t = f.trailing.trim();
            if t.starts_with("//") {
                end.insert(0, t.to_owned());
            }
        }
    }
    if !end.is_empty() {
        let _ = write!(out, " {}", end.join(" "));
    }
    out.push('\n');
}

fn write_entry(e: &KdlEntry, level: usize, out: &mut String) {
    if let Some(ty) = e.ty() {
        let _ = write!(out, "({})", ident(ty.value(), ty.repr()));
    }
    if let Some(name) = e.name() {
        let _ = write!(out, "{}=", ident(name.value(), name.repr()));
    }
    let repr = e
        .format()
        .map(|f| f.value_repr.as_str())
        .unwrap_or_default();
    match e.value() {
        KdlValue::String(s) => {
            if repr.starts_with('#') || repr.starts_with("\"\"\"") {
                out.push_str(&reindent_multiline(repr, level));
            } else {
                out.push_str(&quote(s));
            }
        }
        other if !repr.is_empty() => {
            let _ = other;
            out.push_str(repr);
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A multi-line string written for a node at `level`: its content and closing line move to the
/// node's indentation plus one level, keeping relative indentation.
fn reindent_multiline(repr: &str, level: usize) -> String {
    if !repr.contains('\n') {
        return repr.to_owned();
    }
    let lines: Vec<&str> = repr.split('\n').collect();
    let last = lines[lines.len() - 1];
    let old_prefix: String = last
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    let new_prefix = INDENT.repeat(level + 1);
    let mut out = String::from(lines[0]);
    for l in &lines[1..] {
        out.push('\n');
        if l.trim().is_empty() {
            continue;
        }
        match l.strip_prefix(old_prefix.as_str()) {
            Some(rest) => {
                out.push_str(&new_prefix);
                out.push_str(rest);
            }
            None => out.push_str(l),
        }
    }
    out
}

/// A string in double quotes with KDL v2 escapes.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '\u{08}' => q.push_str("\\b"),
            '\u{0c}' => q.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A node or property name: bare when it is a plain identifier, else as written.
fn ident(value: &str, repr: Option<&str>) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        && !value.starts_with(|c: char| c.is_ascii_digit())
        && !matches!(value, "true" | "false" | "null" | "inf" | "-inf" | "nan");
    if plain {
        value.to_owned()
    } else {
        repr.map_or_else(|| quote(value), str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_input_is_refused_quickly() {
        // The shape that made the KDL parser take exponential time (malformed case 72).
        let slow = "/-package \"x\" {\n".to_owned() + &"    version \"1 sha256=\"a\n".repeat(40);
        let t = std::time::Instant::now();
        assert!(matches!(format_kdl(&slow), Err(FormatError::Lex(_))));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        let deep = "a {".repeat(5000);
        assert!(matches!(format_kdl(&deep), Err(FormatError::Lex(_))));
        assert!(matches!(
            format_kdl("a \"b\" c=#maybe\n"),
            Err(FormatError::Kdl(_))
        ));
    }

    #[test]
    fn canonical_layout_keeps_comments_blank_lines_and_raw_strings() {
        let input = "// head comment\npackage   \"x\"{\n  version \"1.0\"   sha256=abc // why\n\n\n  /* block */ variant \"v\" default=#true\n  build custom {\n      phase install {\n          sh #\"\"\"\n              echo ${a}\n                indented\n              \"\"\"#\n      }\n  }\n}\n";
        let got = format_kdl(input).unwrap();
        let want = "// head comment\npackage \"x\" {\n    version \"1.0\" sha256=\"abc\" // why\n\n    /* block */\n    variant \"v\" default=#true\n    build \"custom\" {\n        phase \"install\" {\n            sh #\"\"\"\n                echo ${a}\n                  indented\n                \"\"\"#\n        }\n    }\n}\n";
        assert_eq!(got, want);
        assert_eq!(format_kdl(&got).unwrap(), got, "formatting is idempotent");
        // The formatted text means the same.
        let a: KdlDocument = input.parse().unwrap();
        let b: KdlDocument = got.parse().unwrap();
        assert_eq!(a.nodes().len(), b.nodes().len());
        // The `sh` script of package > build > phase.
        let script = |d: &KdlDocument| {
            d.nodes()[0].children().unwrap().nodes()[2]
                .children()
                .unwrap()
                .nodes()[0]
                .children()
                .unwrap()
                .nodes()[0]
                .entries()[0]
                .value()
                .clone()
        };
        let (sh_a, sh_b) = (script(&a), script(&b));
        assert_eq!(sh_a, sh_b);
    }

    /// The value structure of a document, without any formatting.
    fn shape(doc: &KdlDocument) -> Vec<String> {
        let mut out = Vec::new();
        for n in doc.nodes() {
            let mut line = n.name().value().to_owned();
            for e in n.entries() {
                line.push_str(&format!(
                    " {:?}={:?}",
                    e.name().map(|x| x.value().to_owned()),
                    e.value()
                ));
            }
            out.push(line);
            if let Some(c) = n.children() {
                out.push("{".into());
                out.extend(shape(c));
                out.push("}".into());
            }
        }
        out
    }

    #[test]
    fn every_kdl_file_of_the_repository_keeps_its_meaning_and_is_stable() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut checked = 0;
        for dir in [
            "recipes",
            "toolchains",
            "examples/hello/recipes",
            "examples/hello/toolchains",
        ] {
            let Ok(rd) = fs_err::read_dir(root.join(dir)) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.extension().is_none_or(|x| x != "kdl") {
                    continue;
                }
                let text = fs_err::read_to_string(&p).unwrap();
                let once = format_kdl(&text).unwrap();
                let twice = format_kdl(&once).unwrap();
                assert_eq!(
                    once,
                    twice,
                    "{} is not stable under formatting",
                    p.display()
                );
                let a: KdlDocument = text.parse().unwrap();
                let b: KdlDocument = once.parse().unwrap();
                assert_eq!(
                    shape(&a),
                    shape(&b),
                    "formatting changed the meaning of {}",
                    p.display()
                );
                let comments = |t: &str| t.matches("//").count();
                assert_eq!(
                    comments(&text),
                    comments(&once),
                    "a comment was lost in {}",
                    p.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "found only {checked} files");
    }
}
