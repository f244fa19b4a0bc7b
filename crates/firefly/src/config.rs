//! Loading the configuration: defaults < generated secrets in the data directory <
//! TOML file < `FIREFLY_*` environment variables < command-line flags.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use firefly_core::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Values given on the command line; only those set override anything.
#[derive(Debug, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseOverrides>,
}

#[derive(Debug, Default, Serialize)]
pub struct ServerOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct DatabaseOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_migrate: Option<bool>,
}

/// Secrets Firefly generates on first start when none are configured, kept in
/// `<data_dir>/secrets.toml` with mode 0600.
#[derive(Default, Serialize, Deserialize)]
struct GeneratedSecrets {
    #[serde(default)]
    auth: GeneratedAuth,
    #[serde(default)]
    security: GeneratedSecurity,
}

#[derive(Default, Serialize, Deserialize)]
struct GeneratedAuth {
    jwt_secret: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct GeneratedSecurity {
    master_key: Option<String>,
}

/// Environment variables taken verbatim: figment would parse `12345678` as a number or
/// `true` as a boolean, and a secret or password must stay the text it is.
const VERBATIM_ENV: &[(&str, &str)] = &[
    ("FIREFLY_AUTH__JWT_SECRET", "auth.jwt_secret"),
    ("FIREFLY_BOOTSTRAP__ADMIN_EMAIL", "bootstrap.admin_email"),
    ("FIREFLY_BOOTSTRAP__ADMIN_PASSWORD", "bootstrap.admin_password"),
    ("FIREFLY_SECURITY__MASTER_KEY", "security.master_key"),
];

pub fn figment(file: Option<&Path>, cli: &CliOverrides) -> Figment {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        fig = fig.merge(Toml::file_exact(file));
    }
    // FIREFLY_CONFIG names the file (a CLI option), it is not a key.
    let mut ignored = vec!["config".to_owned()];
    ignored.extend(VERBATIM_ENV.iter().map(|(var, _)| var["FIREFLY_".len()..].to_lowercase()));
    let ignored: Vec<&str> = ignored.iter().map(String::as_str).collect();
    fig = fig.merge(Env::prefixed("FIREFLY_").ignore(&ignored).split("__"));
    for (var, key) in VERBATIM_ENV {
        if let Ok(value) = std::env::var(var) {
            fig = fig.merge(Serialized::default(key, value));
        }
    }
    fig.merge(Serialized::defaults(cli))
}

/// Loads and checks the configuration. With `generate_secrets`, missing secrets are
/// created in the data directory (for `serve`); otherwise they stay empty.
pub fn load(file: Option<&Path>, cli: &CliOverrides, generate_secrets: bool) -> anyhow::Result<Config> {
    if let Some(f) = file {
        if !f.exists() {
            bail!("configuration file {} does not exist", f.display());
        }
    }
    let fig = figment(file, cli);
    let mut config: Config = fig.extract().map_err(|e| anyhow::anyhow!(describe(e)))?;
    // Check everything before writing anything: a refused start leaves no files behind.
    let mut errors = config.validate().err().unwrap_or_default();
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        errors.push(format!("log.level: {e}"));
    }
    if !errors.is_empty() {
        bail!("invalid configuration:\n  {}", errors.join("\n  "));
    }
    fill_secrets(&mut config, generate_secrets)?;
    Ok(config)
}

/// Names the key and where its value came from: the file, or the environment variable.
fn describe(errors: figment::Error) -> String {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let path = &e.path;
            let key = path.join(".");
            let origin = e.metadata.as_ref().map(|m| match &m.source {
                Some(figment::Source::File(file)) => format!("in {}", file.display()),
                _ if m.name.contains("environment") => {
                    format!("from environment variable FIREFLY_{}", path.join("__").to_uppercase())
                }
                _ => format!("from {}", m.name),
            });
            match (key.is_empty(), origin) {
                (false, Some(origin)) => format!("{key}: {} ({origin})", e.kind),
                (false, None) => format!("{key}: {}", e.kind),
                (true, _) => e.kind.to_string(),
            }
        })
        .collect();
    format!("invalid configuration:\n  {}", lines.join("\n  "))
}

