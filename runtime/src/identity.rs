//! The host's identity: its crypto_box key pair (requests are sealed to it), the key pair it will
//! rotate to, and the self-signed TLS certificate clients pin for QUIC. `sesamed init` creates
//! them; `serve` loads them (and makes the next key pair of a state directory that has none).
//!
//! The next key pair ([`NEXT_HOST_KEY`]) is made ahead of time so clients can pin the SHA-256 of
//! its public key beside the current key: a rotation is then followed only to that key, and the
//! current key alone, which may have leaked, cannot move a client anywhere else (pre-rotation,
//! see `sesame_proto::HostPin`). `sesamed rotate-key` promotes the next key pair to current, keeps
//! the old one in [`PREVIOUS_HOST_KEY`] with a deadline and makes a new next one. Until the
//! deadline the daemon still opens requests sealed to the old key ([`HostKeys`]), answers them
//! under that key, and tells the client the new one, with the new key's own word on its successor.
//! The certificate is not rotated (it only pins the QUIC channel; the sealed envelope is what
//! carries authority).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sesame_proto::{
    Domain, Envelope, HostKeyNote, KeyDigest, ProtoError, PublicKey, ReceiptKey, ReceiptSigner, Sealer,
    SecretKey,
};
use sha2::{Digest, Sha256};

use crate::files;

/// File names inside the state directory.
pub const HOST_KEY: &str = "host.key";
/// The replaced host key and until when it is accepted (TOML, 0600), after `rotate-key`.
pub const PREVIOUS_HOST_KEY: &str = "host.key.previous";
/// The key pair the next `rotate-key` moves to (64 hex characters, 0600), whose public key's
/// SHA-256 clients pin.
pub const NEXT_HOST_KEY: &str = "host.key.next";
/// The TLS certificate (PEM).
pub const TLS_CERT: &str = "tls.crt";
/// The TLS private key (PEM, 0600).
pub const TLS_KEY: &str = "tls.key";

/// The name in the certificate; clients connect with it (the pin, not the name, is what they trust).
pub const TLS_SERVER_NAME: &str = "sesame";

/// The host's loaded keys and certificate.
#[derive(Debug)]
pub struct HostIdentity {
    /// The crypto_box secret key requests are sealed to.
    pub secret: SecretKey,
    /// The TLS certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The TLS private key.
    pub tls_key: PrivateKeyDer<'static>,
}

/// What `init` made, for printing.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The host's public key, to give to `sesame host add --key`.
    pub public_key: PublicKey,
    /// SHA-256 of the next key's public key, to give to `sesame host add --next-key-sha256`.
    pub next_key_sha256: KeyDigest,
    /// SHA-256 of the certificate, to give to `sesame host add --cert-sha256`.
    pub cert_sha256: String,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// Why the identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A key or certificate file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file exists but does not hold what it should.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `init` found keys already there and will not overwrite them.
    #[error("{0} already exists; refusing to overwrite the host's keys")]
    Exists(PathBuf),
    /// Certificate generation failed.
    #[error("generating the TLS certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

