//! The report as text for people (the CLI prints it to stderr). Plain text, no colour, stable
//! for a given report.

use std::fmt::Write;

use crate::report::{Difference, ExcerptFormat, NodeReport, Report};

/// Renders a whole report.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let _ = writeln!(
        out,
        "forge check {}: {} node{}, {} reproducible, {} not reproducible",
        report.target,
        s.nodes,
        plural(s.nodes),
        s.reproducible,
        s.not_reproducible
    );
    for node in &report.nodes {
        out.push('\n');
        render_node(&mut out, node);
    }
    if s.differences > 0 {
        let by: Vec<String> = s
            .by_classification
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\n{} difference{}: {}",
            s.differences,
            plural(s.differences),
            by.join(", ")
        );
    }
    out
}

/// Renders one node.
pub fn render_node_text(node: &NodeReport) -> String {
    let mut out = String::new();
    render_node(&mut out, node);
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

fn render_node(out: &mut String, n: &NodeReport) {
    let rounds = format!("{} round{}", n.rounds, plural(u64::from(n.rounds)));
    if n.reproducible {
        let _ = writeln!(out, "{}  reproducible ({rounds})", n.name);
        let _ = writeln!(out, "  {}", n.store_path);
        let _ = writeln!(out, "  hash {}", short(&n.stored_hash));
    } else {
        let _ = writeln!(
            out,
            "{}  NOT REPRODUCIBLE ({rounds}, {} difference{})",
            n.name,
            n.differences.len(),
            plural(n.differences.len() as u64)
        );
        let _ = writeln!(out, "  {}", n.store_path);
        let _ = writeln!(
            out,
            "  stored hash {}  ({} files, {} bytes)",
            short(&n.stored_hash),
            n.stored_files,
            n.stored_bytes
        );
        let _ = writeln!(
            out,
            "  rebuilt hash {}  ({} files, {} bytes)",
            short(&n.rebuilt_hash),
            n.rebuilt_files,
            n.rebuilt_bytes
        );
    }
    for note in &n.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    for d in &n.differences {
        render_difference(out, d);
    }
}

fn render_difference(out: &mut String, d: &Difference) {
    let mut head = format!("  {}  {}", d.path, d.classification);
    if !d.also.is_empty() {
        let also: Vec<&str> = d.also.iter().map(|c| c.as_str()).collect();
        let _ = write!(head, " (also {})", also.join(", "));
    }
    let _ = writeln!(out, "{head}");
    if !d.note.is_empty() {
        let _ = writeln!(out, "      {}", d.note);
    }
    if let (Some(a), Some(b)) = (d.stored_size, d.rebuilt_size)
        && a != b
    {
        let _ = writeln!(out, "      size {a} -> {b} bytes");
    }
    if let Some(o) = d.offset {
        let _ = writeln!(out, "      first difference at byte {o} (0x{o:x})");
    }
    if !d.members.is_empty() {
        let _ = writeln!(out, "      in member {}", d.members.join(" > "));
    }
    if let (Some(sa), Some(sb), Some(fmt)) =
        (&d.stored_excerpt, &d.rebuilt_excerpt, d.excerpt_format)
    {
        let at = match (fmt, d.line, d.excerpt_offset) {
            (ExcerptFormat::Text, Some(l), _) => format!("line {l}"),
            (_, _, Some(o)) => format!("0x{o:x}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "      stored  {at}: {sa}");
        let _ = writeln!(out, "      rebuilt {at}: {sb}");
    }
    if let Some(text) = &d.diffoscope {
        let _ = writeln!(out, "      diffoscope:");
        for line in text.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
}
