//! The host's identity: its crypto_box key pair (requests are sealed to it) and the self-signed
//! TLS certificate clients pin for QUIC. `sesamed init` creates both; `serve` loads them.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sesame_proto::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};

use crate::files;

/// File names inside the state directory.
pub const HOST_KEY: &str = "host.key";
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
        for name in [HOST_KEY, TLS_CERT, TLS_KEY] {
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
        let tls_key_path = dir.join(TLS_KEY);
        let tls_key_pem = zeroize::Zeroizing::new(certified.signing_key.serialize_pem());
        files::write_new_private(&tls_key_path, tls_key_pem.as_bytes()).map_err(io(&tls_key_path))?;
        let cert_path = dir.join(TLS_CERT);
        files::write_atomic(&cert_path, certified.cert.pem().as_bytes(), 0o644).map_err(io(&cert_path))?;

        Ok(InitReport {
            public_key: secret.public_key(),
            cert_sha256,
            files: vec![key_path, tls_key_path, cert_path],
        })
    }

    /// Loads the identity from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let key_path = dir.join(HOST_KEY);
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(&key_path).map_err(|source| {
            IdentityError::Io {
                path: key_path.clone(),
                source,
            }
        })?);
        let secret = SecretKey::from_hex(&text).map_err(|e| IdentityError::Corrupt {
            path: key_path.clone(),
            message: e.to_string(),
        })?;
        files::check_private(&key_path).map_err(|message| IdentityError::Corrupt {
            path: key_path,
            message,
        })?;

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
}