impl HostIdentity {
    /// Creates the key pair and certificate in `dir` (created 0700 if missing). Refuses to touch
    /// existing key files.
    pub fn init(dir: &Path) -> Result<InitReport, IdentityError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| IdentityError::Io { path, source }
        };
        files::create_private_dir(dir).map_err(io(dir))?;
        for name in [HOST_KEY, NEXT_HOST_KEY, TLS_CERT, TLS_KEY] {
            let p = dir.join(name);
            if p.exists() {
                return Err(IdentityError::Exists(p));
            }
        }
        let secret = SecretKey::generate(&mut rand_core::OsRng);
        let certified = rcgen::generate_simple_self_signed(vec![TLS_SERVER_NAME.to_owned()])?;
        let cert_sha256 = fingerprint(certified.cert.der());

        let key_path = dir.join(HOST_KEY);
        let mut key_text = secret.to_hex();
        key_text.push('\n');
        files::write_new_private(&key_path, key_text.as_bytes()).map_err(io(&key_path))?;
        let next = SecretKey::generate(&mut rand_core::OsRng);
        let next_path = dir.join(NEXT_HOST_KEY);
        let mut next_text = next.to_hex();
        next_text.push('\n');
        files::write_new_private(&next_path, next_text.as_bytes()).map_err(io(&next_path))?;
        let tls_key_path = dir.join(TLS_KEY);
        let tls_key_pem = zeroize::Zeroizing::new(certified.signing_key.serialize_pem());
        files::write_new_private(&tls_key_path, tls_key_pem.as_bytes()).map_err(io(&tls_key_path))?;
        let cert_path = dir.join(TLS_CERT);
        files::write_atomic(&cert_path, certified.cert.pem().as_bytes(), 0o644).map_err(io(&cert_path))?;

        Ok(InitReport {
            public_key: secret.public_key(),
            next_key_sha256: next.public_key().digest(),
            cert_sha256,
            files: vec![key_path, next_path, tls_key_path, cert_path],
        })
    }

    /// Loads the identity from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let secret = load_secret(&dir.join(HOST_KEY))?;
        let cert_path = dir.join(TLS_CERT);
        let cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| IdentityError::Corrupt {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
        let tls_key_path = dir.join(TLS_KEY);
        let tls_key = PrivateKeyDer::from_pem_file(&tls_key_path).map_err(|e| IdentityError::Corrupt {
            path: tls_key_path.clone(),
            message: e.to_string(),
        })?;
        files::check_private(&tls_key_path).map_err(|message| IdentityError::Corrupt {
            path: tls_key_path,
            message,
        })?;
        Ok(Self {
            secret,
            cert,
            tls_key,
        })
    }

    /// SHA-256 of the certificate, lowercase hex: what clients pin.
    pub fn cert_sha256(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// The host's crypto_box keys in force: the current one, for a grace period after a rotation
/// the one it replaced, and the digest of the one the next rotation moves to; and the receipt
/// key derived from the current one.
#[derive(Debug)]
pub struct HostKeys {
    current: Sealer,
    previous: Option<(Sealer, u64)>,
    next: Option<KeyDigest>,
    /// Signs receipts: derived from the current key.
    receipts: ReceiptSigner,
}

/// Which of the host's keys opened a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// The current key.
    Current,
    /// The key replaced by the last rotation, still inside its grace period.
    Previous,
}

/// The old key kept by [`rotate`], as stored in [`PREVIOUS_HOST_KEY`].
#[derive(Debug)]
pub struct PreviousKey {
    /// The replaced secret key.
    pub secret: SecretKey,
    /// Until when (Unix milliseconds) requests sealed to it are accepted.
    pub until_ms: u64,
}

/// What `rotate-key` did, for printing.
#[derive(Debug, Clone)]
pub struct RotateReport {
    /// The new public key (what clients are told, and `sesame host add --key` takes).
    pub public_key: PublicKey,
    /// The receipt key derived from it, which signs receipts from now on.
    pub receipt_key: ReceiptKey,
    /// The replaced public key, and until when it is accepted (`None` only when an interrupted
    /// rotation was finished and its previous-key file is gone since).
    pub previous: Option<(PublicKey, u64)>,
    /// SHA-256 of the new next key (what `sesame host add --next-key-sha256` takes).
    pub next_key_sha256: KeyDigest,
    /// Whether the new key is the one the host had committed to (`host.key.next`): clients
    /// that pinned its digest follow the rotation by themselves. `false` when the state
    /// directory had no next key: then no client follows, and each must re-pin by hand.
    pub committed: bool,
    /// Whether this finished a rotation that was interrupted after the new key was in place
    /// (nothing was rotated again: only the new next key was made).
    pub resumed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousKeyFile {
    /// The replaced secret key, 64 hex characters.
    key: String,
    /// Until when it is accepted, Unix milliseconds.
    until_ms: u64,
}

impl HostKeys {
    /// The keys in `dir`: `host.key`, `host.key.previous` and `host.key.next` if there are
    /// ones. A next key equal to the current one (a rotation interrupted halfway) counts as none.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let secret = load_secret(&dir.join(HOST_KEY))?;
        let receipts = ReceiptSigner::derive(&secret);
        let current = Sealer::new(secret);
        let previous = load_previous(dir)?.map(|p| (Sealer::new(p.secret), p.until_ms));
        let next = load_next(dir)?
            .map(|n| n.public_key())
            .filter(|n| *n != current.public_key())
            .map(|n| n.digest());
        Ok(Self {
            current,
            previous,
            next,
            receipts,
        })
    }

