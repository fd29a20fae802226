//! The `auditLog` section of `config/server.json` (docs/audit.md
//! "Targets", docs/integrity.md "Durability", "Write failures"): the
//! durability mode and write-failure policy, targets with their topic
//! and routing-key filters and, for network targets, their delivery
//! settings. [`parse`] is pure and reports every problem at once, each with
//! its path (`auditLog.settings.targets[2].topics[0]: unknown topic ...`);
//! building targets (opening spools, starting workers) happens in
//! `dispatch::Dispatcher::build`. Unknown keys are errors: a misspelt
//! `topicFiltering` must not silently widen a filter to ALL.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::Topic;
use crate::commit::{Durability, OnWriteFailure};
use crate::delivery::policy::{DEFAULT_QUEUE_CAPACITY, DEFAULT_SPOOL_MAX_BYTES, DeliverySettings, OnFull};
use crate::kafka::config::{Connections, Properties, TopicTemplate};
use crate::message::{RoutingKey, is_safe_segment};
use audit_types::Filter;

/// Compute-resource-usage period when none is set.
pub const DEFAULT_CRU_INTERVAL: Duration = Duration::from_secs(60);

/// One problem of the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `auditLog.settings.targets[1].url`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A credential: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where an EVENT_SERVER target takes the routing key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingKeyMode {
    /// The message's own key.
    FromMessage,
    /// One key for every message (rewritten into the body).
    Static(RoutingKey),
}

/// What kind of target, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// The log4j loggers `dku.apinode.audit.*` of this process.
    Log4j,
    /// A Kafka topic (template) on a named connection.
    Kafka {
        /// The connection's name.
        connection: String,
        /// Its librdkafka properties.
        properties: Properties,
        /// The topic of each message.
        topic: TopicTemplate,
        /// Queue, spool and onFull.
        delivery: DeliverySettings,
    },
    /// An event server.
    EventServer {
        /// Base URL (`http://host:port`); messages are posted to `<url>/events`.
        url: String,
        /// Sent as `Authorization: Bearer <key>`.
        auth_key: Option<Secret>,
        /// Routing key source.
        routing_key_mode: RoutingKeyMode,
        /// Queue, spool and onFull.
        delivery: DeliverySettings,
        /// HTTPS trust and client certificate.
        tls: ClientTls,
    },
}

/// The TLS files of an `https://` EVENT_SERVER target: `caFile` (the CAs
/// to trust instead of the system's), `clientCertFile` and `clientKeyFile`
/// (the certificate the node presents). Relative paths are taken from the
/// data directory ([`AuditSettings::resolve_paths`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificates to trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM certificate and key presented to the server.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// One validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Its name (`run/spool/<name>/`, metrics): `name`, or `<type>-<index>`.
    pub name: String,
    /// Which messages it takes.
    pub filter: Filter,
    /// What it is.
    pub kind: TargetKind,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The targets, in file order.
    pub targets: Vec<TargetSpec>,
    /// Compute-resource-usage period.
    pub cru_interval: Duration,
    /// When a request's records count as recorded (`durability`, default WRITTEN).
    pub durability: Durability,
    /// What a request whose records cannot be recorded gets (`onWriteFailure`, default CONTINUE).
    pub on_write_failure: OnWriteFailure,
    /// Tamper evidence of the file appenders (`integrity`).
    pub integrity: crate::integrity::Settings,
}

impl AuditSettings {
    /// Takes the relative file paths of the targets from `data_dir`.
    pub fn resolve_paths(&mut self, data_dir: &std::path::Path) {
        for t in &mut self.targets {
            if let TargetKind::EventServer { tls, .. } = &mut t.kind {
                tls.ca_file = tls.ca_file.as_ref().map(|p| data_dir.join(p));
                tls.identity = tls.identity.as_ref().map(|(c, k)| (data_dir.join(c), data_dir.join(k)));
            }
        }
    }
}

