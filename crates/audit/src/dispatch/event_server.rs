//! The EVENT_SERVER target's [`Sink`]: a batch is one `POST <url>/events`
//! with a JSON array of the messages' bodies, `Authorization: Bearer <key>`
//! when the target has a key. Only a 2xx counts as delivered (the event
//! server answers after its fsync); anything else, a refused connection or a
//! timeout keeps the batch for a retry. With `routingKeyMode: STATIC` the
//! body's `routingKey` is rewritten. Owns the HTTP exchange only.

use std::time::Duration;

use serde_json::Value;

use super::config::RoutingKeyMode;
use super::delivery::Sink;
use crate::message::Message;

/// How long one POST may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts batches to an event server.
pub struct EventServerSink {
    endpoint: String,
    auth_key: Option<String>,
    mode: RoutingKeyMode,
    client: reqwest::blocking::Client,
}

impl std::fmt::Debug for EventServerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("EventServerSink").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl EventServerSink {
    /// A sink for the event server at `url`. Builds a blocking HTTP client:
    /// call it on the worker thread, not inside an async runtime.
    pub fn new(url: &str, auth_key: Option<String>, mode: RoutingKeyMode) -> EventServerSink {
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("apinode/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                log::error!("Cannot configure the HTTP client of the event server target ({e}); using defaults");
                reqwest::blocking::Client::new()
            });
        EventServerSink { endpoint: format!("{url}/events"), auth_key, mode, client }
    }

    fn body(&self, batch: &[Message]) -> String {
        let mut body = String::with_capacity(batch.iter().map(|m| m.text.len() + 1).sum::<usize>() + 2);
        body.push('[');
        for (i, m) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            match &self.mode {
                RoutingKeyMode::FromMessage => body.push_str(&m.text),
                RoutingKeyMode::Static(key) => body.push_str(&with_routing_key(&m.text, key.as_str())),
            }
        }
        body.push(']');
        body
    }
}

/// The body with its `routingKey` set to `key`.
fn with_routing_key(text: &str, key: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut m)) => {
            m.insert("routingKey".into(), Value::String(key.to_owned()));
            Value::Object(m).to_string()
        }
        _ => text.to_owned(),
    }
}

impl Sink<Message> for EventServerSink {
    fn deliver(&mut self, batch: &[Message]) -> Result<(), String> {
        let mut request = self.client.post(&self.endpoint).header("content-type", "application/json");
        if let Some(key) = &self.auth_key {
            request = request.bearer_auth(key);
        }
        let response = request.body(self.body(batch)).send().map_err(|e| format!("POST {}: {e}", self.endpoint))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        Err(format!("POST {} answered {status}: {text}", self.endpoint))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Topic;
    use crate::message::{EventId, RoutingKey};

    fn msg(text: &str) -> Message {
        Message {
            topic: Topic::Generic,
            level: log::Level::Info,
            routing_key: None,
            event_id: EventId::generate(),
            text: Arc::from(text),
        }
    }

    #[test]
    fn a_batch_is_a_json_array_and_static_mode_rewrites_the_key() {
        let sink = EventServerSink::new("http://127.0.0.1:1", None, RoutingKeyMode::FromMessage);
        assert_eq!(sink.body(&[msg(r#"{"a":1}"#), msg(r#"{"b":2}"#)]), r#"[{"a":1},{"b":2}]"#);
        let key = RoutingKey::new("fixed").expect("key");
        let sink = EventServerSink::new("http://127.0.0.1:1", Some("k".into()), RoutingKeyMode::Static(key));
        let body: Value = serde_json::from_str(&sink.body(&[msg(r#"{"routingKey":"x","a":1}"#)])).expect("json");
        assert_eq!(body[0]["routingKey"], "fixed");
        assert!(!format!("{sink:?}").contains("auth_key"), "the key is never printed");
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_delivery() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut sink = EventServerSink::new(&format!("http://127.0.0.1:{port}"), None, RoutingKeyMode::FromMessage);
        let e = sink.deliver(&[msg("{}")]).unwrap_err();
        assert!(e.contains("/events"), "{e}");
    }
}
