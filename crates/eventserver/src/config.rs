//! `config/eventserver.json` (docs/audit.md "Event server"): port (overridden by
//! `DKU_EVENTSERVER_PORT`), listen address, ingest keys, destinations with
//! their filters, required key and root folder, batch limits and the fsync
//! policy. [`EventServerConfig::validate`] is pure and reports every problem
//! with its path; reading the file is the only I/O. With no file: port 10000
//! and one destination for everything under `run/eventserver-data`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use audit_types::{Filter, is_safe_segment};

/// Port when nothing sets one.
pub const DEFAULT_PORT: u16 = 10000;
/// Largest accepted batch body (16 MiB).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;
/// Most events in one batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 10_000;
/// How long event ids are remembered for deduplication.
pub const DEFAULT_DEDUP_WINDOW_HOURS: u64 = 48;

/// When stored batches are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before every answer (the default: a 200 means on disk).
    Always,
    /// Never (the OS decides; a 200 means handed to the OS).
    Never,
}

/// One destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Its name (logs).
    pub name: String,
    /// Its topic and routing-key filters (the node's targets' rule: an
    /// event without a key matches only ALL).
    pub filter: Filter<String, String>,
    /// The only key allowed to write here, if any.
    pub required_key: Option<String>,
    /// The only client certificate name allowed to write here, if any
    /// (with `tls.clientCaFile`: a node cannot write another node's folders).
    pub required_client_name: Option<String>,
    /// Where its files go.
    pub root: PathBuf,
}

