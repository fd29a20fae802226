//! Node settings: `config/server.json` overridden by the environment
//! (`DKU_APINODE_PORT`, `DKU_APINODE_BIND`) and by command-line flags, in
//! that order of priority (flag > env > file > default). Validation is pure
//! and reports every problem at once; reading the file is the only I/O, in
//! [`ServerConfig::load`]. Keys that belong to features of later versions are
//! accepted and reported as unused, so a Dataiku `server.json` still loads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::problems::Problems;

/// Port when nothing sets one.
pub const DEFAULT_PORT: u16 = 12000;
/// Request body limit when nothing sets one (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Listen address when nothing sets one: every interface, as Dataiku's node.
pub const DEFAULT_BIND: &str = "0.0.0.0";

/// Validated node settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// TCP port (0 picks a free one; the node writes it to `run/apinode.port`).
    pub port: u16,
    /// Address to listen on.
    pub bind: IpAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// This node's name in audit messages (`nodeId`; default: the host name).
    pub node_id: String,
    /// Audit targets (`auditLog`; none: one LOG4J target for everything).
    pub audit: audit::dispatch::config::AuditSettings,
    /// Named Kafka connections (`kafkaConnections`).
    pub kafka: audit::kafka::Connections,
    /// CDAP entity audit (`audit`: `enabled`, `topic`, `connection`).
    pub entity_audit: EntityAudit,
    /// What one client may ask of the node (`limits`).
    pub limits: Limits,
    /// Folders generation archives may be imported from (`importRoots`;
    /// empty: the data directory and the system's temporary folder).
    pub import_roots: Vec<PathBuf>,
    /// HTTPS (`tls`; none: plain HTTP), docs/security.md "TLS".
    pub tls: Option<serve::TlsSettings>,
    /// `GET /metrics` (`metrics`), docs/monitoring.md "Live metrics".
    pub metrics: MetricsSettings,
    /// Top-level keys of `server.json` this version does not use.
    pub unused_keys: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            bind: DEFAULT_BIND.parse().expect("a valid address literal"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            node_id: default_node_id(),
            audit: audit::dispatch::config::AuditSettings::default(),
            kafka: audit::kafka::Connections::new(),
            entity_audit: EntityAudit::default(),
            limits: Limits::default(),
            import_roots: Vec::new(),
            tls: None,
            metrics: MetricsSettings::default(),
            unused_keys: Vec::new(),
        }
    }
}

/// `metrics` of `config/server.json`: whether `GET /metrics` is served
/// (`enabled`, default true) and who may read it (`auth`: `NONE`, the
/// default, or `ADMIN_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Served, and counted on the request path.
    pub enabled: bool,
    /// Only with an admin key.
    pub admin_key: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true, admin_key: false }
    }
}

fn metrics(value: &Value, problems: &mut Problems) -> MetricsSettings {
    let file = "config/server.json: metrics";
    let mut m = MetricsSettings::default();
    let Some(o) = value.as_object() else {
        problems.push(file, "must be an object such as {\"auth\": \"ADMIN_KEY\"}");
        return m;
    };
    for (k, v) in o {
        match (k.as_str(), v) {
            ("enabled", Value::Bool(b)) => m.enabled = *b,
            ("enabled", _) => problems.push(format!("{file}.enabled"), "must be true or false"),
            ("auth", v) => match v.as_str() {
                Some("NONE") => m.admin_key = false,
                Some("ADMIN_KEY") => m.admin_key = true,
                _ => problems.push(format!("{file}.auth"), "must be NONE or ADMIN_KEY"),
            },
            (other, _) => problems.push(format!("{file}.{other}"), "unknown key (known: enabled, auth)"),
        }
    }
    m
}

/// Items of one `predict-multi` request, at most, when nothing sets it.
pub const DEFAULT_MAX_ITEMS_PER_REQUEST: usize = 10_000;

/// `limits` of `config/server.json` (docs/security.md "Hostile and slow
/// clients", docs/integrity.md "Retention"): what one client may ask of the
/// node. Every one is configurable and checked at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections, at most (`maxConnections`, 10000).
    pub max_connections: usize,
    /// Time to send a whole request head (`headerReadTimeoutSeconds`, 10).
    pub header_read_timeout: Duration,
    /// Time to send a whole body (`bodyReadTimeoutSeconds`, 30).
    pub body_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this (`idleTimeoutSeconds`, 60).
    pub idle_timeout: Duration,
    /// Items of one `predict-multi` request, at most (413 beyond, nothing scored).
    pub max_items_per_request: usize,
    /// Authentication failures per client address and minute before 429
    /// and summarised records (`authFailuresPerMinute`, 60).
    pub auth_failures_per_minute: u32,
    /// A graceful stop waits this long for requests in progress (`stopGraceSeconds`, 10).
    pub stop_grace: Duration,
    /// What an invalid `X-Request-Id` gets (`requestIds`: `STRICT`, or `REPLACE`).
    pub replace_request_ids: bool,
    /// Bytes an imported archive may inflate to (`maxArchiveBytes`, 1 GiB).
    pub max_archive_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_items_per_request: DEFAULT_MAX_ITEMS_PER_REQUEST,
            auth_failures_per_minute: 60,
            stop_grace: Duration::from_secs(10),
            replace_request_ids: false,
            max_archive_bytes: 1 << 30,
        }
    }
}

