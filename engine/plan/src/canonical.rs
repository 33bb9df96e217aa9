//! The canonical JSON form that derivation hashes are computed over.
//!
//! UTF-8; no whitespace; object keys sorted by their UTF-8 bytes; strings escaped as JSON
//! requires and nothing more (`"`, `\`, and control characters, the latter as `\n`, `\t`, … or
//! `\u00XX`); non-ASCII characters written as themselves; integers only (no floats); `true`,
//! `false`, `null`. `store-layout/derivation.md` specifies it for reimplementers.

use serde_json::Value;

/// Writes `v` in canonical form.
pub fn to_canonical(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            assert!(
                n.is_i64() || n.is_u64(),
                "derivations hold integers only, found {n}"
            );
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write(&m[k], out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
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
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_and_compact() {
        let v = serde_json::json!({"b": [1, {"z": null, "a": true}], "a": "x\n\"é\u{1}"});
        assert_eq!(
            to_canonical(&v),
            r#"{"a":"x\n\"é\u0001","b":[1,{"a":true,"z":null}]}"#
        );
    }
}
