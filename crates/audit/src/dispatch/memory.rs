//! The in-memory target: every message it takes is kept in a list that a
//! test can read, so that an in-process test asserts on the audit records a
//! request produced (`AuditRuntime::in_memory`). It also keeps the entity
//! messages (CDAP AuditMessages) the runtime publishes. Not configurable in
//! `server.json`: it exists for tests and embedding only.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::Topic;
use crate::message::Message;

/// The records kept by an in-memory target (cheap to clone; clones share).
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    messages: Arc<Mutex<Vec<Message>>>,
    entities: Arc<Mutex<Vec<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryTarget {
    /// Keeps a message.
    pub fn push(&self, msg: Message) {
        lock(&self.messages).push(msg);
    }

    /// Keeps an entity message.
    pub fn push_entity(&self, text: &str) {
        lock(&self.entities).push(text.to_owned());
    }

    /// Every message so far, in the order they were sent.
    pub fn messages(&self) -> Vec<Message> {
        lock(&self.messages).clone()
    }

    /// The bodies of the messages of `topic`, parsed.
    pub fn bodies(&self, topic: Topic) -> Vec<serde_json::Value> {
        lock(&self.messages)
            .iter()
            .filter(|m| m.topic == topic)
            .map(|m| serde_json::from_str(&m.text).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    /// Every entity message so far, parsed.
    pub fn entities(&self) -> Vec<serde_json::Value> {
        lock(&self.entities).iter().map(|t| serde_json::from_str(t).unwrap_or(serde_json::Value::Null)).collect()
    }

    /// Forgets everything kept so far.
    pub fn clear(&self) {
        lock(&self.messages).clear();
        lock(&self.entities).clear();
    }
}
