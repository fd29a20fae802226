//! The KAFKA audit target (docs/audit.md "Targets"): each message goes to
//! the topic its template renders (`kafka::config::TopicTemplate`), with
//! the record key (the routing key, else the message's `serviceId`), the value (the message's JSON) and the headers `topic`,
//! `routingKey` and `eventId`. [`MessageSink`] produces batches of audit
//! messages.

use serde::Deserialize;

use super::config::TopicTemplate;
use super::producer::{Outgoing, Producer};
use crate::delivery::{Failure, Sink};
use crate::message::Message;

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
    fn deliver(&mut self, batch: &[Message]) -> Result<(), Failure> {
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
