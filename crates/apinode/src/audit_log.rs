//! The node's audit messages, built from what a request did (docs/audit.md
//! "Messages"): one `prediction-query` per scored record (topic
//! `apinode-query`, with the service's routing key), `prediction-failure`
//! for a prediction request refused as a whole (`generic-failure`),
//! `authfail`, `api-call` (`apicalls`, built only when some target takes
//! it), admin changes and node start and stop (`generic`). Every body
//! carries `topic`, `msgType`, `eventId`, `timestamp`, `nodeId` and, where a
//! caller is known, `authUser`; key ids and labels, never a secret or an
//! `Authorization` header. This module only shapes messages: callers hand
//! them to the audit runtime (`Node::record`), and decide when a request
//! succeeded.

use std::net::IpAddr;

use audit::{EventId, Message, RoutingKey, Topic};
use log::Level;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::ids::RequestId;
use crate::scoring::Timing;

/// Largest part of a refused body kept in a failure record.
pub const FAILED_BODY_LIMIT: usize = 4096;

pub(crate) fn now() -> String {
    audit::message::timestamp()
}

/// A message of `topic` whose body is `record` (carrying `event_id`).
fn message<T: Serialize>(topic: Topic, level: Level, event_id: EventId, record: &T) -> Message {
    let text = serde_json::to_string(record).unwrap_or_else(|e| {
        // Not possible for these records (plain fields, string keys); kept
        // as a record of the failure rather than a silent loss.
        log::error!("An audit message of topic {topic} could not be serialised: {e}");
        serde_json::json!({"topic": topic.as_str(), "eventId": event_id.as_str(), "serialisationError": e.to_string()})
            .to_string()
    });
    Message { topic, level, routing_key: None, event_id, text: text.into() }
}

/// The key of a caller as written in records.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthRef<'a> {
    key_id: &'a str,
    label: Option<&'a str>,
}

impl<'a> From<&'a Principal> for AuthRef<'a> {
    fn from(c: &'a Principal) -> Self {
        AuthRef { key_id: &c.key_id, label: c.label.as_deref() }
    }
}

/// `authUser`: the caller's key label, or its id.
fn auth_user(c: Option<&Principal>) -> Option<&str> {
    c.map(Principal::user)
}

/// What every record of one prediction call shares.
#[derive(Debug)]
pub struct CallInfo<'a> {
    /// This node.
    pub node_id: &'a str,
    /// The call's id.
    pub request_id: &'a RequestId,
    /// The caller's address.
    pub client_ip: IpAddr,
    /// The service asked for.
    pub service_id: &'a str,
    /// The endpoint asked for.
    pub endpoint_id: &'a str,
    /// The caller's key, when it used one.
    pub caller: Option<&'a Principal>,
}

/// The scoring side of one record.
#[derive(Debug)]
pub struct Scored<'a> {
    /// The item's own request id (`<id>-<i>` in a batch).
    pub request_id: &'a RequestId,
    /// The generation that answered.
    pub generation: &'a str,
    /// The service's routing key.
    pub routing_key: Option<&'a RoutingKey>,
    /// The features as the caller sent them, or as the service's audit policy keeps them.
    pub features: Fields<'a>,
    /// The caller's context, likewise.
    pub context: Option<Fields<'a>>,
    /// The dispatch the caller asked for.
    pub dispatch: Option<&'a Value>,
    /// The answer, as returned.
    pub result: &'a Map<String, Value>,
    /// The call's timing.
    pub timing: &'a Timing,
    /// The service's sampling rate, when it keeps only some records (a
    /// monitor weights each kept record by its inverse).
    pub sampling_rate: Option<f64>,
}