    /// Keys for `current` alone (tests and tools).
    pub fn single(current: SecretKey) -> Self {
        Self {
            receipts: ReceiptSigner::derive(&current),
            current: Sealer::new(current),
            previous: None,
            next: None,
        }
    }

    /// Keys for `current`, with `previous` accepted until `until_ms` (benchmarks and tests).
    pub fn with_previous(current: SecretKey, previous: SecretKey, until_ms: u64) -> Self {
        Self {
            receipts: ReceiptSigner::derive(&current),
            current: Sealer::new(current),
            previous: Some((Sealer::new(previous), until_ms)),
            next: None,
        }
    }

    /// The current public key.
    pub fn public_key(&self) -> PublicKey {
        self.current.public_key()
    }

    /// What signs receipts: the receipt key of the current key (an answer under the previous
    /// key during its grace period is signed by it too).
    pub fn receipt_signer(&self) -> &ReceiptSigner {
        &self.receipts
    }

    /// SHA-256 of the key the next rotation moves to, if the host keeps one.
    pub fn next_key_sha256(&self) -> Option<KeyDigest> {
        self.next
    }

    /// The note for an answer to `client` under the previous key: the current key, until when
    /// the previous one is accepted, and the next key's digest sealed by the current key.
    pub fn rotation_note(
        &self,
        rng: &mut impl rand_core::CryptoRngCore,
        client: &PublicKey,
    ) -> Result<HostKeyNote, ProtoError> {
        let until = self.previous.as_ref().map_or(0, |(_, until)| *until);
        HostKeyNote::new(rng, &self.current, client, self.next, until)
    }

    /// The previous public key and until when it is accepted, if one is kept (even if its time
    /// is up: [`open`](Self::open) checks that).
    pub fn previous(&self) -> Option<(PublicKey, u64)> {
        self.previous.as_ref().map(|(s, until)| (s.public_key(), *until))
    }

    /// Opens `envelope` as a request ([`Domain::Request`]: anything else that authenticates, such
    /// as an answer turned back at the host, is refused) with the current key or, when that fails
    /// on the MAC and the previous key's time is not up at `now_ms`, with the previous one.
    /// `is_known` is asked once, before any cryptography (see [`Sealer::open`]).
    pub fn open(
        &self,
        now_ms: u64,
        envelope: &Envelope<'_>,
        is_known: impl FnOnce(&PublicKey) -> bool,
    ) -> Result<(Vec<u8>, KeyUsed), ProtoError> {
        if !is_known(&envelope.sender) {
            return Err(ProtoError::UnknownSender);
        }
        match self.current.open(Domain::Request, envelope, |_| true) {
            Err(ProtoError::BadMac) => match &self.previous {
                Some((old, until)) if now_ms < *until => old
                    .open(Domain::Request, envelope, |_| true)
                    .map(|p| (p, KeyUsed::Previous)),
                _ => Err(ProtoError::BadMac),
            },
            other => other.map(|p| (p, KeyUsed::Current)),
        }
    }

    /// The sealer for answers to a request opened with `used`.
    pub fn sealer(&self, used: KeyUsed) -> &Sealer {
        match (used, &self.previous) {
            (KeyUsed::Previous, Some((old, _))) => old,
            _ => &self.current,
        }
    }

