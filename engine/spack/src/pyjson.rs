//! JSON text exactly as Python's `json` module writes it, which is what Spack hashes and writes.
//!
//! Spack's DAG hash is the SHA-1 of `json.dumps(node, separators=(",", ":"))`: compact, keys in
//! insertion order, and (`ensure_ascii`) every character outside printable ASCII escaped as
//! `\uXXXX`. Manifests are written with `indent=0`: one item per line, no indentation. serde_json
//! writes non-ASCII characters raw, so both forms are produced here from a
//! [`serde_json::Value`] whose maps keep insertion order (`preserve_order`).

use std::fmt::Write as _;

use serde_json::Value;

/// `json.dumps(value, separators=(",", ":"))`: compact, ASCII-only.
pub fn compact(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None, 0);
    out
}

/// `json.dumps(value, indent=0, separators=(",", ":"))`: a newline after every opening bracket
/// and item, no indentation, no trailing newline.
pub fn indent0(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(0), 0);
    out
}

fn newline(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(n) = indent {
        out.push('\n');
        for _ in 0..n * depth {
            out.push(' ');
        }
    }
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_string(out, k);
                out.push(':');
                write_value(out, v, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        // Python's float repr: shortest round-trip digits, always with a `.` or an exponent.
        // Spack's spec files hold no floats; this keeps the output valid should one appear.
        if f.fract() == 0.0 && f.abs() < 1e16 {
            let _ = write!(out, "{f:.1}");
        } else {
            let _ = write!(out, "{f}");
        }
    }
}

/// A JSON string with Python's `ensure_ascii` escapes.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_keeps_insertion_order_and_escapes_like_python() {
        let v: Value =
            serde_json::from_str(r#"{"z":1,"a":[true,null,"é\u0001\"\\\n",{}],"m":{}}"#).unwrap();
        // What `json.dumps(v, separators=(",", ":"))` prints in CPython.
        assert_eq!(
            compact(&v),
            r#"{"z":1,"a":[true,null,"\u00e9\u0001\"\\\n",{}],"m":{}}"#
        );
    }

    #[test]
    fn astral_characters_become_surrogate_pairs() {
        assert_eq!(compact(&json!("😀\u{7f}")), r#""\ud83d\ude00\u007f""#);
    }

    #[test]
    fn indent0_puts_one_item_per_line() {
        let v: Value =
            serde_json::from_str(r#"{"version":3,"data":[{"a":1,"b":"x"}],"e":[]}"#).unwrap();
        assert_eq!(
            indent0(&v),
            "{\n\"version\":3,\n\"data\":[\n{\n\"a\":1,\n\"b\":\"x\"\n}\n],\n\"e\":[]\n}"
        );
    }
}
