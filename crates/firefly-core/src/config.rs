//! Configuration types. Loading (file < environment < CLI) lives in the binary; these
//! types only describe the shape, the defaults and the checks. Every struct denies
//! unknown keys so a typo fails at start, naming the key.

use serde::{Deserialize, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A secret value: deserializes from a plain string, never prints or serializes it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "********" })
    }
}

/// A database URL: serialized with its password masked.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map(|(s, _)| s).unwrap_or("")
    }
    pub fn kind(&self) -> Option<DatabaseKind> {
        match self.scheme() {
            "sqlite" => Some(DatabaseKind::Sqlite),
            "mysql" | "mariadb" => Some(DatabaseKind::Mysql),
            "postgres" | "postgresql" => Some(DatabaseKind::Postgres),
            _ => None,
        }
    }
    /// The URL with any password (in the authority or a `password=` parameter) replaced
    /// by `********`.
    pub fn masked(&self) -> String {
        let (url, query) = match self.0.split_once('?') {
            Some((url, query)) => (url, Some(query)),
            None => (self.0.as_str(), None),
        };
        let mut out = Self::mask_authority(url);
        if let Some(query) = query {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=********"),
                    _ => p.to_owned(),
                })
                .collect();
            out.push('?');
            out.push_str(&params.join("&"));
        }
        out
    }

    fn mask_authority(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:********@{host}{tail}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Mysql,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the SQLite file and generated secrets on the embedded default.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub bootstrap: BootstrapConfig,
    pub billing: BillingConfig,
    pub relay: RelayConfig,
    pub security: SecurityConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            bootstrap: BootstrapConfig::default(),
            billing: BillingConfig::default(),
            relay: RelayConfig::default(),
            security: SecurityConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Whole-request timeout for the account and admin API, in seconds.
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS; empty means no CORS headers; `["*"]` allows any origin.
    pub cors_origins: Vec<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed; the
    /// client address is then the rightmost entry. Empty: the socket peer, always.
    pub trusted_proxies: Vec<String>,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Send `Strict-Transport-Security` (enable when served over HTTPS).
    pub hsts: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            shutdown_grace_secs: 30,
            hsts: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:`, `mysql:` or `postgres:` URL. Empty: `sqlite:<data_dir>/firefly.db`.
    pub url: Option<DatabaseUrl>,
    /// Optional read replica for read-only queries.
    pub read_url: Option<DatabaseUrl>,
    pub max_connections: u32,
    /// Apply pending migrations on `serve`.
    pub auto_migrate: bool,
    /// Seconds to wait for a connection from the pool.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, read_url: None, max_connections: 10, auto_migrate: true, acquire_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC key for access tokens (HS256). Generated into the data directory if unset.
    pub jwt_secret: Secret,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub allow_registration: bool,
    /// Login attempts per second allowed per client address and per account.
    pub login_rate_per_sec: u32,
    pub login_burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            // OWASP's argon2id baseline: m=19 MiB, t=2, p=1.
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            allow_registration: true,
            login_rate_per_sec: 1,
            login_burst: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// Credits every new account starts with.
    pub signup_grant: i64,
    /// Redemption-code attempts per minute, per account and per client address.
    pub redeem_rate_per_minute: u32,
    pub redeem_burst: u32,
    /// Where the relay's reservations live: `memory` (one instance; fastest), `database`
    /// (instances sharing MySQL/PostgreSQL), or `auto`: memory on SQLite, database otherwise.
    pub credit_backend: CreditBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditBackend {
    Auto,
    Memory,
    Database,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self { signup_grant: 0, redeem_rate_per_minute: 10, redeem_burst: 5, credit_backend: CreditBackend::Auto }
    }
}

impl Config {
    /// Whether reservations live in the database (see [`BillingConfig::credit_backend`]).
    pub fn credits_in_database(&self) -> bool {
        match self.billing.credit_backend {
            CreditBackend::Memory => false,
            CreditBackend::Database => true,
            CreditBackend::Auto => self.database_url().kind() != Some(DatabaseKind::Sqlite),
        }
    }
}

/// The AI relay (`/v1/...`): upstream timeouts, retries, reservations, limits, usage logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Largest `/v1` request body, in bytes (images travel inline as base64).
    pub max_body_bytes: usize,
    /// Time to open a connection to an upstream.
    pub connect_timeout_secs: u64,
    /// Time from sending a request to the upstream's response head.
    pub first_byte_timeout_secs: u64,
    /// Longest silence between two chunks of an upstream body.
    pub chunk_timeout_secs: u64,
    /// Attempts per request across channels (the first included).
    pub max_attempts: u32,
    /// After a client leaves mid-stream, how long the upstream is still read to learn the
    /// real usage.
    pub drain_timeout_secs: u64,
    /// Output tokens reserved per choice when a request sets no `max_tokens`.
    pub default_output_reserve: u64,
    /// A reservation not settled within this time is released.
    pub reservation_ttl_secs: u64,
    /// How often auto-disabled channels are probed to re-enable them.
    pub probe_interval_secs: u64,
    /// Consecutive failures that open a channel's circuit, and how long it stays open.
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    /// Per-user limits on the relay (0 = none): requests and tokens per minute, requests
    /// in flight. Keys have their own limits too.
    pub user_rpm: u32,
    pub user_tpm: u64,
    pub user_concurrency: u32,
    /// Raw usage-log rows older than this are deleted (daily rollups stay); 0 keeps them.
    pub usage_retention_days: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            connect_timeout_secs: 10,
            first_byte_timeout_secs: 300,
            chunk_timeout_secs: 120,
            max_attempts: 3,
            drain_timeout_secs: 60,
            default_output_reserve: 4096,
            reservation_ttl_secs: 900,
            probe_interval_secs: 60,
            breaker_failures: 5,
            breaker_open_secs: 30,
            user_rpm: 0,
            user_tpm: 0,
            user_concurrency: 0,
            usage_retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Encrypts provider keys at rest (AES-256-GCM): 32 random bytes, base64. Generated
    /// into the data directory if unset. Losing it makes stored provider keys unreadable.
    pub master_key: Secret,
}

/// The first administrator, read once: used only while no administrator exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, such as `info` or `firefly=debug,sqlx=warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Json }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Config {
    /// The database URL in force: the configured one or the SQLite file in `data_dir`.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::new(format!("sqlite://{}", self.data_dir.join("firefly.db").display())))
    }

    /// Checks that serde cannot express. Each message names the key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let mut check_url = |key: &str, url: &DatabaseUrl| {
            if url.kind().is_none() {
                errors.push(format!(
                    "{key}: unsupported database scheme `{}:` (expected sqlite:, mysql: or postgres:)",
                    url.scheme()
                ));
            }
        };
        check_url("database.url", &self.database_url());
        if let Some(read) = &self.database.read_url {
            check_url("database.read_url", read);
            if read.kind() != self.database_url().kind() {
                errors.push("database.read_url: must use the same database kind as database.url".into());
            }
        }
        let positive = [
            ("database.max_connections", self.database.max_connections as u64),
            ("database.acquire_timeout_secs", self.database.acquire_timeout_secs),
            ("server.body_limit_bytes", self.server.body_limit_bytes as u64),
            ("server.request_timeout_secs", self.server.request_timeout_secs),
            ("auth.access_token_ttl_secs", self.auth.access_token_ttl_secs),
            ("auth.refresh_token_ttl_secs", self.auth.refresh_token_ttl_secs),
            ("auth.argon2_iterations", self.auth.argon2_iterations as u64),
            ("auth.argon2_parallelism", self.auth.argon2_parallelism as u64),
            ("auth.login_rate_per_sec", self.auth.login_rate_per_sec as u64),
            ("auth.login_burst", self.auth.login_burst as u64),
            ("billing.redeem_rate_per_minute", self.billing.redeem_rate_per_minute as u64),
            ("billing.redeem_burst", self.billing.redeem_burst as u64),
            ("relay.max_body_bytes", self.relay.max_body_bytes as u64),
            ("relay.connect_timeout_secs", self.relay.connect_timeout_secs),
            ("relay.first_byte_timeout_secs", self.relay.first_byte_timeout_secs),
            ("relay.chunk_timeout_secs", self.relay.chunk_timeout_secs),
            ("relay.max_attempts", self.relay.max_attempts as u64),
            ("relay.drain_timeout_secs", self.relay.drain_timeout_secs),
            ("relay.default_output_reserve", self.relay.default_output_reserve),
            ("relay.reservation_ttl_secs", self.relay.reservation_ttl_secs),
            ("relay.probe_interval_secs", self.relay.probe_interval_secs),
            ("relay.breaker_failures", self.relay.breaker_failures as u64),
            ("relay.breaker_open_secs", self.relay.breaker_open_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                errors.push(format!("{key}: must be greater than 0"));
            }
        }
        // Upper bounds keep timestamp arithmetic far from overflow.
        let bounded = [
            ("auth.access_token_ttl_secs", self.auth.access_token_ttl_secs, 24 * 3600),
            ("auth.refresh_token_ttl_secs", self.auth.refresh_token_ttl_secs, 366 * 24 * 3600),
            ("server.request_timeout_secs", self.server.request_timeout_secs, 24 * 3600),
            ("server.shutdown_grace_secs", self.server.shutdown_grace_secs, 3600),
            ("relay.connect_timeout_secs", self.relay.connect_timeout_secs, 3600),
            ("relay.first_byte_timeout_secs", self.relay.first_byte_timeout_secs, 24 * 3600),
            ("relay.chunk_timeout_secs", self.relay.chunk_timeout_secs, 24 * 3600),
            ("relay.max_attempts", self.relay.max_attempts as u64, 10),
            ("relay.drain_timeout_secs", self.relay.drain_timeout_secs, 3600),
            ("relay.default_output_reserve", self.relay.default_output_reserve, 10_000_000),
            ("relay.reservation_ttl_secs", self.relay.reservation_ttl_secs, 7 * 24 * 3600),
            ("relay.breaker_open_secs", self.relay.breaker_open_secs, 24 * 3600),
            ("relay.usage_retention_days", self.relay.usage_retention_days as u64, 100 * 365),
        ];
        for (key, value, max) in bounded {
            if value > max {
                errors.push(format!("{key}: must be at most {max}"));
            }
        }
        for (i, proxy) in self.server.trusted_proxies.iter().enumerate() {
            let ok = proxy.parse::<ipnet::IpNet>().is_ok() || proxy.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                errors.push(format!("server.trusted_proxies[{i}]: `{proxy}` is not an IP address or CIDR range"));
            }
        }
        for (i, origin) in self.server.cors_origins.iter().enumerate() {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && !origin.chars().any(|c| c.is_whitespace() || c.is_control()));
            if !ok {
                errors.push(format!(
                    "server.cors_origins[{i}]: `{origin}` is not an origin such as https://console.example.com"
                ));
            }
        }
        if !self.security.master_key.is_empty()
            && crate::crypto::MasterKey::from_base64(self.security.master_key.expose()).is_err()
        {
            errors.push("security.master_key: must be 32 bytes, base64-encoded (openssl rand -base64 32)".into());
        }
        if !(0..=1_000_000_000_000).contains(&self.billing.signup_grant) {
            errors.push("billing.signup_grant: must be 0 to 1000000000000".into());
        }
        if self.auth.argon2_memory_kib < 8 * self.auth.argon2_parallelism {
            errors.push("auth.argon2_memory_kib: must be at least 8 × argon2_parallelism".into());
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.expose().len() < 32 {
            errors.push("auth.jwt_secret: must be at least 32 characters".into());
        }
        if self.bootstrap.admin_email.is_some() != self.bootstrap.admin_password.is_some() {
            errors.push("bootstrap: admin_email and admin_password must be set together".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_database_passwords() {
        let url = DatabaseUrl::new("mysql://root:hunter2@db:3306/firefly");
        assert_eq!(url.masked(), "mysql://root:********@db:3306/firefly");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(DatabaseUrl::new("sqlite://./data/x.db").masked(), "sqlite://./data/x.db");
        assert_eq!(
            DatabaseUrl::new("postgres://db/app?user=a&password=hunter2&sslmode=require").masked(),
            "postgres://db/app?user=a&password=********&sslmode=require"
        );
    }

    #[test]
    fn secrets_never_serialize() {
        let json = serde_json::to_string(&Secret::new("top-secret")).unwrap();
        assert_eq!(json, "\"********\"");
        assert!(!format!("{:?}", Secret::new("top-secret")).contains("top"));
    }

    #[test]
    fn rejects_unknown_scheme_naming_the_key() {
        let mut config = Config::default();
        config.database.url = Some(DatabaseUrl::new("redis://localhost"));
        let errors = config.validate().unwrap_err();
        assert!(errors[0].starts_with("database.url:"), "{errors:?}");
        assert!(errors[0].contains("redis:"));
    }

    #[test]
    fn rejects_bad_proxies_origins_and_huge_ttls() {
        let mut config = Config::default();
        config.server.trusted_proxies = vec!["10.0.0.0/8".into(), "nonsense".into()];
        config.server.cors_origins = vec!["https://ok.example".into(), "ok.example".into()];
        config.auth.refresh_token_ttl_secs = u64::MAX;
        let errors = config.validate().unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("server.trusted_proxies[1]")));
        assert!(errors.iter().any(|e| e.starts_with("server.cors_origins[1]")));
        assert!(errors.iter().any(|e| e.starts_with("auth.refresh_token_ttl_secs")));
    }

    #[test]
    fn default_uses_sqlite_in_data_dir() {
        let config = Config::default();
        assert_eq!(config.database_url().kind(), Some(DatabaseKind::Sqlite));
        assert!(config.validate().is_ok());
    }
}
