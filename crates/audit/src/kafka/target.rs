//! The KAFKA audit target (audit.md "Targets"): its topic template
//! (`dku-audit-${topic}`, `${routingKey}`; a message without a key uses
//! `_none`), the record key (the routing key, else the message's
//! `serviceId`), the value (the message's JSON) and the headers `topic`,
//! `routingKey` and `eventId`. [`MessageSink`] produces batches of audit
//! messages. Validation of templates is pure and names what is wrong.

use serde::Deserialize;

use super::producer::{Outgoing, Producer};
use crate::dispatch::delivery::Sink;
use crate::message::Message;

/// A message without a routing key renders `${routingKey}` as this.
pub const NO_ROUTING_KEY: &str = "_none";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Topic,
    RoutingKey,
}

/// A Kafka topic name with `${topic}` and `${routingKey}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

impl TopicTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// An unknown placeholder, an unclosed `${`, or characters Kafka does not
    /// allow in topic names (`[A-Za-z0-9._-]`).
    pub fn parse(template: &str) -> Result<TopicTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(i) = rest.find("${") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_owned()));
            }
            let after = &rest[i + 2..];
            let end = after.find('}').ok_or_else(|| format!("{template:?}: unclosed ${{"))?;
            parts.push(match &after[..end] {
                "topic" => Part::Topic,
                "routingKey" => Part::RoutingKey,
                other => {
                    return Err(format!(
                        "{template:?}: unknown placeholder ${{{other}}} (known: ${{topic}}, ${{routingKey}})"
                    ));
                }
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        for p in &parts {
            if let Part::Text(t) = p
                && let Some(c) = t.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(format!("{template:?}: {c:?} is not allowed in a Kafka topic name ([A-Za-z0-9._-])"));
            }
        }
        if parts.is_empty() {
            return Err("the topic is empty".into());
        }
        Ok(TopicTemplate { parts })
    }

    /// The topic of a message.
    pub fn render(&self, topic: &str, routing_key: Option<&str>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Topic => out.push_str(topic),
                Part::RoutingKey => out.push_str(routing_key.unwrap_or(NO_ROUTING_KEY)),
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceOf<'a> {
    #[serde(default, borrow)]
    service_id: Option<&'a str>,
}

/// A message's Kafka topic, key and headers.
type Prepared<'a> = (String, Option<String>, [(&'a str, &'a str); 3]);

/// Produces audit messages for the KAFKA target.
#[derive(Debug)]
pub struct MessageSink {
    producer: Producer,
    template: TopicTemplate,
}

impl MessageSink {
    /// A sink producing to `template` on `producer`.
    pub fn new(producer: Producer, template: TopicTemplate) -> MessageSink {
        MessageSink { producer, template }
    }
}

/// The `serviceId` of a JSON message, if it has one.
pub fn service_id(text: &str) -> Option<String> {
    serde_json::from_str::<ServiceOf<'_>>(text).ok().and_then(|s| s.service_id.map(str::to_owned))
}

/// The record key of a message: its routing key, else its `serviceId`.
pub fn record_key(message: &Message) -> Option<String> {
    match &message.routing_key {
        Some(k) => Some(k.as_str().to_owned()),
        None => service_id(&message.text),
    }
}

impl Sink<Message> for MessageSink {
    fn deliver(&mut self, batch: &[Message]) -> Result<(), String> {
        let prepared: Vec<Prepared<'_>> = batch
            .iter()
            .map(|m| {
                let rk = m.routing_key.as_ref().map(crate::RoutingKey::as_str);
                let topic = self.template.render(m.topic.as_str(), rk);
                let headers =
                    [("topic", m.topic.as_str()), ("routingKey", rk.unwrap_or("")), ("eventId", m.event_id.as_str())];
                (topic, record_key(m), headers)
            })
            .collect();
        let out: Vec<Outgoing<'_>> = batch
            .iter()
            .zip(&prepared)
            .map(|(m, (topic, key, headers))| Outgoing { topic, key: key.as_deref(), value: &m.text, headers })
            .collect();
        self.producer.send_batch(&out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{EventId, RoutingKey};

    #[test]
    fn templates_render_topic_and_key() {
        let t = TopicTemplate::parse("dku-audit-${topic}.${routingKey}").expect("valid");
        assert_eq!(t.render("apinode-query", Some("churn")), "dku-audit-apinode-query.churn");
        assert_eq!(t.render("authfail", None), "dku-audit-authfail._none");
        assert_eq!(TopicTemplate::parse("plain").expect("valid").render("x", None), "plain");
        for bad in ["${nope}", "a b", "x-${topic", ""] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_key_is_the_routing_key_else_the_service() {
        let mut m = Message {
            topic: crate::Topic::ApinodeQuery,
            level: log::Level::Info,
            routing_key: Some(RoutingKey::new("rk").expect("key")),
            event_id: EventId::generate(),
            text: Arc::from(r#"{"serviceId":"churn"}"#),
        };
        assert_eq!(record_key(&m).as_deref(), Some("rk"));
        m.routing_key = None;
        assert_eq!(record_key(&m).as_deref(), Some("churn"));
        m.text = Arc::from("{}");
        assert_eq!(record_key(&m), None);
    }
}
