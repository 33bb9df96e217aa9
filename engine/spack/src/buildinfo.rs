//! `.spack/binary_distribution`: the relocation metadata of one tarball.
//!
//! Spack reads it with a YAML parser. forge writes block-style YAML with every string
//! double-quoted (so no value can be mistaken for a number, a boolean or a flow collection), and
//! parses back exactly that subset (for its own tests and substituters).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The content of `.spack/binary_distribution`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The build-time store root (Spack's catch-all old prefix).
    pub buildpath: String,
    /// The prefix relative to `buildpath` (informational).
    pub relative_prefix: String,
    /// DAG hash → build-time prefix, for the package and every non-external dependency whose
    /// prefix its files may contain.
    pub hash_to_prefix: BTreeMap<String, String>,
    /// Prefix-relative paths of ELF files that embed an old prefix.
    pub relocate_binaries: Vec<String>,
    /// Prefix-relative paths of text files that embed an old prefix.
    pub relocate_textfiles: Vec<String>,
    /// Prefix-relative paths of symbolic links whose absolute target is under an old prefix.
    pub relocate_links: Vec<String>,
    /// `<buildpath>/bin/sbang`, when scripts of the prefix need it.
    pub sbang_install_path: Option<String>,
    /// Hard links appear once in the lists (always true for forge).
    pub hardlinks_deduped: bool,
}

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c == '\u{feff}' || ('\u{fff0}'..='\u{ffff}').contains(&c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn list(out: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{key}: []");
        return;
    }
    let _ = writeln!(out, "{key}:");
    for i in items {
        out.push_str("- ");
        quote(out, i);
        out.push('\n');
    }
}

impl BuildInfo {
    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        out.push_str("buildpath: ");
        quote(&mut out, &self.buildpath);
        out.push('\n');
        let _ = writeln!(out, "hardlinks_deduped: {}", self.hardlinks_deduped);
        if self.hash_to_prefix.is_empty() {
            out.push_str("hash_to_prefix: {}\n");
        } else {
            out.push_str("hash_to_prefix:\n");
            for (h, p) in &self.hash_to_prefix {
                out.push_str("  ");
                quote(&mut out, h);
                out.push_str(": ");
                quote(&mut out, p);
                out.push('\n');
            }
        }
        out.push_str("relative_prefix: ");
        quote(&mut out, &self.relative_prefix);
        out.push('\n');
        list(&mut out, "relocate_binaries", &self.relocate_binaries);
        list(&mut out, "relocate_links", &self.relocate_links);
        list(&mut out, "relocate_textfiles", &self.relocate_textfiles);
        if let Some(s) = &self.sbang_install_path {
            out.push_str("sbang_install_path: ");
            quote(&mut out, s);
            out.push('\n');
        }
        out
    }

    /// Parses what [`BuildInfo::to_yaml`] writes.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let mut info = BuildInfo::default();
        let mut current: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(item) = line.strip_prefix("- ") {
                let v = unquote(item).map_err(|m| err(&m))?;
                match current.as_deref() {
                    Some("relocate_binaries") => info.relocate_binaries.push(v),
                    Some("relocate_links") => info.relocate_links.push(v),
                    Some("relocate_textfiles") => info.relocate_textfiles.push(v),
                    _ => return Err(err("list item outside a list")),
                }
            } else if let Some(entry) = line.strip_prefix("  ") {
                if current.as_deref() != Some("hash_to_prefix") {
                    return Err(err("indented line outside `hash_to_prefix`"));
                }
                let (k, rest) = split_quoted(entry).map_err(|m| err(&m))?;
                let v = rest
                    .strip_prefix(": ")
                    .ok_or_else(|| err("expected `: `"))
                    .and_then(|v| unquote(v).map_err(|m| err(&m)))?;
                info.hash_to_prefix.insert(k, v);
            } else {
                let (key, value) = line.split_once(':').ok_or_else(|| err("expected `key:`"))?;
                let value = value.trim();
                current = Some(key.to_string());
                match (key, value) {
                    ("hardlinks_deduped", v) => info.hardlinks_deduped = v == "true",
                    (_, "" | "[]" | "{}") => {}
                    ("buildpath", v) => info.buildpath = unquote(v).map_err(|m| err(&m))?,
                    ("relative_prefix", v) => {
                        info.relative_prefix = unquote(v).map_err(|m| err(&m))?
                    }
                    ("sbang_install_path", v) => {
                        info.sbang_install_path = Some(unquote(v).map_err(|m| err(&m))?)
                    }
                    _ => return Err(err(&format!("unexpected key `{key}`"))),
                }
            }
        }
        Ok(info)
    }
}

/// Splits a leading double-quoted scalar from the rest.
fn split_quoted(s: &str) -> Result<(String, &str), String> {
    let body = s.strip_prefix('"').ok_or("expected a quoted string")?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("dangling escape")?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'x' | 'u' => {
                        let n = if e == 'x' { 2 } else { 4 };
                        let hex: String = (0..n)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        let v = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                        out.push(char::from_u32(v).ok_or("bad escape")?);
                    }
                    _ => return Err(format!("unknown escape `\\{e}`")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

fn unquote(s: &str) -> Result<String, String> {
    let (v, rest) = split_quoted(s.trim())?;
    if !rest.trim().is_empty() {
        return Err(format!("trailing text `{rest}`"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_awkward_names() {
        let info = BuildInfo {
            buildpath: "/forge/store/__forge_padding".into(),
            relative_prefix: "abc-x-1.0".into(),
            hash_to_prefix: [("2345".to_string(), "/forge/store/p/abc-x-1.0".to_string())].into(),
            relocate_binaries: vec!["bin/x".into(), "lib/true".into()],
            relocate_textfiles: vec!["share/a \"b\"\\c\td\u{1}é".into()],
            relocate_links: vec![],
            sbang_install_path: Some("/forge/store/__forge_padding/bin/sbang".into()),
            hardlinks_deduped: true,
        };
        let y = info.to_yaml();
        assert_eq!(BuildInfo::from_yaml(&y).unwrap(), info);
        insta::assert_snapshot!(y);
    }
}