    /// Seals `plaintext` as an answer ([`Domain::Response`]) to `client`, under the key that
    /// opened its request (`used`).
    pub fn seal_response(
        &self,
        used: KeyUsed,
        client: &PublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtoError> {
        self.sealer(used).seal(Domain::Response, client, rng, plaintext)
    }

    /// Seals `plaintext` as a chunk of a running command's output ([`Domain::Progress`]) to
    /// `client`, under the key that opened its request (`used`).
    pub fn seal_progress(
        &self,
        used: KeyUsed,
        client: &PublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtoError> {
        self.sealer(used).seal(Domain::Progress, client, rng, plaintext)
    }

    /// Drops cached boxes for `peer` under every key.
    pub fn forget(&self, peer: &PublicKey) {
        self.current.forget(peer);
        if let Some((old, _)) = &self.previous {
            old.forget(peer);
        }
    }
}

/// The receipt key of the host key in `dir` (`host.key`): the one its receipts are signed with
/// now.
pub fn receipt_key(dir: &Path) -> Result<ReceiptKey, IdentityError> {
    Ok(ReceiptSigner::derive(&load_secret(&dir.join(HOST_KEY))?).key())
}

/// The previous key kept by the last rotation, if any.
pub fn load_previous(dir: &Path) -> Result<Option<PreviousKey>, IdentityError> {
    let path = dir.join(PREVIOUS_HOST_KEY);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Io { path, source }),
    };
    let corrupt = |message: String| IdentityError::Corrupt {
        path: path.clone(),
        message,
    };
    let raw: PreviousKeyFile = toml::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let raw_key = zeroize::Zeroizing::new(raw.key);
    let secret = SecretKey::from_hex(&raw_key).map_err(|e| corrupt(format!("key: {e}")))?;
    files::check_private(&path).map_err(corrupt)?;
    Ok(Some(PreviousKey {
        secret,
        until_ms: raw.until_ms,
    }))
}

