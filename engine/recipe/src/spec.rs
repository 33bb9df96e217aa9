//! The spec syntax, as Spack users write it: `slurm@25.11 +pmix ~nvml %gcc@13.4.0 target=x86-64-v3`.
//!
//! The same grammar serves three places: specs on the command line and in targets, the first
//! argument of `depends` (`pmix@4.2: ~munge`), and `when` conditions (`@25: +pmix %gcc@:10`).
//! Every clause keeps its byte range inside the string so that diagnostics can point into it.
//!
//! ```text
//! spec    := name? clause* ('^' name clause*)*
//! clause  := '@' versions | '+' variant | '~' variant | variant '=' value
//!          | '%' toolchain ('@' versions)? | 'target=' arch
//! ```

use std::fmt;
use std::ops::Range;

use crate::version::{VersionError, VersionReq};

/// A value together with the byte range it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Its byte range in the spec string.
    pub span: Range<usize>,
}

/// What a spec asks of one variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VariantSetting {
    /// `+name` / `~name`.
    Bool(bool),
    /// `name=value` or `name=a,b`: the listed values (one for single-valued variants).
    Values(Vec<String>),
}

impl fmt::Display for VariantSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Self::Values(vs) => f.write_str(&vs.join(",")),
        }
    }
}

/// `+pmix`, `~nvml`, `schedulers=slurm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantClause {
    /// Variant name.
    pub name: Located<String>,
    /// Requested setting.
    pub setting: VariantSetting,
    /// The whole clause.
    pub span: Range<usize>,
}

impl fmt::Display for VariantClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.setting {
            VariantSetting::Bool(true) => write!(f, "+{}", self.name.value),
            VariantSetting::Bool(false) => write!(f, "~{}", self.name.value),
            VariantSetting::Values(vs) => write!(f, "{}={}", self.name.value, vs.join(",")),
        }
    }
}

/// `%gcc@13.4.0`: the toolchain a node is compiled with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolchainClause {
    /// Toolchain name (`gcc`, `host-gcc`).
    pub name: Located<String>,
    /// Compiler version constraint.
    pub version: Option<Located<VersionReq>>,
    /// The whole clause.
    pub span: Range<usize>,
}

/// A parsed spec. Dependencies (`^dep…`) are specs of their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// Package (or virtual) name; absent in `when` conditions.
    pub name: Option<Located<String>>,
    /// `@…`.
    pub version: Option<Located<VersionReq>>,
    /// Variant clauses, in the order written.
    pub variants: Vec<VariantClause>,
    /// `%…`.
    pub toolchain: Option<ToolchainClause>,
    /// `target=…`.
    pub target: Option<Located<String>>,
    /// `^…` clauses.
    pub deps: Vec<Spec>,
    /// The whole spec.
    pub span: Range<usize>,
}

/// A spec that does not parse, with the byte range to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// What is wrong.
    pub message: String,
    /// Where, as a byte range of the input.
    pub span: Range<usize>,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl SpecError {
    fn new(message: impl Into<String>, span: Range<usize>) -> Self {
        Self {
            message: message.into(),
            span,
            help: None,
        }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | ',' | '=')
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> Located<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        Located {
            value: &self.text[start..self.pos],
            span: start..self.pos,
        }
    }
    fn name(&mut self, what: &str) -> Result<Located<String>, SpecError> {
        let start = self.pos;
        let word = self.take_while(is_name_char);
        if word.value.is_empty() {
            let end = self.text[start..]
                .chars()
                .next()
                .map_or(start, |c| start + c.len_utf8());
            return Err(SpecError::new(format!("expected {what}"), start..end));
        }
        Ok(Located {
            value: word.value.to_owned(),
            span: word.span,
        })
    }
    fn versions(&mut self) -> Result<Located<VersionReq>, SpecError> {
        self.skip_ws();
        let word = self.take_while(is_version_char);
        let req = VersionReq::parse(word.value).map_err(|e| {
            let span = match &e {
                VersionError::BadChar { offset, ch } => {
                    word.span.start + offset..word.span.start + offset + ch.len_utf8()
                }
                _ => word.span.clone(),
            };
            let span = if span.is_empty() {
                span.start..span.start + 1
            } else {
                span
            };
            SpecError::new(format!("invalid version constraint: {e}"), span).help(
                "write a version (`25.11`), a range (`1.2:1.4`, `3:`, `:3.1.6`), an exact version (`=1.2`) or several joined by `,`",
            )
        })?;
        Ok(Located {
            value: req,
            span: word.span,
        })
    }
    fn value(&mut self) -> Located<String> {
        if self.peek() == Some('"') {
            let start = self.pos;
            self.bump();
            let inner = self.take_while(|c| c != '"');
            self.bump();
            return Located {
                value: inner.value.to_owned(),
                span: start..self.pos,
            };
        }
        let word = self.take_while(|c| !c.is_whitespace() && c != '^' && c != '%');
        Located {
            value: word.value.to_owned(),
            span: word.span,
        }
    }
}

