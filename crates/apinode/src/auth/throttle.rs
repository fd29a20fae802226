//! Flood control of authentication failures (docs/security.md
//! `authFailuresPerMinute`): per client address and wall-clock minute, the
//! first N failures are recorded one by one as usual; beyond N, every
//! request from that address to an authenticated route is answered 429
//! until the minute is over, and what it tried is summarised: one `authfail`
//! record per address and minute with the count, instead of one record
//! each, so nobody can flush the audit files with bad keys. Owns the
//! counters; it answers and records nothing itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a caller was refused for, over the limit, in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The client address.
    pub client_ip: IpAddr,
    /// The minute (seconds since the epoch of its start).
    pub minute_start: u64,
    /// Failures recorded one by one in that minute.
    pub recorded: u32,
    /// Requests refused (429) or failures not recorded one by one.
    pub suppressed: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    minute: u64,
    failures: u32,
    suppressed: u32,
}

/// Failures per address and minute.
#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

fn minute_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

impl AuthThrottle {
    /// At most `limit` failures recorded per address and minute.
    pub fn new(limit: u32) -> AuthThrottle {
        AuthThrottle { limit, windows: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether requests from `ip` are refused (429) for the rest of this
    /// minute; a refused request is counted in the summary.
    pub fn refuses(&self, ip: IpAddr) -> bool {
        self.refuses_at(ip, minute_now())
    }

    fn refuses_at(&self, ip: IpAddr, minute: u64) -> bool {
        let mut windows = self.lock();
        match windows.get_mut(&ip) {
            Some(w) if w.minute == minute && w.failures >= self.limit => {
                w.suppressed += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts a failure of `ip`: true when it is to be recorded one by one
    /// (within the limit), false when only the summary counts it.
    pub fn failure(&self, ip: IpAddr) -> bool {
        self.failure_at(ip, minute_now())
    }

    fn failure_at(&self, ip: IpAddr, minute: u64) -> bool {
        let mut windows = self.lock();
        let w = windows.entry(ip).or_default();
        if w.minute != minute {
            *w = Window { minute, ..Window::default() };
        }
        if w.failures < self.limit {
            w.failures += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// The summaries of minutes that are over (all of them with `all`, at
    /// stop), forgetting those windows.
    pub fn take_summaries(&self, all: bool) -> Vec<Summary> {
        self.take_summaries_at(minute_now(), all)
    }

    fn take_summaries_at(&self, minute: u64, all: bool) -> Vec<Summary> {
        let mut out = Vec::new();
        self.lock().retain(|ip, w| {
            let over = all || w.minute < minute;
            if over && w.suppressed > 0 {
                out.push(Summary {
                    client_ip: *ip,
                    minute_start: w.minute * 60,
                    recorded: w.failures,
                    suppressed: w.suppressed,
                });
            }
            !over
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_limit_an_address_is_refused_and_summarised_for_the_minute() {
        let t = AuthThrottle::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let recorded: Vec<bool> = (0..5).map(|_| t.failure_at(a, 100)).collect();
        assert_eq!(recorded, [true, true, true, false, false]);
        assert!(t.refuses_at(a, 100) && t.refuses_at(a, 100));
        assert!(!t.refuses_at(b, 100), "another address is served");
        assert!(t.take_summaries_at(100, false).is_empty(), "the minute is not over");
        assert!(!t.refuses_at(a, 101), "a new minute starts clean");
        let s = t.take_summaries_at(101, false);
        assert_eq!(s, [Summary { client_ip: a, minute_start: 6000, recorded: 3, suppressed: 4 }]);
        assert!(t.take_summaries_at(102, true).is_empty(), "forgotten once summarised");
    }
}
