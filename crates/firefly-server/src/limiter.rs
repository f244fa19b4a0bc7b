//! Attempt throttling per client address and per account: logins (seed 004: 1/s,
//! burst 5) and redemption-code guesses.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The budget's owner: an IPv4 address, or an IPv6 /64 (one subscriber holds a whole
/// /64, so single IPv6 addresses would give them unlimited budgets).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[derive(Clone)]
pub struct AttemptLimiter {
    by_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    by_account: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl AttemptLimiter {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self::with_quota(Quota::per_second(NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN)), burst)
    }

    pub fn per_minute(per_min: u32, burst: u32) -> Self {
        Self::with_quota(Quota::per_minute(NonZeroU32::new(per_min.max(1)).unwrap_or(NonZeroU32::MIN)), burst)
    }

    fn with_quota(quota: Quota, burst: u32) -> Self {
        let quota = quota.allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            by_ip: Arc::new(RateLimiter::keyed(quota)),
            by_account: Arc::new(RateLimiter::keyed(quota)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(seconds)` to wait when either the address or the account is over its budget.
    /// The account must already be bounded in length (a validated email).
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), u64> {
        self.check_ip(ip)?;
        self.by_account.check_key(&account.to_owned()).map_err(|e| self.wait(e))
    }

    /// The per-address budget alone (registration spends it too).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.by_ip.check_key(&bucket(ip)).map_err(|e| self.wait(e))
    }

    fn wait(&self, e: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
        e.wait_time_from(self.clock.now()).as_secs_f64().ceil() as u64
    }

    /// Drops state of keys that are back to a full budget; called periodically.
    pub fn shrink(&self) {
        self.by_ip.retain_recent();
        self.by_account.retain_recent();
        self.by_ip.shrink_to_fit();
        self.by_account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_address_and_per_v6_prefix() {
        let limiter = AttemptLimiter::new(1, 3);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for i in 0..3 {
            assert!(limiter.check(if i % 2 == 0 { a } else { b }, &format!("user{i}")).is_ok());
        }
        let wait = limiter.check(b, "fresh").unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(limiter.check(c, "fresh").is_ok(), "another /64 has its own budget");
        for _ in 0..3 {
            assert!(limiter.check_ip("192.0.2.1".parse().unwrap()).is_ok());
        }
        assert!(limiter.check_ip("192.0.2.1".parse().unwrap()).is_err());
        assert!(limiter.check_ip("192.0.2.2".parse().unwrap()).is_ok());
        // One account from many addresses runs out too.
        for i in 0..3 {
            assert!(limiter.check(format!("198.51.100.{i}").parse().unwrap(), "target").is_ok());
        }
        assert!(limiter.check("198.51.100.200".parse().unwrap(), "target").is_err());
    }
}
