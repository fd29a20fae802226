//! The recent query records of each service, kept in memory for
//! `GET /admin/api/services/{id}/queries` (at most 10,000 per service, the
//! oldest dropped first; the audit files are the complete record). Emptying
//! a ring never touches the files. Also decides when the ring's DATASET
//! entity gets its UPDATE message (at most once a minute while records come).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records kept per service.
pub const RING_CAPACITY: usize = 10_000;
/// At most one DATASET UPDATE per service in this period.
pub const UPDATE_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<Arc<str>>,
    last_update: Option<Instant>,
}

/// Every service's ring.
#[derive(Debug, Default)]
pub struct QueryRings {
    rings: Mutex<HashMap<String, Ring>>,
}

impl QueryRings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ring>> {
        self.rings.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a record; true when an UPDATE message is due.
    pub fn push(&self, service: &str, record: Arc<str>) -> bool {
        let mut rings = self.lock();
        if !rings.contains_key(service) {
            rings.insert(service.to_owned(), Ring::default());
        }
        let ring = rings.get_mut(service).expect("inserted above");
        if ring.records.len() == RING_CAPACITY {
            ring.records.pop_front();
        }
        ring.records.push_back(record);
        let due = ring.last_update.is_none_or(|t| t.elapsed() >= UPDATE_PERIOD);
        if due {
            ring.last_update = Some(Instant::now());
        }
        due
    }

    /// The last `limit` records of a service, oldest first.
    pub fn last(&self, service: &str, limit: usize) -> Vec<Arc<str>> {
        let rings = self.lock();
        rings
            .get(service)
            .map_or_else(Vec::new, |r| r.records.iter().skip(r.records.len().saturating_sub(limit)).cloned().collect())
    }

    /// Empties a service's ring.
    pub fn clear(&self, service: &str) {
        self.lock().remove(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_rate_limits_updates() {
        let rings = QueryRings::default();
        assert!(rings.push("s", Arc::from("r0")), "the first record announces an update");
        for i in 1..RING_CAPACITY + 5 {
            assert!(!rings.push("s", Arc::from(format!("r{i}"))), "not again within a minute");
        }
        let last = rings.last("s", 2);
        assert_eq!(last.iter().map(|r| &**r).collect::<Vec<_>>(), ["r10003", "r10004"]);
        assert_eq!(rings.last("s", usize::MAX).len(), RING_CAPACITY);
        rings.clear("s");
        assert!(rings.last("s", 5).is_empty());
    }
}
