//! The column lists this backend selects; the row types they fill are shared
//! (`firefly_store::sql`).

/// Columns of `users`, in `UserRow` order. `email` is `utf8mb4_bin` (byte-exact), which
/// the driver reports as binary and will not decode as text (sqlx #3387): it is
/// converted to plain utf8mb4 text in the select.
macro_rules! user_columns {
    () => {
        "id, CONVERT(email USING utf8mb4) AS email, display_name, password_hash, role, status, created_at, updated_at"
    };
}

/// Columns of `api_keys k`, in `ApiKeyRow` order.
macro_rules! key_columns {
    () => {
        "k.id, k.user_id, k.name, k.prefix, k.enabled, k.expires_at, k.models, k.ip_allow, \
         k.credit_limit, k.rpm_limit, k.tpm_limit, k.concurrency_limit, k.credits_used, k.created_at, k.updated_at"
    };
}

/// Columns of `ledger`, in `LedgerRow` order. `idempotency_key` is `utf8mb4_bin` and is
/// converted to plain text, like `users.email`.
macro_rules! ledger_columns {
    () => {
        "id, user_id, kind, amount, balance_after, CONVERT(idempotency_key USING utf8mb4) AS idempotency_key, \
         reference, note, actor_id, created_at"
    };
}

/// Columns of `redemption_batches b` and its redeemed count, in `BatchRow` order.
macro_rules! batch_columns {
    () => {
        "b.id, b.name, b.amount, b.count, \
         (SELECT COUNT(*) FROM redemption_codes c WHERE c.batch_id = b.id AND c.redeemed_by IS NOT NULL) AS redeemed, \
         b.expires_at, b.created_by, b.created_at"
    };
}

/// Columns of `model_prices p`, in `PriceRow` order. `model` is `utf8mb4_bin` and is
/// converted to plain text, like `users.email`. Queries sort by `p.model`, qualified: a
/// bare `model` would name the converted alias, which sorts by another collation.
macro_rules! price_columns {
    () => {
        "CONVERT(p.model USING utf8mb4) AS model, p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok, \
         p.per_image, p.per_mchar, p.per_second, p.updated_at"
    };
}

/// Columns of `user_groups g` and its member count, in `GroupRow` order. `name` is
/// `utf8mb4_bin` and is converted to plain text; queries sort by `g.name`, as above.
macro_rules! group_columns {
    () => {
        "g.id, CONVERT(g.name USING utf8mb4) AS name, g.multiplier_bp, \
         (SELECT COUNT(*) FROM user_group_members m WHERE m.group_id = g.id) AS members, \
         g.created_at, g.updated_at"
    };
}

/// Columns of `channels`, in `ChannelRow` order.
macro_rules! channel_columns {
    () => {
        "id, name, provider, base_url, api_version, keys_ciphertext, key_hints, models, model_map, priority, weight, \
         rpm_limit, status, status_reason, created_at, updated_at"
    };
}

/// Columns of `usage_logs`, in `UsageLogRow` order. `request_id` and `model` are
/// `utf8mb4_bin` and are converted to plain text, like `users.email`; queries filter and
/// sort by the bare columns' table, never by these aliases.
macro_rules! usage_log_columns {
    () => {
        "l.id, CONVERT(l.request_id USING utf8mb4) AS request_id, l.user_id, l.api_key_id, l.channel_id, l.endpoint, \
         CONVERT(l.model USING utf8mb4) AS model, l.stream, l.input_tokens, l.output_tokens, l.cached_tokens, \
         l.credits, l.latency_ms, l.first_token_ms, l.status, l.error_code, l.error_message, l.created_at"
    };
}
