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

/// `hash_to_prefix` of a `binary_distribution`, as forge writes it (block style, see
/// [`BuildInfo::from_yaml`]) or as Spack does (`yaml.dump(…, default_flow_style=True)`: one flow
/// mapping, plain or quoted scalars, lines folded).
pub(crate) fn hash_to_prefix_of(text: &str) -> Result<BTreeMap<String, String>, String> {
    if !text.trim_start().starts_with('{') {
        return BuildInfo::from_yaml(text).map(|i| i.hash_to_prefix);
    }
    let mut p = FlowParser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing text at byte {}", p.i));
    }
    let FlowValue::Map(top) = v else {
        return Err("not a mapping".into());
    };
    match top.into_iter().find(|(k, _)| k == "hash_to_prefix") {
        None => Ok(BTreeMap::new()),
        Some((_, FlowValue::Map(m))) => m
            .into_iter()
            .map(|(k, v)| match v {
                FlowValue::Scalar(v) => Ok((k, v)),
                _ => Err(format!("`hash_to_prefix` maps `{k}` to a collection")),
            })
            .collect(),
        Some((_, FlowValue::Scalar(s))) if s.is_empty() || s == "null" || s == "~" => {
            Ok(BTreeMap::new())
        }
        Some(_) => Err("`hash_to_prefix` is not a mapping".into()),
    }
}

/// A YAML flow value, as much of it as `binary_distribution` needs.
#[derive(Debug)]
enum FlowValue {
    Scalar(String),
    Seq,
    Map(Vec<(String, FlowValue)>),
}

/// A parser of YAML flow collections (`{k: v, …}`, `[a, …]`) with plain, single- and
/// double-quoted scalars; line breaks inside fold into spaces.
struct FlowParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl FlowParser<'_> {
    fn err(&self, m: &str) -> String {
        format!("byte {}: {m}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips white space, line breaks and comments.
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn value(&mut self) -> Result<FlowValue, String> {
        self.ws();
        match self.peek() {
            Some(b'{') | Some(b'[') => {
                self.depth += 1;
                if self.depth > 64 {
                    return Err(self.err("nested too deeply"));
                }
                let map = self.peek() == Some(b'{');
                let close = if map { b'}' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(close) {
                        self.i += 1;
                        break;
                    }
                    if map {
                        let FlowValue::Scalar(k) = self.value()? else {
                            return Err(self.err("a key is a collection"));
                        };
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err(self.err("expected `:`"));
                        }
                        self.i += 1;
                        self.ws();
                        let v = if matches!(self.peek(), Some(b',') | Some(b'}')) {
                            FlowValue::Scalar(String::new())
                        } else {
                            self.value()?
                        };
                        items.push((k, v));
                    } else {
                        self.value()?;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => return Err(self.err("expected `,` or the collection's end")),
                    }
                }
                self.depth -= 1;
                Ok(if map {
                    FlowValue::Map(items)
                } else {
                    FlowValue::Seq
                })
            }
            Some(b'"') => self.double_quoted().map(FlowValue::Scalar),
            Some(b'\'') => self.single_quoted().map(FlowValue::Scalar),
            Some(_) => Ok(FlowValue::Scalar(self.plain())),
            None => Err(self.err("unexpected end")),
        }
    }

    /// A plain scalar: up to a flow indicator, or `:` followed by a space or an indicator.
    fn plain(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            let next = self.s.get(self.i + 1).copied();
            let ends = match c {
                b',' | b'[' | b']' | b'{' | b'}' => true,
                b':' => matches!(
                    next,
                    None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
                ),
                b'#' => self.i > start && matches!(self.s[self.i - 1], b' ' | b'\t' | b'\n'),
                _ => false,
            };
            if ends {
                break;
            }
            self.i += 1;
        }
        fold(String::from_utf8_lossy(&self.s[start..self.i]).trim_end())
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'\'') if self.s.get(self.i + 1) == Some(&b'\'') => {
                    out.push(b'\'');
                    self.i += 2;
                }
                Some(b'\'') => {
                    self.i += 1;
                    break;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Ok(fold(&String::from_utf8_lossy(&out)))
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        let mut raw = Vec::new();
        let flush = |raw: &mut Vec<u8>, out: &mut String| {
            out.push_str(&fold(&String::from_utf8_lossy(raw)));
            raw.clear();
        };
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    flush(&mut raw, &mut out);
                    let e = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    let hex = |p: &mut Self, n: usize| -> Result<char, String> {
                        let h =
                            p.s.get(p.i..p.i + n)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| p.err("bad escape"))?;
                        p.i += n;
                        Ok(h)
                    };
                    match e {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'n') => out.push('\n'),
                        Some(b't') => out.push('\t'),
                        Some(b'r') => out.push('\r'),
                        Some(b'0') => out.push('\0'),
                        Some(b' ') => out.push(' '),
                        Some(b'x') => out.push(hex(self, 2)?),
                        Some(b'u') => out.push(hex(self, 4)?),
                        Some(b'U') => out.push(hex(self, 8)?),
                        Some(b'\n') => {
                            // An escaped line break joins the lines without a space.
                            while matches!(self.peek(), Some(b' ' | b'\t')) {
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.err("unknown escape")),
                    }
                }
                Some(c) => {
                    raw.push(c);
                    self.i += 1;
                }
            }
        }
        flush(&mut raw, &mut out);
        Ok(out)
    }
}

