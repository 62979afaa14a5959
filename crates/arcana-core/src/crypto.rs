//! Secrets at rest: provider API keys sealed with XChaCha20-Poly1305.
//!
//! - Each value gets a fresh random 192-bit nonce (safe to generate randomly, unlike
//!   AES-GCM's 96 bits).
//! - The provider id is the associated data: a ciphertext copied to another row does
//!   not decrypt there.
//! - The id of the master key is stored beside the ciphertext, so keys can rotate: the
//!   `llm_master_keys` variable lists `kid:hexkey` entries, the first one seals new
//!   values, the others still open old ones until the rotate endpoint re-seals them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::ApiError;

/// A sealed value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub kid: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The master keys, newest first.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

/// Why a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no master key with id {0:?} is configured")]
    UnknownKey(String),
    #[error("the value does not decrypt: wrong key, tampered, or moved to another row")]
    Corrupt,
    #[error("invalid master key configuration: {0}")]
    BadConfig(String),
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> ApiError {
        ApiError::internal(e)
    }
}

impl KeyRing {
    /// Parses `kid:hex64[,kid:hex64...]`; a bare 64-hex-digit key gets the id `k1`.
    pub fn parse(spec: &str) -> Result<KeyRing, CryptoError> {
        let mut keys = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, hex_key) = match entry.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim()),
                None => ("k1".to_string(), entry),
            };
            let bytes = hex::decode(hex_key)
                .map_err(|_| CryptoError::BadConfig(format!("key {kid:?} is not hex")))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                CryptoError::BadConfig(format!("key {kid:?} must be 32 bytes (64 hex digits)"))
            })?;
            if kid.is_empty() || keys.iter().any(|(k, _)| *k == kid) {
                return Err(CryptoError::BadConfig(format!(
                    "duplicate or empty key id {kid:?}"
                )));
            }
            keys.push((kid, key));
        }
        if keys.is_empty() {
            return Err(CryptoError::BadConfig(
                "no master key (set llm_master_keys)".into(),
            ));
        }
        Ok(KeyRing { keys })
    }

    /// The id of the key that seals new values.
    pub fn active_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plaintext` under the active key, bound to `associated` (the row id).
    pub fn seal(&self, plaintext: &[u8], associated: &str) -> Result<Sealed, ApiError> {
        let (kid, key) = &self.keys[0];
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(ApiError::internal)?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad(kid, associated),
                },
            )
            .map_err(|_| ApiError::internal("encryption failed"))?;
        Ok(Sealed {
            kid: kid.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a sealed value stored for `associated`.
    pub fn open(&self, sealed: &Sealed, associated: &str) -> Result<Vec<u8>, CryptoError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| *k == sealed.kid)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.kid.clone()))?;
        if sealed.nonce.len() != 24 {
            return Err(CryptoError::Corrupt);
        }
        XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad(&sealed.kid, associated),
                },
            )
            .map_err(|_| CryptoError::Corrupt)
    }
}

/// Associated data: the key id and the row the value belongs to.
fn aad(kid: &str, associated: &str) -> Vec<u8> {
    format!("arcana/v1/{kid}/{associated}").into_bytes()
}

/// The last four characters of a secret, for display.
pub fn hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let ring = KeyRing::parse(K1).unwrap();
        let a = ring.seal(b"sk-secret", "row-1").unwrap();
        let b = ring.seal(b"sk-secret", "row-1").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(ring.open(&a, "row-1").unwrap(), b"sk-secret");
        assert_eq!(a.kid, "k1");
    }

    #[test]
    fn moved_or_tampered_values_do_not_open() {
        let ring = KeyRing::parse(K1).unwrap();
        let sealed = ring.seal(b"sk-secret", "row-1").unwrap();
        assert_eq!(ring.open(&sealed, "row-2"), Err(CryptoError::Corrupt));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(ring.open(&tampered, "row-1"), Err(CryptoError::Corrupt));
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_resealed() {
        let old = KeyRing::parse(&format!("old:{K1}")).unwrap();
        let sealed = old.seal(b"v", "r").unwrap();
        let both = KeyRing::parse(&format!("new:{K2},old:{K1}")).unwrap();
        assert_eq!(both.active_kid(), "new");
        assert_eq!(both.open(&sealed, "r").unwrap(), b"v");
        let resealed = both.seal(&both.open(&sealed, "r").unwrap(), "r").unwrap();
        assert_eq!(resealed.kid, "new");
        let only_new = KeyRing::parse(&format!("new:{K2}")).unwrap();
        assert_eq!(
            only_new.open(&sealed, "r"),
            Err(CryptoError::UnknownKey("old".into()))
        );
        assert_eq!(only_new.open(&resealed, "r").unwrap(), b"v");
    }

    #[test]
    fn bad_configuration_is_refused_and_never_printed() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("k:abcd").is_err());
        assert!(KeyRing::parse(&format!("a:{K1},a:{K2}")).is_err());
        let debug = format!("{:?}", KeyRing::parse(K1).unwrap());
        assert!(!debug.contains("1111"), "{debug}");
        assert_eq!(hint("sk-abcdef123"), "…f123");
    }
}