/// Takes the secrets the configuration leaves empty from `<data_dir>/secrets.toml`,
/// generating the missing ones there when `generate` is set. Instances starting together
/// take a lock first, so they all end up with the same secrets.
fn fill_secrets(config: &mut Config, generate: bool) -> anyhow::Result<()> {
    let need_jwt = config.auth.jwt_secret.is_empty();
    let need_master = config.security.master_key.is_empty();
    let path = config.data_dir.join("secrets.toml");
    if !(need_jwt || need_master) {
        return Ok(());
    }
    // A shared database means several instances, or an instance whose data directory may
    // not survive a restart: secrets generated here would differ between instances, or
    // be lost (logging everyone out and making every stored provider key unreadable).
    let embedded = config.database_url().kind() == Some(firefly_core::config::DatabaseKind::Sqlite);
    if generate && !embedded && !path.exists() {
        let mut missing = Vec::new();
        if need_jwt {
            missing.push("auth.jwt_secret (FIREFLY_AUTH__JWT_SECRET)");
        }
        if need_master {
            missing.push("security.master_key (FIREFLY_SECURITY__MASTER_KEY)");
        }
        bail!(
            "with a MySQL or PostgreSQL database, set {}: every instance must share them, so they are not generated",
            missing.join(" and ")
        );
    }
    if !generate && !path.exists() {
        return Ok(());
    }
    let _lock = if generate {
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
        let lock_path = config.data_dir.join("secrets.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        Some(lock)
    } else {
        None
    };
    let mut secrets: GeneratedSecrets = if path.exists() {
        warn_if_readable_by_others(&path);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // The parser's message quotes the offending line, which may be a secret: say where only.
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|r| format!(" near byte {}", r.start)).unwrap_or_default();
            anyhow::anyhow!("{} is not valid TOML{at}; fix or restore it from a backup", path.display())
        })?
    } else {
        GeneratedSecrets::default()
    };
    let mut changed = false;
    if generate && need_jwt && secrets.auth.jwt_secret.is_none() {
        let mut secret = [0u8; 48];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secret[..]);
        use base64::Engine;
        secrets.auth.jwt_secret = Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret));
        changed = true;
    }
    if generate && need_master && secrets.security.master_key.is_none() {
        secrets.security.master_key = Some(firefly_core::crypto::MasterKey::generate_base64());
        changed = true;
    }
    if changed {
        let text = format!(
            "# Generated by firefly. Keep this file private and backed up: jwt_secret signs access tokens;\n\
             # master_key encrypts provider keys, which cannot be read again without it.\n{}",
            toml::to_string(&secrets)?
        );
        write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let (true, Some(jwt)) = (need_jwt, secrets.auth.jwt_secret) {
        config.auth.jwt_secret = firefly_core::config::Secret::new(jwt);
    }
    if let (true, Some(key)) = (need_master, secrets.security.master_key) {
        if firefly_core::crypto::MasterKey::from_base64(&key).is_err() {
            bail!("{}: security.master_key is not 32 bytes of base64", path.display());
        }
        config.security.master_key = firefly_core::config::Secret::new(key);
    }
    Ok(())
}

/// Writes the file readable by its owner only, whole or not at all: the text goes to a
/// private temporary file that then replaces the target in one rename.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    // A leftover from a crash may have other permissions: start from nothing.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    // The rename is durable only once the directory is.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!("warning: {} is readable by other users; run chmod 600 on it", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config { data_dir: dir.to_path_buf(), ..Config::default() }
    }

    #[test]
    fn secrets_are_generated_once_and_missing_ones_added_later() {
        let dir = tempfile::tempdir().unwrap();
        // A file from an older version holds only the JWT secret.
        std::fs::write(
            dir.path().join("secrets.toml"),
            "[auth]\njwt_secret = \"kept-kept-kept-kept-kept-kept-kept-kept\"\n",
        )
        .unwrap();
        let mut first = config_in(dir.path());
        fill_secrets(&mut first, true).unwrap();
        assert_eq!(first.auth.jwt_secret.expose(), "kept-kept-kept-kept-kept-kept-kept-kept");
        assert!(firefly_core::crypto::MasterKey::from_base64(first.security.master_key.expose()).is_ok());
        let mut second = config_in(dir.path());
        fill_secrets(&mut second, true).unwrap();
        assert_eq!(second.security.master_key, first.security.master_key, "the same key on every start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets.toml")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Configured secrets win and nothing is generated for them.
        let other = tempfile::tempdir().unwrap();
        let mut configured = config_in(other.path());
        configured.auth.jwt_secret = firefly_core::config::Secret::new("x".repeat(40));
        configured.security.master_key =
            firefly_core::config::Secret::new(firefly_core::crypto::MasterKey::generate_base64());
        fill_secrets(&mut configured, true).unwrap();
        assert!(!other.path().join("secrets.toml").exists());
        // A shared database needs configured secrets: nothing is generated for it.
        let shared = tempfile::tempdir().unwrap();
        let mut pg = config_in(shared.path());
        pg.database.url = Some(firefly_core::config::DatabaseUrl::new("postgres://db/firefly"));
        let err = fill_secrets(&mut pg, true).unwrap_err().to_string();
        assert!(err.contains("auth.jwt_secret") && err.contains("security.master_key"), "{err}");
        assert!(!shared.path().join("secrets.toml").exists());
        // A corrupt file is refused without echoing its content.
        let broken = tempfile::tempdir().unwrap();
        std::fs::write(broken.path().join("secrets.toml"), "[auth]\njwt_secret = \"s3cr3t-value\n").unwrap();
        let err = fill_secrets(&mut config_in(broken.path()), true).unwrap_err().to_string();
        assert!(err.contains("not valid TOML") && !err.contains("s3cr3t"), "{err}");
        // Without `generate`, nothing is created.
        let empty = tempfile::tempdir().unwrap();
        fill_secrets(&mut config_in(empty.path()), false).unwrap();
        assert!(!empty.path().join("secrets.toml").exists());
    }
}
