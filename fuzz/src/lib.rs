//! Fixtures shared by the fuzz targets and the seed generator: fixed test keys, and an RNG that
//! replays a chosen nonce so a target can re-seal a plaintext exactly as an envelope claims it was.
//!
//! Nothing here is secret or random: the keys are published test vectors, valid only in `fuzz/`.

#![forbid(unsafe_code)]

use rand_core::{CryptoRng, Error, RngCore};
use sesame_proto::{NONCE_LEN, Sealer, SecretKey};

/// The daemon's host key in the fuzz targets (a test key, published here).
pub const HOST_SECRET_HEX: &str = "a8c1f0e6b5d4c3b2a1908f7e6d5c4b3a29180f1e2d3c4b5a69788796a5b4c3d2";
/// The one client the daemon knows in the fuzz targets (a test key, published here).
pub const CLIENT_SECRET_HEX: &str = "1f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef";

/// A sealer for [`HOST_SECRET_HEX`] caching up to `cache_capacity` peers.
#[must_use]
pub fn host(cache_capacity: usize) -> Sealer {
    Sealer::with_cache_capacity(secret(HOST_SECRET_HEX), cache_capacity)
}

/// A sealer for [`CLIENT_SECRET_HEX`].
#[must_use]
pub fn client() -> Sealer {
    Sealer::new(secret(CLIENT_SECRET_HEX))
}

/// An "RNG" that yields one given nonce, then zeros: [`Sealer::seal`] draws exactly one nonce, so
/// sealing with it reproduces an envelope byte for byte. Only for checking, never for real sealing.
#[derive(Debug, Clone)]
pub struct ReplayNonce {
    nonce: [u8; NONCE_LEN],
    used: usize,
}

impl ReplayNonce {
    /// An RNG whose first `NONCE_LEN` bytes are `nonce`.
    #[must_use]
    pub fn new(nonce: [u8; NONCE_LEN]) -> Self {
        Self { nonce, used: 0 }
    }
}

impl RngCore for ReplayNonce {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = self.nonce.get(self.used).copied().unwrap_or(0);
            self.used = self.used.saturating_add(1);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Deliberately deterministic: only used to re-derive ciphertexts that already exist.
impl CryptoRng for ReplayNonce {}

fn secret(hex: &str) -> SecretKey {
    SecretKey::from_hex(hex).expect("the fixture keys are 64 hex characters")
}
