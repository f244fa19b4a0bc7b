//! SQLite backend: the embedded default. WAL mode, a busy timeout, foreign keys on.
//! Writers are serialized by SQLite itself; statements that must be atomic start with
//! their write so a transaction takes the write lock first and never has to upgrade.

#[macro_use]
mod rows;
mod billing;
mod channels;
mod holds;
mod pricing;
mod usage;
mod usage_bulk;

use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{col, conflict_or, db_err, ApiKeyRow, UserRow};
use firefly_store::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// An exclusive lock on a file next to the database, held while the guard lives: how
/// several processes starting on one file take turns opening and migrating it.
async fn lock_file(database: &std::path::Path) -> StoreResult<std::fs::File> {
    let path = database.with_extension("migrate.lock");
    tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(|e| StoreError::Database(Box::new(e)))?
    .map_err(|e| StoreError::Database(Box::new(e)))
}

pub struct SqliteStore {
    write: SqlitePool,
    read: Option<SqlitePool>,
    max_connections: u32,
    /// The database file, for the migration lock; `None` for in-memory databases.
    file: Option<PathBuf>,
}

impl SqliteStore {
    pub async fn connect(settings: &ConnectSettings) -> StoreResult<Self> {
        let opts = Self::options(&settings.url)?;
        // sqlx names an in-memory database `file:sqlx-in-memory-N`, which is not a file:
        // taking a lock next to it would leave a stray lock file in the working directory.
        let in_memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        let file = {
            let name = opts.get_filename();
            (!in_memory && !name.as_os_str().is_empty()).then(|| name.to_path_buf())
        };
        if let Some(parent) = file.as_ref().and_then(|f| f.parent()).filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        // The first connection to a fresh file switches it to WAL, which needs an exclusive
        // lock that SQLite's busy handler does not wait for: two processes starting on one
        // new file take turns through the sibling lock file instead of failing with "locked".
        let write = {
            let _lock = match &file {
                Some(file) => Some(lock_file(file).await?),
                None => None,
            };
            Self::pool(opts, settings).await?
        };
        let read = match &settings.read_url {
            Some(url) => Some(Self::pool(Self::options(url)?.read_only(true), settings).await?),
            None => None,
        };
        Ok(Self { write, read, max_connections: settings.max_connections, file })
    }

