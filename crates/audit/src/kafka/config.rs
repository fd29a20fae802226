//! Kafka settings, pure and checked before anything connects: the
//! `kafkaConnections` section of `config/server.json` ([`parse_connections`]),
//! the audit-trail defaults every producer starts from ([`AUDIT_DEFAULTS`]),
//! the largest record the node can produce ([`largest_record_bytes`]),
//! secrets in properties ([`Properties`] never prints them) and the KAFKA
//! target's [`TopicTemplate`]. Checking a connection runs librdkafka's own
//! property parsing without creating a client. No thread, no socket.

use std::collections::BTreeMap;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use serde_json::Value;

/// Settings applied before the connection's properties (which win).
pub const AUDIT_DEFAULTS: [(&str, &str); 7] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.messages", "20000"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "10000"),
    // The largest record of a node with the default 1 MiB body limit
    // ([`largest_record_bytes`]); connections of the node's own
    // `kafkaConnections` get the figure of its configured limit.
    ("message.max.bytes", "2162688"),
];

/// The largest audit record a node whose request bodies are at most
/// `max_body_bytes` can produce: a query record copies the features and
/// context it was sent (at most the body), adds the result (whose
/// explanations are bounded by the features) and an envelope. Twice the
/// body and 64 KiB covers it; librdkafka's `message.max.bytes` is set to
/// this unless a connection sets its own, so that the producer never refuses
/// a record the node made. A broker with a smaller limit refuses the record,
/// and the delivery puts it in the target's dead letters.
pub fn largest_record_bytes(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(2).saturating_add(64 << 10)
}

/// Properties whose values are secrets: never logged or echoed.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password") || n.contains("secret") || n.contains("jaas") || n.ends_with(".key.pem")
}

/// librdkafka properties whose `Debug` hides secret values.
#[derive(Clone, PartialEq, Eq)]
pub struct Properties(pub Vec<(String, String)>);

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, if is_secret(k) { "***" } else { v.as_str() }))).finish()
    }
}

/// The client configuration of `properties` over the audit defaults.
pub fn client_config(properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in AUDIT_DEFAULTS {
        c.set(k, v);
    }
    for (k, v) in properties {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Checks `bootstrap.servers`: comma-separated `host:port`, optionally with
/// a `PLAINTEXT://`-style prefix.
///
/// # Errors
/// What is wrong with which entry.
pub fn check_brokers(list: &str) -> Result<(), String> {
    if list.trim().is_empty() {
        return Err("the broker list is empty (expected host:port[,host:port...])".into());
    }
    for entry in list.split(',').map(str::trim) {
        let address = entry.split_once("://").map_or(entry, |(_, a)| a);
        let ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("{entry:?} is not host:port (expected host:port[,host:port...])"));
        }
    }
    Ok(())
}

/// Checks a connection's properties without creating a client (no thread,
/// no connection): the broker list, and every name and value as librdkafka
/// reads them.
///
/// # Errors
/// A bad broker list, an unknown property, a bad value.
pub fn check(properties: &[(String, String)]) -> Result<(), String> {
    match properties.iter().find(|(k, _)| k == "bootstrap.servers" || k == "metadata.broker.list") {
        Some((_, v)) => check_brokers(v)?,
        None => return Err("bootstrap.servers is required".into()),
    }
    client_config(properties).create_native_config().map(drop).map_err(|e| e.to_string())
}

/// Named connections: librdkafka properties each (`bootstrap.servers`, ...).
pub type Connections = BTreeMap<String, Vec<(String, String)>>;

/// Reads `kafkaConnections`: `{"main": {"bootstrap.servers": "host:9092", ...}}`.
/// Each connection's properties are checked as librdkafka reads them
/// (without creating a client), so a bad broker list or an unknown property
/// stops the node at start.
///
/// # Errors
/// Every problem, as (path, message).
pub fn parse_connections(value: Option<&Value>) -> Result<Connections, Vec<(String, String)>> {
    let mut out = Connections::new();
    let mut problems = Vec::new();
    let Some(value) = value else { return Ok(out) };
    let Some(map) = value.as_object() else {
        return Err(vec![("kafkaConnections".into(), "must be an object of named connections".into())]);
    };
    for (name, props) in map {
        let path = format!("kafkaConnections.{name}");
        let Some(props) = props.as_object() else {
            problems.push((path, "must be an object of librdkafka properties".into()));
            continue;
        };
        let mut list = Vec::new();
        for (k, v) in props {
            match v {
                Value::String(s) => list.push((k.clone(), s.clone())),
                Value::Number(n) => list.push((k.clone(), n.to_string())),
                Value::Bool(b) => list.push((k.clone(), b.to_string())),
                _ => problems.push((format!("{path}.{k}"), "must be a string, number or boolean".into())),
            }
        }
        match check(&list) {
            Ok(()) => {
                out.insert(name.clone(), list);
            }
            Err(e) => problems.push((path, e)),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn bad_broker_lists_and_unknown_properties_are_refused() {
        assert!(check(&props(&[("bootstrap.servers", "127.0.0.1:9092")])).is_ok());
        assert!(check(&props(&[("bootstrap.servers", "PLAINTEXT://a:1,b:2")])).is_ok());
        for bad in ["", "nohost", "host:port", "host:0", ":9092"] {
            let e = check(&props(&[("bootstrap.servers", bad)])).unwrap_err();
            assert!(e.contains("host:port") || e.contains("empty"), "{bad}: {e}");
        }
        let e = check(&props(&[("bootstrap.servers", "a:1"), ("no.such.property", "1")])).unwrap_err();
        assert!(e.contains("no.such.property"), "{e}");
        assert!(check(&[]).unwrap_err().contains("bootstrap.servers"));
    }

    #[test]
    fn secrets_are_recognised_and_never_printed() {
        assert!(is_secret("sasl.password") && is_secret("SaslJaasConfig") && !is_secret("sasl.username"));
        let p = Properties(props(&[("sasl.username", "u"), ("sasl.password", "hunter2")]));
        let shown = format!("{p:?}");
        assert!(shown.contains("\"u\"") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_default_record_limit_is_that_of_the_default_body_limit() {
        let default = AUDIT_DEFAULTS.iter().find(|(k, _)| *k == "message.max.bytes").expect("set").1;
        assert_eq!(default.parse::<usize>().ok(), Some(largest_record_bytes(1 << 20)));
        assert!(check(&props(&[("bootstrap.servers", "a:1"), ("message.max.bytes", "5000000")])).is_ok());
    }

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
}
