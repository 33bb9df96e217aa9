//! A linear pre-check of KDL text, run before the `kdl` parser sees it.
//!
//! The `kdl` crate's parser recovers from errors by trying alternatives, which on some broken
//! inputs (blocks commented out with `/-`, left open, with a string broken inside, a few times
//! over) takes time exponential in the nesting: twenty such lines take half a minute. It also
//! recurses once per block, so thousands of nested blocks overflow the stack. This pass finds
//! the mistakes that lead there — a string or comment that is not closed, a brace without its
//! partner, blocks nested deeper than any recipe needs — in one pass over the text, and reports
//! them as syntax errors; the parser is only called on text that passes. It knows only KDL v2's
//! lexical rules (strings, raw strings, comments, braces), so it never rejects valid KDL.

use std::ops::Range;

/// Blocks nested deeper than this are refused (recipes nest four or five levels).
pub const MAX_DEPTH: usize = 64;

/// A lexical mistake: what, where (a byte range of the text), a label and a help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// The message, lower case, no trailing period.
    pub message: String,
    /// The bytes to point at.
    pub range: Range<usize>,
    /// The label on them.
    pub label: String,
    /// How to fix it.
    pub help: String,
}

fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{85}' | '\u{0C}' | '\u{2028}' | '\u{2029}'
    )
}

fn err(message: &str, range: Range<usize>, label: &str, help: &str) -> Option<LexError> {
    Some(LexError {
        message: message.to_owned(),
        range,
        label: label.to_owned(),
        help: help.to_owned(),
    })
}

