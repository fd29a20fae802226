//! Which messages a target (or an event-server destination) takes
//! (audit.md "Targets", docs/audit.md): a topic filter (ALL, or a SELECTED
//! set) and a routing-key filter (ALL, or a SELECTED set; a message without
//! a key matches only ALL). Generic over what names a topic and a key, so
//! the node filters its typed [`Topic`]s and the event server the plain
//! names it receives with the same rule. Pure; knows nothing of where
//! messages go.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use crate::{RoutingKey, Topic};

/// A topic and routing-key filter; `None` means ALL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<T = Topic, K = RoutingKey> {
    /// SELECTED topics, or every topic.
    pub topics: Option<BTreeSet<T>>,
    /// SELECTED routing keys, or every message (with or without a key).
    pub routing_keys: Option<BTreeSet<K>>,
}

impl<T, K> Default for Filter<T, K> {
    fn default() -> Self {
        Filter { topics: None, routing_keys: None }
    }
}

impl<T: Ord, K: Ord> Filter<T, K> {
    /// Every message.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Whether some message of `topic` may be taken (before its key is
    /// known: lets callers skip building a message nobody takes).
    pub fn takes_topic<Q: Ord + ?Sized>(&self, topic: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.topics.as_ref().is_none_or(|t| t.contains(topic))
    }

    /// Whether a message of `topic` with `key` is taken.
    pub fn takes<Q: Ord + ?Sized, R: Ord + ?Sized>(&self, topic: &Q, key: Option<&R>) -> bool
    where
        T: Borrow<Q>,
        K: Borrow<R>,
    {
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
        let f: Filter = Filter {
            topics: Some([Topic::ApinodeQuery, Topic::AuthFail].into_iter().collect()),
            routing_keys: Some([rk("a")].into_iter().collect()),
        };
        assert!(f.takes(&Topic::ApinodeQuery, Some(&rk("a"))));
        assert!(f.takes(&Topic::ApinodeQuery, Some("a")), "keys by name");
        assert!(!f.takes(&Topic::ApinodeQuery, Some(&rk("b"))), "other key");
        assert!(!f.takes::<_, str>(&Topic::AuthFail, None), "no key matches only ALL");
        assert!(!f.takes(&Topic::Generic, Some(&rk("a"))), "other topic");
        assert!(Filter::<Topic, RoutingKey>::all().takes::<_, str>(&Topic::Generic, None));
        assert!(f.takes_topic(&Topic::AuthFail) && !f.takes_topic(&Topic::ApiCalls));
    }

    #[test]
    fn plain_names_filter_the_same_way() {
        let f: Filter<String, String> =
            Filter { topics: Some(["apinode-query".to_owned()].into()), routing_keys: None };
        assert!(f.takes::<str, str>("apinode-query", None));
        assert!(!f.takes::<str, str>("authfail", Some("k")));
    }
}
