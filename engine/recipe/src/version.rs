//! Versions and version constraints, with Spack's semantics.
//!
//! A [`Version`] is what a recipe declares (`25.11.2`, `2.1.12-stable`, `3.1-20240808`). It is split
//! into numeric and alphabetic components; separators (`.`, `-`, `_`) are kept for display and for
//! the derived forms that URL templates need (`25-11-2`, `1_77_0`, `25.11`), but do not take part
//! in comparison, exactly as in Spack.
//!
//! A [`VersionReq`] is the part after `@` in a spec: `@25.11` (that version or any `25.11.x`),
//! `@1.2:1.4` (inclusive range, the upper end also by prefix), `@3:` / `@:3.1.6`, `@=1.2`
//! (exactly), and unions of those joined by `,`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// One component of a version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Part {
    Num(u64),
    Str(String),
}

/// A concrete version: `1.2.13`, `2.1.12-stable`.
///
/// Cheap to clone (shared): resolution copies versions into every node key and constraint.
#[derive(Clone)]
pub struct Version(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    text: String,
    parts: Vec<Part>,
    /// Each component as written (`05` stays `05` in derived forms such as `22-05-8`).
    raw: Vec<String>,
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.0.text)
    }
}

/// Why a string is not a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Nothing was given.
    #[error("empty version")]
    Empty,
    /// A character that cannot appear in a version.
    #[error("`{ch}` cannot appear in a version")]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        offset: usize,
    },
    /// Two separators in a row, or one at the start or end.
    #[error("misplaced separator in version `{0}`")]
    Separator(String),
    /// A range or list that does not parse.
    #[error("{0}")]
    Constraint(String),
    /// A numeric component past what versions compare (`u64`).
    #[error(
        "`{digits}` is too large for a version component (at most 18446744073709551615): split it with `.` (a date and time as `2024.0102.1530`)"
    )]
    TooLarge {
        /// The component.
        digits: String,
        /// Its byte offset in the input.
        offset: usize,
    },
}

fn is_sep(c: char) -> bool {
    matches!(c, '.' | '-' | '_')
}

