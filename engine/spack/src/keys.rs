//! OpenPGP keys: a keyring directory, clearsigning of manifests, verification.
//!
//! The keyring is a plain directory (documented in `store-layout/spack-export.md`):
//!
//! ```text
//! <keyring>/
//!   secret/<FPR>.asc   ASCII-armored transferable secret key (mode 0600); forge signs with these
//!   public/<FPR>.asc   ASCII-armored certificate; signatures by these keys are trusted
//! ```
//!
//! `<FPR>` is the 40-hex-digit upper-case v4 fingerprint, as GnuPG prints it. A generated or
//! imported secret key also lands in `public/` (one trusts one's own signatures). Keys are
//! Ed25519, version 4 (GnuPG 2.2 cannot read v6 keys), without expiry and without passphrase:
//! the directory's permissions protect them. Clearsigned text carries the `Hash: SHA512` armor
//! header Spack's manifest parser requires.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::serialize::stream::{Message, Signer as StreamSigner};
use openpgp::types::{HashAlgorithm, KeyFlags};
use openpgp::{Cert, KeyHandle};

use crate::error::KeyError;

fn crypto<E: std::fmt::Display>(e: E) -> KeyError {
    KeyError::Crypto(format!("{e:#}"))
}

/// What `forge key list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
    /// User IDs (`Name <email>`).
    pub user_ids: Vec<String>,
    /// Whether the keyring holds the secret key (can sign).
    pub has_secret: bool,
    /// Public-key algorithm (`EdDSA`, `RSA`).
    pub algorithm: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