/// The first lexical mistake of `text`, if any.
pub fn check(text: &str) -> Option<LexError> {
    let mut open: Vec<usize> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let rest = &text[i..];
                if rest.starts_with("\"\"\"") {
                    chars.next();
                    chars.next();
                    if !skip_quoted(&mut chars, true) {
                        return err(
                            "multi-line string is not closed",
                            i..i + 3,
                            "opened here",
                            "close it with `\"\"\"` on a line of its own",
                        );
                    }
                } else if !skip_quoted(&mut chars, false) {
                    let end = text[i..].find(is_newline).map_or(text.len(), |n| i + n);
                    return err(
                        "string is not closed on its line",
                        i..end,
                        "this string",
                        "close it with `\"`; a string on several lines is written `\"\"\"`, with the opening quotes at the end of a line",
                    );
                }
            }
            '#' => {
                let hashes = 1 + text[i + 1..].bytes().take_while(|b| *b == b'#').count();
                let after = i + hashes;
                if !text[after..].starts_with('"') {
                    continue; // `#true`, `#false`, `#null`, `#inf`, …
                }
                for _ in 1..hashes {
                    chars.next();
                }
                chars.next(); // the opening quote
                let multi = text[after..].starts_with("\"\"\"");
                if multi {
                    chars.next();
                    chars.next();
                }
                let closing = format!(
                    "{}{}",
                    if multi { "\"\"\"" } else { "\"" },
                    "#".repeat(hashes)
                );
                let body = after + if multi { 3 } else { 1 };
                let Some(len) = text[body..].find(&closing) else {
                    return err(
                        "raw string is not closed",
                        i..body,
                        "opened here",
                        &format!("close it with `{closing}`"),
                    );
                };
                if !multi && let Some(nl) = text[body..body + len].find(is_newline) {
                    return err(
                        "raw string is not closed on its line",
                        i..body + nl,
                        "this string",
                        &format!(
                            "close it with `{closing}`; a raw string on several lines is written `#\"\"\"`"
                        ),
                    );
                }
                let end = body + len + closing.len();
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            '/' => match chars.peek().map(|(_, c)| *c) {
                Some('/') => {
                    while chars.peek().is_some_and(|(_, c)| !is_newline(*c)) {
                        chars.next();
                    }
                }
                Some('*') => {
                    chars.next();
                    let mut depth = 1;
                    while depth > 0 {
                        match chars.next() {
                            None => {
                                return err(
                                    "block comment is not closed",
                                    i..i + 2,
                                    "opened here",
                                    "close it with `*/` (block comments nest: each `/*` needs its `*/`)",
                                );
                            }
                            Some((_, '/')) if chars.peek().is_some_and(|(_, c)| *c == '*') => {
                                chars.next();
                                depth += 1;
                            }
                            Some((_, '*')) if chars.peek().is_some_and(|(_, c)| *c == '/') => {
                                chars.next();
                                depth -= 1;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => {}
            },
            '{' => {
                open.push(i);
                if open.len() > MAX_DEPTH {
                    return err(
                        &format!("blocks are nested more than {MAX_DEPTH} deep"),
                        i..i + 1,
                        "too deep",
                        "recipes nest a few levels (`package` › `build` › `phase`); look for `}` that are missing",
                    );
                }
            }
            // The guard pops the `{` that this `}` closes, when there is one.
            '}' if open.pop().is_none() => {
                return err(
                    "this `}` closes nothing",
                    i..i + 1,
                    "this `}` closes nothing",
                    "a block above is closed twice, or the `{` that opens it is missing",
                );
            }
            _ => {}
        }
    }
    open.first().and_then(|first| {
        err(
            "a block is never closed",
            *first..*first + 1,
            "this `{` has no `}`",
            "a `}` is missing, for this block or for one inside it",
        )
    })
}

/// Skips the rest of a quoted string (after its opening quotes); false when the text ends first,
/// or, for a single-line string, when a line ends first.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, multi: bool) -> bool {
    while let Some((_, c)) = chars.next() {
        match c {
            // An escape: `\` and the next character, or `\` and all the whitespace after it.
            '\\' => match chars.next() {
                Some((_, n)) if n.is_whitespace() => {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some(_) => {}
                None => return false,
            },
            '"' if !multi => return true,
            '"' if chars.peek().is_some_and(|(_, c)| *c == '"') => {
                let mut probe = chars.clone();
                probe.next();
                if probe.peek().is_some_and(|(_, c)| *c == '"') {
                    chars.next();
                    chars.next();
                    return true;
                }
            }
            c if !multi && is_newline(c) => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_kdl_passes() {
        for text in [
            "package \"x\" {\n    description \"a \\\"quoted\\\" word\"\n}\n",
            "a \"multi \\\n   line by escape\"\n",
            "sh #\"\"\"\n    echo \"{ not a block\"\n    \"\"\"#\n",
            "a #\"raw \" with quote\"# b ##\"two \"# hashes\"##\n",
            "/* nested /* comment { */ still */ a\n",
            "// a comment with \" and {\nb #true #false #null\n",
            "m \"\"\"\n  text with \" and \"\" inside\n  \"\"\"\n",
            "/- a { b \"c\" }\n",
        ] {
            assert_eq!(check(text), None, "{text}");
            assert!(text.parse::<kdl::KdlDocument>().is_ok(), "{text}");
        }
    }

    #[test]
    fn lexical_mistakes_are_found_where_they_are() {
        let cases: &[(&str, &str, Range<usize>)] = &[
            ("a \"open\nb\n", "string is not closed on its line", 2..7),
            ("a {\n}\n}\n", "this `}` closes nothing", 6..7),
            ("a {\n  b {\n  }\n", "a block is never closed", 2..3),
            ("/* x\n", "block comment is not closed", 0..2),
            (
                "a #\"raw\n\"#\n",
                "raw string is not closed on its line",
                2..7,
            ),
            ("a ##\"raw\"#\n", "raw string is not closed", 2..5),
            ("a \"\"\"\n text\n", "multi-line string is not closed", 2..5),
        ];
        for (text, message, range) in cases {
            let e = check(text).unwrap_or_else(|| panic!("{text:?} passes"));
            assert_eq!(
                (e.message.as_str(), e.range.clone()),
                (*message, range.clone()),
                "{text:?}"
            );
            assert!(
                text.parse::<kdl::KdlDocument>().is_err(),
                "kdl agrees: {text:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "a {".repeat(MAX_DEPTH + 1);
        let e = check(&deep).expect("too deep");
        assert!(e.message.contains("nested"));
        let fine = format!("{}{}", "a {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(check(&fine), None);
    }
}