/// The next key pair kept in `dir`, if any.
pub fn load_next(dir: &Path) -> Result<Option<SecretKey>, IdentityError> {
    let path = dir.join(NEXT_HOST_KEY);
    match load_secret(&path) {
        Ok(secret) => Ok(Some(secret)),
        Err(IdentityError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the next key pair in `dir` if it has none (a state directory from before sesamed kept
/// one) or if it is the current key (a rotation interrupted halfway). Returns its digest when it
/// made one now. `serve` calls this at start: from then on `sesamed show` prints the digest
/// clients pin.
pub fn ensure_next(dir: &Path) -> Result<Option<KeyDigest>, IdentityError> {
    let current = load_secret(&dir.join(HOST_KEY))?.public_key();
    match load_next(dir)? {
        Some(next) if next.public_key() != current => Ok(None),
        _ => write_next(dir).map(Some),
    }
}

/// Rotates the host key in `dir`: the next key pair ([`NEXT_HOST_KEY`]) becomes the current one,
/// the current one is kept in [`PREVIOUS_HOST_KEY`] and accepted until `now_ms + grace_ms` (a
/// key kept by an earlier rotation is dropped), and a new next key pair is made.
///
/// Without a next key pair (a state directory from before sesamed kept one, never started
/// since) the new key is made now, and no client can follow the rotation by itself
/// ([`RotateReport::committed`] is `false`).
///
/// Each file is written atomically, in the order previous, current, next, so a crash leaves
/// either the old key current (run it again) or the new key both current and next, which the
/// next run (or `serve`) finishes by making a new next key pair.
pub fn rotate(dir: &Path, now_ms: u64, grace_ms: u64) -> Result<RotateReport, IdentityError> {
    let key_path = dir.join(HOST_KEY);
    let old = load_secret(&key_path)?;
    let next = load_next(dir)?;
    if next.as_ref().is_some_and(|n| n.public_key() == old.public_key()) {
        let next_key_sha256 = write_next(dir)?;
        return Ok(RotateReport {
            public_key: old.public_key(),
            receipt_key: ReceiptSigner::derive(&old).key(),
            previous: load_previous(dir)?.map(|p| (p.secret.public_key(), p.until_ms)),
            next_key_sha256,
            committed: true,
            resumed: true,
        });
    }
    let until_ms = now_ms.saturating_add(grace_ms);
    let previous_path = dir.join(PREVIOUS_HOST_KEY);
    let file = PreviousKeyFile {
        key: old.to_hex().to_string(),
        until_ms,
    };
    let text = zeroize::Zeroizing::new(format!(
        "# The host key replaced by `sesamed rotate-key`; requests sealed to it are accepted\n\
         # until {} (until_ms). Remove this file to stop accepting it now.\n{}",
        crate::format_utc(until_ms),
        toml::to_string(&file).map_err(|e| IdentityError::Corrupt {
            path: previous_path.clone(),
            message: e.to_string(),
        })?
    ));
    drop(zeroize::Zeroizing::new(file.key));
    files::write_atomic(&previous_path, text.as_bytes(), 0o600).map_err(|source| IdentityError::Io {
        path: previous_path.clone(),
        source,
    })?;
    let committed = next.is_some();
    let fresh = next.unwrap_or_else(|| SecretKey::generate(&mut rand_core::OsRng));
    write_key(&key_path, &fresh)?;
    let next_key_sha256 = write_next(dir)?;
    Ok(RotateReport {
        public_key: fresh.public_key(),
        receipt_key: ReceiptSigner::derive(&fresh).key(),
        previous: Some((old.public_key(), until_ms)),
        next_key_sha256,
        committed,
        resumed: false,
    })
}

/// Writes a new next key pair into `dir`; returns its digest.
fn write_next(dir: &Path) -> Result<KeyDigest, IdentityError> {
    let next = SecretKey::generate(&mut rand_core::OsRng);
    write_key(&dir.join(NEXT_HOST_KEY), &next)?;
    Ok(next.public_key().digest())
}

/// Writes a host key file (64 hex characters and a newline, 0600) atomically.
fn write_key(path: &Path, secret: &SecretKey) -> Result<(), IdentityError> {
    let mut text = secret.to_hex();
    text.push('\n');
    files::write_atomic(path, text.as_bytes(), 0o600).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a host key file (64 hex characters), refusing one others can read.
fn load_secret(key_path: &Path) -> Result<SecretKey, IdentityError> {
    let text =
        zeroize::Zeroizing::new(
            std::fs::read_to_string(key_path).map_err(|source| IdentityError::Io {
                path: key_path.to_owned(),
                source,
            })?,
        );
    let secret = SecretKey::from_hex(&text).map_err(|e| IdentityError::Corrupt {
        path: key_path.to_owned(),
        message: e.to_string(),
    })?;
    files::check_private(key_path).map_err(|message| IdentityError::Corrupt {
        path: key_path.to_owned(),
        message,
    })?;
    Ok(secret)
}

/// SHA-256 of a DER certificate, as 64 lowercase hex characters.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_round_trips_and_refuses_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let report = HostIdentity::init(&state).expect("init");
        let id = HostIdentity::load(&state).expect("load");
        assert_eq!(id.secret.public_key(), report.public_key);
        assert_eq!(id.cert_sha256(), report.cert_sha256);
        assert_eq!(report.cert_sha256.len(), 64);
        assert!(matches!(
            HostIdentity::init(&state),
            Err(IdentityError::Exists(_))
        ));
    }

    #[test]
    fn load_refuses_a_world_readable_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        HostIdentity::init(dir.path()).expect("init");
        let key = dir.path().join(HOST_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = HostIdentity::load(dir.path())
            .expect_err("0644 key must be refused")
            .to_string();
        assert!(err.contains("host.key") && err.contains("0644"), "{err}");
    }

    /// A request sealed by `client` to `host`.
    fn sealed(client: &Sealer, host: PublicKey, body: &[u8]) -> Vec<u8> {
        client
            .seal(Domain::Request, &host, &mut rand_core::OsRng, body)
            .expect("seal")
    }

    #[test]
    fn rotation_keeps_the_old_key_for_its_grace_period_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let init = HostIdentity::init(dir.path()).expect("init");
        let first = init.public_key;
        let init_secret = HostIdentity::load(dir.path()).expect("load").secret;
        assert_eq!(
            receipt_key(dir.path()).expect("receipt key"),
            ReceiptSigner::derive(&init_secret).key()
        );
        let client = Sealer::new(SecretKey::generate(&mut rand_core::OsRng));
        let me = client.public_key();
        let report = rotate(dir.path(), 1_000, 60_000).expect("rotate");
        assert_eq!(report.previous, Some((first, 61_000)));
        assert_ne!(report.public_key, first);
        assert!(report.committed && !report.resumed);
        assert_eq!(
            report.public_key.digest(),
            init.next_key_sha256,
            "the new key is the one init committed to"
        );
        assert!(files::check_private(&dir.path().join(PREVIOUS_HOST_KEY)).is_ok());
        assert!(files::check_private(&dir.path().join(HOST_KEY)).is_ok());

        let keys = HostKeys::load(dir.path()).expect("load");
        assert_eq!(keys.public_key(), report.public_key);
        assert_eq!(keys.previous(), Some((first, 61_000)));
        // The receipt key follows the host key: the new one's, a new one.
        assert_eq!(keys.receipt_signer().key(), report.receipt_key);
        assert_eq!(receipt_key(dir.path()).expect("receipt key"), report.receipt_key);
        assert_ne!(
            report.receipt_key,
            ReceiptSigner::derive(&init_secret).key(),
            "a new receipt key"
        );
        let open = |now, bytes: &[u8]| {
            let env = Envelope::decode(bytes).expect("decode");
            keys.open(now, &env, |k| *k == me)
        };
        let to_new = sealed(&client, report.public_key, b"new");
        let to_old = sealed(&client, first, b"old");
        assert_eq!(
            open(2_000, &to_new).expect("new key"),
            (b"new".to_vec(), KeyUsed::Current)
        );
        assert_eq!(
            open(2_000, &to_old).expect("old key in grace"),
            (b"old".to_vec(), KeyUsed::Previous)
        );
        assert!(
            matches!(open(61_000, &to_old), Err(ProtoError::BadMac)),
            "grace over"
        );
        assert!(matches!(open(61_000, &to_new), Ok((_, KeyUsed::Current))));
        // Answers to the old key come from the old key: that is the key the client pinned.
        assert_eq!(keys.sealer(KeyUsed::Previous).public_key(), first);
        assert_eq!(keys.sealer(KeyUsed::Current).public_key(), report.public_key);
        // Strangers are refused before any cryptography, under either key.
        let env = Envelope::decode(&to_old).expect("decode");
        assert!(matches!(
            keys.open(2_000, &env, |_| false),
            Err(ProtoError::UnknownSender)
        ));

        // A second rotation keeps only the key it replaces.
        let again = rotate(dir.path(), 5_000, 1_000).expect("rotate again");
        assert_eq!(again.previous.map(|(k, _)| k), Some(report.public_key));
        assert_eq!(again.public_key.digest(), report.next_key_sha256);
        let keys = HostKeys::load(dir.path()).expect("load");
        let env = Envelope::decode(&to_old).expect("decode");
        assert!(
            matches!(keys.open(5_500, &env, |_| true), Err(ProtoError::BadMac)),
            "two rotations back"
        );
        // The TLS identity is untouched.
        assert!(HostIdentity::load(dir.path()).is_ok());
    }

    #[test]
    fn a_corrupt_or_exposed_previous_key_is_an_error_naming_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        HostIdentity::init(dir.path()).expect("init");
        rotate(dir.path(), 0, 1_000).expect("rotate");
        let path = dir.path().join(PREVIOUS_HOST_KEY);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = HostKeys::load(dir.path()).expect_err("0644").to_string();
        assert!(err.contains(PREVIOUS_HOST_KEY) && err.contains("0644"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, "key = \"zz\"\nuntil_ms = 1\n").expect("write");
        let err = HostKeys::load(dir.path()).expect_err("bad key").to_string();
        assert!(err.contains(PREVIOUS_HOST_KEY) && err.contains("key:"), "{err}");
        std::fs::remove_file(&path).expect("rm");
        assert!(
            HostKeys::load(dir.path())
                .expect("no previous")
                .previous()
                .is_none()
        );
    }

    #[test]
    fn init_makes_the_next_key_pair_and_load_reports_its_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = HostIdentity::init(dir.path()).expect("init");
        let next = load_next(dir.path()).expect("load").expect("made by init");
        assert_eq!(next.public_key().digest(), report.next_key_sha256);
        assert_ne!(next.public_key(), report.public_key);
        assert!(files::check_private(&dir.path().join(NEXT_HOST_KEY)).is_ok());
        assert!(report.files.contains(&dir.path().join(NEXT_HOST_KEY)));
        let keys = HostKeys::load(dir.path()).expect("load");
        assert_eq!(keys.next_key_sha256(), Some(report.next_key_sha256));
        assert_eq!(ensure_next(dir.path()).expect("ensure"), None, "kept as it is");
        assert_eq!(
            load_next(dir.path()).expect("load").map(|k| k.public_key()),
            Some(next.public_key())
        );
    }

    /// A state directory from before sesamed kept a next key: `serve` makes one at start; a
    /// `rotate-key` before that rotates to a key nobody committed to, and says so.
    #[test]
    fn an_old_state_directory_gets_a_next_key_and_an_uncommitted_rotation_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let init = HostIdentity::init(dir.path()).expect("init");
        std::fs::remove_file(dir.path().join(NEXT_HOST_KEY)).expect("rm");
        assert_eq!(HostKeys::load(dir.path()).expect("load").next_key_sha256(), None);
        let report = rotate(dir.path(), 0, 1_000).expect("rotate");
        assert!(!report.committed);
        assert_ne!(report.public_key, init.public_key);
        assert_eq!(
            HostKeys::load(dir.path()).expect("load").next_key_sha256(),
            Some(report.next_key_sha256),
            "and it keeps a next key from now on"
        );

        std::fs::remove_file(dir.path().join(NEXT_HOST_KEY)).expect("rm");
        let made = ensure_next(dir.path()).expect("ensure").expect("made now");
        assert_eq!(
            HostKeys::load(dir.path()).expect("load").next_key_sha256(),
            Some(made)
        );
        assert_eq!(ensure_next(dir.path()).expect("ensure"), None);
    }

    /// Killed between promoting the next key and making a new one: the current and next keys are
    /// the same. The daemon then keeps no next key; rotating again finishes the first rotation
    /// (it does not rotate twice, which would drop the key clients still seal to).
    #[test]
    fn an_interrupted_rotation_is_finished_not_repeated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let init = HostIdentity::init(dir.path()).expect("init");
        let done = rotate(dir.path(), 0, 60_000).expect("rotate");
        std::fs::copy(dir.path().join(HOST_KEY), dir.path().join(NEXT_HOST_KEY)).expect("cp");
        assert_eq!(HostKeys::load(dir.path()).expect("load").next_key_sha256(), None);
        let again = rotate(dir.path(), 5_000, 1_000).expect("rotate");
        assert!(again.resumed && again.committed);
        assert_eq!(again.public_key, done.public_key);
        assert_eq!(again.receipt_key, done.receipt_key);
        assert_eq!(again.previous, Some((init.public_key, 60_000)));
        let keys = HostKeys::load(dir.path()).expect("load");
        assert_eq!(keys.public_key(), done.public_key);
        assert_eq!(keys.next_key_sha256(), Some(again.next_key_sha256));
        assert_ne!(again.next_key_sha256, done.public_key.digest());
        // `serve` finishes it the same way.
        std::fs::copy(dir.path().join(HOST_KEY), dir.path().join(NEXT_HOST_KEY)).expect("cp");
        assert!(ensure_next(dir.path()).expect("ensure").is_some());
    }

    /// The note on an answer under the previous key names the current key and carries the next
    /// key's digest sealed by the current key, which a client pinned with the right commitment
    /// follows, twice in a row; and an answer turned back at the host never opens.
    #[test]
    fn rotation_notes_are_followed_by_committed_pins_and_answers_do_not_open_as_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let init = HostIdentity::init(dir.path()).expect("init");
        let client = Sealer::new(SecretKey::generate(&mut rand_core::OsRng));
        let me = client.public_key();
        let mut pin = sesame_proto::HostPin {
            key: init.public_key,
            next_key_sha256: Some(init.next_key_sha256),
        };
        for round in 0..2 {
            let report = rotate(dir.path(), 0, 60_000).expect("rotate");
            let keys = HostKeys::load(dir.path()).expect("load");
            let note = keys.rotation_note(&mut rand_core::OsRng, &me).expect("note");
            assert_eq!(note.old_key_until_ms, 60_000);
            let followed = pin.follow(&note, &client).expect("followed");
            assert_eq!(followed.next_key_refused, None, "round {round}");
            assert_eq!(followed.pin.key, report.public_key);
            assert_eq!(followed.pin.next_key_sha256, Some(report.next_key_sha256));
            pin = followed.pin;
        }

        let keys = HostKeys::load(dir.path()).expect("load");
        for used in [KeyUsed::Current, KeyUsed::Previous] {
            let mut answer = keys
                .seal_response(used, &me, &mut rand_core::OsRng, b"{}")
                .expect("seal");
            answer[4..36].copy_from_slice(me.as_bytes());
            let env = Envelope::decode(&answer).expect("decode");
            assert!(
                matches!(
                    keys.open(0, &env, |k| *k == me),
                    Err(ProtoError::WrongDomain { .. })
                ),
                "{used:?}"
            );
        }
    }
}