impl Default for AuditSettings {
    /// No `auditLog` section: one LOG4J target for every topic.
    fn default() -> Self {
        Self {
            targets: vec![TargetSpec { name: "log4j".into(), filter: Filter::all(), kind: TargetKind::Log4j }],
            cru_interval: DEFAULT_CRU_INTERVAL,
            durability: Durability::Written,
            on_write_failure: OnWriteFailure::Continue,
            integrity: crate::integrity::Settings::default(),
        }
    }
}

struct Ctx<'a> {
    problems: Vec<ConfigProblem>,
    connections: &'a Connections,
}

impl Ctx<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem { path: path.into(), message: message.into() });
    }
}

/// Validates the `auditLog` value (absent: the default).
///
/// # Errors
/// Every problem found, each with its path.
pub fn parse(section: Option<&Value>, connections: &Connections) -> Result<AuditSettings, Vec<ConfigProblem>> {
    let Some(section) = section else { return Ok(AuditSettings::default()) };
    let mut ctx = Ctx { problems: Vec::new(), connections };
    let mut settings = AuditSettings { targets: Vec::new(), ..AuditSettings::default() };
    let Some(object) = section.as_object() else {
        ctx.push("auditLog", "must be an object");
        return Err(ctx.problems);
    };
    let mut saw_targets = false;
    for (key, value) in object {
        match key.as_str() {
            "settings" => {
                let Some(s) = value.as_object() else {
                    ctx.push("auditLog.settings", "must be an object");
                    continue;
                };
                for (k, v) in s {
                    match k.as_str() {
                        "targets" => {
                            saw_targets = true;
                            settings.targets = targets(v, &mut ctx);
                        }
                        other => ctx.push(format!("auditLog.settings.{other}"), "unknown key (known: targets)"),
                    }
                }
            }
            "computeResourceUsageIntervalSeconds" => match value.as_u64().filter(|s| *s >= 1) {
                Some(s) => settings.cru_interval = Duration::from_secs(s),
                None => ctx.push("auditLog.computeResourceUsageIntervalSeconds", "must be a positive integer"),
            },
            "durability" => match value.as_str().and_then(Durability::parse) {
                Some(d) => settings.durability = d,
                None => ctx.push("auditLog.durability", "must be ASYNC, WRITTEN or FSYNC"),
            },
            "onWriteFailure" => match value.as_str() {
                Some("CONTINUE") => settings.on_write_failure = OnWriteFailure::Continue,
                Some("REFUSE") => settings.on_write_failure = OnWriteFailure::Refuse,
                _ => ctx.push("auditLog.onWriteFailure", "must be CONTINUE or REFUSE"),
            },
            "integrity" => settings.integrity = integrity(value, &mut ctx),
            other => ctx.push(
                format!("auditLog.{other}"),
                "unknown key (known: settings, durability, onWriteFailure, integrity, computeResourceUsageIntervalSeconds)",
            ),
        }
    }
    if !saw_targets {
        settings.targets = AuditSettings::default().targets;
    }
    if settings.on_write_failure == OnWriteFailure::Refuse && settings.durability == Durability::Async {
        ctx.push(
            "auditLog.onWriteFailure",
            "REFUSE needs durability WRITTEN or FSYNC: with ASYNC a request is answered before its records are written, so a failure cannot refuse it",
        );
    }
    let mut names = BTreeSet::new();
    for (i, t) in settings.targets.iter().enumerate() {
        if !names.insert(t.name.clone()) {
            ctx.push(format!("auditLog.settings.targets[{i}].name"), format!("{:?} names two targets", t.name));
        }
    }
    if ctx.problems.is_empty() { Ok(settings) } else { Err(ctx.problems) }
}

