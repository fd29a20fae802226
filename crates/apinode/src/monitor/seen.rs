//! Event ids seen, so that a record delivered twice (same `eventId`)
//! counts once: as 128-bit hashes, two SipHash halves with fixed keys, so
//! partial runs in other processes (`--merge`) hash an id alike; a
//! collision among millions of ids is out of reach, and an id costs 16
//! bytes. [`Seen`] for one reader, [`SharedSeen`] for the threads reading
//! one run's sources together. Owns admission only.

use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Event ids one reader (or one partial run) has seen.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Seen {
    pub(super) ids: HashSet<u128>,
}

/// The 128-bit hash of an event id.
pub(super) fn event_hash(id: &str) -> u128 {
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        h.write_u8(salt);
        h.write(id.as_bytes());
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// A record whose event id was seen before.
#[derive(Debug)]
pub(super) struct Repeat;

impl Seen {
    /// A record's event id: its hash the first time (None when it has no
    /// id: such a record is always taken), `Repeat` after.
    pub(super) fn admit(&mut self, id: Option<&str>) -> Result<Option<u128>, Repeat> {
        self.admit_hash(id.map(event_hash))
    }

    /// Frees the ids (nothing is admitted after).
    pub(super) fn forget(&mut self) {
        self.ids = HashSet::new();
    }

    /// [`Seen::admit`] of a hash already made (a partial run's).
    pub(super) fn admit_hash(&mut self, hash: Option<u128>) -> Result<Option<u128>, Repeat> {
        match hash {
            Some(h) if !self.ids.insert(h) => Err(Repeat),
            h => Ok(h),
        }
    }
}

/// Shards of [`SharedSeen`]: two threads rarely want the same one.
const SHARDS: usize = 64;

/// Event ids seen by the threads reading one run's sources: a record is
/// taken by whichever thread admits it first, so what a report counts (in
/// the join and in drift alike) does not depend on who read what.
#[derive(Debug)]
pub(super) struct SharedSeen {
    shards: Vec<Mutex<HashSet<u128>>>,
}

impl Default for SharedSeen {
    fn default() -> SharedSeen {
        SharedSeen { shards: (0..SHARDS).map(|_| Mutex::new(HashSet::new())).collect() }
    }
}

impl SharedSeen {
    /// As [`Seen::admit`], from any thread.
    pub(super) fn admit(&self, id: Option<&str>) -> Result<Option<u128>, Repeat> {
        match id.map(event_hash) {
            Some(h) => {
                // The hash's low bits are as random as the rest.
                let shard = &self.shards[(h as usize) % SHARDS];
                let inserted = shard.lock().unwrap_or_else(PoisonError::into_inner).insert(h);
                if inserted { Ok(Some(h)) } else { Err(Repeat) }
            }
            None => Ok(None),
        }
    }

    /// Everything admitted, as one reader's.
    pub(super) fn into_seen(self) -> Seen {
        let shards: Vec<HashSet<u128>> =
            self.shards.into_iter().map(|s| s.into_inner().unwrap_or_else(PoisonError::into_inner)).collect();
        let mut ids = HashSet::with_capacity(shards.iter().map(HashSet::len).sum());
        for shard in shards {
            ids.extend(shard);
        }
        Seen { ids }
    }
}
