//! Prices and costs. Credits are integers; token prices are credits per million tokens;
//! media prices are credits per image, per million characters (speech) and per second of
//! audio (transcription); a group multiplier is in basis points (10 000 = 1×). Costs round
//! up, so a request is never billed less than its exact price (and a priced model is never
//! served free).

/// Basis points in 1×.
pub const BP_ONE: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPrice {
    pub input_per_mtok: i64,
    pub output_per_mtok: i64,
    /// Price of cached input tokens; `None` bills them as ordinary input.
    pub cached_input_per_mtok: Option<i64>,
    /// Credits per generated image; `None`: the model is not priced for images.
    pub per_image: Option<i64>,
    /// Credits per million characters of speech input; `None`: not priced for speech.
    pub per_mchar: Option<i64>,
    /// Credits per second of transcribed audio; `None`: not priced for transcription.
    pub per_second: Option<i64>,
}

impl TokenPrice {
    /// Whether the price covers tokens: not a model priced only for media (token prices 0
    /// and some media price), which would otherwise serve chat for free.
    pub fn covers_tokens(&self) -> bool {
        let media_only = self.input_per_mtok == 0
            && self.output_per_mtok == 0
            && (self.per_image.is_some() || self.per_mchar.is_some() || self.per_second.is_some());
        !media_only
    }
}

/// What a media request is billed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaUnits {
    Images(u64),
    Characters(u64),
    /// Audio length, billed by the millisecond.
    Milliseconds(u64),
}

impl MediaUnits {
    /// The price of one unit kind, and the units per priced quantity.
    fn rate(self, price: &TokenPrice) -> (Option<i64>, i128, i128) {
        match self {
            MediaUnits::Images(n) => (price.per_image, n as i128, 1),
            MediaUnits::Characters(n) => (price.per_mchar, n as i128, 1_000_000),
            MediaUnits::Milliseconds(n) => (price.per_second, n as i128, 1_000),
        }
    }
}