impl Destination {
    /// Whether an event of `topic` with `routing_key` goes here.
    pub fn takes(&self, topic: &str, routing_key: Option<&str>) -> bool {
        self.filter.takes(topic, routing_key)
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventServerConfig {
    /// TCP port (0: a free one, written to `run/eventserver.port`).
    pub port: u16,
    /// Listen address.
    pub bind: IpAddr,
    /// Whether callers must send `Authorization: Bearer <key>`.
    pub auth_required: bool,
    /// Keys allowed to write (besides each destination's required key).
    pub keys: Vec<String>,
    /// Where events go.
    pub destinations: Vec<Destination>,
    /// Largest batch body.
    pub max_batch_bytes: usize,
    /// Most events per batch.
    pub max_batch_events: usize,
    /// Fsync policy.
    pub fsync: Fsync,
    /// Deduplication window, hours.
    pub dedup_window_hours: u64,
    /// Verifier keys of the nodes whose checkpoints are witnessed
    /// (`witness.nodes`: nodeId → C2SP verifier key).
    pub witness: std::collections::BTreeMap<String, audit_types::tlog::NoteVerifier>,
    /// HTTPS (`tls`), paths resolved against the data directory.
    pub tls: Option<serve::TlsSettings>,
}

impl EventServerConfig {
    /// The settings with no file, for `data_dir`.
    pub fn defaults(data_dir: &Path) -> EventServerConfig {
        EventServerConfig {
            port: DEFAULT_PORT,
            bind: IpAddr::from([0, 0, 0, 0]),
            auth_required: false,
            keys: Vec::new(),
            destinations: vec![Destination {
                name: "all".into(),
                filter: Filter::all(),
                required_key: None,
                required_client_name: None,
                root: data_dir.join("run/eventserver-data"),
            }],
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            fsync: Fsync::Always,
            dedup_window_hours: DEFAULT_DEDUP_WINDOW_HOURS,
            witness: std::collections::BTreeMap::new(),
            tls: None,
        }
    }

    /// Reads `<data_dir>/config/eventserver.json` (absent: defaults).
    ///
    /// # Errors
    /// Every problem, as `path: message` lines.
    pub fn load(data_dir: &Path, env: &HashMap<String, String>) -> Result<EventServerConfig, Vec<String>> {
        let path = data_dir.join("config/eventserver.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(vec![format!("config/eventserver.json: cannot read: {e}")]),
        };
        owner_only(&path);
        Self::validate(data_dir, text.as_deref(), env)
    }

    /// Validates the file's text and the environment.
    ///
    /// # Errors
    /// Every problem, as `path: message` lines.
    pub fn validate(
        data_dir: &Path,
        text: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<EventServerConfig, Vec<String>> {
        let mut p = Vec::new();
        let mut c = Self::defaults(data_dir);
        let f = "config/eventserver.json";
        let object = match text.map(serde_json::from_str::<Value>) {
            None => Map::new(),
            Some(Ok(Value::Object(m))) => m,
            Some(Ok(_)) => {
                p.push(format!("{f}: must hold a JSON object"));
                Map::new()
            }
            Some(Err(e)) => {
                p.push(format!("{f}: not valid JSON: {e}"));
                Map::new()
            }
        };
        for (key, v) in &object {
            match key.as_str() {
                "port" => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
                    Some(n) => c.port = n,
                    None => p.push(format!("{f}: port: must be an integer from 0 to 65535")),
                },
                "bindAddress" => match v.as_str().and_then(|s| s.parse().ok()) {
                    Some(a) => c.bind = a,
                    None => p.push(format!("{f}: bindAddress: must be an IP address such as 127.0.0.1")),
                },
                "auth" => auth(v, &mut c, &mut p),
                "destinations" => c.destinations = destinations(data_dir, v, &mut p),
                "maxBatchBytes" => match v.as_u64().filter(|n| *n >= 1024) {
                    Some(n) => c.max_batch_bytes = usize::try_from(n).unwrap_or(usize::MAX),
                    None => p.push(format!("{f}: maxBatchBytes: must be an integer of at least 1024")),
                },
                "maxBatchEvents" => match v.as_u64().filter(|n| *n >= 1) {
                    Some(n) => c.max_batch_events = usize::try_from(n).unwrap_or(usize::MAX),
                    None => p.push(format!("{f}: maxBatchEvents: must be a positive integer")),
                },
                "fsync" => match v.as_str() {
                    Some("ALWAYS") => c.fsync = Fsync::Always,
                    Some("NEVER") => c.fsync = Fsync::Never,
                    _ => p.push(format!("{f}: fsync: must be ALWAYS or NEVER")),
                },
                "dedupWindowHours" => match v.as_u64().filter(|n| *n >= 1) {
                    Some(n) => c.dedup_window_hours = n,
                    None => p.push(format!("{f}: dedupWindowHours: must be a positive integer")),
                },
                "witness" => witness(v, &mut c, &mut p),
                "tls" => match serve::tls::parse_settings(v, data_dir) {
                    Ok(t) => c.tls = Some(t),
                    Err(found) => p.extend(found.into_iter().map(|(k, m)| format!("{f}: {k}: {m}"))),
                },
                other => p.push(format!(
                    "{f}: {other}: unknown key (known: port, bindAddress, auth, destinations, maxBatchBytes, maxBatchEvents, fsync, dedupWindowHours, witness, tls)"
                )),
            }
        }
        if let Some(v) = env.get("DKU_EVENTSERVER_PORT") {
            match v.trim().parse() {
                Ok(n) => c.port = n,
                Err(_) => p.push(format!("DKU_EVENTSERVER_PORT: {v:?} is not a port number")),
            }
        }
        if c.auth_required && c.keys.is_empty() && c.destinations.iter().all(|d| d.required_key.is_none()) {
            p.push(format!("{f}: auth.keys: auth.required is true but no key is configured"));
        }
        if p.is_empty() { Ok(c) } else { Err(p) }
    }
}

fn witness(v: &Value, c: &mut EventServerConfig, p: &mut Vec<String>) {
    let f = "config/eventserver.json: witness";
    let Some(nodes) = v.as_object().and_then(|o| {
        if let Some(other) = o.keys().find(|k| *k != "nodes") {
            p.push(format!("{f}.{other}: unknown key (known: nodes)"));
        }
        o.get("nodes")?.as_object()
    }) else {
        p.push(format!("{f}: must be {{\"nodes\": {{\"<nodeId>\": \"<verifier key>\"}}}}"));
        return;
    };
    for (node, key) in nodes {
        match key.as_str().map(audit_types::tlog::NoteVerifier::parse) {
            Some(Ok(k)) => {
                c.witness.insert(node.clone(), k);
            }
            Some(Err(e)) => p.push(format!("{f}.nodes.{node}: {e}")),
            None => p.push(format!("{f}.nodes.{node}: must be a verifier key (apinode-admin audit-public-key)")),
        }
    }
}

fn auth(v: &Value, c: &mut EventServerConfig, p: &mut Vec<String>) {
    let f = "config/eventserver.json: auth";
    let Some(o) = v.as_object() else {
        p.push(format!("{f}: must be an object"));
        return;
    };
    for (k, v) in o {
        match k.as_str() {
            "required" => match v.as_bool() {
                Some(b) => c.auth_required = b,
                None => p.push(format!("{f}.required: must be true or false")),
            },
            "keys" => match v.as_array() {
                Some(keys) => {
                    for (i, k) in keys.iter().enumerate() {
                        match k.as_str().filter(|s| s.len() >= 8) {
                            Some(s) => c.keys.push(s.to_owned()),
                            None => p.push(format!("{f}.keys[{i}]: must be a string of at least 8 characters")),
                        }
                    }
                }
                None => p.push(format!("{f}.keys: must be an array of strings")),
            },
            other => p.push(format!("{f}.{other}: unknown key (known: required, keys)")),
        }
    }
}

fn destinations(data_dir: &Path, v: &Value, p: &mut Vec<String>) -> Vec<Destination> {
    let f = "config/eventserver.json: destinations";
    let Some(list) = v.as_array().filter(|l| !l.is_empty()) else {
        p.push(format!("{f}: must be a non-empty array"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let path = format!("{f}[{i}]");
        let Some(o) = d.as_object() else {
            p.push(format!("{path}: must be an object"));
            continue;
        };
        let mut dest = Destination {
            name: format!("destination-{i}"),
            filter: Filter::all(),
            required_key: None,
            required_client_name: None,
            root: data_dir.join("run/eventserver-data"),
        };
        for (k, v) in o {
            match k.as_str() {
                "name" => match v.as_str().filter(|s| !s.is_empty()) {
                    Some(s) => dest.name = s.to_owned(),
                    None => p.push(format!("{path}.name: must be a non-empty string")),
                },
                "topicsFiltering" | "routingKeysFiltering" | "topics" | "routingKeys" => {}
                "requiredKey" => match v {
                    Value::Null => {}
                    Value::String(s) if s.len() >= 8 => dest.required_key = Some(s.clone()),
                    _ => p.push(format!("{path}.requiredKey: must be null or a string of at least 8 characters")),
                },
                "requiredClientName" => match v {
                    Value::Null => {}
                    Value::String(s) if !s.is_empty() => dest.required_client_name = Some(s.clone()),
                    _ => p.push(format!("{path}.requiredClientName: must be null or a client certificate's name")),
                },
                "root" => match v.as_str().filter(|s| !s.is_empty()) {
                    Some(s) => dest.root = data_dir.join(s),
                    None => p.push(format!("{path}.root: must be a folder path")),
                },
                other => p.push(format!(
                    "{path}.{other}: unknown key (known: name, topicsFiltering, topics, routingKeysFiltering, routingKeys, requiredKey, requiredClientName, root)"
                )),
            }
        }
        dest.filter.topics = selection(&path, o, "topicsFiltering", "topics", p);
        dest.filter.routing_keys = selection(&path, o, "routingKeysFiltering", "routingKeys", p);
        out.push(dest);
    }
    out
}

fn selection(
    path: &str,
    o: &Map<String, Value>,
    filtering: &str,
    list: &str,
    p: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    match o.get(filtering).map(Value::as_str) {
        None | Some(Some("ALL")) => {
            if o.contains_key(list) {
                p.push(format!("{path}.{list}: is only used with {filtering}: SELECTED"));
            }
            None
        }
        Some(Some("SELECTED")) => {
            let Some(items) = o.get(list).and_then(Value::as_array).filter(|a| !a.is_empty()) else {
                p.push(format!("{path}.{list}: must be a non-empty array when {filtering} is SELECTED"));
                return Some(BTreeSet::new());
            };
            let mut set = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str().filter(|s| is_safe_segment(s)) {
                    Some(s) => {
                        set.insert(s.to_owned());
                    }
                    None => p.push(format!(
                        "{path}.{list}[{i}]: must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'"
                    )),
                }
            }
            Some(set)
        }
        _ => {
            p.push(format!("{path}.{filtering}: must be ALL or SELECTED"));
            None
        }
    }
}

/// The file holds the keys nodes send (docs/security.md "Secrets"): it is
/// made the owner's only when others can read it, with a warning.
fn owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => log::warn!("{} could be read by others (mode {mode:o}); set to 600", path.display()),
            Err(e) => log::warn!("{} can be read by others (mode {mode:o}) and cannot be changed: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_is_one_destination_on_port_10000_and_env_overrides_the_port() {
        let dir = Path::new("/data");
        let c = EventServerConfig::validate(dir, None, &HashMap::new()).expect("defaults");
        assert_eq!(c.port, 10000);
        assert_eq!(c.destinations[0].root, dir.join("run/eventserver-data"));
        let env = HashMap::from([("DKU_EVENTSERVER_PORT".to_owned(), "10123".to_owned())]);
        assert_eq!(EventServerConfig::validate(dir, None, &env).expect("env").port, 10123);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"{"port": -1, "auth": {"required": true, "keys": ["short"]}, "fsync": "SOMETIMES",
            "destinations": [{"topicsFiltering": "SELECTED", "topics": ["../x"], "root": ""}], "colour": 1}"#;
        let p = EventServerConfig::validate(Path::new("/d"), Some(text), &HashMap::new()).unwrap_err();
        for needle in ["port:", "auth.keys[0]", "fsync:", "destinations[0].topics[0]", "destinations[0].root", "colour"]
        {
            assert!(p.iter().any(|l| l.contains(needle)), "{needle} missing from {p:#?}");
        }
    }

    #[test]
    fn filters_select_topics_and_keys() {
        let text = r#"{"destinations": [{"topicsFiltering": "SELECTED", "topics": ["apinode-query"],
            "routingKeysFiltering": "SELECTED", "routingKeys": ["churn"], "requiredKey": "churn-key-123"}]}"#;
        let c = EventServerConfig::validate(Path::new("/d"), Some(text), &HashMap::new()).expect("valid");
        let d = &c.destinations[0];
        assert!(d.takes("apinode-query", Some("churn")));
        assert!(!d.takes("apinode-query", None) && !d.takes("authfail", Some("churn")));
        assert_eq!(d.required_key.as_deref(), Some("churn-key-123"));
    }
}
