//! RFC 4648 base32 in lower case, the alphabet of Spack's DAG hashes and package hashes.

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Encodes `data` with `=` padding to a multiple of 8 characters (Python's
/// `base64.b32encode(data).lower()`).
pub(crate) fn encode_padded(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Characters that carry at least one bit of this chunk.
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                let idx = (bits >> (35 - 5 * i)) & 0x1f;
                out.push(ALPHABET[idx as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Encodes `data` without padding.
pub(crate) fn encode(data: &[u8]) -> String {
    let mut s = encode_padded(data);
    s.truncate(s.trim_end_matches('=').len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 §10, lower-cased.
        for (input, want) in [
            ("", ""),
            ("f", "my======"),
            ("fo", "mzxq===="),
            ("foo", "mzxw6==="),
            ("foob", "mzxw6yq="),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi======"),
        ] {
            assert_eq!(encode_padded(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(encode(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn sha1_digest_is_32_chars() {
        assert_eq!(encode(&[0xff; 20]).len(), 32);
        assert_eq!(encode_padded(&[0; 32]).len(), 56);
    }
}
