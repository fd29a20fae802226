//! Reading one ingest batch: a JSON array of objects, each with a `topic`, an
//! optional `routingKey` and an `eventId`, whose bytes are kept exactly as
//! sent (stored as `clientEvent`). The whole batch is checked before anything
//! is stored, and every bad event is named by its index, so a bad batch is
//! refused whole. Topics and routing keys become folder names: only
//! `[A-Za-z0-9._-]`, never `.`/`..`. Pure; no I/O.

use serde::Deserialize;
use serde_json::value::RawValue;

use audit_types::is_safe_segment;

/// One event of a batch.
#[derive(Debug)]
pub struct Event {
    /// Its topic (a safe folder name).
    pub topic: String,
    /// Its routing key (a safe folder name), if any.
    pub routing_key: Option<String>,
    /// Its id.
    pub event_id: String,
    /// The event as sent.
    pub raw: Box<RawValue>,
}

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Not a JSON array of objects.
    #[error("the body is not a JSON array of events: {0}")]
    NotJson(String),
    /// Too many events.
    #[error("the batch holds {0} events; at most {1} are accepted in one request")]
    TooMany(usize, usize),
    /// Events that break the rules, each named.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    topic: Option<serde_json::Value>,
    routing_key: Option<serde_json::Value>,
    event_id: Option<serde_json::Value>,
}

/// Most problems listed in one answer.
const MAX_LISTED: usize = 20;

/// Reads and checks a batch.
///
/// # Errors
/// [`BatchError`] naming what is wrong.
pub fn parse(body: &[u8], max_events: usize) -> Result<Vec<Event>, BatchError> {
    let raws: Vec<Box<RawValue>> = serde_json::from_slice(body).map_err(|e| BatchError::NotJson(e.to_string()))?;
    if raws.len() > max_events {
        return Err(BatchError::TooMany(raws.len(), max_events));
    }
    let mut events = Vec::with_capacity(raws.len());
    let mut problems = Vec::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let head: Head = match serde_json::from_str(raw.get()) {
            Ok(h) => h,
            Err(_) => {
                problems.push(format!("[{i}]: must be a JSON object"));
                continue;
            }
        };
        let topic = match head.topic {
            None | Some(serde_json::Value::Null) => {
                problems.push(format!("[{i}].topic: is missing"));
                None
            }
            Some(serde_json::Value::String(t)) if is_safe_segment(&t) => Some(t),
            Some(t) => {
                problems.push(format!(
                    "[{i}].topic: {t} must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'"
                ));
                None
            }
        };
        let routing_key = match head.routing_key {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(serde_json::Value::String(k)) if is_safe_segment(&k) => Some(Some(k)),
            Some(k) => {
                problems.push(format!(
                    "[{i}].routingKey: {k} must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'"
                ));
                None
            }
        };
        let event_id = match head.event_id {
            Some(serde_json::Value::String(id)) if !id.is_empty() && id.len() <= 256 => Some(id),
            None | Some(serde_json::Value::Null) => {
                problems.push(format!("[{i}].eventId: is missing (senders retry, so events are deduplicated on it)"));
                None
            }
            Some(_) => {
                problems.push(format!("[{i}].eventId: must be a string of 1 to 256 characters"));
                None
            }
        };
        if let (Some(topic), Some(routing_key), Some(event_id)) = (topic, routing_key, event_id) {
            events.push(Event { topic, routing_key, event_id, raw });
        }
    }
    if problems.is_empty() {
        return Ok(events);
    }
    let more = problems.len().saturating_sub(MAX_LISTED);
    problems.truncate(MAX_LISTED);
    if more > 0 {
        problems.push(format!("and {more} more"));
    }
    Err(BatchError::Invalid(problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_batch_keeps_each_event_as_sent() {
        let body = br#"[{"topic":"apinode-query","routingKey":"churn","eventId":"e1","x":[1, 2]},
                        {"topic":"generic","eventId":"e2"}]"#;
        let events = parse(body, 10).expect("valid");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].raw.get(), r#"{"topic":"apinode-query","routingKey":"churn","eventId":"e1","x":[1, 2]}"#);
        assert_eq!((events[1].topic.as_str(), events[1].routing_key.as_deref()), ("generic", None));
    }

    #[test]
    fn bad_batches_name_every_bad_event() {
        assert!(matches!(parse(b"not json", 10), Err(BatchError::NotJson(_))));
        assert!(matches!(parse(br#"{"topic":"x"}"#, 10), Err(BatchError::NotJson(_))));
        assert_eq!(
            parse(br#"[{"topic":"a","eventId":"1"},{"topic":"a","eventId":"2"}]"#, 1).unwrap_err(),
            BatchError::TooMany(2, 1)
        );
        let Err(BatchError::Invalid(p)) = parse(
            br#"[{"eventId":"1"}, {"topic":"../etc","eventId":"2"}, {"topic":"a","routingKey":"..","eventId":"3"},
                 {"topic":"a"}, 7, {"topic":"ok","eventId":"6"}]"#,
            10,
        ) else {
            panic!("invalid expected")
        };
        let text = p.join("\n");
        for needle in [
            "[0].topic: is missing",
            "[1].topic: \"../etc\"",
            "[2].routingKey: \"..\"",
            "[3].eventId: is missing",
            "[4]: must be a JSON object",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert_eq!(p.len(), 5);
    }
}
