//! Choosing upstream channels: the highest priority tier first, weighted random order
//! inside a tier, channels with an open circuit skipped. The relay walks the plan,
//! retrying on the next channel while nothing has reached the client yet.

use rand::Rng;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A channel as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub priority: i64,
    /// Share of traffic inside the tier; 0 takes traffic only when nothing else in the
    /// tier is left.
    pub weight: i64,
}

/// The order in which to try `candidates`: tiers by descending priority, each tier in
/// weighted random order (without replacement). Every candidate appears once.
pub fn plan(candidates: &[Candidate], rng: &mut impl Rng) -> Vec<i64> {
    let mut order = candidates.to_vec();
    order_in_place(&mut order, |c| *c, rng);
    order.into_iter().map(|c| c.id).collect()
}

/// [`plan`]'s order, made in place on anything that has a [`Candidate`]: no allocation.
pub fn order_in_place<T>(items: &mut [T], candidate: impl Fn(&T) -> Candidate, rng: &mut impl Rng) {
    items.sort_by(|a, b| {
        let (a, b) = (candidate(a), candidate(b));
        b.priority.cmp(&a.priority).then(a.id.cmp(&b.id))
    });
    let mut tier_start = 0;
    while tier_start < items.len() {
        let priority = candidate(&items[tier_start]).priority;
        let tier_len = items[tier_start..].iter().take_while(|c| candidate(c).priority == priority).count();
        // Draw the tier's places one by one; each drawn candidate is swapped to the front
        // of what is left, the others keep their order.
        for next in tier_start..tier_start + tier_len {
            let left = &mut items[next..tier_start + tier_len];
            let total: i64 = left.iter().map(|c| candidate(c).weight.max(0)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut point = rng.gen_range(0..total);
                left.iter()
                    .position(|c| {
                        let w = candidate(c).weight.max(0);
                        if point < w {
                            true
                        } else {
                            point -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            left[..=pick].rotate_right(1);
        }
        tier_start += tier_len;
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses traffic before one probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe request is in flight; everything else waits for its answer — or, if the
    /// probe never reports (cancelled, client gone), for another `open_for`.
    HalfOpen {
        since: Instant,
    },
}

/// A circuit breaker for one channel.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    /// Whether a request may go to this channel now. An open circuit past its time
    /// lets exactly one probe through.
    pub fn allow(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else { return true };
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                true
            }
            State::HalfOpen { since } if now >= since + self.settings.open_for => {
                *state = State::HalfOpen { since: now };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    pub fn success(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Closed { failures: 0 };
        }
    }

    pub fn failure(&self, now: Instant) {
        let Ok(mut state) = self.state.lock() else { return };
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.settings.failure_threshold => {
                State::Closed { failures: failures + 1 }
            }
            _ => State::Open { until: now + self.settings.open_for },
        };
    }

    /// Whether the circuit refuses traffic now, without claiming a probe (for filtering).
    pub fn is_open(&self, now: Instant) -> bool {
        let open_for = self.settings.open_for;
        self.state
            .lock()
            .map(|s| match *s {
                State::Closed { .. } => false,
                State::Open { until } => now < until,
                State::HalfOpen { since } => now < since + open_for,
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn c(id: i64, priority: i64, weight: i64) -> Candidate {
        Candidate { id, priority, weight }
    }

    #[test]
    fn tiers_come_first_and_everyone_appears_once() {
        let mut rng = StdRng::seed_from_u64(7);
        let cands = [c(1, 0, 5), c(2, 10, 1), c(3, 10, 1), c(4, -5, 1), c(5, 0, 5)];
        for _ in 0..100 {
            let p = plan(&cands, &mut rng);
            assert_eq!(p.len(), 5);
            let mut top = p[..2].to_vec();
            top.sort();
            assert_eq!(top, vec![2, 3], "{p:?}");
            let mut mid = p[2..4].to_vec();
            mid.sort();
            assert_eq!(mid, vec![1, 5], "{p:?}");
            assert_eq!(p[4], 4);
        }
        assert!(plan(&[], &mut rng).is_empty());
    }

    #[test]
    fn weights_share_first_place_proportionally() {
        let mut rng = StdRng::seed_from_u64(42);
        let cands = [c(1, 0, 3), c(2, 0, 1)];
        let draws = 20_000;
        let first_is_1 = (0..draws).filter(|_| plan(&cands, &mut rng)[0] == 1).count();
        let share = first_is_1 as f64 / draws as f64;
        assert!((0.73..0.77).contains(&share), "weight 3:1 gave {share}");
    }

    #[test]
    fn zero_weight_only_after_the_others() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            assert_eq!(plan(&[c(1, 0, 0), c(2, 0, 1)], &mut rng), vec![2, 1]);
        }
        assert_eq!(plan(&[c(1, 0, 0)], &mut rng), vec![1], "alone, it still serves");
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let settings = BreakerSettings { failure_threshold: 3, open_for: Duration::from_secs(10) };
        let b = Breaker::new(settings);
        let t0 = Instant::now();
        for _ in 0..2 {
            b.failure(t0);
            assert!(b.allow(t0), "below the threshold it stays closed");
        }
        b.success();
        for _ in 0..2 {
            b.failure(t0);
        }
        assert!(b.allow(t0), "a success reset the count");
        b.failure(t0);
        assert!(b.is_open(t0));
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        // After the wait, one probe and only one.
        let later = t0 + Duration::from_secs(10);
        assert!(b.allow(later));
        assert!(!b.allow(later));
        // A failed probe opens it again; a good one closes it.
        b.failure(later);
        assert!(!b.allow(later + Duration::from_secs(5)));
        let again = later + Duration::from_secs(10);
        assert!(b.allow(again));
        b.success();
        assert!(b.allow(again) && b.allow(again));
    }

    #[test]
    fn a_probe_that_never_reports_does_not_close_the_channel_forever() {
        let b = Breaker::new(BreakerSettings { failure_threshold: 1, open_for: Duration::from_secs(10) });
        let t0 = Instant::now();
        b.failure(t0);
        let probe = t0 + Duration::from_secs(10);
        assert!(b.allow(probe), "the probe goes out and is lost");
        assert!(b.is_open(probe + Duration::from_secs(1)));
        assert!(!b.allow(probe + Duration::from_secs(9)));
        assert!(b.allow(probe + Duration::from_secs(10)), "another probe after a further wait");
        assert!(!b.is_open(t0 + Duration::from_secs(40)) || b.allow(t0 + Duration::from_secs(40)));
    }
}
