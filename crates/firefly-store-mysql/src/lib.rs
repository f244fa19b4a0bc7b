//! MySQL 8 / MariaDB 10.11+ backend: InnoDB tables in utf8mb4, sessions in UTC.
//! The SQL mirrors the SQLite backend; the differences are the ones MySQL forces:
//! no `RETURNING` on MySQL 8 (ids come from `last_insert_id()`), `ON DUPLICATE KEY
//! UPDATE` for upserts, and row locks instead of a database-wide write lock.

#[macro_use]
mod rows;
mod billing;
mod channels;
mod holds;
mod pricing;
pub mod testing;
mod usage;

use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{col, conflict_or, db_err, ApiKeyRow, UserRow};
use firefly_store::*;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlPool};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct MysqlStore {
    write: MySqlPool,
    read: Option<MySqlPool>,
    max_connections: u32,
    /// For the dedicated connection migrations run on.
    options: MySqlConnectOptions,
}

/// An id from `last_insert_id()`: MySQL 8 has no `INSERT ... RETURNING`.
fn inserted_id(done: sqlx::mysql::MySqlQueryResult) -> StoreResult<i64> {
    i64::try_from(done.last_insert_id()).map_err(|_| StoreError::Corrupt("insert id out of range".into()))
}

/// Runs a write transaction again when InnoDB picked it as a deadlock victim.
///
/// InnoDB answers a deadlock by rolling one transaction back whole (error 1213), and the
/// MySQL manual asks applications to run it again. Lock ordering (see each module) avoids
/// the deadlocks it can, but not those of gap locks: two transactions inserting different
/// keys at the end of an index both hold the gap and both wait to insert into it. Every
/// `run` is a whole transaction that leaves nothing behind when it fails, so running it
/// again is safe. At most [`DEADLOCK_RUNS`] runs, a short random pause between them.
pub(crate) async fn retry_deadlocks<T, F, Fut>(mut run: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut attempt = 1;
    loop {
        match run().await {
            Err(e) if attempt < DEADLOCK_RUNS && is_deadlock(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_micros(jitter_micros(attempt))).await;
            }
            other => return other,
        }
    }
}

const DEADLOCK_RUNS: u32 = 6;

fn is_deadlock(e: &StoreError) -> bool {
    let StoreError::Database(inner) = e else { return false };
    match inner.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(d)) => {
            d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == ER_LOCK_DEADLOCK)
        }
        _ => false,
    }
}

const ER_LOCK_DEADLOCK: u16 = 1213;

/// Up to 2^attempt ms, spread so the two victims of one deadlock do not meet again.
fn jitter_micros(attempt: u32) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let ceiling = 1000u64 << attempt.min(6);
    u64::from(nanos) % ceiling + 200
}

impl MysqlStore {
    pub async fn connect(settings: &ConnectSettings) -> StoreResult<Self> {
        let options = Self::options(&settings.url)?;
        let write = Self::pool(options.clone(), settings, false).await?;
        let read = match &settings.read_url {
            Some(url) => Some(Self::pool(Self::options(url)?, settings, true).await?),
            None => None,
        };
        Ok(Self { write, read, max_connections: settings.max_connections, options })
    }

    fn options(url: &str) -> StoreResult<MySqlConnectOptions> {
        // Every connection runs `SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci` and
        // `SET time_zone = '+00:00'`, whatever the server's defaults are.
        Ok(MySqlConnectOptions::from_str(url)
            .map_err(db_err)?
            .charset("utf8mb4")
            .collation("utf8mb4_unicode_ci")
            .timezone(Some("+00:00".to_owned())))
    }

