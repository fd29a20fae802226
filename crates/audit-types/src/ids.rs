//! Identifiers of the audit trail: a message's [`RoutingKey`] and
//! [`EventId`], and [`is_safe_segment`], the rule for any name that becomes
//! one folder name (routing keys, topics and target names on disk and on the
//! event server). Owns the rules only.

use std::fmt;
use std::sync::Arc;

/// A routing key: 1..=128 characters of `[A-Za-z0-9._-]`, not starting with
/// '.', because it becomes a folder name on the event server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutingKey(Arc<str>);

/// A routing key that breaks [`RoutingKey`]'s rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'")]
pub struct InvalidRoutingKey(pub String);

impl RoutingKey {
    /// Checks `key` against the rule.
    ///
    /// # Errors
    /// [`InvalidRoutingKey`] naming the key.
    pub fn new(key: &str) -> Result<RoutingKey, InvalidRoutingKey> {
        if is_safe_segment(key) { Ok(RoutingKey(Arc::from(key))) } else { Err(InvalidRoutingKey(key.to_owned())) }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for RoutingKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for a name that is safe as one folder name: 1..=128 characters of
/// `[A-Za-z0-9._-]`, not starting with '.' (so never `.` or `..`).
pub fn is_safe_segment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A message's unique id (consumers deduplicate on it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(Arc<str>);

impl EventId {
    /// A new random id (32 hex digits).
    pub fn generate() -> EventId {
        EventId(Arc::from(uuid::Uuid::new_v4().simple().to_string()))
    }

    /// An id read back from a message.
    pub fn from_text(id: &str) -> EventId {
        EventId(Arc::from(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_must_be_safe_folder_names() {
        for good in ["churn-prod", "a", "v1.2_x"] {
            assert!(RoutingKey::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "sp ace", &"x".repeat(129)] {
            assert!(RoutingKey::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn event_ids_are_unique_hex() {
        let (a, b) = (EventId::generate(), EventId::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
