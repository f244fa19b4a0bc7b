//! The column lists this backend selects; the row types they fill are shared
//! (`firefly_store::sql`).

/// Columns of `users`, in `UserRow` order.
macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, role, status, created_at, updated_at"
    };
}

/// Columns of `api_keys k`, in `ApiKeyRow` order.
macro_rules! key_columns {
    () => {
        "k.id, k.user_id, k.name, k.prefix, k.enabled, k.expires_at, k.models, k.ip_allow, \
         k.credit_limit, k.rpm_limit, k.tpm_limit, k.concurrency_limit, k.credits_used, k.created_at, k.updated_at"
    };
}

/// Columns of `ledger`, in `LedgerRow` order.
macro_rules! ledger_columns {
    () => {
        "id, user_id, kind, amount, balance_after, idempotency_key, reference, note, actor_id, created_at"
    };
}

/// Columns of `redemption_batches b` and its redeemed count, in `BatchRow` order.
macro_rules! batch_columns {
    () => {
        "b.id, b.name, b.amount, b.count,
         (SELECT COUNT(*) FROM redemption_codes c WHERE c.batch_id = b.id AND c.redeemed_by IS NOT NULL) AS redeemed,
         b.expires_at, b.created_by, b.created_at"
    };
}

/// Columns of `model_prices`, in `PriceRow` order.
macro_rules! price_columns {
    () => {
        "model, input_per_mtok, output_per_mtok, cached_input_per_mtok, per_image, per_mchar, per_second, updated_at"
    };
}

/// Columns of `user_groups g` and its member count, in `GroupRow` order.
macro_rules! group_columns {
    () => {
        "g.id, g.name, g.multiplier_bp,
         (SELECT COUNT(*) FROM user_group_members m WHERE m.group_id = g.id) AS members,
         g.created_at, g.updated_at"
    };
}

/// Columns of `channels`, in `ChannelRow` order.
macro_rules! channel_columns {
    () => {
        "id, name, provider, base_url, api_version, keys_ciphertext, key_hints, models, model_map, priority, weight,
         rpm_limit, status, status_reason, created_at, updated_at"
    };
}

/// Columns of `usage_logs`, in `UsageLogRow` order.
macro_rules! usage_log_columns {
    () => {
        "id, request_id, user_id, api_key_id, channel_id, endpoint, model, stream, input_tokens, output_tokens,
         cached_tokens, credits, latency_ms, first_token_ms, status, error_code, error_message, created_at"
    };
}
