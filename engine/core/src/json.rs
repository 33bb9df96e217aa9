//! The two exact JSON dialects forge writes, from one serializer and one string-escaping routine.
//!
//! - **Canonical** ([`canonical`]): what derivation hashes are computed over. UTF-8, no
//!   whitespace, object keys sorted by their UTF-8 bytes, strings escaped as JSON requires and
//!   nothing more (`"`, `\`, control characters as `\n`, `\t`, … or `\u00XX`), other characters
//!   written as themselves, integers only. `store-layout/derivation.md` specifies it.
//! - **Python** ([`python_compact`], [`python_indent0`]): what Python's `json.dumps` prints with
//!   `separators=(",", ":")` (and `indent=0`), which is what Spack hashes and writes. Keys keep
//!   their insertion order, and (`ensure_ascii`) every character outside printable ASCII is
//!   escaped as `\uXXXX`, astral ones as surrogate pairs.
//!
//! Both are `serde_json` serializers with a [`Dialect`] formatter; the escaping of control
//! characters, quotes and backslashes is `serde_json`'s own, the same in both.

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use serde_json::ser::{CharEscape, Formatter};

/// Writes `v` in canonical form.
///
/// # Panics
/// On a number that is not an integer: derivations hold integers only.
pub fn canonical(v: &Value) -> String {
    write(&Sorted(v), Dialect::CANONICAL)
}

/// `json.dumps(value, separators=(",", ":"))`: compact, keys in insertion order, ASCII only.
pub fn python_compact(v: &Value) -> String {
    write(v, Dialect::PYTHON)
}

/// `json.dumps(value, indent=0, separators=(",", ":"))`: a newline after every opening bracket
/// and item, no indentation, no trailing newline.
pub fn python_indent0(v: &Value) -> String {
    write(
        v,
        Dialect {
            newlines: true,
            ..Dialect::PYTHON
        },
    )
}

fn write(v: &impl Serialize, dialect: Dialect) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, dialect);
    v.serialize(&mut ser).expect("a JSON value serializes");
    String::from_utf8(out).expect("the formatter writes UTF-8")
}

/// How a dialect differs from compact JSON.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    /// Escape every character outside printable ASCII (Python's `ensure_ascii`).
    ascii: bool,
    /// Python's `indent=0`: a line break before every item and closing bracket.
    newlines: bool,
    /// Whether the container being written has had an item (for `newlines`).
    has_item: bool,
}

impl Dialect {
    const CANONICAL: Self = Self {
        ascii: false,
        newlines: false,
        has_item: false,
    };
    const PYTHON: Self = Self {
        ascii: true,
        newlines: false,
        has_item: false,
    };

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if self.newlines {
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        if self.newlines && self.has_item {
            w.write_all(b"\n")?;
        }
        // The enclosing container (if any) has an item: this one.
        self.has_item = true;
        w.write_all(bracket)
    }
}

impl Formatter for Dialect {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !self.ascii || fragment.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return w.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(c) => return write!(w, "\\u{:04x}", c),
        };
        w.write_all(s)
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, f: f64) -> io::Result<()> {
        // Python's float repr: shortest round-trip digits, always with a `.` or an exponent.
        // Spack's spec files hold no floats; this keeps the output valid should one appear.
        if f.fract() == 0.0 && f.abs() < 1e16 {
            write!(w, "{f:.1}")
        } else {
            write!(w, "{f}")
        }
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.has_item = false;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_item = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.has_item = false;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b":")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_item = true;
        Ok(())
    }
}

/// A value whose objects serialize with their keys sorted, and whose numbers must be integers.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Number(n) => {
                assert!(
                    n.is_i64() || n.is_u64(),
                    "derivations hold integers only, found {n}"
                );
                n.serialize(s)
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for x in items {
                    seq.serialize_element(&Sorted(x))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_unstable();
                let mut map = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    map.serialize_entry(k, &Sorted(&m[k]))?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_and_keeps_non_ascii() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x\n\"é\u{1}", "c": {}, "d": []});
        assert_eq!(
            canonical(&v),
            r#"{"a":"x\n\"é\u0001","b":[1,{"a":true,"z":null}],"c":{},"d":[]}"#
        );
    }

    #[test]
    #[should_panic(expected = "integers only")]
    fn canonical_refuses_floats() {
        canonical(&json!({"x": 1.5}));
    }

    #[test]
    fn python_keeps_insertion_order_and_escapes_like_python() {
        let v: Value =
            serde_json::from_str(r#"{"z":1,"a":[true,null,"é\u0001\"\\\n",{}],"m":{}}"#).unwrap();
        // What `json.dumps(v, separators=(",", ":"))` prints in CPython.
        assert_eq!(
            python_compact(&v),
            r#"{"z":1,"a":[true,null,"\u00e9\u0001\"\\\n",{}],"m":{}}"#
        );
        assert_eq!(
            python_compact(&json!("😀\u{7f}")),
            r#""\ud83d\ude00\u007f""#
        );
        assert_eq!(python_compact(&json!([1.0, 2.5])), "[1.0,2.5]");
    }

    #[test]
    fn python_indent0_puts_one_item_per_line() {
        let v: Value =
            serde_json::from_str(r#"{"version":3,"data":[{"a":1,"b":"x"}],"e":[],"o":{}}"#)
                .unwrap();
        assert_eq!(
            python_indent0(&v),
            "{\n\"version\":3,\n\"data\":[\n{\n\"a\":1,\n\"b\":\"x\"\n}\n],\n\"e\":[],\n\"o\":{}\n}"
        );
        assert_eq!(python_indent0(&json!([[], [1]])), "[\n[],\n[\n1\n]\n]");
    }
}