    async fn pool(opts: MySqlConnectOptions, settings: &ConnectSettings, read_only: bool) -> StoreResult<MySqlPool> {
        MySqlPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // A replica pool must never write, even by mistake.
                    if read_only {
                        conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(db_err)
    }

    fn reader(&self) -> &MySqlPool {
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
impl UserStore for MysqlStore {
    async fn create_user(&self, u: NewUser) -> StoreResult<User> {
        crate::retry_deadlocks(|| {
            let u = u.clone();
            async move {
                // The user and its sign-up grant commit together: on any error (a duplicate
                // email first of all) the dropped transaction rolls back and leaves nothing.
                let mut tx = self.write.begin().await.map_err(db_err)?;
                let done = sqlx::query(
            "INSERT INTO users (email, display_name, search_text, password_hash, role, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
        )
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(search_text(&u.email, &u.display_name))
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.now)
        .bind(u.now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "email"))?;
                let id = inserted_id(done)?;
                if u.initial_credits != 0 {
                    let grant = NewLedgerEntry::signup_grant(id, u.initial_credits, u.now);
                    billing::grant_new_user(&mut tx, &grant).await?;
                }
                tx.commit().await.map_err(db_err)?;
                self.user(id).await?.ok_or_else(|| StoreError::Corrupt("inserted user vanished".into()))
            }
        })
        .await
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
                let email: Option<String> =
                    sqlx::query_scalar("SELECT CONVERT(email USING utf8mb4) FROM users WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&self.write)
                        .await
                        .map_err(db_err)?;
                let Some(email) = email else { return Ok(None) };
                Some(search_text(&email, name))
            }
            None => None,
        };
        // The driver sets CLIENT_FOUND_ROWS, so rows_affected counts matched rows even
        // when no value changed: "0" means "no such user", as in SQLite.
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
        // `search_text` is utf8mb4_bin, so LIKE compares bytes: the connection's
        // case- and accent-insensitive collation does not apply.
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
        // The new values are bound twice rather than read back with `VALUES()`, which
        // MySQL 8 deprecates and whose replacement (`AS new`) MariaDB does not parse.
        let prefs = prefs.to_string();
        sqlx::query(
            "INSERT INTO user_preferences (user_id, prefs, updated_at) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE prefs = ?, updated_at = ?",
        )
        .bind(user_id)
        .bind(&prefs)
        .bind(now)
        .bind(&prefs)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MysqlStore {
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<i64> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let done = sqlx::query("INSERT INTO sessions (user_id, created_at, last_used_at) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let id = inserted_id(done)?;
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
        // for "who rotated it". Concurrent callers queue on the token's row lock and,
        // once the winner commits, re-read the row as spent and match nothing. Every
        // path locks the token row before the session row, so they cannot deadlock.
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
        // The transaction's snapshot starts here, after the lock wait, so it sees
        // whatever the winner committed.
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
                // EXISTS is an integer in MySQL.
                session_active: col::<_, i64>(&r, 2)? != 0,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl ApiKeyStore for MysqlStore {
    async fn create_api_key(&self, k: NewApiKey) -> StoreResult<ApiKey> {
        let done = sqlx::query(
            "INSERT INTO api_keys (user_id, name, key_hash, prefix, enabled, expires_at, models, ip_allow,
                                   credit_limit, rpm_limit, tpm_limit, concurrency_limit, created_at, updated_at)
             VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.write)
        .await
        .map_err(|e| conflict_or(e, "api_key"))?;
        let id = inserted_id(done)?;
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
            "UPDATE api_keys SET deleted_at = ?, enabled = 0, updated_at = ?
             WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
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
impl OpsStore for MysqlStore {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx's own migration lock is `GET_LOCK(name, -1)`: MariaDB rejects a negative
        // timeout (NULL and a warning), sqlx ignores the result, and two instances then
        // apply the same migration at once. This lock works on both servers. It lives on a
        // connection of its own that is closed afterwards, so it can never stay held by a
        // pooled connection, even if this future is dropped halfway.
        let mut conn = self.options.connect().await.map_err(db_err)?;
        let result = async {
            loop {
                let got: Option<i64> =
                    sqlx::query_scalar("SELECT GET_LOCK(CONCAT('firefly-migrate-', MD5(DATABASE())), 60)")
                        .fetch_one(&mut conn)
                        .await
                        .map_err(db_err)?;
                match got {
                    Some(1) => break,
                    // Another instance is still migrating: keep waiting, as sqlx would.
                    Some(_) => continue,
                    None => return Err(StoreError::Database("could not take the migration lock".into())),
                }
            }
            // `run_direct` is `run` without the `Acquire` bound that trips the `Send` check
            // of a boxed future (the workaround sqlx itself documents on it).
            MIGRATOR.run_direct(&mut conn).await.map_err(|e| StoreError::Database(Box::new(e)))
        }
        .await;
        // Closing the session releases the lock.
        let _ = conn.close().await;
        result
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
        )
        .fetch_one(&self.write)
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = if tables > 0 {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
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
        let stat = |pool: &'static str, p: &MySqlPool| PoolStats {
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
