//! The EVENT_SERVER target's [`Sink`]: a batch is one `POST <url>/events`
//! with a JSON array of the messages' bodies, `Authorization: Bearer <key>`
//! when the target has a key. Only a 2xx counts as delivered (the event
//! server answers after its fsync). A 400, 409, 413 or 422 says the batch
//! itself is at fault ([`Failure::Refused`]: the worker splits it until the
//! record at fault is alone and keeps that one aside). Anything else (a
//! refused connection, a timeout, 5xx, 429, and 401/403/404: a key or URL
//! the operator can fix, after which everything spooled is delivered) is
//! kept for a retry. With `routingKeyMode: STATIC` the body's `routingKey`
//! is rewritten. `https://` URLs use rustls, trusting `caFile` (else the
//! system's roots) and presenting `clientCertFile` when set. Owns the HTTP
//! exchange only.

use std::time::Duration;

use serde_json::Value;

use super::config::{ClientTls, RoutingKeyMode};
use crate::delivery::{Failure, Sink};
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

/// The certificates of an `https://` target, read once at start (so that a
/// missing or bad file stops the node with its name, instead of a target
/// that retries forever).
#[derive(Clone, Default)]
pub struct TlsMaterial {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

impl TlsMaterial {
    /// Reads the files of `tls`.
    ///
    /// # Errors
    /// A message naming the file that cannot be used.
    pub fn load(tls: &ClientTls) -> Result<TlsMaterial, String> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let roots = match &tls.ca_file {
            Some(ca) => reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| format!("{}: no PEM CA certificate ({e})", ca.display()))?,
            None => Vec::new(),
        };
        let identity = match &tls.identity {
            Some((cert, key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                    format!("{} and {}: not a PEM certificate and key ({e})", cert.display(), key.display())
                })?)
            }
            None => None,
        };
        Ok(TlsMaterial { roots, identity })
    }
}

/// An error with its causes (reqwest's own text hides why a TLS handshake
/// failed: an unknown issuer, a certificate the server did not take).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl EventServerSink {
    /// A sink for the event server at `url`, trusting and presenting the
    /// certificates of `tls`. Builds a blocking HTTP client: call it on the
    /// worker thread, not inside an async runtime.
    pub fn new(url: &str, auth_key: Option<String>, mode: RoutingKeyMode, tls: &TlsMaterial) -> EventServerSink {
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("apinode/", env!("CARGO_PKG_VERSION")));
        if !tls.roots.is_empty() {
            builder = builder.tls_built_in_root_certs(false);
            for root in &tls.roots {
                builder = builder.add_root_certificate(root.clone());
            }
        }
        if let Some(identity) = &tls.identity {
            builder = builder.identity(identity.clone());
        }
        let client = builder.build().unwrap_or_else(|e| {
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

/// Whether an answer of `status` blames the batch itself (no retry of the
/// same batch can succeed).
fn blames_the_batch(status: u16) -> bool {
    matches!(status, 400 | 409 | 413 | 422)
}

impl Sink<Message> for EventServerSink {
    fn deliver(&mut self, batch: &[Message]) -> Result<(), Failure> {
        let mut request = self.client.post(&self.endpoint).header("content-type", "application/json");
        if let Some(key) = &self.auth_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .body(self.body(batch))
            .send()
            .map_err(|e| Failure::Retry(format!("POST {}: {}", self.endpoint, chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        let reason = format!("POST {} answered {status}: {text}", self.endpoint);
        if blames_the_batch(status.as_u16()) { Err(Failure::Refused(reason)) } else { Err(Failure::Retry(reason)) }
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
        let sink =
            EventServerSink::new("http://127.0.0.1:1", None, RoutingKeyMode::FromMessage, &TlsMaterial::default());
        assert_eq!(sink.body(&[msg(r#"{"a":1}"#), msg(r#"{"b":2}"#)]), r#"[{"a":1},{"b":2}]"#);
        let key = RoutingKey::new("fixed").expect("key");
        let sink = EventServerSink::new(
            "http://127.0.0.1:1",
            Some("k".into()),
            RoutingKeyMode::Static(key),
            &TlsMaterial::default(),
        );
        let body: Value = serde_json::from_str(&sink.body(&[msg(r#"{"routingKey":"x","a":1}"#)])).expect("json");
        assert_eq!(body[0]["routingKey"], "fixed");
        assert!(!format!("{sink:?}").contains("auth_key"), "the key is never printed");
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_delivery() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut sink = EventServerSink::new(
            &format!("http://127.0.0.1:{port}"),
            None,
            RoutingKeyMode::FromMessage,
            &TlsMaterial::default(),
        );
        let e = sink.deliver(&[msg("{}")]).unwrap_err();
        assert!(matches!(&e, Failure::Retry(r) if r.contains("/events")), "{e:?}");
    }

    #[test]
    fn only_answers_that_blame_the_batch_refuse_it() {
        assert!(blames_the_batch(413) && blames_the_batch(400) && blames_the_batch(409));
        for retry in [401, 403, 404, 408, 429, 500, 503] {
            assert!(!blames_the_batch(retry), "{retry}");
        }
    }
}
