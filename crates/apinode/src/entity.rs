//! Entity audit: lifecycle changes of the node's entities as CDAP
//! AuditMessages `{"version": 1, "time", "entityId", "user", "type",
//! "payload"}` on `dku.apinode.audit.entity`. Services are APPLICATIONs,
//! generations ARTIFACTs, endpoints PROGRAMs, and a service's recent queries
//! a DATASET. METADATA_CHANGE payloads carry `previous`, `additions` and
//! `deletions` in CDAP's USER / SYSTEM scopes (docs/audit.md "Entity
//! audit"). This module shapes messages; callers decide when an entity
//! changed, and the audit runtime publishes them (the logger, and Kafka's
//! `audit.topic` keyed by service id when configured).

use std::collections::BTreeSet;

use audit::runtime::EntityMessage;
use serde_json::{Map, Value, json};

/// The entity a message is about.
#[derive(Debug, Clone, Copy)]
pub enum Entity<'a> {
    /// A service.
    Service(&'a str),
    /// A generation of a service.
    Generation(&'a str, &'a str),
    /// An endpoint of a service.
    Endpoint(&'a str, &'a str),
    /// The recent queries of a service.
    Queries(&'a str),
}

impl Entity<'_> {
    /// The service the entity belongs to (the Kafka key).
    pub fn service(&self) -> &str {
        match *self {
            Entity::Service(s) | Entity::Generation(s, _) | Entity::Endpoint(s, _) | Entity::Queries(s) => s,
        }
    }

    /// CDAP's `entityId`.
    pub fn id(&self) -> Value {
        match *self {
            Entity::Service(s) => json!({"namespace": "default", "application": s, "entity": "APPLICATION"}),
            Entity::Generation(s, g) => {
                json!({"namespace": "default", "artifact": s, "version": g, "entity": "ARTIFACT"})
            }
            Entity::Endpoint(s, e) => {
                json!({"namespace": "default", "application": s, "program": e, "entity": "PROGRAM"})
            }
            Entity::Queries(s) => {
                json!({"namespace": "default", "dataset": format!("{s}.queries"), "entity": "DATASET"})
            }
        }
    }
}

/// Metadata of one scope: properties and tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Key-value properties.
    pub properties: Map<String, Value>,
    /// Tags.
    pub tags: BTreeSet<String>,
}

impl Scope {
    fn to_json(&self) -> Value {
        json!({"properties": self.properties, "tags": self.tags})
    }
}

/// An entity's metadata: what admins set (USER) and what the node derives (SYSTEM).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Set through `/metadata`.
    pub user: Scope,
    /// Derived by the node (enabled, mapping, routing key...).
    pub system: Scope,
}

/// The CDAP METADATA_CHANGE payload from `before` to `after`: a changed
/// property appears in `deletions` with its old value and in `additions`
/// with its new one.
pub fn metadata_change(before: &Metadata, after: &Metadata) -> Value {
    let diff = |old: &Scope, new: &Scope| {
        let added: Map<String, Value> = new
            .properties
            .iter()
            .filter(|(k, v)| old.properties.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let removed: Map<String, Value> = old
            .properties
            .iter()
            .filter(|(k, v)| new.properties.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let tags_added: BTreeSet<&String> = new.tags.difference(&old.tags).collect();
        let tags_removed: BTreeSet<&String> = old.tags.difference(&new.tags).collect();
        (json!({"properties": added, "tags": tags_added}), json!({"properties": removed, "tags": tags_removed}))
    };
    let (user_add, user_del) = diff(&before.user, &after.user);
    let (sys_add, sys_del) = diff(&before.system, &after.system);
    json!({
        "previous": {"USER": before.user.to_json(), "SYSTEM": before.system.to_json()},
        "additions": {"USER": user_add, "SYSTEM": sys_add},
        "deletions": {"USER": user_del, "SYSTEM": sys_del},
    })
}

/// One AuditMessage, ready for the audit runtime (which writes it on
/// `dku.apinode.audit.entity` and publishes it to Kafka when configured).
pub fn message(entity: Entity<'_>, kind: &str, user: &str, payload: Value) -> EntityMessage {
    let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let text =
        json!({"version": 1, "time": time, "entityId": entity.id(), "user": user, "type": kind, "payload": payload})
            .to_string();
    EntityMessage { service: entity.service().to_owned(), kind: kind.to_owned(), text: text.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_changes_list_previous_additions_and_deletions() {
        let mut before = Metadata::default();
        before.user.properties.insert("owner".into(), json!("ana"));
        before.user.properties.insert("team".into(), json!("risk"));
        before.user.tags.insert("beta".into());
        before.system.properties.insert("enabled".into(), json!("true"));
        let mut after = before.clone();
        after.user.properties.remove("team");
        after.user.properties.insert("owner".into(), json!("bo"));
        after.user.tags = ["prod".to_owned()].into();
        let p = metadata_change(&before, &after);
        assert_eq!(p["previous"]["USER"]["properties"], json!({"owner": "ana", "team": "risk"}));
        assert_eq!(p["additions"]["USER"], json!({"properties": {"owner": "bo"}, "tags": ["prod"]}));
        assert_eq!(p["deletions"]["USER"], json!({"properties": {"owner": "ana", "team": "risk"}, "tags": ["beta"]}));
        assert_eq!(p["additions"]["SYSTEM"], json!({"properties": {}, "tags": []}));
    }

    #[test]
    fn entity_ids_follow_cdap() {
        assert_eq!(Entity::Generation("s", "v1").id()["entity"], "ARTIFACT");
        assert_eq!(Entity::Queries("s").id()["dataset"], "s.queries");
        assert_eq!(Entity::Endpoint("s", "e").id()["program"], "e");
    }
}