/// The cost in credits of `units` at `price` times `multiplier_bp`, rounded up. The outer
/// `None`: the model has no price for this kind of unit (refused, never served free); the
/// inner `None`: overflow or a negative price.
pub fn media_cost(price: &TokenPrice, units: MediaUnits, multiplier_bp: i64) -> Option<Option<i64>> {
    let (rate, count, per) = units.rate(price);
    let rate = rate?;
    if rate < 0 || multiplier_bp < 0 {
        return Some(None);
    }
    let scaled = count.checked_mul(rate as i128).and_then(|v| v.checked_mul(multiplier_bp as i128));
    let divisor = per * BP_ONE as i128;
    Some(scaled.and_then(|s| i64::try_from(s / divisor + i128::from(s % divisor != 0)).ok()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// All input tokens, cached ones included.
    pub input: i64,
    pub output: i64,
    /// Of `input`, how many were served from the provider's cache.
    pub cached_input: i64,
}

/// The cost in credits of `usage` at `price` times `multiplier_bp`, rounded up;
/// `None` on overflow or negative inputs (a caller's bug, never billed as zero).
pub fn cost(price: &TokenPrice, usage: &TokenUsage, multiplier_bp: i64) -> Option<i64> {
    let prices = [price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok.unwrap_or(0)];
    if usage.input < 0
        || usage.output < 0
        || usage.cached_input < 0
        || multiplier_bp < 0
        || prices.iter().any(|p| *p < 0)
    {
        return None;
    }
    let cached = usage.cached_input.min(usage.input) as i128;
    let fresh = usage.input as i128 - cached;
    let cached_price = price.cached_input_per_mtok.unwrap_or(price.input_per_mtok) as i128;
    let micro = (fresh * price.input_per_mtok as i128)
        .checked_add(cached * cached_price)?
        .checked_add(usage.output as i128 * price.output_per_mtok as i128)?;
    let scaled = micro.checked_mul(multiplier_bp as i128)?;
    let divisor = 1_000_000i128 * BP_ONE as i128;
    let credits = scaled / divisor + i128::from(scaled % divisor != 0);
    i64::try_from(credits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: TokenPrice = TokenPrice {
        input_per_mtok: 2_000,
        output_per_mtok: 8_000,
        cached_input_per_mtok: Some(500),
        per_image: None,
        per_mchar: None,
        per_second: None,
    };

    #[test]
    fn media_costs_round_up_and_need_a_price() {
        let price = TokenPrice { per_image: Some(40_000), per_mchar: Some(15_000_000), per_second: Some(100), ..P };
        assert_eq!(media_cost(&price, MediaUnits::Images(3), BP_ONE), Some(Some(120_000)));
        assert_eq!(media_cost(&price, MediaUnits::Images(3), 5_000), Some(Some(60_000)), "half price");
        // 15 000 000 credits per million characters: 15 per character.
        assert_eq!(media_cost(&price, MediaUnits::Characters(1_001), BP_ONE), Some(Some(15_015)));
        // 100 per second: 3.457 s is 345.7 credits, billed 346.
        assert_eq!(media_cost(&price, MediaUnits::Milliseconds(3_456 + 1), BP_ONE), Some(Some(346)));
        assert_eq!(media_cost(&price, MediaUnits::Milliseconds(1), BP_ONE), Some(Some(1)), "never free");
        assert_eq!(media_cost(&price, MediaUnits::Images(0), BP_ONE), Some(Some(0)));
        assert_eq!(media_cost(&P, MediaUnits::Images(1), BP_ONE), None, "unpriced for images");
        let huge = TokenPrice { per_image: Some(i64::MAX), ..P };
        assert_eq!(media_cost(&huge, MediaUnits::Images(u64::MAX), BP_ONE), Some(None));
        let negative = TokenPrice { per_second: Some(-1), ..P };
        assert_eq!(media_cost(&negative, MediaUnits::Milliseconds(1), BP_ONE), Some(None));
    }

    #[test]
    fn exact_and_rounded_up() {
        let u = TokenUsage { input: 1_000_000, output: 500_000, cached_input: 0 };
        assert_eq!(cost(&P, &u, BP_ONE), Some(2_000 + 4_000));
        // One token costs a fraction of a credit: billed as one credit, never zero.
        assert_eq!(cost(&P, &TokenUsage { input: 1, output: 0, cached_input: 0 }, BP_ONE), Some(1));
        assert_eq!(cost(&P, &TokenUsage::default(), BP_ONE), Some(0));
    }

    #[test]
    fn cached_tokens_and_multipliers() {
        let u = TokenUsage { input: 1_000_000, output: 0, cached_input: 400_000 };
        assert_eq!(cost(&P, &u, BP_ONE), Some(600_000 * 2_000 / 1_000_000 + 400_000 * 500 / 1_000_000));
        let no_cache_price = TokenPrice { cached_input_per_mtok: None, ..P };
        assert_eq!(cost(&no_cache_price, &u, BP_ONE), Some(2_000));
        // Cached more than input is clamped, not a refund.
        let odd = TokenUsage { input: 10, output: 0, cached_input: 50 };
        assert_eq!(cost(&P, &odd, BP_ONE), Some(1));
        let full = TokenUsage { input: 1_000_000, output: 1_000_000, cached_input: 0 };
        assert_eq!(cost(&P, &full, 15_000), Some(15_000), "1.5×");
        assert_eq!(cost(&P, &full, 0), Some(0), "a free group");
    }

    #[test]
    fn refuses_overflow_and_negatives() {
        let huge = TokenPrice { input_per_mtok: i64::MAX, output_per_mtok: i64::MAX, cached_input_per_mtok: None, ..P };
        let u = TokenUsage { input: i64::MAX, output: i64::MAX, cached_input: 0 };
        assert_eq!(cost(&huge, &u, i64::MAX), None);
        assert_eq!(cost(&P, &TokenUsage { input: -1, output: 0, cached_input: 0 }, BP_ONE), None);
        assert_eq!(cost(&P, &TokenUsage::default(), -1), None);
        let negative = TokenPrice { input_per_mtok: -1, ..P };
        assert_eq!(cost(&negative, &TokenUsage { input: 1, output: 0, cached_input: 0 }, BP_ONE), None);
        let max = TokenPrice {
            input_per_mtok: i64::MAX,
            output_per_mtok: i64::MAX,
            cached_input_per_mtok: Some(i64::MAX),
            ..P
        };
        let big = TokenUsage { input: i64::MAX, output: i64::MAX, cached_input: i64::MAX / 2 };
        assert_eq!(cost(&max, &big, 1), None, "sums that overflow are refused, never wrapped");
    }
}
