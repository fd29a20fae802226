//! What a network target does with what it cannot deliver at once: the
//! size of its in-memory queue, the cap of its disk spool, and what happens
//! when the spool is at its cap (docs/audit.md "Delivery"). Plain values,
//! shared by the dispatcher's targets, the Kafka log4j appender and entity
//! audit (vector keeps its `WhenFull` in its lowest buffer crate for the
//! same reason). No I/O.

/// Spool size cap when a target sets none (1 GiB).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;
/// In-memory queue of a network target when it sets none.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// What a target does when its spool is at its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// The sender waits until there is room (nothing is lost).
    Block,
    /// `apinode-query` and `apicalls` messages are dropped and counted; any
    /// other topic still blocks.
    Drop,
}

impl OnFull {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::Block => "BLOCK",
            OnFull::Drop => "DROP",
        }
    }
}

/// Delivery settings of a network target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// What happens when the spool is full.
    pub on_full: OnFull,
    /// Spool size cap, bytes.
    pub spool_max_bytes: u64,
    /// In-memory queue length.
    pub queue_capacity: usize,
}

impl Default for DeliverySettings {
    /// BLOCK, a 1 GiB spool, a queue of 4,096.
    fn default() -> Self {
        DeliverySettings {
            on_full: OnFull::Block,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}
