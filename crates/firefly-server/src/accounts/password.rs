//! argon2id hashing, off the async runtime and bounded to the machine's cores so a login
//! storm queues instead of starving every other request of CPU and memory.
//!
//! Each hash needs `m_cost` KiB of working memory (19 MiB by default). Allocating it per
//! hash made glibc keep every freed buffer (RSS 12 MB → 490 MB under a login load), and
//! returning it to the system each time costs a page fault per 4 KiB (about 30% of
//! throughput). So the buffers are pooled: at most one per core exists, a busy server
//! reuses them without faults, and [`Passwords::trim_idle`] frees those unused for a while
//! (the binary pins glibc's mmap threshold so a freed buffer really leaves the process).

use crate::http::error::internal;
use crate::http::ApiError;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use firefly_core::config::AuthConfig;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Stored hashes asking for more working memory than this are refused, not computed.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;

/// Working-memory buffers not in use, each with the time it was last returned.
type BufferPool = Arc<Mutex<Vec<(Vec<Block>, Instant)>>>;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    buffers: BufferPool,
    /// A real hash of a random password: verifying against it when the account does not
    /// exist makes "no such user" take as long as "wrong password".
    dummy: Arc<str>,
}

impl Passwords {
    pub fn new(cfg: &AuthConfig) -> anyhow::Result<Self> {
        let params = Params::new(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism, None)
            .map_err(|e| anyhow::anyhow!("auth.argon2_*: {e}"))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let random: [u8; 16] = rand::random();
        // Computed with a throw-away buffer: an idle server holds no hashing memory.
        let dummy =
            hash_with(&params, &hex::encode(random), &mut Vec::new()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(cores)), buffers: Arc::default(), dummy: dummy.into() })
    }

    pub fn describe(&self) -> String {
        format!("argon2id m={}KiB t={} p={}", self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
    }

    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move |memory| hash_with(&params, &password, memory)).await?.map_err(internal)
    }

    /// Verifies `password` against `hash`, or against the dummy when `hash` is `None`
    /// (and then always answers false).
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.map(str::to_owned).unwrap_or_else(|| self.dummy.to_string());
        let password = password.to_owned();
        let ok = self.run(move |memory| verify_with(&hash, &password, memory)).await?.map_err(internal)?;
        Ok(ok && known)
    }

    /// Runs `work` on the blocking pool with a pooled buffer, one job per core at a time.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(internal)?;
        let buffers = self.buffers.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = buffers.lock().map(|mut b| b.pop().map(|(m, _)| m)).ok().flatten().unwrap_or_default();
            let out = work(&mut memory);
            if let Ok(mut b) = buffers.lock() {
                b.push((memory, Instant::now()));
            }
            out
        })
        .await
        .map_err(internal)
    }

    /// Frees buffers unused for `idle`; called periodically.
    pub fn trim_idle(&self, idle: Duration) {
        if let Ok(mut b) = self.buffers.lock() {
            b.retain(|(_, used)| used.elapsed() < idle);
        }
    }

    /// Bytes of hashing memory held right now.
    pub fn pooled_bytes(&self) -> usize {
        self.buffers.lock().map(|b| b.iter().map(|(m, _)| m.len() * std::mem::size_of::<Block>()).sum()).unwrap_or(0)
    }
}

fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &str,
    salt: &[u8],
    out_len: usize,
    memory: &mut Vec<Block>,
) -> Result<Output, argon2::password_hash::Error> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    Output::init_with(out_len, |out| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks]).map_err(Into::into)
    })
}

fn hash_with(params: &Params, password: &str, memory: &mut Vec<Block>) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut raw = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut raw)?;
    let output =
        compute(Algorithm::Argon2id, Version::V0x13, params, password, salt_bytes, Params::DEFAULT_OUTPUT_LEN, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Verifies against a PHC string with whatever parameters it was made with.
fn verify_with(hash: &str, password: &str, memory: &mut Vec<Block>) -> Result<bool, argon2::password_hash::Error> {
    use argon2::password_hash::Error;
    let parsed = PasswordHash::new(hash)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(Error::ParamValueInvalid(argon2::password_hash::errors::InvalidValue::TooLong));
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
    let mut raw = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut raw)?;
    let computed = compute(algorithm, version, &params, password, salt_bytes, expected.len(), memory)?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    fn cheap() -> Passwords {
        let cfg = AuthConfig { argon2_memory_kib: 256, argon2_iterations: 1, ..AuthConfig::default() };
        Passwords::new(&cfg).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_both_ways_with_the_reference_implementation() {
        let p = cheap();
        let hash = p.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{hash}");
        assert!(p.verify(Some(&hash), "correct horse").await.unwrap());
        assert!(!p.verify(Some(&hash), "wrong horse").await.unwrap());
        // The argon2 crate's own verifier accepts our hash ...
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        // ... and we accept one it made with other parameters (m=512, t=2).
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(512, 2, 1, None).unwrap())
            .hash_password(b"other pw", &salt)
            .unwrap()
            .to_string();
        assert!(p.verify(Some(&theirs), "other pw").await.unwrap());
        assert!(!p.verify(Some(&theirs), "other pX").await.unwrap());
        // Unknown accounts verify against the dummy and always fail.
        assert!(!p.verify(None, "anything").await.unwrap());
    }

    #[tokio::test]
    async fn buffers_are_reused_then_freed_when_idle() {
        let p = cheap();
        assert_eq!(p.pooled_bytes(), 0, "the dummy hash keeps no memory");
        for _ in 0..3 {
            p.hash("x").await.unwrap();
        }
        assert_eq!(p.pooled_bytes(), 256 * 1024, "one buffer, reused");
        p.trim_idle(Duration::from_secs(60));
        assert_eq!(p.pooled_bytes(), 256 * 1024);
        p.trim_idle(Duration::ZERO);
        assert_eq!(p.pooled_bytes(), 0);
    }
}