fn limits(value: &Value, problems: &mut Problems) -> Limits {
    let file = "config/server.json: limits";
    let mut l = Limits::default();
    let Some(o) = value.as_object() else {
        problems.push(file, "must be an object such as {\"maxItemsPerRequest\": 10000}");
        return l;
    };
    let int = |problems: &mut Problems, key: &str, v: &Value, lo: u64, hi: u64| {
        let n = v.as_u64().filter(|n| (lo..=hi).contains(n));
        if n.is_none() {
            problems.push(format!("{file}.{key}"), format!("must be an integer from {lo} to {hi}"));
        }
        n
    };
    for (k, v) in o {
        let mut int = |v: &Value, lo, hi| int(problems, k, v, lo, hi);
        match k.as_str() {
            "maxConnections" => {
                if let Some(n) = int(v, 1, 1_000_000) {
                    l.max_connections = n as usize;
                }
            }
            "headerReadTimeoutSeconds" => {
                if let Some(n) = int(v, 1, 3600) {
                    l.header_read_timeout = Duration::from_secs(n);
                }
            }
            "bodyReadTimeoutSeconds" => {
                if let Some(n) = int(v, 1, 3600) {
                    l.body_read_timeout = Duration::from_secs(n);
                }
            }
            "idleTimeoutSeconds" => {
                if let Some(n) = int(v, 1, 86_400) {
                    l.idle_timeout = Duration::from_secs(n);
                }
            }
            "maxItemsPerRequest" => {
                if let Some(n) = int(v, 1, 1_000_000) {
                    l.max_items_per_request = n as usize;
                }
            }
            "authFailuresPerMinute" => {
                if let Some(n) = int(v, 1, 1_000_000) {
                    l.auth_failures_per_minute = n as u32;
                }
            }
            "stopGraceSeconds" => {
                if let Some(n) = int(v, 0, 3600) {
                    l.stop_grace = Duration::from_secs(n);
                }
            }
            "maxArchiveBytes" => {
                if let Some(n) = int(v, 1024, 1 << 40) {
                    l.max_archive_bytes = n;
                }
            }
            "requestIds" => match v.as_str() {
                Some("STRICT") => l.replace_request_ids = false,
                Some("REPLACE") => l.replace_request_ids = true,
                _ => problems.push(format!("{file}.requestIds"), "must be STRICT or REPLACE"),
            },
            other => problems.push(
                format!("{file}.{other}"),
                "unknown key (known: maxConnections, headerReadTimeoutSeconds, bodyReadTimeoutSeconds, idleTimeoutSeconds, maxItemsPerRequest, authFailuresPerMinute, stopGraceSeconds, maxArchiveBytes, requestIds)",
            ),
        }
    }
    l
}

/// CDAP's `audit.enabled` and `audit.topic`: entity messages go to the
/// Kafka topic `topic` on `connection` (the only connection when there is
/// one and none is named), and always to `dku.apinode.audit.entity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityAudit {
    /// Whether entity messages are published to Kafka.
    pub enabled: bool,
    /// The Kafka topic (default `audit`).
    pub topic: String,
    /// The connection's name, when there is one.
    pub connection: Option<String>,
}

impl Default for EntityAudit {
    fn default() -> Self {
        Self { enabled: true, topic: "audit".into(), connection: None }
    }
}