/// A query record's features or context: as sent, or under the service's
/// audit policy.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Fields<'a> {
    /// As the caller sent them.
    Plain(&'a Map<String, Value>),
    /// Protected as they are written.
    Protected(crate::privacy::apply::View<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryRecord<'a> {
    topic: &'static str,
    msg_type: &'static str,
    event_id: &'a str,
    request_id: &'a RequestId,
    timestamp: String,
    node_id: &'a str,
    service_id: &'a str,
    endpoint_id: &'a str,
    generation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_key: Option<&'a str>,
    client_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    auth: Option<AuthRef<'a>>,
    features: Fields<'a>,
    context: Option<Fields<'a>>,
    dispatch: Option<&'a Value>,
    result: &'a Map<String, Value>,
    timing: &'a Timing,
    #[serde(skip_serializing_if = "Option::is_none")]
    sampling_rate: Option<f64>,
}

/// One `prediction-query` message (its text is also kept by the query ring).
pub fn query_message(call: &CallInfo<'_>, scored: &Scored<'_>) -> Message {
    let event_id = EventId::generate();
    let text = serde_json::to_string(&QueryRecord {
        topic: Topic::ApinodeQuery.as_str(),
        msg_type: "prediction-query",
        event_id: event_id.as_str(),
        request_id: scored.request_id,
        timestamp: now(),
        node_id: call.node_id,
        service_id: call.service_id,
        endpoint_id: call.endpoint_id,
        generation: scored.generation,
        routing_key: scored.routing_key.map(RoutingKey::as_str),
        client_ip: call.client_ip,
        auth_user: auth_user(call.caller),
        auth: call.caller.map(AuthRef::from),
        features: scored.features,
        context: scored.context,
        dispatch: scored.dispatch,
        result: scored.result,
        timing: scored.timing,
        sampling_rate: scored.sampling_rate,
    })
    .unwrap_or_else(|e| {
        format!(
            "{{\"topic\":\"apinode-query\",\"msgType\":\"prediction-query\",\"eventId\":\"{event_id}\",\"serialisationError\":{}}}",
            serde_json::Value::String(e.to_string())
        )
    });
    Message {
        topic: Topic::ApinodeQuery,
        level: Level::Info,
        routing_key: scored.routing_key.cloned(),
        event_id,
        text: text.into(),
    }
}

/// One outcome of a `feedback` call, as validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The prediction it is the outcome of.
    pub request_id: String,
    /// A class label (text) or a number.
    pub outcome: Value,
    /// When it happened (RFC 3339; the call's time when not given).
    pub time: String,
    /// Its weight in the metrics.
    pub weight: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeedbackRecord<'a> {
    topic: &'static str,
    msg_type: &'static str,
    event_id: &'a str,
    timestamp: String,
    node_id: &'a str,
    service_id: &'a str,
    endpoint_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_key: Option<&'a str>,
    client_ip: IpAddr,
    /// The feedback call's own id.
    feedback_request_id: &'a RequestId,
    #[serde(flatten)]
    outcome: &'a Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    auth: Option<AuthRef<'a>>,
}