    fn options(url: &str) -> StoreResult<SqliteConnectOptions> {
        Ok(SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true))
    }

    async fn pool(opts: SqliteConnectOptions, settings: &ConnectSettings) -> StoreResult<SqlitePool> {
        SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db_err)
    }

    fn reader(&self) -> &SqlitePool {
        self.read.as_ref().unwrap_or(&self.write)
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
        let row: Option<UserRow> = sqlx::query_as(sql).bind(id).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn key(&self, user_id: i64, id: i64) -> StoreResult<Option<ApiKey>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.id = ? AND k.user_id = ? AND k.deleted_at IS NULL"
        );
        let row: Option<ApiKeyRow> =
            sqlx::query_as(sql).bind(id).bind(user_id).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, u: NewUser) -> StoreResult<User> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, display_name, search_text, password_hash, role, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'active', ?, ?) RETURNING id",
        )
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(search_text(&u.email, &u.display_name))
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.now)
        .bind(u.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "email"))?;
        if u.initial_credits != 0 {
            let grant = NewLedgerEntry::signup_grant(id, u.initial_credits, u.now);
            match billing::append_in(&mut tx, &grant, false).await? {
                LedgerOutcome::Applied(_) => {}
                other => return Err(StoreError::Corrupt(format!("sign-up grant for user {id}: {other:?}"))),
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.user(id).await?.ok_or_else(|| StoreError::Corrupt("inserted user vanished".into()))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.user(id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = ?");
        let row: Option<UserRow> = sqlx::query_as(sql).bind(email).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update_profile(&self, id: i64, patch: ProfilePatch, now: Millis) -> StoreResult<Option<User>> {
        // A new name needs a new search text, computed from the email. Emails never change,
        // so reading it outside the update cannot go stale; the name and its search text
        // are then written by one statement and always agree.
        let search = match &patch.display_name {
            Some(name) => {
                let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.write)
                    .await
                    .map_err(db_err)?;
                let Some(email) = email else { return Ok(None) };
                Some(search_text(&email, name))
            }
            None => None,
        };
        let done = sqlx::query(
            "UPDATE users SET display_name = COALESCE(?, display_name), search_text = COALESCE(?, search_text),
                              updated_at = ?
             WHERE id = ?",
        )
        .bind(patch.display_name)
        .bind(search)
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.user(id).await
    }

    async fn change_password(&self, id: i64, password_hash: &str, now: Millis) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(password_hash)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn set_user_status(&self, id: i64, status: UserStatus, now: Millis) -> StoreResult<Option<User>> {
        let done = sqlx::query("UPDATE users SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.user(id).await
    }

    async fn set_user_role(&self, id: i64, role: Role, now: Millis) -> StoreResult<Option<User>> {
        let done = sqlx::query("UPDATE users SET role = ?, updated_at = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.user(id).await
    }

    async fn list_users(&self, q: &UserQuery) -> StoreResult<Page<User>> {
        let pattern = q.search.as_deref().map(like_pattern);
        macro_rules! filter {
            () => {
                "(? IS NULL OR search_text LIKE ? ESCAPE '!')"
            };
        }
        let total: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*) FROM users WHERE ", filter!()))
            .bind(&pattern)
            .bind(&pattern)
            .fetch_one(self.reader())
            .await
            .map_err(db_err)?;
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            filter!(),
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        );
        let rows: Vec<UserRow> = sqlx::query_as(sql)
            .bind(&pattern)
            .bind(&pattern)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(self.reader())
            .await
            .map_err(db_err)?;
        let items = rows.into_iter().map(TryInto::try_into).collect::<StoreResult<_>>()?;
        Ok(Page { items, total })
    }

    async fn count_active_admins(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'")
            .fetch_one(&self.write)
            .await
            .map_err(db_err)
    }

    async fn get_preferences(&self, user_id: i64) -> StoreResult<Option<serde_json::Value>> {
        let text: Option<String> = sqlx::query_scalar("SELECT prefs FROM user_preferences WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("preferences: {e}")))).transpose()
    }

    async fn put_preferences(&self, user_id: i64, prefs: &serde_json::Value, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_preferences (user_id, prefs, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(prefs.to_string())
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<i64> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sessions (user_id, created_at, last_used_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("INSERT INTO refresh_tokens (session_id, token_hash, expires_at, created_at) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(token_hash)
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "refresh_token"))?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    async fn rotate_refresh_token(
        &self,
        old: &str,
        new: &str,
        new_expires_at: Millis,
        now: Millis,
    ) -> StoreResult<RotateOutcome> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // Spend the token first: the conditional write is the single point of truth
        // for "who rotated it", whatever the concurrency.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ?
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL)",
        )
        .bind(now)
        .bind(old)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let row = sqlx::query(
            "SELECT s.id, s.user_id, t.used_at, s.revoked_at FROM refresh_tokens t
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?",
        )
        .bind(old)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(RotateOutcome::Invalid) };
        let (session_id, user_id): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
        if spent == 1 {
            sqlx::query(
                "INSERT INTO refresh_tokens (session_id, token_hash, expires_at, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(session_id)
            .bind(new)
            .bind(new_expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "refresh_token"))?;
            sqlx::query("UPDATE sessions SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(session_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            return Ok(RotateOutcome::Rotated { user_id, session_id });
        }
        let used: Option<i64> = col(&row, 2)?;
        if used.is_some() {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            return Ok(RotateOutcome::Reused { user_id });
        }
        Ok(RotateOutcome::Invalid)
    }

    async fn revoke_session(&self, user_id: i64, session_id: i64, now: Millis) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id)
                .bind(user_id)
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_all_sessions(&self, user_id: i64, now: Millis) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn auth_state(&self, user_id: i64, session_id: i64) -> StoreResult<Option<AuthState>> {
        let row = sqlx::query(
            "SELECT u.role, u.status,
                    EXISTS (SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = u.id AND s.revoked_at IS NULL)
             FROM users u WHERE u.id = ?",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(AuthState {
                role: firefly_store::sql::role(col(&r, 0)?)?,
                status: firefly_store::sql::status(col(&r, 1)?)?,
                session_active: col(&r, 2)?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, k: NewApiKey) -> StoreResult<ApiKey> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (user_id, name, key_hash, prefix, enabled, expires_at, models, ip_allow,
                                   credit_limit, rpm_limit, tpm_limit, concurrency_limit, created_at, updated_at)
             VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(k.user_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.expires_at)
        .bind(encode_list(&k.models))
        .bind(encode_list(&k.ip_allow))
        .bind(k.credit_limit)
        .bind(k.rpm_limit)
        .bind(k.tpm_limit)
        .bind(k.concurrency_limit)
        .bind(k.now)
        .bind(k.now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "api_key"))?;
        self.key(k.user_id, id).await?.ok_or_else(|| StoreError::Corrupt("inserted key vanished".into()))
    }

    async fn list_api_keys(&self, user_id: i64) -> StoreResult<Vec<ApiKey>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.user_id = ? AND k.deleted_at IS NULL ORDER BY k.created_at DESC, k.id DESC"
        );
        let rows: Vec<ApiKeyRow> = sqlx::query_as(sql).bind(user_id).fetch_all(&self.write).await.map_err(db_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn get_api_key(&self, user_id: i64, id: i64) -> StoreResult<Option<ApiKey>> {
        self.key(user_id, id).await
    }

    async fn update_api_key(&self, user_id: i64, id: i64, p: ApiKeyPatch, now: Millis) -> StoreResult<Option<ApiKey>> {
        // Each nullable column takes a "set it" flag and a value, so `Some(None)` can clear it.
        let done = sqlx::query(
            "UPDATE api_keys SET
                name = COALESCE(?, name),
                enabled = COALESCE(?, enabled),
                expires_at = CASE WHEN ? THEN ? ELSE expires_at END,
                models = COALESCE(?, models),
                ip_allow = COALESCE(?, ip_allow),
                credit_limit = CASE WHEN ? THEN ? ELSE credit_limit END,
                rpm_limit = CASE WHEN ? THEN ? ELSE rpm_limit END,
                tpm_limit = CASE WHEN ? THEN ? ELSE tpm_limit END,
                concurrency_limit = CASE WHEN ? THEN ? ELSE concurrency_limit END,
                updated_at = ?
             WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
        )
        .bind(p.name)
        .bind(p.enabled)
        .bind(p.expires_at.is_some())
        .bind(p.expires_at.flatten())
        .bind(p.models.as_deref().map(encode_list))
        .bind(p.ip_allow.as_deref().map(encode_list))
        .bind(p.credit_limit.is_some())
        .bind(p.credit_limit.flatten())
        .bind(p.rpm_limit.is_some())
        .bind(p.rpm_limit.flatten())
        .bind(p.tpm_limit.is_some())
        .bind(p.tpm_limit.flatten())
        .bind(p.concurrency_limit.is_some())
        .bind(p.concurrency_limit.flatten())
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.key(user_id, id).await
    }

    async fn delete_api_key(&self, user_id: i64, id: i64, now: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET deleted_at = ?, enabled = 0, updated_at = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyAuth>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            ", u.status AS user_status, u.role AS user_role
             FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.key_hash = ? AND k.deleted_at IS NULL"
        );
        let row = sqlx::query(sql).bind(key_hash).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(|r| firefly_store::sql::key_auth(&r)).transpose()
    }
}

#[async_trait]
impl OpsStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        // SQLite has no advisory lock: only one process at a time applies migrations.
        let _lock = match &self.file {
            Some(file) => Some(lock_file(file).await?),
            None => None,
        };
        MIGRATOR.run(&self.write).await.map_err(|e| StoreError::Database(Box::new(e)))
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.write)
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version")
                .fetch_all(&self.write)
                .await
                .map_err(db_err)?
        } else {
            Vec::new()
        };
        let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        Ok(MigrationStatus::compute(&known, &applied))
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let stat = |pool: &'static str, p: &SqlitePool| PoolStats {
            pool,
            size: p.size(),
            idle: p.num_idle() as u32,
            max: self.max_connections,
        };
        let mut out = vec![stat("primary", &self.write)];
        if let Some(read) = &self.read {
            out.push(stat("replica", read));
        }
        out
    }

    async fn close(&self) {
        self.write.close().await;
        if let Some(read) = &self.read {
            read.close().await;
        }
    }
}