fn integrity(value: &Value, ctx: &mut Ctx) -> crate::integrity::Settings {
    let mut out = crate::integrity::Settings::default();
    let Some(o) = value.as_object() else {
        ctx.push(
            "auditLog.integrity",
            "must be an object such as {\"enabled\": true, \"checkpointIntervalSeconds\": 10}",
        );
        return out;
    };
    for (k, v) in o {
        match k.as_str() {
            "enabled" => match v.as_bool() {
                Some(b) => out.enabled = b,
                None => ctx.push("auditLog.integrity.enabled", "must be true or false"),
            },
            "checkpointIntervalSeconds" => match v.as_u64().filter(|s| (1..=86_400).contains(s)) {
                Some(s) => out.interval = Duration::from_secs(s),
                None => ctx.push("auditLog.integrity.checkpointIntervalSeconds", "must be an integer from 1 to 86400"),
            },
            other => ctx
                .push(format!("auditLog.integrity.{other}"), "unknown key (known: enabled, checkpointIntervalSeconds)"),
        }
    }
    out
}

fn targets(value: &Value, ctx: &mut Ctx) -> Vec<TargetSpec> {
    let Some(list) = value.as_array() else {
        ctx.push("auditLog.settings.targets", "must be an array of targets");
        return Vec::new();
    };
    list.iter().enumerate().filter_map(|(i, t)| target(&format!("auditLog.settings.targets[{i}]"), i, t, ctx)).collect()
}

fn target(path: &str, index: usize, value: &Value, ctx: &mut Ctx) -> Option<TargetSpec> {
    let Some(t) = value.as_object() else {
        ctx.push(path, "must be an object");
        return None;
    };
    let before = ctx.problems.len();
    let kind_name = t.get("type").and_then(Value::as_str).unwrap_or_default();
    let allowed: &[&str] = match kind_name {
        "LOG4J" => &[],
        "EVENT_SERVER" => &[
            "url",
            "authKey",
            "routingKeyMode",
            "routingKey",
            "onFull",
            "spoolMaxBytes",
            "queueCapacity",
            "caFile",
            "clientCertFile",
            "clientKeyFile",
        ],
        "KAFKA" => &["connection", "topic", "onFull", "spoolMaxBytes", "queueCapacity"],
        _ => {
            ctx.push(format!("{path}.type"), "must be one of LOG4J, EVENT_SERVER, KAFKA");
            return None;
        }
    };
    let common = ["type", "name", "topicsFiltering", "topics", "routingKeysFiltering", "routingKeys"];
    for key in t.keys() {
        if !common.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
            ctx.push(format!("{path}.{key}"), format!("unknown key for a {kind_name} target"));
        }
    }
    let name = match t.get("name") {
        None => format!("{}-{index}", kind_name.to_ascii_lowercase().replace('_', "-")),
        Some(v) => match v.as_str().filter(|n| is_safe_segment(n)) {
            Some(n) => n.to_owned(),
            None => {
                ctx.push(format!("{path}.name"), "must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'");
                String::new()
            }
        },
    };
    let filter = filter(path, t, ctx);
    let kind = match kind_name {
        "LOG4J" => TargetKind::Log4j,
        "KAFKA" => kafka(path, t, &filter, ctx),
        _ => event_server(path, t, &filter, ctx),
    };
    (ctx.problems.len() == before).then_some(TargetSpec { name, filter, kind })
}

fn filter(path: &str, t: &Map<String, Value>, ctx: &mut Ctx) -> Filter {
    let mut filter = Filter::all();
    match t.get("topicsFiltering").map(|v| v.as_str()) {
        None | Some(Some("ALL")) => {}
        Some(Some("SELECTED")) => {
            let topics = list(&format!("{path}.topics"), t.get("topics"), ctx, |s| {
                s.parse::<Topic>().map_err(|e| e.to_string())
            });
            filter.topics = Some(topics.into_iter().collect());
        }
        _ => ctx.push(format!("{path}.topicsFiltering"), "must be ALL or SELECTED"),
    }
    match t.get("routingKeysFiltering").map(|v| v.as_str()) {
        None | Some(Some("ALL")) => {}
        Some(Some("SELECTED")) => {
            let keys = list(&format!("{path}.routingKeys"), t.get("routingKeys"), ctx, |s| {
                RoutingKey::new(s).map_err(|e| e.to_string())
            });
            filter.routing_keys = Some(keys.into_iter().collect());
        }
        _ => ctx.push(format!("{path}.routingKeysFiltering"), "must be ALL or SELECTED"),
    }
    for (key, filtering) in [("topics", "topicsFiltering"), ("routingKeys", "routingKeysFiltering")] {
        if t.contains_key(key) && t.get(filtering).and_then(Value::as_str) != Some("SELECTED") {
            ctx.push(format!("{path}.{key}"), format!("is only used with {filtering}: SELECTED"));
        }
    }
    filter
}