/// YAML line folding of a flow scalar's text: each line break with the white space around it
/// becomes one space (or, for several breaks, one line break less).
fn fold(s: &str) -> String {
    if !s.contains('\n') {
        return s.to_string();
    }
    let lines: Vec<&str> = s
        .split('\n')
        .map(|l| l.trim_matches([' ', '\t', '\r']))
        .collect();
    let mut out = String::new();
    let mut breaks = 0;
    for (n, l) in lines.iter().enumerate() {
        if n > 0 && l.is_empty() {
            breaks += 1;
            continue;
        }
        if n > 0 && !out.is_empty() {
            if breaks == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks));
            }
        }
        breaks = 0;
        out.push_str(l);
    }
    out
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

    #[test]
    fn reads_hash_to_prefix_of_real_spack_tarballs() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spack-v1.0/tarballs"
        );
        let mut seen = 0;
        for e in fs_err::read_dir(dir).unwrap() {
            let text = fs_err::read_to_string(e.unwrap().path()).unwrap();
            let m = hash_to_prefix_of(&text).unwrap();
            // The package's own hash maps to `buildpath/relative_prefix`.
            let field = |k: &str| {
                let at = text.find(&format!("{k}: ")).unwrap() + k.len() + 2;
                text[at..]
                    .split([',', '}'])
                    .next()
                    .unwrap()
                    .trim()
                    .to_string()
            };
            let rel = field("relative_prefix");
            let hash = rel.rsplit('-').next().unwrap();
            assert_eq!(m[hash], format!("{}/{rel}", field("buildpath")), "{text}");
            seen += 1;
        }
        assert_eq!(seen, 4);
    }

    #[test]
    fn reads_hash_to_prefix_in_forges_and_spacks_forms() {
        let forge = BuildInfo {
            hash_to_prefix: [("abc".to_string(), "/p/abc-x-1.0".to_string())].into(),
            ..BuildInfo::default()
        };
        assert_eq!(
            hash_to_prefix_of(&forge.to_yaml()).unwrap(),
            forge.hash_to_prefix
        );
        // What Spack's `syaml.dump(buildinfo, default_flow_style=True)` writes: one flow
        // mapping, folded at 80 columns.
        let spack = "{buildpath: /home/u/spack/opt/spack, hardlinks_deduped: true, hash_to_prefix: {\n    k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2: /home/u/spack/opt/spack/linux-x86_64_v3/zlib-1.2.13-k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2,\n    xyz: '/odd path/it''s', q: \"/a\\\\b \\u00e9\"},\n  relative_prefix: linux-x86_64_v3/zlib-1.2.13-k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2, relocate_binaries: [\n    lib/libz.so.1.2.13], relocate_links: [], relocate_textfiles: [lib/pkgconfig/zlib.pc],\n  sbang_install_path: /home/u/spack/bin/sbang, spackprefix: /home/u/spack}\n";
        let m = hash_to_prefix_of(spack).unwrap();
        assert_eq!(
            m["k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2"],
            "/home/u/spack/opt/spack/linux-x86_64_v3/zlib-1.2.13-k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2"
        );
        assert_eq!(m["xyz"], "/odd path/it's");
        assert_eq!(m["q"], "/a\\b é");
        assert_eq!(m.len(), 3);
        assert!(hash_to_prefix_of("{a: [b, {c: d}], hash_to_prefix: {x: y}").is_err());
        assert!(hash_to_prefix_of("{hash_to_prefix: {x: [y]}}").is_err());
        assert_eq!(hash_to_prefix_of("{hash_to_prefix: {}}").unwrap().len(), 0);
    }
}