impl Version {
    /// Parses a version string.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut parts = Vec::new();
        let mut raw = Vec::new();
        let mut chars = text.char_indices().peekable();
        let mut prev_sep = true;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_digit() {
                let start = i;
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                let digits = &text[start..end];
                raw.push(digits.to_owned());
                // Numbers compare as numbers; one that does not fit would have to compare as
                // text, below every number, so that `@1:` would not hold it: refused instead.
                parts.push(match digits.parse::<u64>() {
                    Ok(n) => Part::Num(n),
                    Err(_) => {
                        return Err(VersionError::TooLarge {
                            digits: digits.to_owned(),
                            offset: start,
                        });
                    }
                });
                prev_sep = false;
            } else if c.is_ascii_alphabetic() {
                let start = i;
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_alphabetic() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                parts.push(Part::Str(text[start..end].to_owned()));
                raw.push(text[start..end].to_owned());
                prev_sep = false;
            } else if is_sep(c) {
                if prev_sep {
                    return Err(VersionError::Separator(text.to_owned()));
                }
                prev_sep = true;
                chars.next();
            } else {
                return Err(VersionError::BadChar { ch: c, offset: i });
            }
        }
        if prev_sep {
            return Err(VersionError::Separator(text.to_owned()));
        }
        Ok(Self(Arc::new(Inner {
            text: text.to_owned(),
            parts,
            raw,
        })))
    }

    /// The version exactly as written.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Whether `prefix`'s components are the first components of `self` (`25.11` of `25.11.2`).
    pub fn has_prefix(&self, prefix: &Version) -> bool {
        prefix.0.parts.len() <= self.0.parts.len()
            && self.0.parts[..prefix.0.parts.len()] == prefix.0.parts[..]
    }

    fn component_text(&self, i: usize) -> String {
        self.0.raw[i].clone()
    }

    /// The first `n` components, joined with `sep`.
    pub fn joined_up_to(&self, n: usize, sep: &str) -> String {
        (0..n.min(self.0.parts.len()))
            .map(|i| self.component_text(i))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// A derived form by name, as used in URL templates: `dotted` (`25.11.2`), `dashed`
    /// (`25-11-2`), `underscored` (`1_77_0`), `joined` (`25112`), `major` (`25`), `minor` (`11`),
    /// `patch` (`2`), `major_minor` (`25.11`), `major_minor_dashed` (`25-11`),
    /// `major_minor_underscored`, `major_minor_joined`. Returns `None` for an unknown form or a
    /// component the version does not have.
    pub fn derived(&self, form: &str) -> Option<String> {
        let all = self.0.parts.len();
        Some(match form {
            "dotted" => self.joined_up_to(all, "."),
            "dashed" => self.joined_up_to(all, "-"),
            "underscored" => self.joined_up_to(all, "_"),
            "joined" => self.joined_up_to(all, ""),
            "major" => self.component_text(0),
            "minor" if all > 1 => self.component_text(1),
            "patch" if all > 2 => self.component_text(2),
            "major_minor" if all > 1 => self.joined_up_to(2, "."),
            "major_minor_dashed" if all > 1 => self.joined_up_to(2, "-"),
            "major_minor_underscored" if all > 1 => self.joined_up_to(2, "_"),
            "major_minor_joined" if all > 1 => self.joined_up_to(2, ""),
            _ => return None,
        })
    }

    /// Every form name [`Version::derived`] knows, for help texts.
    pub const DERIVED_FORMS: &'static [&'static str] = &[
        "dotted",
        "dashed",
        "underscored",
        "joined",
        "major",
        "minor",
        "patch",
        "major_minor",
        "major_minor_dashed",
        "major_minor_underscored",
        "major_minor_joined",
    ];
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.0.parts == other.0.parts
    }
}
impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.parts.hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.parts.iter().zip(&other.0.parts) {
            let ord = match (a, b) {
                (Part::Num(x), Part::Num(y)) => x.cmp(y),
                (Part::Str(x), Part::Str(y)) => x.cmp(y),
                // A numeric component is newer than an alphabetic one: 1.0 > 1.rc
                (Part::Num(_), Part::Str(_)) => Ordering::Greater,
                (Part::Str(_), Part::Num(_)) => Ordering::Less,
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        // Equal prefix: a trailing alphabetic part marks a pre-release (1.0rc1 < 1.0),
        // a trailing numeric part a later release (1.0 < 1.0.1).
        let (shorter, longer, flip) = if self.0.parts.len() <= other.0.parts.len() {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let ord = match longer.0.parts.get(shorter.0.parts.len()) {
            None => Ordering::Equal,
            Some(Part::Str(_)) => Ordering::Greater,
            Some(Part::Num(_)) => Ordering::Less,
        };
        if flip { ord.reverse() } else { ord }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One alternative of a version constraint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VersionRange {
    /// `=1.2`: exactly that version.
    Exact(Version),
    /// `1.2`: that version or any version it is a prefix of.
    Prefix(Version),
    /// `1.2:1.4`, `1.2:`, `:1.4`: inclusive; the upper end also matches by prefix (`:1.4`
    /// accepts `1.4.7`).
    Range(Option<Version>, Option<Version>),
}

impl VersionRange {
    /// Whether `v` lies in this range.
    pub fn contains(&self, v: &Version) -> bool {
        match self {
            Self::Exact(x) => v == x,
            Self::Prefix(p) => v.has_prefix(p),
            Self::Range(lo, hi) => {
                lo.as_ref().is_none_or(|lo| v >= lo)
                    && hi.as_ref().is_none_or(|hi| v <= hi || v.has_prefix(hi))
            }
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(v) => write!(f, "={v}"),
            Self::Prefix(v) => write!(f, "{v}"),
            Self::Range(lo, hi) => {
                if let Some(lo) = lo {
                    write!(f, "{lo}")?;
                }
                f.write_str(":")?;
                if let Some(hi) = hi {
                    write!(f, "{hi}")?;
                }
                Ok(())
            }
        }
    }
}

/// A version constraint: a union of ranges (`1.2:1.4,2.0`). The empty union matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionReq {
    ranges: Vec<VersionRange>,
}

impl VersionReq {
    /// The constraint every version satisfies.
    pub fn any() -> Self {
        Self::default()
    }

    /// Exactly this version.
    pub fn exact(v: Version) -> Self {
        Self {
            ranges: vec![VersionRange::Exact(v)],
        }
    }

    /// Whether this is the unconstrained requirement.
    pub fn is_any(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The alternatives of this constraint.
    pub fn ranges(&self) -> &[VersionRange] {
        &self.ranges
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.ranges.is_empty() || self.ranges.iter().any(|r| r.contains(v))
    }

    /// Parses the text after `@`: `25.11`, `=1.2`, `1.2:1.4,2:`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(VersionError::Constraint(
                "expected a version after `@`".to_owned(),
            ));
        }
        let mut ranges = Vec::new();
        for alt in text.split(',') {
            let alt = alt.trim();
            let range = if let Some(exact) = alt.strip_prefix('=') {
                VersionRange::Exact(Version::parse(exact)?)
            } else if let Some((lo, hi)) = alt.split_once(':') {
                if hi.contains(':') {
                    return Err(VersionError::Constraint(format!(
                        "`{alt}` has more than one `:`; a range is written `low:high`"
                    )));
                }
                let lo = (!lo.is_empty()).then(|| Version::parse(lo)).transpose()?;
                let hi = (!hi.is_empty()).then(|| Version::parse(hi)).transpose()?;
                if let (Some(l), Some(h)) = (&lo, &hi)
                    && l > h
                    && !l.has_prefix(h)
                {
                    return Err(VersionError::Constraint(format!(
                        "the range `{alt}` is empty: `{l}` is newer than `{h}`"
                    )));
                }
                VersionRange::Range(lo, hi)
            } else if alt.is_empty() {
                return Err(VersionError::Constraint(format!(
                    "empty alternative in `{text}`"
                )));
            } else {
                VersionRange::Prefix(Version::parse(alt)?)
            };
            ranges.push(range);
        }
        Ok(Self { ranges })
    }
}