/// One `prediction-feedback` message on `apinode-feedback` (docs/monitoring.md
/// "Outcomes in").
pub fn feedback_message(call: &CallInfo<'_>, routing_key: Option<&RoutingKey>, outcome: &Outcome) -> Message {
    let event_id = EventId::generate();
    let text = serde_json::to_string(&FeedbackRecord {
        topic: Topic::ApinodeFeedback.as_str(),
        msg_type: "prediction-feedback",
        event_id: event_id.as_str(),
        timestamp: now(),
        node_id: call.node_id,
        service_id: call.service_id,
        endpoint_id: call.endpoint_id,
        routing_key: routing_key.map(RoutingKey::as_str),
        client_ip: call.client_ip,
        feedback_request_id: call.request_id,
        outcome,
        auth_user: auth_user(call.caller),
        auth: call.caller.map(AuthRef::from),
    })
    .unwrap_or_default();
    Message {
        topic: Topic::ApinodeFeedback,
        level: Level::Info,
        routing_key: routing_key.cloned(),
        event_id,
        text: text.into(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailureRecord<'a> {
    topic: &'static str,
    msg_type: &'static str,
    event_id: &'a str,
    request_id: &'a RequestId,
    timestamp: String,
    node_id: &'a str,
    service_id: &'a str,
    endpoint_id: &'a str,
    client_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    auth: Option<AuthRef<'a>>,
    status: u16,
    error_type: &'a str,
    reason: &'a str,
    body: String,
    body_truncated: bool,
    /// The body did not parse and the service's audit policy protects
    /// fields: none of it is kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    body_withheld: bool,
}

/// A prediction request refused as a whole, with its body cut to 4 KiB
/// (`None`: the service's audit policy withholds it).
pub fn failure(call: &CallInfo<'_>, status: u16, error_type: &str, reason: &str, body: Option<&[u8]>) -> Message {
    let withheld = body.is_none();
    let body = body.unwrap_or_default();
    let mut cut = body.len().min(FAILED_BODY_LIMIT);
    // Cut on a character boundary when the body is UTF-8.
    while cut > 0 && cut < body.len() && (body[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    let event_id = EventId::generate();
    message(
        Topic::GenericFailure,
        Level::Warn,
        event_id.clone(),
        &FailureRecord {
            topic: Topic::GenericFailure.as_str(),
            msg_type: "prediction-failure",
            event_id: event_id.as_str(),
            request_id: call.request_id,
            timestamp: now(),
            node_id: call.node_id,
            service_id: call.service_id,
            endpoint_id: call.endpoint_id,
            client_ip: call.client_ip,
            auth_user: auth_user(call.caller),
            auth: call.caller.map(AuthRef::from),
            status,
            error_type,
            reason,
            body: String::from_utf8_lossy(&body[..cut]).into_owned(),
            body_truncated: body.len() > cut,
            body_withheld: withheld,
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthFailRecord<'a> {
    topic: &'static str,
    msg_type: &'static str,
    event_id: &'a str,
    timestamp: String,
    node_id: &'a str,
    client_ip: IpAddr,
    method: &'a str,
    path: &'a str,
    reason: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    key_id: Option<&'a str>,
}

/// An authentication or authorization failure. `key_id` is set when the
/// presented key matched a known key (which lacked the right).
pub fn auth_failure(
    node_id: &str,
    client_ip: IpAddr,
    method: &str,
    path: &str,
    reason: &str,
    message_text: &str,
    key_id: Option<&str>,
) -> Message {
    let event_id = EventId::generate();
    message(
        Topic::AuthFail,
        Level::Warn,
        event_id.clone(),
        &AuthFailRecord {
            topic: Topic::AuthFail.as_str(),
            msg_type: "authfail",
            event_id: event_id.as_str(),
            timestamp: now(),
            node_id,
            client_ip,
            method,
            path,
            reason,
            message: message_text,
            auth_user: key_id,
            key_id,
        },
    )
}

/// The failures of one address in one minute past `authFailuresPerMinute`:
/// one record instead of one each.
pub fn auth_failure_summary(node_id: &str, s: &crate::auth::throttle::Summary) -> Message {
    let minute = chrono::DateTime::from_timestamp(s.minute_start as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Message::event(
        Topic::AuthFail,
        Level::Warn,
        node_id,
        "authfail-summary",
        None,
        serde_json::json!({"clientIp": s.client_ip, "minute": minute, "recordedOneByOne": s.recorded,
                           "summarised": s.suppressed, "reason": "TOO_MANY_FAILURES"}),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallRecord<'a> {
    topic: &'static str,
    msg_type: &'static str,
    event_id: &'a str,
    timestamp: String,
    node_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_us: u64,
    client_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    key_id: Option<&'a str>,
}

/// One HTTP call (only when `dku.apinode.audit.allcalls` is on).
pub fn api_call(
    node_id: &str,
    method: &str,
    path: &str,
    status: u16,
    duration_us: u64,
    client_ip: IpAddr,
    key_id: Option<&str>,
) -> Message {
    let event_id = EventId::generate();
    message(
        Topic::ApiCalls,
        Level::Info,
        event_id.clone(),
        &CallRecord {
            topic: Topic::ApiCalls.as_str(),
            msg_type: "api-call",
            event_id: event_id.as_str(),
            timestamp: now(),
            node_id,
            method,
            path,
            status,
            duration_us,
            client_ip,
            auth_user: key_id,
            key_id,
        },
    )
}

/// The admin audit message of a change: who (key id and label, never the
/// secret), from where, what (`msg_type`) and its details.
pub fn admin_message(node_id: &str, who: &Principal, client_ip: IpAddr, msg_type: &str, details: Value) -> Message {
    let auth = serde_json::json!({"keyId": who.key_id, "label": who.label});
    let mut extra = serde_json::json!({"auth": auth, "clientIp": client_ip});
    if let (Some(e), Value::Object(d)) = (extra.as_object_mut(), details) {
        e.extend(d);
    }
    Message::event(Topic::Generic, Level::Info, node_id, msg_type, Some(who.user()), extra)
}

/// An authenticated admin call that was refused: `admin-refused` on
/// `generic-failure`, with who, from where, and `details` (action, status,
/// reason).
pub fn admin_refused(node_id: &str, who: &Principal, client_ip: IpAddr, details: Value) -> Message {
    let auth = serde_json::json!({"keyId": who.key_id, "label": who.label});
    let mut extra = serde_json::json!({"auth": auth, "clientIp": client_ip});
    if let (Some(e), Value::Object(d)) = (extra.as_object_mut(), details) {
        e.extend(d);
    }
    Message::event(Topic::GenericFailure, Level::Warn, node_id, "admin-refused", Some(who.user()), extra)
}

/// A message of the node itself on `generic` (node start and stop).
pub fn node_event(node_id: &str, msg_type: &str, details: Value) -> Message {
    Message::event(Topic::Generic, Level::Info, node_id, msg_type, None, details)
}
