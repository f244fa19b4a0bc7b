//! Secrets at rest: AES-256-GCM under the master key (`security.master_key`).
//! Sealed text is `v1:` + base64(nonce ‖ ciphertext ‖ tag); the version prefix leaves
//! room for key rotation. Associated data binds a ciphertext to its purpose, so a
//! sealed value cannot be moved to another field and still open.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("the value could not be sealed")]
    Seal,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this master key (wrong key, or tampered)")]
    Open,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(********)")
    }
}

impl MasterKey {
    /// From the base64 text of 32 random bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MasterKey(Aes256Gcm::new(&key.into())))
    }

    /// A new random key, base64-encoded.
    pub fn generate_base64() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    pub fn seal(&self, plaintext: &[u8], purpose: &[u8]) -> Result<String, CryptoError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Fails only for inputs beyond GCM's limit (64 GiB): never store a broken value.
        let sealed = self.0.encrypt(&nonce, Payload { msg: plaintext, aad: purpose }).map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str, purpose: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let bytes = STANDARD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: purpose })
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_purpose() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let sealed = key.seal(b"sk-secret", b"channel-keys").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("sk-secret"));
        assert_ne!(key.seal(b"sk-secret", b"channel-keys").unwrap(), sealed, "fresh nonce each time");
        assert_eq!(key.open(&sealed, b"channel-keys").unwrap(), b"sk-secret");
        assert_eq!(key.open(&sealed, b"other-purpose"), Err(CryptoError::Open));
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        assert_eq!(other.open(&sealed, b"channel-keys"), Err(CryptoError::Open));
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(raw));
        assert_eq!(key.open(&tampered, b"channel-keys"), Err(CryptoError::Open));
        assert_eq!(key.open("v1:!!", b"channel-keys"), Err(CryptoError::Malformed));
        assert_eq!(key.open("v0:AAAA", b"channel-keys"), Err(CryptoError::Malformed));
        assert!(format!("{key:?}").contains("****"));
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").unwrap_err(), CryptoError::BadKey);
        assert_eq!(MasterKey::from_base64("not base64 at all!").unwrap_err(), CryptoError::BadKey);
    }
}