fn entity_audit(value: &Value, kafka: &audit::kafka::Connections, problems: &mut Problems) -> EntityAudit {
    let file = "config/server.json: audit";
    let mut e = EntityAudit::default();
    let Some(o) = value.as_object() else {
        problems.push(file, "must be an object such as {\"enabled\": true, \"topic\": \"audit\"}");
        return e;
    };
    for (k, v) in o {
        match (k.as_str(), v) {
            ("enabled", Value::Bool(b)) => e.enabled = *b,
            ("topic", Value::String(t))
                if audit::kafka::config::TopicTemplate::parse(t).is_ok() && !t.contains('$') =>
            {
                e.topic = t.clone();
            }
            ("connection", Value::String(c)) if kafka.contains_key(c) => e.connection = Some(c.clone()),
            ("enabled", _) => problems.push(format!("{file}.enabled"), "must be true or false"),
            ("topic", _) => problems.push(format!("{file}.topic"), "must be a Kafka topic name ([A-Za-z0-9._-])"),
            ("connection", _) => problems.push(format!("{file}.connection"), "must name a kafkaConnections entry"),
            (other, _) => problems.push(format!("{file}.{other}"), "unknown key (known: enabled, topic, connection)"),
        }
    }
    e
}

/// The host name (Linux), or "apinode".
fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "apinode".to_owned())
}

/// Command-line overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<u16>,
}

impl ServerConfig {
    /// The folders archives may be imported from.
    pub fn import_roots(&self, data_dir: &Path) -> Vec<PathBuf> {
        if self.import_roots.is_empty() {
            vec![data_dir.to_path_buf(), std::env::temp_dir()]
        } else {
            self.import_roots.clone()
        }
    }