impl Spec {
    /// Parses a spec. `name_required` is true for `depends` and command-line specs, false for
    /// `when` conditions.
    pub fn parse(text: &str, name_required: bool) -> Result<Spec, SpecError> {
        let mut lx = Lexer { text, pos: 0 };
        lx.skip_ws();
        let mut spec = Self::parse_one(&mut lx, name_required)?;
        while lx.peek() == Some('^') {
            lx.bump();
            lx.skip_ws();
            let dep = Self::parse_one(&mut lx, true)?;
            if !dep.deps.is_empty() {
                unreachable!("parse_one stops at `^`");
            }
            spec.deps.push(dep);
        }
        spec.span = 0..text.trim_end().len();
        Ok(spec)
    }

    fn parse_one(lx: &mut Lexer<'_>, name_required: bool) -> Result<Spec, SpecError> {
        let start = lx.pos;
        let mut spec = Spec::default();
        // A leading word not followed by `=` is the package name.
        if lx.peek().is_some_and(is_name_char) {
            let save = lx.pos;
            let word = lx.name("a package name")?;
            if lx.peek() == Some('=') {
                lx.pos = save;
            } else {
                spec.name = Some(word);
            }
        }
        if spec.name.is_none() && name_required {
            let end = (lx.pos + 1).min(lx.text.len().max(lx.pos));
            return Err(
                SpecError::new("expected a package name", lx.pos..end.max(lx.pos))
                    .help("a spec starts with a package name, as in `slurm@25.11 +pmix`"),
            );
        }
        loop {
            lx.skip_ws();
            let clause_start = lx.pos;
            match lx.peek() {
                None | Some('^') => break,
                Some('@') => {
                    lx.bump();
                    let v = lx.versions()?;
                    if spec.version.is_some() {
                        return Err(SpecError::new(
                            "a spec can have only one version constraint",
                            clause_start..lx.pos,
                        )
                        .help("join alternatives with `,`, as in `@1.2,1.4:`"));
                    }
                    spec.version = Some(v);
                }
                Some(c @ ('+' | '~')) => {
                    lx.bump();
                    let name = lx.name("a variant name after `+` or `~`")?;
                    spec.push_variant(VariantClause {
                        name,
                        setting: VariantSetting::Bool(c == '+'),
                        span: clause_start..lx.pos,
                    })?;
                }
                Some('%') => {
                    lx.bump();
                    lx.skip_ws();
                    let name = lx.name("a toolchain name after `%`")?;
                    let version = if lx.peek() == Some('@') {
                        lx.bump();
                        Some(lx.versions()?)
                    } else {
                        None
                    };
                    if spec.toolchain.is_some() {
                        return Err(SpecError::new(
                            "a spec can name only one toolchain",
                            clause_start..lx.pos,
                        ));
                    }
                    spec.toolchain = Some(ToolchainClause {
                        name,
                        version,
                        span: clause_start..lx.pos,
                    });
                }
                Some(c) if is_name_char(c) => {
                    let name = lx.name("a variant name")?;
                    if lx.peek() != Some('=') {
                        return Err(SpecError::new(
                            format!("unexpected word `{}`", name.value),
                            name.span,
                        )
                        .help("variants are written `+name`, `~name` or `name=value`; a dependency is written `^name`"));
                    }
                    lx.bump();
                    let value = lx.value();
                    if value.value.is_empty() {
                        return Err(SpecError::new(
                            format!("`{}=` needs a value", name.value),
                            clause_start..lx.pos,
                        ));
                    }
                    if name.value == "target" {
                        if spec.target.is_some() {
                            return Err(SpecError::new(
                                "a spec can name only one target",
                                clause_start..lx.pos,
                            ));
                        }
                        spec.target = Some(value);
                    } else {
                        let values = value.value.split(',').map(str::to_owned).collect();
                        spec.push_variant(VariantClause {
                            name,
                            setting: VariantSetting::Values(values),
                            span: clause_start..lx.pos,
                        })?;
                    }
                }
                Some(c) => {
                    return Err(SpecError::new(
                        format!("unexpected `{c}` in spec"),
                        clause_start..clause_start + c.len_utf8(),
                    )
                    .help("a spec looks like `name@version +variant ~variant key=value %toolchain@version target=arch`"));
                }
            }
        }
        spec.span = start..lx.text[..lx.pos].trim_end().len().max(start);
        Ok(spec)
    }

