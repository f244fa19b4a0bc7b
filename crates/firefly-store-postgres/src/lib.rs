//! PostgreSQL backend (14+). Statements run under the default READ COMMITTED isolation;
//! statements that must be atomic start with a conditional write, which takes the row
//! lock and re-checks its condition against the latest committed row, so a concurrent
//! loser sees zero rows instead of a stale read.

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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct PostgresStore {
    write: PgPool,
    read: Option<PgPool>,
    max_connections: u32,
}

impl PostgresStore {
    pub async fn connect(settings: &ConnectSettings) -> StoreResult<Self> {
        let write = Self::pool(Self::options(&settings.url)?, settings).await?;
        let read = match &settings.read_url {
            // A replica refuses writes anyway; saying so up front also guards a
            // misconfigured read URL that points at the primary.
            Some(url) => {
                let opts = Self::options(url)?.options([("default_transaction_read_only", "on")]);
                Some(Self::pool(opts, settings).await?)
            }
            None => None,
        };
        Ok(Self { write, read, max_connections: settings.max_connections })
    }

    fn options(url: &str) -> StoreResult<PgConnectOptions> {
        PgConnectOptions::from_str(url).map_err(db_err)
    }

    async fn pool(opts: PgConnectOptions, settings: &ConnectSettings) -> StoreResult<PgPool> {
        PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db_err)
    }

    fn reader(&self) -> &PgPool {
        self.read.as_ref().unwrap_or(&self.write)
    }

    async fn user(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        let row: Option<UserRow> = sqlx::query_as(sql).bind(id).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn key(&self, user_id: i64, id: i64) -> StoreResult<Option<ApiKey>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.id = $1 AND k.user_id = $2 AND k.deleted_at IS NULL"
        );
        let row: Option<ApiKeyRow> =
            sqlx::query_as(sql).bind(id).bind(user_id).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, u: NewUser) -> StoreResult<User> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, display_name, search_text, password_hash, role, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $6) RETURNING id",
        )
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(search_text(&u.email, &u.display_name))
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "email"))?;
        if u.initial_credits != 0 {
            billing::signup_grant_in(&mut tx, id, u.initial_credits, u.now).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.user(id).await?.ok_or_else(|| StoreError::Corrupt("inserted user vanished".into()))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.user(id).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
        let row: Option<UserRow> = sqlx::query_as(sql).bind(email).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn update_profile(&self, id: i64, patch: ProfilePatch, now: Millis) -> StoreResult<Option<User>> {
        // A new name needs a new search text, computed from the email. Emails never change,
        // so reading it outside the update cannot go stale; the name and its search text
        // are then written by one statement and always agree.
        let search = match &patch.display_name {
            Some(name) => {
                let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
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
            "UPDATE users SET display_name = COALESCE($1::text, display_name),
                              search_text = COALESCE($2::text, search_text), updated_at = $3
             WHERE id = $4",
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
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn set_user_status(&self, id: i64, status: UserStatus, now: Millis) -> StoreResult<Option<User>> {
        let done = sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
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
        let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
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
        // One placeholder serves both uses; the cast types it when it is NULL.
        macro_rules! filter {
            () => {
                "($1::text IS NULL OR search_text LIKE $1 ESCAPE '!')"
            };
        }
        let total: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*) FROM users WHERE ", filter!()))
            .bind(&pattern)
            .fetch_one(self.reader())
            .await
            .map_err(db_err)?;
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ",
            filter!(),
            " ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<UserRow> = sqlx::query_as(sql)
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
        let text: Option<String> = sqlx::query_scalar("SELECT prefs FROM user_preferences WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("preferences: {e}")))).transpose()
    }

    async fn put_preferences(&self, user_id: i64, prefs: &serde_json::Value, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_preferences (user_id, prefs, updated_at) VALUES ($1, $2, $3)
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
impl SessionStore for PostgresStore {
    async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<i64> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sessions (user_id, created_at, last_used_at) VALUES ($1, $2, $2) RETURNING id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (session_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
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
        // Spend the token first: the conditional write is the single point of truth for
        // "who rotated it". A concurrent rotation waits on the row lock, then re-checks
        // `used_at IS NULL` against the winner's committed row and updates nothing.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL)",
        )
        .bind(now)
        .bind(old)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let row = sqlx::query(
            "SELECT s.id, s.user_id, t.used_at, s.revoked_at FROM refresh_tokens t
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(old)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(RotateOutcome::Invalid) };
        let (session_id, user_id): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
        if spent == 1 {
            sqlx::query(
                "INSERT INTO refresh_tokens (session_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(session_id)
            .bind(new)
            .bind(new_expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, "refresh_token"))?;
            sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
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
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(session_id)
                .bind(user_id)
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_all_sessions(&self, user_id: i64, now: Millis) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
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
                    EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND s.user_id = u.id AND s.revoked_at IS NULL)
             FROM users u WHERE u.id = $2",
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
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(&self, k: NewApiKey) -> StoreResult<ApiKey> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (user_id, name, key_hash, prefix, enabled, expires_at, models, ip_allow,
                                   credit_limit, rpm_limit, tpm_limit, concurrency_limit, created_at, updated_at)
             VALUES ($1, $2, $3, $4, TRUE, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
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
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "api_key"))?;
        self.key(k.user_id, id).await?.ok_or_else(|| StoreError::Corrupt("inserted key vanished".into()))
    }

    async fn list_api_keys(&self, user_id: i64) -> StoreResult<Vec<ApiKey>> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k WHERE k.user_id = $1 AND k.deleted_at IS NULL ORDER BY k.created_at DESC, k.id DESC"
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
                name = COALESCE($1::text, name),
                enabled = COALESCE($2::boolean, enabled),
                expires_at = CASE WHEN $3::boolean THEN $4::bigint ELSE expires_at END,
                models = COALESCE($5::text, models),
                ip_allow = COALESCE($6::text, ip_allow),
                credit_limit = CASE WHEN $7::boolean THEN $8::bigint ELSE credit_limit END,
                rpm_limit = CASE WHEN $9::boolean THEN $10::bigint ELSE rpm_limit END,
                tpm_limit = CASE WHEN $11::boolean THEN $12::bigint ELSE tpm_limit END,
                concurrency_limit = CASE WHEN $13::boolean THEN $14::bigint ELSE concurrency_limit END,
                updated_at = $15
             WHERE id = $16 AND user_id = $17 AND deleted_at IS NULL",
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
            "UPDATE api_keys SET deleted_at = $1, enabled = FALSE, updated_at = $1
             WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL",
        )
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
             WHERE k.key_hash = $1 AND k.deleted_at IS NULL"
        );
        let row = sqlx::query(sql).bind(key_hash).fetch_optional(&self.write).await.map_err(db_err)?;
        row.map(|r| firefly_store::sql::key_auth(&r)).transpose()
    }
}

#[async_trait]
impl OpsStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx serializes migrators with a session-level advisory lock, so several
        // instances may start at once. It releases the lock only on success: a failed
        // run's connection is closed rather than returned to the pool still holding it,
        // or every later migrate() would wait on it forever.
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        let result = MIGRATOR.run_direct(&mut *conn).await;
        if result.is_err() {
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
        result.map_err(|e| StoreError::Database(Box::new(e)))
    }

    async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
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
        let stat = |pool: &'static str, p: &PgPool| PoolStats {
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