impl FromStr for VersionReq {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges.is_empty() {
            return f.write_str(":");
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn req(s: &str) -> VersionReq {
        VersionReq::parse(s).unwrap()
    }

    #[test]
    fn a_component_past_u64_is_refused_with_its_offset() {
        assert_eq!(
            Version::parse("1.99999999999999999999"),
            Err(VersionError::TooLarge {
                digits: "99999999999999999999".into(),
                offset: 2
            })
        );
        // The largest that fits still orders as a number.
        assert!(v("18446744073709551615") > v("1"));
        assert!(VersionReq::parse("@1:99999999999999999999").is_err());
    }

    #[test]
    fn ordering_is_numeric_and_prerelease_aware() {
        let mut vs: Vec<_> = [
            "1.10",
            "1.9",
            "1.0",
            "1.0rc1",
            "1.0.1",
            "2",
            "1.0-alpha",
            "25.11.2",
            "25.11.10",
        ]
        .iter()
        .map(|s| v(s))
        .collect();
        vs.sort();
        let sorted: Vec<_> = vs.iter().map(Version::as_str).collect();
        assert_eq!(
            sorted,
            [
                "1.0-alpha",
                "1.0rc1",
                "1.0",
                "1.0.1",
                "1.9",
                "1.10",
                "2",
                "25.11.2",
                "25.11.10"
            ]
        );
    }

    #[test]
    fn separators_do_not_matter_for_equality() {
        assert_eq!(v("22.05.8"), v("22-05-8"));
        assert_eq!(v("22.05.8").as_str(), "22.05.8");
    }

    #[test]
    fn derived_forms() {
        let x = v("22.05.8");
        assert_eq!(x.derived("dashed").unwrap(), "22-05-8");
        assert_eq!(x.derived("major_minor").unwrap(), "22.05");
        assert_eq!(x.derived("major_minor_dashed").unwrap(), "22-05");
        assert_eq!(v("1.77.0").derived("underscored").unwrap(), "1_77_0");
        assert_eq!(x.derived("joined").unwrap(), "22058");
        assert_eq!(v("3").derived("minor"), None);
        assert_eq!(x.derived("nonsense"), None);
    }

    #[test]
    fn prefix_and_ranges() {
        assert!(req("25.11").matches(&v("25.11.2")));
        assert!(req("25.11").matches(&v("25.11")));
        assert!(!req("25.11").matches(&v("25.1")));
        assert!(!req("25.11").matches(&v("25.110")));
        assert!(req("2.4.2:3.1.6").matches(&v("3.1.6")));
        assert!(!req("2.4.2:3.1.6").matches(&v("4.2.0")));
        assert!(req(":3.1").matches(&v("3.1.6")));
        assert!(req("11:").matches(&v("15.2.0")));
        assert!(!req("11:").matches(&v("10.5.0")));
        assert!(req("=1.2").matches(&v("1.2")));
        assert!(!req("=1.2").matches(&v("1.2.1")));
        assert!(req("1.2,3:").matches(&v("3.5")));
        assert!(VersionReq::any().matches(&v("0.1")));
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(matches!(
            Version::parse("1..2"),
            Err(VersionError::Separator(_))
        ));
        assert!(matches!(
            Version::parse("1.2 "),
            Err(VersionError::BadChar { ch: ' ', .. })
        ));
        assert!(VersionReq::parse("4:2").is_err());
        assert!(VersionReq::parse("1:2:3").is_err());
        assert!(VersionReq::parse("").is_err());
        assert!(VersionReq::parse("1,").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["25.11", "=1.2", "1.2:1.4,2:", ":3.1.6"] {
            assert_eq!(req(s).to_string(), s);
        }
    }
}
