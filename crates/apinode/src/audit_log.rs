//! The node's audit records, built from what a request did and handed to the
//! writer queue (`audit::writer::emit`) without waiting on any I/O: one
//! `prediction-query` per scored record (logger `dku.apinode.audit.queries`),
//! `prediction-failure` for a prediction request refused as a whole
//! (`.failures`), `authfail` (`.auth`), and `api-call` (`.allcalls`, built
//! only when that logger is on). Records carry key ids and labels, never a
//! secret or an `Authorization` header. This module shapes records; it does
//! not decide when a request succeeded.

use std::net::IpAddr;

use audit::Topic;
use chrono::SecondsFormat;
use log::Level;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::ids::RequestId;
use crate::scoring::Timing;

/// Largest part of a refused body kept in a failure record.
pub const FAILED_BODY_LIMIT: usize = 4096;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn emit<T: Serialize>(topic: Topic, level: Level, record: &T) {
    match serde_json::to_string(record) {
        Ok(text) => audit::writer::emit(topic.target(), level, text),
        Err(e) => log::error!("An audit record of topic {topic} could not be serialised: {e}"),
    }
}

/// Whether records of `topic` are wanted at all.
pub fn wanted(topic: Topic) -> bool {
    audit::writer::enabled(topic.target(), Level::Info)
}

/// The key of a caller as written in records.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthRef<'a> {
    key_id: &'a str,
    label: Option<&'a str>,
}

impl<'a> From<&'a Caller> for AuthRef<'a> {
    fn from(c: &'a Caller) -> Self {
        AuthRef { key_id: &c.key_id, label: c.label.as_deref() }
    }
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
    pub caller: Option<&'a Caller>,
}

/// The scoring side of one record.
#[derive(Debug)]
pub struct Scored<'a> {
    /// The item's own request id (`<id>-<i>` in a batch).
    pub request_id: &'a RequestId,
    /// The generation that answered.
    pub generation: &'a str,
    /// The service's routing key.
    pub routing_key: Option<&'a str>,
    /// The features as the caller sent them.
    pub features: &'a Map<String, Value>,
    /// The caller's context.
    pub context: Option<&'a Map<String, Value>>,
    /// The dispatch the caller asked for.
    pub dispatch: Option<&'a Value>,
    /// The answer, as returned.
    pub result: &'a Map<String, Value>,
    /// The call's timing.
    pub timing: &'a Timing,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryRecord<'a> {
    msg_type: &'static str,
    event_id: String,
    request_id: &'a RequestId,
    timestamp: String,
    node_id: &'a str,
    service_id: &'a str,
    endpoint_id: &'a str,
    generation: &'a str,
    routing_key: Option<&'a str>,
    client_ip: IpAddr,
    auth: Option<AuthRef<'a>>,
    features: &'a Map<String, Value>,
    context: Option<&'a Map<String, Value>>,
    dispatch: Option<&'a Value>,
    result: &'a Map<String, Value>,
    timing: &'a Timing,
}

/// Writes a record already serialised (shared with the query ring, not copied).
pub fn emit_text(topic: Topic, text: std::sync::Arc<str>) {
    audit::writer::emit(topic.target(), Level::Info, text);
}

/// One `prediction-query` record, as text.
pub fn query_record(call: &CallInfo<'_>, scored: &Scored<'_>) -> String {
    serde_json::to_string(&QueryRecord {
        msg_type: "prediction-query",
        event_id: event_id(),
        request_id: scored.request_id,
        timestamp: now(),
        node_id: call.node_id,
        service_id: call.service_id,
        endpoint_id: call.endpoint_id,
        generation: scored.generation,
        routing_key: scored.routing_key,
        client_ip: call.client_ip,
        auth: call.caller.map(AuthRef::from),
        features: scored.features,
        context: scored.context,
        dispatch: scored.dispatch,
        result: scored.result,
        timing: scored.timing,
    })
    .unwrap_or_else(|e| format!("{{\"msgType\":\"prediction-query\",\"serialisationError\":\"{e}\"}}"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailureRecord<'a> {
    msg_type: &'static str,
    event_id: String,
    request_id: &'a RequestId,
    timestamp: String,
    node_id: &'a str,
    service_id: &'a str,
    endpoint_id: &'a str,
    client_ip: IpAddr,
    auth: Option<AuthRef<'a>>,
    status: u16,
    error_type: &'a str,
    reason: &'a str,
    body: String,
    body_truncated: bool,
}

/// A prediction request refused as a whole, with its body cut to 4 KiB.
pub fn failure(call: &CallInfo<'_>, status: u16, error_type: &str, reason: &str, body: &[u8]) {
    let cut = body.len().min(FAILED_BODY_LIMIT);
    emit(
        Topic::GenericFailure,
        Level::Warn,
        &FailureRecord {
            msg_type: "prediction-failure",
            event_id: event_id(),
            request_id: call.request_id,
            timestamp: now(),
            node_id: call.node_id,
            service_id: call.service_id,
            endpoint_id: call.endpoint_id,
            client_ip: call.client_ip,
            auth: call.caller.map(AuthRef::from),
            status,
            error_type,
            reason,
            body: String::from_utf8_lossy(&body[..cut]).into_owned(),
            body_truncated: body.len() > cut,
        },
    );
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthFailRecord<'a> {
    msg_type: &'static str,
    event_id: String,
    timestamp: String,
    node_id: &'a str,
    client_ip: IpAddr,
    method: &'a str,
    path: &'a str,
    reason: &'a str,
    message: &'a str,
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
    message: &str,
    key_id: Option<&str>,
) {
    emit(
        Topic::AuthFail,
        Level::Warn,
        &AuthFailRecord {
            msg_type: "authfail",
            event_id: event_id(),
            timestamp: now(),
            node_id,
            client_ip,
            method,
            path,
            reason,
            message,
            key_id,
        },
    );
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallRecord<'a> {
    msg_type: &'static str,
    event_id: String,
    timestamp: String,
    node_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_us: u64,
    client_ip: IpAddr,
    key_id: Option<&'a str>,
}

/// One HTTP call (only when `dku.apinode.audit.allcalls` is on).
#[allow(clippy::too_many_arguments)]
pub fn api_call(
    node_id: &str,
    method: &str,
    path: &str,
    status: u16,
    duration_us: u64,
    client_ip: IpAddr,
    key_id: Option<&str>,
) {
    emit(
        Topic::ApiCalls,
        Level::Info,
        &CallRecord {
            msg_type: "api-call",
            event_id: event_id(),
            timestamp: now(),
            node_id,
            method,
            path,
            status,
            duration_us,
            client_ip,
            key_id,
        },
    );
}

/// The admin audit record of a change, as text: who (key id and label, never
/// the secret), from where, what (`msg_type`) and its details.
pub fn admin_record(node_id: &str, call: &crate::admin::AdminCall, msg_type: &str, details: Value) -> String {
    let mut record = serde_json::json!({
        "msgType": msg_type,
        "eventId": event_id(),
        "timestamp": now(),
        "nodeId": node_id,
        "authUser": call.user(),
        "auth": {"keyId": call.who.id, "label": call.who.label},
        "clientIp": call.client_ip,
    });
    if let (Some(r), Value::Object(d)) = (record.as_object_mut(), details) {
        r.extend(d);
    }
    record.to_string()
}
