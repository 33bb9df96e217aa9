//! Text from outside (archive entry names, specs, file names, build output) made safe to show on
//! a terminal.
//!
//! A name may hold control characters: an escape sequence in it would reach the terminal and
//! redraw, recolour or hide what forge prints, and a carriage return or a newline can forge a
//! line. [`escape`] writes every such character as `\u{..}` (`\n`, `\r`, `\t` as themselves
//! escaped), so a message shows the name as it is stored without the terminal acting on it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as it is: C0 and C1 control characters, DEL, and the
/// format characters that reorder the text around them (bidirectional overrides and isolates).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe`] character escaped, line breaks and tabs included: for a name
/// shown inside a message.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_where(s, is_unsafe)
}

/// `s` with every [`is_unsafe`] character but newlines and tabs escaped: for a whole message
/// of several lines.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c != '\n' && c != '\t' && is_unsafe(c))
}

fn escape_where(s: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape("zlib-1.3/é ok"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            escape("x\ny\rz\t\u{7f}\u{9b}"),
            "x\\ny\\rz\\t\\u{7f}\\u{9b}"
        );
        assert_eq!(escape("evil\u{202e}txt.sh"), "evil\\u{202e}txt.sh");
        assert_eq!(
            escape_lines("one\n\ttwo\x1b]0;x\x07"),
            "one\n\ttwo\\u{1b}]0;x\\u{7}"
        );
    }
}