/// A non-empty array of strings, each checked by `check`.
fn list<T>(path: &str, value: Option<&Value>, ctx: &mut Ctx, check: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
    let Some(items) = value.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        ctx.push(path, "must be a non-empty array of strings when filtering is SELECTED");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(&check) {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => ctx.push(format!("{path}[{i}]"), e),
            None => ctx.push(format!("{path}[{i}]"), "must be a string"),
        }
    }
    out
}

fn event_server(path: &str, t: &Map<String, Value>, filter: &Filter, ctx: &mut Ctx) -> TargetKind {
    let url = match t.get("url").and_then(Value::as_str) {
        Some(u) if (u.starts_with("http://") || u.starts_with("https://")) && reqwest::Url::parse(u).is_ok() => {
            u.trim_end_matches('/').to_owned()
        }
        Some(u) => {
            ctx.push(format!("{path}.url"), format!("{u:?} is not an http:// or https:// URL"));
            String::new()
        }
        None => {
            ctx.push(
                format!("{path}.url"),
                "is required (the event server's base URL, such as http://127.0.0.1:10000)",
            );
            String::new()
        }
    };
    let auth_key = match t.get("authKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() => Some(Secret(k.clone())),
        Some(_) => {
            ctx.push(format!("{path}.authKey"), "must be a non-empty string");
            None
        }
    };
    let routing_key_mode = match t.get("routingKeyMode").and_then(Value::as_str) {
        None | Some("FROM_MESSAGE") => {
            if t.contains_key("routingKey") {
                ctx.push(format!("{path}.routingKey"), "is only used with routingKeyMode: STATIC");
            }
            RoutingKeyMode::FromMessage
        }
        Some("STATIC") => match t.get("routingKey").and_then(Value::as_str).map(RoutingKey::new) {
            Some(Ok(k)) => RoutingKeyMode::Static(k),
            Some(Err(e)) => {
                ctx.push(format!("{path}.routingKey"), e.to_string());
                RoutingKeyMode::FromMessage
            }
            None => {
                ctx.push(format!("{path}.routingKey"), "is required with routingKeyMode: STATIC");
                RoutingKeyMode::FromMessage
            }
        },
        _ => {
            ctx.push(format!("{path}.routingKeyMode"), "must be FROM_MESSAGE or STATIC");
            RoutingKeyMode::FromMessage
        }
    };
    let file = |key: &str, ctx: &mut Ctx| match t.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(std::path::PathBuf::from(s)),
        Some(_) => {
            ctx.push(format!("{path}.{key}"), "must be a file path");
            None
        }
    };
    let ca_file = file("caFile", ctx);
    let (cert, key) = (file("clientCertFile", ctx), file("clientKeyFile", ctx));
    if cert.is_some() != key.is_some() {
        ctx.push(format!("{path}.clientCertFile"), "and clientKeyFile go together");
    }
    if (ca_file.is_some() || cert.is_some()) && url.starts_with("http://") {
        ctx.push(format!("{path}.url"), "caFile, clientCertFile and clientKeyFile need an https:// URL");
    }
    let tls = ClientTls { ca_file, identity: cert.zip(key) };
    TargetKind::EventServer { url, auth_key, routing_key_mode, delivery: delivery(path, t, filter, ctx), tls }
}