    fn push_variant(&mut self, clause: VariantClause) -> Result<(), SpecError> {
        if let Some(prev) = self
            .variants
            .iter()
            .find(|v| v.name.value == clause.name.value)
        {
            if prev.setting != clause.setting {
                return Err(SpecError::new(
                    format!(
                        "variant `{}` is set twice, to different values",
                        clause.name.value
                    ),
                    clause.span,
                ));
            }
            return Ok(());
        }
        self.variants.push(clause);
        Ok(())
    }

    /// The package name, if the spec has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|n| n.value.as_str())
    }

    /// The version constraint (unconstrained if none was written).
    pub fn version_req(&self) -> VersionReq {
        self.version
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_default()
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut head = self.name().unwrap_or_default().to_owned();
        if let Some(v) = &self.version {
            head.push('@');
            head.push_str(&v.value.to_string());
        }
        if !head.is_empty() {
            parts.push(head);
        }
        parts.extend(self.variants.iter().map(ToString::to_string));
        if let Some(tc) = &self.toolchain {
            let mut s = format!("%{}", tc.name.value);
            if let Some(v) = &tc.version {
                s.push('@');
                s.push_str(&v.value.to_string());
            }
            parts.push(s);
        }
        if let Some(t) = &self.target {
            parts.push(format!("target={}", t.value));
        }
        for d in &self.deps {
            parts.push(format!("^{d}"));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_command_line_spec() {
        let s = Spec::parse("slurm@25.11 +pmix ~nvml %gcc@13.4.0 target=x86-64-v3", true).unwrap();
        assert_eq!(s.name(), Some("slurm"));
        assert_eq!(s.version.as_ref().unwrap().value.to_string(), "25.11");
        assert_eq!(s.variants.len(), 2);
        assert_eq!(s.variants[0].setting, VariantSetting::Bool(true));
        assert_eq!(s.variants[1].name.value, "nvml");
        let tc = s.toolchain.as_ref().unwrap();
        assert_eq!(tc.name.value, "gcc");
        assert_eq!(tc.version.as_ref().unwrap().value.to_string(), "13.4.0");
        assert_eq!(s.target.as_ref().unwrap().value, "x86-64-v3");
        assert_eq!(
            s.to_string(),
            "slurm@25.11 +pmix ~nvml %gcc@13.4.0 target=x86-64-v3"
        );
    }

    #[test]
    fn compact_clauses_and_deps() {
        let s = Spec::parse(
            "openmpi@5.0:+cuda~java schedulers=slurm,tm ^pmix@5 ~munge",
            true,
        )
        .unwrap();
        assert_eq!(s.variants.len(), 3);
        assert_eq!(
            s.variants[2].setting,
            VariantSetting::Values(vec!["slurm".into(), "tm".into()])
        );
        assert_eq!(s.deps.len(), 1);
        assert_eq!(s.deps[0].name(), Some("pmix"));
        assert_eq!(s.deps[0].variants[0].name.value, "munge");
    }

    #[test]
    fn conditions_have_no_name() {
        let s = Spec::parse("@25: +pmix %gcc@:10", false).unwrap();
        assert!(s.name.is_none());
        assert_eq!(s.version.unwrap().span, 1..4);
        assert!(Spec::parse("+pmix", true).is_err());
    }

    #[test]
    fn values_may_contain_plus_and_slashes() {
        let s = Spec::parse("gcc languages=c,c++,fortran sysconfdir=/etc/slurm", true).unwrap();
        assert_eq!(
            s.variants[0].setting,
            VariantSetting::Values(vec!["c".into(), "c++".into(), "fortran".into()])
        );
        assert_eq!(
            s.variants[1].setting,
            VariantSetting::Values(vec!["/etc/slurm".into()])
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Spec::parse("slurm@25.11 pmix", true).unwrap_err();
        assert_eq!(e.span, 12..16);
        let e = Spec::parse("slurm@", true).unwrap_err();
        assert!(e.message.contains("version"), "{e:?}");
        let e = Spec::parse("slurm@1..2", true).unwrap_err();
        assert_eq!(e.span, 6..10);
        let e = Spec::parse("slurm +pmix ~pmix", true).unwrap_err();
        assert_eq!(e.span, 12..17);
        let e = Spec::parse("slurm ! x", true).unwrap_err();
        assert_eq!(e.span, 6..7);
        let e = Spec::parse("slurm ^", true).unwrap_err();
        assert!(e.message.contains("package name"));
    }
}
