//! The delivery contract between a target's worker and its destination
//! (vector's `Delivered / Errored / Rejected`): a [`Sink`] answers a batch
//! with delivered, [`Failure::Retry`] (nothing is known to be kept: try the
//! whole batch again later), [`Failure::Refused`] (the destination will
//! never take this batch as it is: the worker splits it until it finds the
//! records at fault) or [`Failure::Rejected`] (these records, by index, will
//! never be taken; the others were delivered). What a [`Record`] must offer
//! to travel through a queue and a spool is here too. No I/O.

use std::borrow::Cow;

use crate::message::Message;

/// What a delivery queue carries: an audit [`Message`], or a plain Kafka
/// record of the log4j appender and of entity audit. It must survive the
/// spool as one line.
pub trait Record: Clone + Send + 'static {
    /// The spool line (no newline inside).
    fn line(&self) -> Cow<'_, str>;
    /// A record read back from its spool line.
    ///
    /// # Errors
    /// Why the line is not a record.
    fn from_line(line: &str) -> Result<Self, String>;
    /// Whether onFull DROP may drop it when the spool is full.
    fn droppable(&self) -> bool;
    /// Its event id, when it has one (reports of rejected records name it).
    fn event_id(&self) -> Option<&str> {
        None
    }
}

impl Record for Message {
    fn line(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.text)
    }
    fn from_line(line: &str) -> Result<Self, String> {
        Message::from_line(line).map_err(|e| e.to_string())
    }
    fn droppable(&self) -> bool {
        self.topic.droppable()
    }
    fn event_id(&self) -> Option<&str> {
        Some(self.event_id.as_str())
    }
}

/// Why a batch was not (wholly) delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not now (destination down, timeout, overloaded, a key it does not
    /// know yet): the whole batch is kept and tried again.
    Retry(String),
    /// The destination refused the batch for good (an HTTP 400 or 413, say)
    /// without saying which record is at fault: the worker splits it.
    Refused(String),
    /// These records (indexes into the batch) will never be taken, each
    /// with the reason; every other record of the batch was delivered.
    Rejected(Vec<(usize, String)>),
}

impl Failure {
    /// The reason, for logs.
    pub fn reason(&self) -> Cow<'_, str> {
        match self {
            Failure::Retry(r) | Failure::Refused(r) => Cow::Borrowed(r),
            Failure::Rejected(list) => {
                Cow::Owned(format!("{} records rejected: {}", list.len(), list.first().map_or("", |(_, r)| r.as_str())))
            }
        }
    }
}

/// Where a target's records go: an event server, a Kafka topic.
pub trait Sink<R>: Send {
    /// Delivers every record of `batch`, or says what happened.
    ///
    /// # Errors
    /// The [`Failure`]; consumers deduplicate on eventId, so a retried
    /// batch may deliver some records twice, never zero times.
    fn deliver(&mut self, batch: &[R]) -> Result<(), Failure>;
}