fn kafka(path: &str, t: &Map<String, Value>, filter: &Filter, ctx: &mut Ctx) -> TargetKind {
    let connection = t.get("connection").and_then(Value::as_str).unwrap_or_default().to_owned();
    let properties = match ctx.connections.get(&connection) {
        Some(p) => p.clone(),
        None => {
            let known: Vec<&str> = ctx.connections.keys().map(String::as_str).collect();
            let message = if connection.is_empty() {
                format!("is required: the name of a kafkaConnections entry (defined: {})", known.join(", "))
            } else {
                format!("{connection:?} is not defined in kafkaConnections (defined: {})", known.join(", "))
            };
            ctx.push(format!("{path}.connection"), message);
            Vec::new()
        }
    };
    let template = t.get("topic").and_then(Value::as_str).unwrap_or("dku-audit-${topic}");
    let topic = TopicTemplate::parse(template).unwrap_or_else(|e| {
        ctx.push(format!("{path}.topic"), e);
        TopicTemplate::parse("x").expect("a valid template")
    });
    TargetKind::Kafka {
        connection,
        properties: Properties(properties),
        topic,
        delivery: delivery(path, t, filter, ctx),
    }
}

/// `onFull`, `spoolMaxBytes`, `queueCapacity` of a network target.
fn delivery(path: &str, t: &Map<String, Value>, filter: &Filter, ctx: &mut Ctx) -> DeliverySettings {
    let on_full = match t.get("onFull").and_then(Value::as_str) {
        None | Some("BLOCK") => OnFull::Block,
        Some("DROP") => {
            if let Some(topics) = &filter.topics
                && !topics.iter().any(|t| t.droppable())
            {
                ctx.push(
                    format!("{path}.onFull"),
                    "DROP is allowed only for apinode-query and apicalls, and this target takes neither",
                );
            }
            OnFull::Drop
        }
        _ => {
            ctx.push(format!("{path}.onFull"), "must be BLOCK or DROP");
            OnFull::Block
        }
    };
    let spool_max_bytes = match t.get("spoolMaxBytes") {
        None => DEFAULT_SPOOL_MAX_BYTES,
        Some(v) => v.as_u64().filter(|n| *n >= 4096).unwrap_or_else(|| {
            ctx.push(format!("{path}.spoolMaxBytes"), "must be an integer of at least 4096");
            DEFAULT_SPOOL_MAX_BYTES
        }),
    };
    let queue_capacity = match t.get("queueCapacity") {
        None => DEFAULT_QUEUE_CAPACITY,
        Some(v) => v.as_u64().filter(|n| (16..=1 << 22).contains(n)).map_or_else(
            || {
                ctx.push(format!("{path}.queueCapacity"), "must be an integer from 16 to 4194304");
                DEFAULT_QUEUE_CAPACITY
            },
            |n| n as usize,
        ),
    };
    DeliverySettings { on_full, spool_max_bytes, queue_capacity }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(json: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(json).expect("json");
        parse(Some(&v), &Connections::new())
            .unwrap_err()
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn no_section_is_one_log4j_target_for_everything() {
        let s = parse(None, &Connections::new()).expect("default");
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].kind, TargetKind::Log4j);
        assert!(s.targets[0].filter.takes::<_, str>(&Topic::ApiCalls, None));
    }

    #[test]
    fn a_full_section_parses() {
        let v: Value = serde_json::from_str(
            r#"{"settings": {"targets": [
              {"type": "LOG4J"},
              {"type": "EVENT_SERVER", "name": "central", "url": "http://127.0.0.1:10000/", "authKey": "k",
               "topicsFiltering": "SELECTED", "topics": ["apinode-query"], "routingKeysFiltering": "SELECTED",
               "routingKeys": ["churn-prod"], "onFull": "DROP", "spoolMaxBytes": 1048576}
            ]}, "computeResourceUsageIntervalSeconds": 5}"#,
        )
        .expect("json");
        let s = parse(Some(&v), &Connections::new()).expect("valid");
        assert_eq!(s.cru_interval, Duration::from_secs(5));
        assert_eq!(s.targets[0].name, "log4j-0");
        let TargetKind::EventServer { url, delivery, auth_key, .. } = &s.targets[1].kind else {
            panic!("event server")
        };
        assert_eq!(format!("{auth_key:?}"), "Some(Secret(***))", "the key is never printed");
        assert_eq!(
            (url.as_str(), delivery.on_full, delivery.spool_max_bytes),
            ("http://127.0.0.1:10000", OnFull::Drop, 1 << 20)
        );
        let rk = RoutingKey::new("churn-prod").expect("key");
        assert!(s.targets[1].filter.takes(&Topic::ApinodeQuery, Some(&rk)));
        assert!(!s.targets[1].filter.takes::<_, str>(&Topic::ApinodeQuery, None));
        assert!(!s.targets[1].filter.takes(&Topic::AuthFail, Some(&rk)));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = problems(
            r#"{"settings": {"targets": [
              {"type": "LOG4J", "topicFiltering": "ALL"},
              {"type": "EVENT_SERVER", "topicsFiltering": "SELECTED", "topics": ["apinode-querry", 3]},
              {"type": "EVENT_SERVER", "url": "ftp://x", "routingKeysFiltering": "SELECTED", "routingKeys": ["../up"],
               "onFull": "DROP", "topicsFiltering": "SELECTED", "topics": ["authfail"]},
              {"type": "SYSLOG"},
              {"type": "KAFKA", "connection": "nope", "topic": "a/${topic}"}
            ]}, "extra": 1}"#,
        );
        let expected = [
            "auditLog.settings.targets[0].topicFiltering: unknown key",
            "auditLog.settings.targets[1].topics[0]: unknown topic \"apinode-querry\"",
            "auditLog.settings.targets[1].topics[1]: must be a string",
            "auditLog.settings.targets[1].url: is required",
            "auditLog.settings.targets[2].url: \"ftp://x\" is not",
            "auditLog.settings.targets[2].routingKeys[0]: \"../up\" must be",
            "auditLog.settings.targets[2].onFull: DROP is allowed only",
            "auditLog.settings.targets[3].type: must be one of",
            "auditLog.settings.targets[4].connection: \"nope\" is not defined in kafkaConnections",
            "auditLog.settings.targets[4].topic: \"a/${topic}\": '/' is not allowed",
            "auditLog.extra: unknown key",
        ];
        for e in expected {
            assert!(found.iter().any(|f| f.starts_with(e)), "missing {e:?} in {found:#?}");
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn durability_and_write_failure_policy_are_checked_together() {
        let v: Value = serde_json::from_str(r#"{"durability": "FSYNC", "onWriteFailure": "REFUSE"}"#).expect("json");
        let s = parse(Some(&v), &Connections::new()).expect("valid");
        assert_eq!((s.durability, s.on_write_failure), (Durability::Fsync, OnWriteFailure::Refuse));
        assert_eq!(AuditSettings::default().durability, Durability::Written, "the default");
        let found = problems(r#"{"durability": "ASYNC", "onWriteFailure": "REFUSE"}"#);
        assert!(found[0].starts_with("auditLog.onWriteFailure: REFUSE needs durability WRITTEN"), "{found:?}");
        let found = problems(r#"{"durability": "SOMETIMES", "onWriteFailure": "MAYBE"}"#);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn duplicate_names_and_empty_selections_are_refused() {
        let found = problems(
            r#"{"settings": {"targets": [
              {"type": "LOG4J", "name": "a"}, {"type": "LOG4J", "name": "a", "topicsFiltering": "SELECTED", "topics": []}
            ]}}"#,
        );
        assert!(found.iter().any(|f| f.contains("targets[1].topics: must be a non-empty array")), "{found:?}");
        assert_eq!(found.len(), 1, "{found:?}");
        let found =
            problems(r#"{"settings": {"targets": [{"type": "LOG4J", "name": "a"}, {"type": "LOG4J", "name": "a"}]}}"#);
        assert_eq!(found, ["auditLog.settings.targets[1].name: \"a\" names two targets"]);
    }
}
