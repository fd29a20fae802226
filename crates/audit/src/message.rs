//! One audit message as the node moves it: its [`Topic`], its optional
//! [`RoutingKey`], its [`EventId`] and its body, a JSON object already
//! serialised on one line (which also carries `topic`, `routingKey` and
//! `eventId`, so that a spooled line is the whole message). The identifiers
//! themselves live in `audit-types`, shared with the event server. This
//! module builds the node's own event bodies ([`Message::event`]) and reads
//! spool lines back; it does not route anything.

use std::sync::Arc;

use log::Level;
use serde::Deserialize;

pub use audit_types::{EventId, InvalidRoutingKey, RoutingKey, is_safe_segment};

use crate::Topic;

/// One audit message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: Topic,
    /// The level of its log4j record (LOG4J target).
    pub level: Level,
    /// Its routing key, if any.
    pub routing_key: Option<RoutingKey>,
    /// Its id.
    pub event_id: EventId,
    /// The body: one JSON object on one line.
    pub text: Arc<str>,
}

/// The time of a message: RFC 3339, UTC, milliseconds.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Message {
    /// A message of the node itself (start, stop, resource usage, target
    /// outages, admin changes): `topic`, `msgType`, `eventId`, `timestamp`,
    /// `nodeId`, `authUser` when known, then the fields of `details`.
    pub fn event(
        topic: Topic,
        level: Level,
        node_id: &str,
        msg_type: &str,
        auth_user: Option<&str>,
        details: serde_json::Value,
    ) -> Message {
        let event_id = EventId::generate();
        let mut body = serde_json::Map::new();
        body.insert("topic".into(), topic.as_str().into());
        body.insert("msgType".into(), msg_type.into());
        body.insert("eventId".into(), event_id.as_str().into());
        body.insert("timestamp".into(), timestamp().into());
        body.insert("nodeId".into(), node_id.into());
        if let Some(user) = auth_user {
            body.insert("authUser".into(), user.into());
        }
        if let serde_json::Value::Object(d) = details {
            body.extend(d);
        }
        let text = serde_json::Value::Object(body).to_string();
        Message { topic, level, routing_key: None, event_id, text: text.into() }
    }
}

/// A spooled line that is not a message this node wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit message: {0}")]
pub struct BadLine(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    #[serde(borrow)]
    topic: &'a str,
    #[serde(default, borrow)]
    routing_key: Option<&'a str>,
    #[serde(borrow)]
    event_id: &'a str,
}

impl Message {
    /// Reads a message back from its body (a spool line).
    ///
    /// # Errors
    /// [`BadLine`] when the line is not JSON or lacks a known `topic`, a
    /// valid `routingKey` or an `eventId`.
    pub fn from_line(line: &str) -> Result<Message, BadLine> {
        let head: Head<'_> = serde_json::from_str(line).map_err(|e| BadLine(e.to_string()))?;
        let topic = head.topic.parse().map_err(|e: audit_types::UnknownTopic| BadLine(e.to_string()))?;
        let routing_key = head.routing_key.map(RoutingKey::new).transpose().map_err(|e| BadLine(e.to_string()))?;
        Ok(Message {
            topic,
            level: Level::Info,
            routing_key,
            event_id: EventId::from_text(head.event_id),
            text: Arc::from(line),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_as_its_message() {
        let line = r#"{"topic":"apinode-query","routingKey":"rk","eventId":"e1","x":1}"#;
        let m = Message::from_line(line).expect("valid");
        assert_eq!((m.topic, m.routing_key.as_ref().map(RoutingKey::as_str)), (Topic::ApinodeQuery, Some("rk")));
        assert_eq!(m.event_id.as_str(), "e1");
        assert_eq!(&*m.text, line);
        assert!(Message::from_line(r#"{"topic":"nope","eventId":"e"}"#).is_err());
        assert!(Message::from_line(r#"{"topic":"generic"}"#).is_err());
        assert!(Message::from_line("not json").is_err());
    }

    #[test]
    fn node_events_carry_the_envelope_then_their_details() {
        let m =
            Message::event(Topic::Generic, Level::Info, "n1", "node-start", Some("ana"), serde_json::json!({"pid": 7}));
        let v: serde_json::Value = serde_json::from_str(&m.text).expect("json");
        assert_eq!(
            (v["topic"].as_str(), v["nodeId"].as_str(), v["authUser"].as_str()),
            (Some("generic"), Some("n1"), Some("ana"))
        );
        assert_eq!(v["eventId"].as_str(), Some(m.event_id.as_str()));
        assert_eq!(v["pid"], 7);
    }
}
