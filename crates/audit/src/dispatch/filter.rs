//! Which messages a target takes (audit.md "Targets"): a topic filter (all,
//! or a selected set) and a routing-key filter (all, or a selected set; a
//! message without a key matches only "all"). Pure; knows nothing of where
//! messages go.

use std::collections::BTreeSet;

use crate::Topic;
use crate::message::RoutingKey;

/// A target's topic and routing-key filters; `None` means ALL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// SELECTED topics, or every topic.
    pub topics: Option<BTreeSet<Topic>>,
    /// SELECTED routing keys, or every message (with or without a key).
    pub routing_keys: Option<BTreeSet<RoutingKey>>,
}

impl Filter {
    /// Every message.
    pub fn all() -> Filter {
        Filter { topics: None, routing_keys: None }
    }

    /// Whether the target may take some message of `topic` (before its key
    /// is known: lets callers skip building a message nobody takes).
    pub fn takes_topic(&self, topic: Topic) -> bool {
        self.topics.as_ref().is_none_or(|t| t.contains(&topic))
    }

    /// Whether the target takes a message of `topic` with `key`.
    pub fn takes(&self, topic: Topic, key: Option<&RoutingKey>) -> bool {
        self.takes_topic(topic)
            && match (&self.routing_keys, key) {
                (None, _) => true,
                (Some(keys), Some(k)) => keys.contains(k),
                (Some(_), None) => false,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_must_accept() {
        let rk = |s: &str| RoutingKey::new(s).expect("key");
        let f = Filter {
            topics: Some([Topic::ApinodeQuery, Topic::AuthFail].into_iter().collect()),
            routing_keys: Some([rk("a")].into_iter().collect()),
        };
        assert!(f.takes(Topic::ApinodeQuery, Some(&rk("a"))));
        assert!(!f.takes(Topic::ApinodeQuery, Some(&rk("b"))), "other key");
        assert!(!f.takes(Topic::AuthFail, None), "no key matches only ALL");
        assert!(!f.takes(Topic::Generic, Some(&rk("a"))), "other topic");
        assert!(Filter::all().takes(Topic::Generic, None));
        assert!(f.takes_topic(Topic::AuthFail) && !f.takes_topic(Topic::ApiCalls));
    }
}
