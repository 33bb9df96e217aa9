//! Layout-v3 manifests: `{"version": 3, "data": [<blob records>]}`, possibly clearsigned.

use serde_json::{Map, Value, json};

/// Media type of an install tarball.
pub const MEDIA_TARBALL: &str = "application/vnd.spack.install.v2.tar+gzip";
/// Media type of a spec blob (spec file format 5).
pub const MEDIA_SPEC: &str = "application/vnd.spack.spec.v5+json";
/// Media type of the index (Spack database version 8).
pub const MEDIA_INDEX: &str = "application/vnd.spack.db.v8+json";
/// Media type of an ASCII-armored public key.
pub const MEDIA_KEY: &str = "application/pgp-keys";
/// Media type of the key index.
pub const MEDIA_KEY_INDEX: &str = "application/vnd.spack.keyindex.v1+json";
/// The layout version manifests carry.
pub const LAYOUT_VERSION: u64 = 3;

const CSF_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const SIG_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";

/// One blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Size of the stored bytes.
    pub content_length: u64,
    /// What the blob is (one of the `MEDIA_*` constants).
    pub media_type: String,
    /// `gzip` or `none`.
    pub compression: String,
    /// `sha256`.
    pub checksum_algorithm: String,
    /// Hex digest of the stored bytes.
    pub checksum: String,
}

impl BlobRecord {
    /// A sha256 record.
    pub fn sha256(media_type: &str, compression: &str, checksum: String, len: u64) -> Self {
        Self {
            content_length: len,
            media_type: media_type.into(),
            compression: compression.into(),
            checksum_algorithm: "sha256".into(),
            checksum,
        }
    }

    /// The blob's path relative to the cache root: `blobs/<algorithm>/<2>/<checksum>`.
    /// `None` when the record's fields could escape that directory.
    pub fn relative_path(&self) -> Option<String> {
        let safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !safe(&self.checksum_algorithm) || !safe(&self.checksum) || self.checksum.len() < 2 {
            return None;
        }
        Some(format!(
            "blobs/{}/{}/{}",
            self.checksum_algorithm,
            &self.checksum[..2],
            self.checksum
        ))
    }

    fn to_json(&self) -> Value {
        json!({
            "contentLength": self.content_length,
            "mediaType": self.media_type,
            "compression": self.compression,
            "checksumAlgorithm": self.checksum_algorithm,
            "checksum": self.checksum,
        })
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let o = v.as_object().ok_or("a record is not an object")?;
        let s = |k: &str| -> Result<String, String> {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(format!("record without string `{k}`"))
        };
        Ok(Self {
            content_length: o
                .get("contentLength")
                .and_then(Value::as_u64)
                .ok_or("record without integer `contentLength`")?,
            media_type: s("mediaType")?,
            compression: s("compression")?,
            checksum_algorithm: s("checksumAlgorithm")?,
            checksum: s("checksum")?,
        })
    }
}

/// A manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The records.
    pub data: Vec<BlobRecord>,
}

impl Manifest {
    /// The JSON text as Spack writes it: one key or item per line, no indentation, no final
    /// newline (short lines keep clearsigning safe).
    pub fn to_text(&self) -> String {
        let mut m = Map::new();
        m.insert("version".into(), json!(LAYOUT_VERSION));
        m.insert(
            "data".into(),
            Value::Array(self.data.iter().map(BlobRecord::to_json).collect()),
        );
        forge_core::json::python_indent0(&Value::Object(m))
    }

    /// Parses a manifest, plain or clearsigned (the signature is not checked here).
    pub fn parse(text: &str) -> Result<Self, String> {
        let json = if text.starts_with(CSF_BEGIN) {
            clearsigned_body(text).ok_or("malformed clearsigned manifest")?
        } else {
            text.to_string()
        };
        let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        let version = v
            .get("version")
            .and_then(Value::as_u64)
            .ok_or("manifest without integer `version`")?;
        if version != LAYOUT_VERSION {
            return Err(format!(
                "layout version {version}, expected {LAYOUT_VERSION}"
            ));
        }
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or("manifest without `data` list")?
            .iter()
            .map(BlobRecord::from_json)
            .collect::<Result<_, _>>()?;
        Ok(Self { data })
    }

    /// The first record of a media type (what Spack picks).
    pub fn record(&self, media_type: &str) -> Option<&BlobRecord> {
        self.data.iter().find(|r| r.media_type == media_type)
    }
}

/// Whether a manifest text is clearsigned.
pub fn is_clearsigned(text: &str) -> bool {
    text.starts_with(CSF_BEGIN)
}

/// The signed text of a clearsigned message, as Spack extracts it: it requires a `Hash:` armor
/// header, takes everything up to the signature and undoes dash-escaping.
pub fn clearsigned_body(text: &str) -> Option<String> {
    let rest = text.strip_prefix(CSF_BEGIN)?;
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))?;
    let (headers, body) = rest.split_once("\n\n")?;
    if !headers.lines().any(|l| l.starts_with("Hash: ")) {
        return None;
    }
    let end = body.find(&format!("\n{SIG_BEGIN}"))?;
    let lines: Vec<&str> = body[..end]
        .split('\n')
        .map(|l| l.strip_prefix("- ").unwrap_or(l))
        .collect();
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spack-v1.0");

    #[test]
    fn writes_spacks_manifest_text_byte_for_byte() {
        let path = format!(
            "{REAL}/mirror-unsigned/v3/manifests/spec/forge-hello/forge-hello-1.0-il42sm5f3rapnx54lvrsedacuu7lfd33.spec.manifest.json"
        );
        let real = fs_err::read_to_string(&path).unwrap();
        let m = Manifest::parse(&real).unwrap();
        assert_eq!(m.to_text(), real);
        assert_eq!(m.record(MEDIA_TARBALL).unwrap().content_length, 8149);
        assert_eq!(
            m.record(MEDIA_SPEC).unwrap().relative_path().unwrap(),
            "blobs/sha256/54/5429e2ae7b6aafec0ac617da0474195f29948d297ba14453e657b6bb0ff9910d"
        );
    }

    #[test]
    fn reads_spacks_clearsigned_manifest() {
        let path = format!(
            "{REAL}/mirror-signed/v3/manifests/spec/zlib/zlib-1.2.13-k7y7tmw3xcb3pbbazhzxu6zxlsndkgp2.spec.manifest.json"
        );
        let real = fs_err::read_to_string(&path).unwrap();
        assert!(is_clearsigned(&real));
        let unsigned =
            fs_err::read_to_string(path.replace("mirror-signed", "mirror-unsigned")).unwrap();
        assert_eq!(clearsigned_body(&real).unwrap(), unsigned);
    }

    #[test]
    fn rejects_paths_that_escape_blobs() {
        let mut r = BlobRecord::sha256(MEDIA_SPEC, "gzip", "../../etc".into(), 1);
        assert_eq!(r.relative_path(), None);
        r.checksum = "ab".repeat(32);
        r.checksum_algorithm = "../x".into();
        assert_eq!(r.relative_path(), None);
    }

    #[test]
    fn clearsigned_without_hash_header_is_not_parsed() {
        let t = "-----BEGIN PGP SIGNED MESSAGE-----\n\n{}\n-----BEGIN PGP SIGNATURE-----\n";
        assert_eq!(clearsigned_body(t), None);
    }
}
