//! Access tokens are short-lived HS256 JWTs naming the user and the login session;
//! refresh tokens are opaque random strings stored only as SHA-256 hashes.

use base64::Engine;
use firefly_core::time::Millis;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const ISSUER: &str = "firefly";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session (refresh-token family) id.
    pub sid: i64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: u64,
    pub refresh_ttl_ms: i64,
}

impl Tokens {
    pub fn new(secret: &[u8], access_ttl_secs: u64, refresh_ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
            refresh_ttl_ms: (refresh_ttl_secs as i64).saturating_mul(1000),
        }
    }

    pub fn issue_access(&self, user_id: i64, session_id: i64, now: Millis) -> anyhow::Result<String> {
        let iat = now / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id,
            iat,
            exp: iat + self.access_ttl_secs as i64,
            iss: ISSUER.into(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The token's user and session, if its signature, issuer and expiry hold.
    pub fn verify_access(&self, token: &str) -> Option<(i64, i64)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Some((data.claims.sub.parse().ok()?, data.claims.sid))
    }
}

/// A new opaque secret with `bytes` of entropy, URL-safe.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), buf.as_mut_slice());
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// SHA-256 of a high-entropy secret, hex. (A slow hash adds nothing when the secret is
/// 256 random bits, and the lookup must stay fast.)
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
