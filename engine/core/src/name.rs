//! Store names: `<hash>-<name>-<version>`, where the hash is 160 bits written in Nix's base32
//! (32 characters). `store-layout/store.md` specifies the form.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::nixbase32;

/// Bytes of a store hash.
pub const HASH_BYTES: usize = 20;

/// Characters of a store hash in Nix base32 (the first part of every store name).
pub const HASH_LEN: usize = 32;

/// The 160-bit hash that names a store path (the first [`HASH_BYTES`] of a blake3 digest).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreHash(pub [u8; HASH_BYTES]);

impl StoreHash {
    /// The hash made of the first [`HASH_BYTES`] of a digest.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        let mut out = [0u8; HASH_BYTES];
        out.copy_from_slice(&digest[..HASH_BYTES]);
        Self(out)
    }

    /// Parses the 32-character Nix-base32 form.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != HASH_LEN || !nixbase32::is_valid(s) {
            return None;
        }
        Some(Self(nixbase32::decode(s)?.try_into().ok()?))
    }
}

impl fmt::Display for StoreHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&nixbase32::encode(&self.0))
    }
}

impl fmt::Debug for StoreHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreHash({self})")
    }
}

impl Serialize for StoreHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StoreHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a store hash")))
    }
}

/// Splits a store name into hash, package name and version; `None` when it is not one. The
/// version is what follows the first `-` after the hash that is followed by a digit: package
/// names may contain `-` (`gcc-runtime`), versions start with a digit.
pub fn split(name: &str) -> Option<(&str, &str, &str)> {
    if name.len() < HASH_LEN + 2 || name.as_bytes()[HASH_LEN] != b'-' {
        return None;
    }
    let hash = &name[..HASH_LEN];
    if !nixbase32::is_valid(hash) {
        return None;
    }
    let rest = &name[HASH_LEN + 1..];
    let split = rest
        .match_indices('-')
        .map(|(i, _)| i)
        .find(|i| rest[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some((hash, &rest[..split], &rest[split + 1..]))
}

/// A store name, `<hash>-<name>-<version>`, checked when made. Derefs to the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreName(String);

impl StoreName {
    /// The name of a node whose hash, package name and version are known.
    pub fn new(hash: StoreHash, package: &str, version: &str) -> Self {
        Self(format!("{hash}-{package}-{version}"))
    }

    /// Checks that `s` is a store name.
    pub fn parse(s: &str) -> Option<Self> {
        split(s).map(|_| Self(s.to_owned()))
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<name>-<version>`: the name without its hash, as logs and progress show it.
    pub fn label(&self) -> &str {
        &self.0[HASH_LEN + 1..]
    }

    /// The package name.
    pub fn package(&self) -> &str {
        split(&self.0).expect("checked when made").1
    }

    /// The version.
    pub fn version(&self) -> &str {
        split(&self.0).expect("checked when made").2
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for StoreName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StoreName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for StoreName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::borrow::Borrow<str> for StoreName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl PartialEq<str> for StoreName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StoreName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for StoreName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl From<StoreName> for String {
    fn from(n: StoreName) -> String {
        n.0
    }
}

impl Serialize for StoreName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StoreName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a store name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_hash_package_and_version() {
        let n = StoreName::parse("0123456789abcdfghijklmnpqrsvwxyz-gcc-runtime-12.2.0").unwrap();
        assert_eq!(n.package(), "gcc-runtime");
        assert_eq!(n.version(), "12.2.0");
        assert_eq!(n.label(), "gcc-runtime-12.2.0");
        for bad in [
            "",
            "0123456789abcdfghijklmnpqrsvwxyz-noversion",
            "0123456789abcdfghijklmnpqrsvwxye-x-1",
            "short-x-1",
        ] {
            assert!(StoreName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hashes_round_trip_through_their_text() {
        let h = StoreHash::from_digest(&[7u8; 32]);
        let text = h.to_string();
        assert_eq!(text.len(), HASH_LEN);
        assert_eq!(StoreHash::parse(&text), Some(h));
        assert_eq!(
            StoreName::new(h, "x", "1").as_str(),
            format!("{text}-x-1").as_str()
        );
        assert!(StoreHash::parse("e").is_none());
    }
}
