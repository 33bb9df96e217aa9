//! Nix's base32: the alphabet and bit order Nix uses for store path hashes.

/// The 32 characters, in digit order (no `e`, `o`, `t`, `u`).
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// `MEMBER[c]` says whether byte `c` is in [`ALPHABET`].
const MEMBER: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether byte `c` is a Nix base32 character.
#[inline]
pub fn is_char(c: u8) -> bool {
    MEMBER[usize::from(c)]
}

/// Encodes bytes the way Nix prints store path hashes: 5-bit groups taken from the end of the
/// input, written first to last (so `nixbase32(20 bytes)` is 32 characters).
pub fn encode(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8).div_ceil(5);
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = u16::from(bytes[i]) >> j;
        let hi = if i + 1 < bytes.len() {
            u16::from(bytes[i + 1]) << (8 - j)
        } else {
            0
        };
        out.push(char::from(ALPHABET[usize::from((lo | hi) & 0x1f)]));
    }
    out
}

/// Decodes Nix base32; `None` for a character outside the alphabet or bits that do not fit.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let n_bytes = s.len() * 5 / 8;
    let mut out = vec![0u8; n_bytes];
    for (k, c) in s.bytes().rev().enumerate() {
        let digit = u16::try_from(ALPHABET.iter().position(|a| *a == c)?).ok()?;
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        if i < n_bytes {
            out[i] |= (digit << j) as u8;
        }
        let carry = digit >> (8 - j);
        if i + 1 < n_bytes {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

/// Whether `s` uses only Nix's base32 alphabet.
pub fn is_valid(s: &str) -> bool {
    s.bytes().all(is_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nix_for_known_digest() {
        // `nix-hash --type sha256 --to-base32` of the sha256 of the empty string.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            encode(&bytes),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
    }

    #[test]
    fn round_trips() {
        for len in [1usize, 5, 20, 32] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(encode(&[0u8; 20]).len(), 32);
        assert!(decode("e").is_none() || decode("e").unwrap().is_empty());
    }

    #[test]
    fn membership_matches_the_alphabet() {
        for c in 0..=255u8 {
            assert_eq!(is_char(c), ALPHABET.contains(&c), "{c}");
        }
    }
}
