//! Strings with placeholders: URL templates and build arguments.
//!
//! `{version}`, `{version.dashed}` (any form of [`Version::derived`](crate::version::Version::derived)),
//! `{name}`, `{variant:NAME}` are filled in when a node is planned. `{out}` (the node's output
//! directory), `{src}` (its unpacked source), `{jobs}` (parallel jobs) and `{dep:NAME}` (a
//! dependency's output directory) stay symbolic in the derivation and are filled in by the
//! builder, so a derivation does not depend on where the store or the scratch directory is.
//! `{{` and `}}` stand for literal braces.

use std::fmt;
use std::ops::Range;

/// One placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Var {
    /// `{version}` or `{version.FORM}`.
    Version(Option<String>),
    /// `{name}`: the package name.
    Name,
    /// `{out}`: the node's output directory.
    Out,
    /// `{src}`: the unpacked source directory.
    Src,
    /// `{jobs}`: the number of parallel jobs the build may use.
    Jobs,
    /// `{dep:NAME}`: the output directory of dependency `NAME` (a package or a virtual).
    Dep(String),
    /// `{variant:NAME}`: the value of one of the package's variants.
    Variant(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(None) => f.write_str("{version}"),
            Self::Version(Some(form)) => write!(f, "{{version.{form}}}"),
            Self::Name => f.write_str("{name}"),
            Self::Out => f.write_str("{out}"),
            Self::Src => f.write_str("{src}"),
            Self::Jobs => f.write_str("{jobs}"),
            Self::Dep(n) => write!(f, "{{dep:{n}}}"),
            Self::Variant(n) => write!(f, "{{variant:{n}}}"),
        }
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// A placeholder and its byte range in the template text.
    Var(Var, Range<usize>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// Byte range in the template text.
    pub span: Range<usize>,
    /// How to fix it.
    pub help: String,
}

const HELP: &str = "placeholders are `{version}`, `{version.FORM}`, `{name}`, `{variant:NAME}`, `{dep:NAME}`, `{out}`, `{src}`, `{jobs}`; write `{{` and `}}` for literal braces";

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = text[i + 1..].find('}') else {
                        return Err(TemplateError {
                            message: "unclosed `{` in template".into(),
                            span: i..text.len(),
                            help: HELP.into(),
                        });
                    };
                    let inner = &text[i + 1..i + 1 + len];
                    let range = i..i + len + 2;
                    let var = Self::parse_var(inner).ok_or_else(|| TemplateError {
                        message: format!("unknown placeholder `{{{inner}}}`"),
                        span: range.clone(),
                        help: HELP.into(),
                    })?;
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Var(var, range));
                    i += len + 2;
                }
                b'}' => {
                    return Err(TemplateError {
                        message: "unmatched `}` in template".into(),
                        span: i..i + 1,
                        help: HELP.into(),
                    });
                }
                _ => {
                    let ch = text[i..].chars().next().unwrap_or('\0');
                    lit.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Self {
            text: text.to_owned(),
            pieces,
        })
    }

    fn parse_var(inner: &str) -> Option<Var> {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        Some(match inner {
            "version" => Var::Version(None),
            "name" => Var::Name,
            "out" => Var::Out,
            "src" => Var::Src,
            "jobs" => Var::Jobs,
            _ => {
                if let Some(form) = inner.strip_prefix("version.") {
                    Var::Version(Some(form.to_owned()))
                } else if let Some(n) = inner.strip_prefix("dep:") {
                    valid_name(n).then(|| Var::Dep(n.to_owned()))?
                } else if let Some(n) = inner.strip_prefix("variant:") {
                    valid_name(n).then(|| Var::Variant(n.to_owned()))?
                } else {
                    return None;
                }
            }
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Placeholders with their byte ranges.
    pub fn vars(&self) -> impl Iterator<Item = (&Var, &Range<usize>)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v, r) => Some((v, r)),
            Piece::Lit(_) => None,
        })
    }

    /// Fills in placeholders. `fill` returns `Ok(Some(text))` to substitute, `Ok(None)` to keep the
    /// placeholder symbolic (written back as `{…}`, with literal braces re-escaped), or an error.
    pub fn render<E>(
        &self,
        mut fill: impl FnMut(&Var) -> Result<Option<String>, E>,
    ) -> Result<String, E> {
        let mut out = String::with_capacity(self.text.len());
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v, _) => match fill(v)? {
                    Some(s) => out.push_str(&s),
                    None => out.push_str(&v.to_string()),
                },
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_placeholders_and_escapes() {
        let t = Template::parse("--with-pmix={dep:pmix} {{x}} v{version.dashed}-1").unwrap();
        let vars: Vec<_> = t.vars().map(|(v, _)| v.clone()).collect();
        assert_eq!(
            vars,
            [Var::Dep("pmix".into()), Var::Version(Some("dashed".into()))]
        );
        let out: Result<_, ()> = t.render(|v| {
            Ok(match v {
                Var::Version(_) => Some("22-05-8".into()),
                _ => None,
            })
        });
        assert_eq!(out.unwrap(), "--with-pmix={dep:pmix} {x} v22-05-8-1");
    }

    #[test]
    fn errors_have_ranges() {
        let e = Template::parse("a{bogus}b").unwrap_err();
        assert_eq!(e.span, 1..8);
        assert!(Template::parse("a{version").is_err());
        assert_eq!(Template::parse("a}b").unwrap_err().span, 1..2);
        assert!(Template::parse("{dep:}").is_err());
    }
}
