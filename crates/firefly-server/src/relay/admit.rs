//! Admission: everything decided before a request may go upstream — the key may use the
//! model, some channel serves it, it has a price, the key's and user's rate limits admit
//! it, and its worst-case cost is reserved. Each refusal is a clear error, in this order.

use super::credits::{Hold, KeyBudget};
use super::limits::{Lease, Limit, RateLimiter, Scope};
use super::table::Upstream;
use super::Relay;
use crate::http::ApiError;
use crate::keys::auth::CachedKey;
use firefly_core::money::{cost, media_cost, MediaUnits, TokenPrice, TokenUsage};
use firefly_core::{Error, ErrorCode};
use std::sync::Arc;
use std::time::Instant;

/// An admitted request: where to send it, what it may spend, and its limit lease.
pub struct Admission {
    pub plan: Vec<Arc<Upstream>>,
    pub hold: Hold,
    pub lease: Lease,
    pub price: TokenPrice,
    pub multiplier_bp: i64,
    pub user_id: i64,
    pub key_id: i64,
}

/// What a request could cost at most.
pub struct Ask<'a> {
    pub model: &'a str,
    /// Input tokens cannot exceed the body's bytes (a token covers at least one byte of
    /// text), so the body length is the reservation's input bound.
    pub input_bytes: usize,
    /// Output tokens allowed over all choices.
    pub output_tokens: u64,
    /// A media request's worst case (images asked for, characters, audio length), billed
    /// at the model's media price instead of its token prices.
    pub media: Option<MediaUnits>,
}

impl Relay {
    pub async fn admit(&self, key: &CachedKey, ask: Ask<'_>) -> Result<Admission, ApiError> {
        let k = &key.auth.key;
        if !k.models.is_empty() && !k.models.iter().any(|m| m == ask.model) {
            return Err(ErrorCode::ApiKeyModelDenied.into());
        }
        let table = self.routes.current();
        let plan = table.plan(ask.model, Instant::now()).ok_or_else(|| model_not_found(ask.model))?;
        let unpriced = |what: &str| {
            ApiError(Error::with_message(
                ErrorCode::ModelUnpriced,
                format!(
                    "The model `{}` has no price {what}yet, so it cannot be used; an administrator must price it.",
                    ask.model
                ),
            ))
        };
        let price = self.price(ask.model).await?.ok_or_else(|| unpriced(""))?;
        if plan.is_empty() {
            return Err(ErrorCode::NoChannelAvailable.into());
        }
        let multiplier_bp = self.multiplier(k.user_id).await?;
        // The worst case, in the unit this request is billed by; `None` inside: overflow.
        let worst = match ask.media {
            None if !price.covers_tokens() => return Err(unpriced("for tokens ")),
            None => {
                let usage = TokenUsage {
                    input: ask.input_bytes as i64,
                    output: ask.output_tokens.min(i64::MAX as u64) as i64,
                    cached_input: 0,
                };
                cost(&price, &usage, multiplier_bp)
            }
            Some(units) => media_cost(&price, units, multiplier_bp).ok_or_else(|| unpriced(unit_name(units)))?,
        };

        let key_limit = Limit {
            rpm: k.rpm_limit.map(clamp_u32),
            tpm: k.tpm_limit.map(|t| t.max(0) as u64),
            concurrency: k.concurrency_limit.map(clamp_u32),
        };
        let s = &self.settings;
        let user_limit = Limit {
            rpm: (s.user_rpm > 0).then_some(s.user_rpm),
            tpm: (s.user_tpm > 0).then_some(s.user_tpm),
            concurrency: (s.user_concurrency > 0).then_some(s.user_concurrency),
        };
        let estimate = (ask.input_bytes / 4) as u64 + ask.output_tokens;
        let asks = [(Scope::Key(k.id), key_limit), (Scope::User(k.user_id), user_limit)];
        let mut lease = self.limiter.acquire(&asks, estimate).await.map_err(|denied| {
            let secs = denied.retry_after.as_secs().max(1);
            let what = match denied.scope {
                Scope::Key(_) => "this API key's",
                Scope::User(_) => "your account's",
            };
            let limit = match denied.dimension {
                super::limits::Dimension::Requests => "requests-per-minute",
                super::limits::Dimension::Tokens => "tokens-per-minute",
                super::limits::Dimension::Concurrency => "concurrent-requests",
            };
            let mut e = Error::rate_limited(secs);
            e.message = format!("Rate limit reached: {what} {limit} limit. Retry after {secs} s.");
            ApiError(e)
        })?;

        let Some(worst) = worst else {
            lease.settle(0);
            return Err(ErrorCode::InsufficientBalance.into());
        };
        let budget = KeyBudget { key_id: k.id, credit_limit: k.credit_limit, credits_used: k.credits_used };
        let hold = match self.credits.reserve(k.user_id, Some(budget), worst).await {
            Ok(hold) => hold,
            Err(e) => {
                // Refused before it ran: its estimated tokens are not spent.
                lease.settle(0);
                return Err(e);
            }
        };
        Ok(Admission { plan, hold, lease, price, multiplier_bp, user_id: k.user_id, key_id: k.id })
    }
}

fn unit_name(units: MediaUnits) -> &'static str {
    match units {
        MediaUnits::Images(_) => "for images ",
        MediaUnits::Characters(_) => "for speech ",
        MediaUnits::Milliseconds(_) => "for transcription ",
    }
}

fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, u32::MAX as i64) as u32
}

pub fn model_not_found(model: &str) -> ApiError {
    ApiError(Error::with_message(
        ErrorCode::ModelNotFound,
        format!("The model `{model}` does not exist or no channel serves it."),
    ))
}