impl KeyInfo {
    fn of(cert: &Cert, has_secret: bool) -> Self {
        Self {
            fingerprint: cert.fingerprint().to_hex(),
            user_ids: cert
                .userids()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
                .collect(),
            has_secret,
            algorithm: cert.primary_key().key().pk_algo().to_string(),
            created: cert
                .primary_key()
                .key()
                .creation_time()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A keyring directory.
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs_err::rename(&tmp, path)?;
    Ok(())
}

fn parse_certs(path: &Path, data: &[u8]) -> Result<Vec<Cert>, KeyError> {
    let parser = CertParser::from_bytes(data).map_err(|e| KeyError::Parse {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    })?;
    let certs: Vec<Cert> =
        parser
            .collect::<openpgp::Result<Vec<_>>>()
            .map_err(|e| KeyError::Parse {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
    if certs.is_empty() {
        return Err(KeyError::Parse {
            path: path.to_path_buf(),
            message: "no key found".into(),
        });
    }
    Ok(certs)
}

/// The fingerprints of the OpenPGP certificates in `data` (armored or binary).
pub(crate) fn certificate_fingerprints(data: &[u8]) -> Result<Vec<String>, String> {
    match parse_certs(Path::new("-"), data) {
        Ok(certs) => Ok(certs.iter().map(|c| c.fingerprint().to_hex()).collect()),
        Err(KeyError::Parse { message, .. }) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

impl Keyring {
    /// Opens (creating if needed, mode 0700) a keyring directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = dir.into();
        for sub in ["", "secret", "public"] {
            let d = dir.join(sub);
            if !d.is_dir() {
                fs_err::create_dir_all(&d)?;
                fs_err::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn secret_path(&self, fpr: &str) -> PathBuf {
        self.dir.join("secret").join(format!("{fpr}.asc"))
    }

    fn public_path(&self, fpr: &str) -> PathBuf {
        self.dir.join("public").join(format!("{fpr}.asc"))
    }

    fn store(&self, cert: &Cert) -> Result<KeyInfo, KeyError> {
        let fpr = cert.fingerprint().to_hex();
        let has_secret = cert.is_tsk();
        if has_secret {
            let armored = cert.as_tsk().armored().to_vec().map_err(crypto)?;
            write_private(&self.secret_path(&fpr), &armored)?;
        }
        let public = cert.clone().strip_secret_key_material();
        let armored = public.armored().to_vec().map_err(crypto)?;
        write_private(&self.public_path(&fpr), &armored)?;
        Ok(KeyInfo::of(
            cert,
            has_secret || self.secret_path(&fpr).exists(),
        ))
    }

    /// Generates an Ed25519 v4 signing key for `user_id` (`Name <email>`) and stores it.
    pub fn generate(&self, user_id: &str) -> Result<KeyInfo, KeyError> {
        let (cert, _revocation) = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC4880)
            .map_err(crypto)?
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .set_validity_period(None)
            .add_userid(user_id)
            .generate()
            .map_err(crypto)?;
        self.store(&cert)
    }

    /// Imports every key in `data` (armored or binary; public or secret).
    pub fn import(&self, data: &[u8]) -> Result<Vec<KeyInfo>, KeyError> {
        parse_certs(Path::new("-"), data)?
            .iter()
            .map(|c| self.store(c))
            .collect()
    }

    /// Imports the keys of a file.
    pub fn import_file(&self, path: &Path) -> Result<Vec<KeyInfo>, KeyError> {
        let data = fs_err::read(path)?;
        parse_certs(path, &data)?
            .iter()
            .map(|c| self.store(c))
            .collect()
    }

    /// Trusts the public keys of a file: their signatures verify from now on. Secret key
    /// material in the file is dropped, so trusting never makes a key a signing key.
    pub fn trust_file(&self, path: &Path) -> Result<Vec<KeyInfo>, KeyError> {
        let data = fs_err::read(path)?;
        parse_certs(path, &data)?
            .into_iter()
            .map(|c| self.store(&c.strip_secret_key_material()))
            .collect()
    }

    fn load(&self, path: &Path) -> Result<Cert, KeyError> {
        let data = fs_err::read(path)?;
        parse_certs(path, &data)?
            .into_iter()
            .next()
            .ok_or_else(|| KeyError::Parse {
                path: path.to_path_buf(),
                message: "no key found".into(),
            })
    }

    fn fingerprints(&self, sub: &str) -> Result<Vec<String>, KeyError> {
        let mut out = Vec::new();
        for e in fs_err::read_dir(self.dir.join(sub))? {
            let name = e?.file_name();
            if let Some(f) = name.to_str().and_then(|n| n.strip_suffix(".asc")) {
                out.push(f.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    fn resolve(&self, fpr: &str) -> Result<String, KeyError> {
        let want = fpr.replace(' ', "").to_ascii_uppercase();
        let all = self.fingerprints("public")?;
        // A full fingerprint, or an unambiguous suffix (a key ID).
        let hits: Vec<_> = all.iter().filter(|f| f.ends_with(&want)).collect();
        match hits.as_slice() {
            [one] if !want.is_empty() => Ok((*one).clone()),
            _ => Err(KeyError::NotFound {
                fingerprint: fpr.to_string(),
                keyring: self.dir.clone(),
            }),
        }
    }

    /// Every key, by fingerprint.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let secret = self.fingerprints("secret")?;
        self.fingerprints("public")?
            .iter()
            .map(|f| {
                let cert = self.load(&self.public_path(f))?;
                Ok(KeyInfo::of(&cert, secret.contains(f)))
            })
            .collect()
    }

    /// The ASCII-armored public key (what the cache publishes and `forge key export` prints).
    pub fn export_public(&self, fingerprint: &str) -> Result<String, KeyError> {
        let f = self.resolve(fingerprint)?;
        Ok(fs_err::read_to_string(self.public_path(&f))?)
    }

    /// The signer for a secret key: the one named, or the only one there is.
    pub fn signer(&self, fingerprint: Option<&str>) -> Result<Signer, KeyError> {
        let f = match fingerprint {
            Some(f) => self.resolve(f)?,
            None => {
                let all = self.fingerprints("secret")?;
                match all.as_slice() {
                    [] => {
                        return Err(KeyError::NoSecretKey {
                            keyring: self.dir.clone(),
                        });
                    }
                    [one] => one.clone(),
                    _ => {
                        return Err(KeyError::AmbiguousSecretKey {
                            keyring: self.dir.clone(),
                            fingerprints: all,
                        });
                    }
                }
            }
        };
        let path = self.secret_path(&f);
        if !path.exists() {
            return Err(KeyError::NoSecretKey {
                keyring: self.dir.clone(),
            });
        }
        Signer::new(self.load(&path)?)
    }

    /// The keys whose signatures verify: every key in `public/`.
    pub fn trusted(&self) -> Result<TrustedKeys, KeyError> {
        let certs = self
            .fingerprints("public")?
            .iter()
            .map(|f| self.load(&self.public_path(f)))
            .collect::<Result<_, _>>()?;
        Ok(TrustedKeys { certs })
    }
}

/// A secret key able to clearsign.
pub struct Signer {
    cert: Cert,
    keypair: KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a certificate with an unencrypted signing-capable secret key.
    pub fn new(cert: Cert) -> Result<Self, KeyError> {
        let policy = StandardPolicy::new();
        let fpr = cert.fingerprint().to_hex();
        let ka = cert
            .keys()
            .unencrypted_secret()
            .with_policy(&policy, None)
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .next()
            .ok_or_else(|| KeyError::CannotSign {
                fingerprint: fpr.clone(),
                message: "no valid, unencrypted signing key".into(),
            })?;
        let keypair = ka
            .key()
            .clone()
            .into_keypair()
            .map_err(|e| KeyError::CannotSign {
                fingerprint: fpr,
                message: format!("{e:#}"),
            })?;
        Ok(Self { cert, keypair })
    }

    /// The certificate's fingerprint (upper-case hex).
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// The ASCII-armored public key.
    pub fn public_key_armored(&self) -> Result<String, KeyError> {
        let bytes = self
            .cert
            .clone()
            .strip_secret_key_material()
            .armored()
            .to_vec()
            .map_err(crypto)?;
        String::from_utf8(bytes).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Clearsigns `text` (OpenPGP cleartext signature framework, SHA-512, `Hash:` header).
    pub fn clearsign(&self, text: &str) -> Result<String, KeyError> {
        let mut sink = Vec::new();
        {
            let message = Message::new(&mut sink);
            let mut signer = StreamSigner::new(message, self.keypair.clone())
                .map_err(crypto)?
                .cleartext()
                .hash_algo(HashAlgorithm::SHA512)
                .map_err(crypto)?
                .build()
                .map_err(crypto)?;
            signer.write_all(text.as_bytes())?;
            signer.finalize().map_err(crypto)?;
        }
        String::from_utf8(sink).map_err(|e| KeyError::Crypto(e.to_string()))
    }
}

/// Why a clearsigned text does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// Not clearsigned at all.
    #[error("not signed")]
    NotSigned,
    /// Signed, but by no trusted key.
    #[error("signed by an untrusted key ({})", issuers.join(", "))]
    UntrustedKey {
        /// The issuer fingerprints or key IDs the signatures name.
        issuers: Vec<String>,
    },
    /// Signed by a trusted key, but the signature does not match the text (tampered).
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Not a well-formed signed message.
    #[error("malformed signed message: {0}")]
    Malformed(String),
}

/// The keys whose signatures are accepted.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    certs: Vec<Cert>,
}

struct Helper<'a> {
    certs: &'a [Cert],
    outcome: Option<Result<String, SignatureProblem>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut untrusted = Vec::new();
        let mut bad = None;
        for layer in structure.into_iter() {
            if let MessageLayer::SignatureGroup { results } = layer {
                for r in results {
                    match r {
                        Ok(good) => {
                            self.outcome = Some(Ok(good.ka.cert().fingerprint().to_hex()));
                            return Ok(());
                        }
                        Err(VerificationError::MissingKey { sig }) => {
                            untrusted.extend(sig.get_issuers().iter().map(|i| i.to_hex()))
                        }
                        Err(e) => bad = Some(e.to_string()),
                    }
                }
            }
        }
        self.outcome = Some(Err(match bad {
            Some(b) => SignatureProblem::BadSignature(b),
            None if !untrusted.is_empty() => {
                untrusted.sort();
                untrusted.dedup();
                // A key ID that is the tail of a fingerprint also present says nothing more.
                let all = untrusted.clone();
                untrusted.retain(|id| !all.iter().any(|f| f.len() > id.len() && f.ends_with(id)));
                SignatureProblem::UntrustedKey { issuers: untrusted }
            }
            None => SignatureProblem::NotSigned,
        }));
        Err(openpgp::Error::InvalidOperation("verification failed".into()).into())
    }
}

impl TrustedKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the keys in `data` (armored or binary).
    pub fn add(&mut self, data: &[u8]) -> Result<(), KeyError> {
        let certs = parse_certs(Path::new("-"), data)?;
        self.certs
            .extend(certs.into_iter().map(|c| c.strip_secret_key_material()));
        Ok(())
    }

    /// The trusted fingerprints.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.fingerprint().to_hex())
            .collect()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Verifies a clearsigned text; returns the fingerprint of the key that signed it.
    pub fn verify_clearsigned(&self, text: &str) -> Result<String, SignatureProblem> {
        self.verified_body(text).map(|(fpr, _)| fpr)
    }

    /// Verifies a clearsigned text; returns the fingerprint of the key that signed it and the
    /// signed text itself, as the verifier read it (never a second parse of the message).
    pub fn verified_body(&self, text: &str) -> Result<(String, Vec<u8>), SignatureProblem> {
        if !crate::manifest::is_clearsigned(text) {
            return Err(SignatureProblem::NotSigned);
        }
        let policy = StandardPolicy::new();
        let mut helper = Helper {
            certs: &self.certs,
            outcome: None,
        };
        let mut body = Vec::new();
        let result = VerifierBuilder::from_bytes(text.as_bytes())
            .and_then(|b| b.with_policy(&policy, None, &mut helper))
            .and_then(|mut v| {
                std::io::copy(&mut v, &mut body)?;
                Ok(())
            });
        match (helper.outcome.take(), result) {
            (Some(Ok(f)), Ok(())) => Ok((f, body)),
            (Some(Err(p)), _) => Err(p),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => {
                Err(SignatureProblem::Malformed(format!("{e:#}")))
            }
            (None, Ok(())) => Err(SignatureProblem::NotSigned),
        }
    }
}

impl<'a> VerificationHelper for &mut Helper<'a> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        (**self).get_certs(ids)
    }
    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        (**self).check(structure)
    }
}
