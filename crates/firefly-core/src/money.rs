//! Prices and costs. Credits are integers; prices are credits per million tokens; a
//! group multiplier is in basis points (10 000 = 1×). Costs round up, so a request is
//! never billed less than its exact price (and a priced model is never served free).

/// Basis points in 1×.
pub const BP_ONE: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPrice {
    pub input_per_mtok: i64,
    pub output_per_mtok: i64,
    /// Price of cached input tokens; `None` bills them as ordinary input.
    pub cached_input_per_mtok: Option<i64>,
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

    const P: TokenPrice =
        TokenPrice { input_per_mtok: 2_000, output_per_mtok: 8_000, cached_input_per_mtok: Some(500) };

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
        let huge = TokenPrice { input_per_mtok: i64::MAX, output_per_mtok: i64::MAX, cached_input_per_mtok: None };
        let u = TokenUsage { input: i64::MAX, output: i64::MAX, cached_input: 0 };
        assert_eq!(cost(&huge, &u, i64::MAX), None);
        assert_eq!(cost(&P, &TokenUsage { input: -1, output: 0, cached_input: 0 }, BP_ONE), None);
        assert_eq!(cost(&P, &TokenUsage::default(), -1), None);
        let negative = TokenPrice { input_per_mtok: -1, ..P };
        assert_eq!(cost(&negative, &TokenUsage { input: 1, output: 0, cached_input: 0 }, BP_ONE), None);
        let max =
            TokenPrice { input_per_mtok: i64::MAX, output_per_mtok: i64::MAX, cached_input_per_mtok: Some(i64::MAX) };
        let big = TokenUsage { input: i64::MAX, output: i64::MAX, cached_input: i64::MAX / 2 };
        assert_eq!(cost(&max, &big, 1), None, "sums that overflow are refused, never wrapped");
    }
}