    /// Reads `<data_dir>/config/server.json` (absent: defaults) and applies
    /// the overrides.
    ///
    /// # Errors
    /// Every problem, each naming the file or variable and the key.
    pub fn load(
        data_dir: &Path,
        env: &HashMap<String, String>,
        overrides: Overrides,
    ) -> Result<ServerConfig, Problems> {
        let path = data_dir.join("config").join("server.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let mut p = Problems::new();
                p.push("config/server.json", format!("cannot read: {e}"));
                return Err(p);
            }
        };
        let mut config = Self::validate(text.as_deref(), env, overrides)?;
        config.audit.resolve_paths(data_dir);
        Ok(config)
    }

    /// Validates the file's text (if any), the environment and the overrides.
    ///
    /// # Errors
    /// Every problem found.
    pub fn validate(
        text: Option<&str>,
        env: &HashMap<String, String>,
        overrides: Overrides,
    ) -> Result<ServerConfig, Problems> {
        let mut problems = Problems::new();
        let mut config = ServerConfig::default();
        let file = "config/server.json";
        let object = match text.map(serde_json::from_str::<Value>) {
            None => Map::new(),
            Some(Ok(Value::Object(m))) => m,
            Some(Ok(_)) => {
                problems.push(file, "must hold a JSON object");
                Map::new()
            }
            Some(Err(e)) => {
                problems.push(file, format!("not valid JSON: {e}"));
                Map::new()
            }
        };
        match audit::kafka::parse_connections(object.get("kafkaConnections")) {
            Ok(c) => config.kafka = c,
            Err(found) => {
                for (path, message) in found {
                    problems.push(format!("{file}: {path}"), message);
                }
            }
        }
        for (key, value) in &object {
            match key.as_str() {
                "kafkaConnections" => {}
                "audit" => config.entity_audit = entity_audit(value, &config.kafka, &mut problems),
                "limits" => config.limits = limits(value, &mut problems),
                "metrics" => config.metrics = metrics(value, &mut problems),
                // Relative paths stay relative: the data directory is joined at start.
                "tls" => match serve::tls::parse_settings(value, Path::new("")) {
                    Ok(t) => config.tls = Some(t),
                    Err(found) => {
                        for (path, message) in found {
                            problems.push(format!("{file}: {path}"), message);
                        }
                    }
                },
                "importRoots" => match value.as_array() {
                    Some(list) if list.iter().all(|v| v.as_str().is_some_and(|s| Path::new(s).is_absolute())) => {
                        config.import_roots = list.iter().filter_map(Value::as_str).map(PathBuf::from).collect();
                    }
                    _ => problems.push(format!("{file}: importRoots"), "must be an array of absolute folder paths"),
                },
                "port" => match value.as_u64().and_then(|p| u16::try_from(p).ok()) {
                    Some(p) => config.port = p,
                    None => problems.push(format!("{file}: port"), "must be an integer from 0 to 65535"),
                },
                "bindAddress" => match value.as_str().and_then(|s| s.parse().ok()) {
                    Some(a) => config.bind = a,
                    None => problems.push(format!("{file}: bindAddress"), "must be an IP address such as 127.0.0.1"),
                },
                "maxBodyBytes" => match value.as_u64().filter(|n| *n >= 1024) {
                    Some(n) => config.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX),
                    None => problems.push(format!("{file}: maxBodyBytes"), "must be an integer of at least 1024"),
                },
                "nodeId" => match value.as_str().filter(|s| !s.trim().is_empty()) {
                    Some(id) => config.node_id = id.trim().to_owned(),
                    None => problems.push(format!("{file}: nodeId"), "must be a non-empty string"),
                },
                "auditLog" => match audit::dispatch::config::parse(Some(value), &config.kafka) {
                    Ok(settings) => config.audit = settings,
                    Err(found) => {
                        for p in found {
                            problems.push(format!("{file}: {}", p.path), p.message);
                        }
                    }
                },
                other => config.unused_keys.push(other.to_owned()),
            }
        }
        if let Some(v) = env.get("DKU_APINODE_PORT") {
            match v.trim().parse() {
                Ok(p) => config.port = p,
                Err(_) => problems.push("DKU_APINODE_PORT", format!("{v:?} is not a port number")),
            }
        }
        if let Some(v) = env.get("DKU_APINODE_BIND") {
            match v.trim().parse() {
                Ok(a) => config.bind = a,
                Err(_) => problems.push("DKU_APINODE_BIND", format!("{v:?} is not an IP address")),
            }
        }
        if let Some(p) = overrides.port {
            config.port = p;
        }
        if config.entity_audit.connection.is_none() && config.kafka.len() == 1 {
            config.entity_audit.connection = config.kafka.keys().next().cloned();
        }
        problems.into_result(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn priority_is_flag_then_env_then_file_then_default() {
        let none = HashMap::new();
        assert_eq!(ServerConfig::validate(None, &none, Overrides::default()).expect("ok").port, DEFAULT_PORT);
        let file = Some(r#"{"port": 13000}"#);
        assert_eq!(ServerConfig::validate(file, &none, Overrides::default()).expect("ok").port, 13000);
        let e = env(&[("DKU_APINODE_PORT", "14000")]);
        assert_eq!(ServerConfig::validate(file, &e, Overrides::default()).expect("ok").port, 14000);
        let flag = Overrides { port: Some(15000) };
        assert_eq!(ServerConfig::validate(file, &e, flag).expect("ok").port, 15000);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"{"port": "x", "maxBodyBytes": 10, "bindAddress": "nowhere",
            "auditLog": {"settings": {"targets": [{"type": "LOG4J", "topicsFiltering": "SELECTED", "topics": ["apinode-querry"]}]}}}"#;
        let e = env(&[("DKU_APINODE_PORT", "seventy")]);
        let problems = ServerConfig::validate(Some(text), &e, Overrides::default()).unwrap_err();
        let text = problems.to_string();
        assert_eq!(problems.items().len(), 5, "{text}");
        for needle in [
            "server.json: port",
            "maxBodyBytes",
            "bindAddress",
            "DKU_APINODE_PORT",
            "config/server.json: auditLog.settings.targets[0].topics[0]: unknown topic \"apinode-querry\"",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn keys_of_later_versions_are_kept_as_unused() {
        let c = ServerConfig::validate(Some(r#"{"webapps": {}}"#), &HashMap::new(), Overrides::default()).expect("ok");
        assert_eq!(c.unused_keys, ["webapps"]);
        assert!(ServerConfig::validate(Some("[1]"), &HashMap::new(), Overrides::default()).is_err());
        assert!(ServerConfig::validate(Some("{"), &HashMap::new(), Overrides::default()).is_err());
    }
}

#[cfg(test)]
mod kafka_tests {
    use super::*;

    #[test]
    fn kafka_connections_and_entity_audit_are_checked() {
        let text = r#"{"kafkaConnections": {"main": {"bootstrap.servers": "127.0.0.1:9092"}},
            "audit": {"enabled": true, "topic": "cdap-audit"},
            "auditLog": {"settings": {"targets": [{"type": "KAFKA", "connection": "main", "topic": "q-${routingKey}"}]}}}"#;
        let c = ServerConfig::validate(Some(text), &HashMap::new(), Overrides::default()).expect("valid");
        assert_eq!(c.entity_audit.connection.as_deref(), Some("main"), "the only connection");
        assert_eq!(c.entity_audit.topic, "cdap-audit");
        let bad = r#"{"kafkaConnections": {"main": {"bootstrap.servers": "nohost"}, "b": {"bootstrap.servers": "h:1", "no.such": "1"}},
            "audit": {"connection": "zzz"},
            "auditLog": {"settings": {"targets": [{"type": "KAFKA", "connection": "other"}]}}}"#;
        let text = ServerConfig::validate(Some(bad), &HashMap::new(), Overrides::default()).unwrap_err().to_string();
        for needle in [
            "kafkaConnections.main: \"nohost\" is not host:port",
            "kafkaConnections.b: ",
            "no.such",
            "audit.connection",
            "auditLog.settings.targets[0].connection: \"other\" is not defined",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }
}
