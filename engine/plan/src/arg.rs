//! Build arguments as the builder receives them: literal text, and the four things only the
//! builder knows — the output directory, the unpacked source, the number of parallel jobs and a
//! dependency's output directory. The planner fills in everything else (versions, variants,
//! names), so a derivation does not depend on where the store or the scratch directory is.
//!
//! In the derivation's JSON an argument is one string: the pieces written as `{out}`, `{src}`,
//! `{jobs}` and `{dep:NAME}`, literal braces doubled (`{{`, `}}`).

use std::borrow::Cow;
use std::fmt;

use forge_recipe::{Template, Var};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One piece of an [`Arg`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// `{out}`: the node's output directory.
    Out,
    /// `{src}`: the unpacked source directory.
    Src,
    /// `{jobs}`: the number of parallel jobs the build may use.
    Jobs,
    /// `{dep:NAME}`: the output directory of dependency `NAME` (a package or a virtual).
    Dep(String),
}

/// A build argument or environment value: literal text and builder-filled placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Arg {
    pieces: Vec<Piece>,
}

impl Arg {
    /// An argument of literal text only.
    pub fn lit(text: impl Into<String>) -> Self {
        let mut a = Self::default();
        a.push(Piece::Lit(text.into()));
        a
    }

    /// An argument made of `pieces`.
    pub fn of(pieces: impl IntoIterator<Item = Piece>) -> Self {
        let mut a = Self::default();
        for p in pieces {
            a.push(p);
        }
        a
    }

    /// The arguments one after another, as one argument.
    pub fn concat(args: impl IntoIterator<Item = Arg>) -> Self {
        Self::of(args.into_iter().flat_map(|a| a.pieces))
    }

    /// Appends a piece (adjacent literals merge; empty ones vanish).
    pub fn push(&mut self, piece: Piece) {
        match (self.pieces.last_mut(), piece) {
            (_, Piece::Lit(s)) if s.is_empty() => {}
            (Some(Piece::Lit(last)), Piece::Lit(s)) => last.push_str(&s),
            (_, p) => self.pieces.push(p),
        }
    }

    /// This argument followed by `other`.
    pub fn then(mut self, other: Arg) -> Self {
        for p in other.pieces {
            self.push(p);
        }
        self
    }

    /// The pieces, adjacent literals merged.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The text the builder runs: each placeholder replaced by what `fill` gives for it.
    pub fn fill<'a, E>(
        &'a self,
        mut fill: impl FnMut(&'a Piece) -> Result<Cow<'a, str>, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                other => out.push_str(&fill(other)?),
            }
        }
        Ok(out)
    }

    /// Reads the derivation's text form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = Template::parse(text).map_err(|e| e.message)?;
        let mut a = Self::default();
        for p in t.pieces() {
            a.push(match p {
                forge_recipe::template::Piece::Lit(s) => Piece::Lit(s.clone()),
                forge_recipe::template::Piece::Var(v, _) => match v {
                    Var::Out => Piece::Out,
                    Var::Src => Piece::Src,
                    Var::Jobs => Piece::Jobs,
                    Var::Dep(n) => Piece::Dep(n.clone()),
                    other => {
                        return Err(format!(
                            "`{other}` is filled in when planning; a derivation cannot hold it"
                        ));
                    }
                },
            });
        }
        Ok(a)
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => {
                    for c in s.chars() {
                        match c {
                            '{' => f.write_str("{{")?,
                            '}' => f.write_str("}}")?,
                            c => fmt::Write::write_char(f, c)?,
                        }
                    }
                }
                Piece::Out => f.write_str("{out}")?,
                Piece::Src => f.write_str("{src}")?,
                Piece::Jobs => f.write_str("{jobs}")?,
                Piece::Dep(n) => write!(f, "{{dep:{n}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_escapes_literal_braces() {
        let a = Arg::of([
            Piece::Lit("--with-x=".into()),
            Piece::Dep("openssl".into()),
            Piece::Lit("/lib ${HOME}".into()),
            Piece::Jobs,
        ]);
        let text = a.to_string();
        assert_eq!(text, "--with-x={dep:openssl}/lib ${{HOME}}{jobs}");
        assert_eq!(Arg::parse(&text).unwrap(), a);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"--with-x={dep:openssl}/lib ${{HOME}}{jobs}\""
        );
        assert!(
            Arg::parse("{version}")
                .unwrap_err()
                .contains("when planning")
        );
        assert!(Arg::parse("{nope}").is_err());
    }

    #[test]
    fn literals_merge_and_fill_replaces_placeholders() {
        let a = Arg::lit("-j")
            .then(Arg::of([Piece::Jobs]))
            .then(Arg::lit(""));
        assert_eq!(a.pieces(), &[Piece::Lit("-j".into()), Piece::Jobs]);
        let b = Arg::concat([Arg::lit("a"), Arg::lit("b"), Arg::of([Piece::Out])]);
        assert_eq!(b.pieces(), &[Piece::Lit("ab".into()), Piece::Out]);
        let filled: Result<String, ()> = b.fill(|p| {
            Ok(match p {
                Piece::Out => "/o".into(),
                _ => "?".into(),
            })
        });
        assert_eq!(filled.unwrap(), "ab/o");
    }
}
