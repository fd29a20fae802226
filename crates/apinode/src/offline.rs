//! Admin changes made by `apinode-admin` with the node stopped (admin
//! keys, audit HMAC keys, look-ups): their admin audit record, written
//! through the node's own logging configuration and confirmed on disk
//! before the change is made, as the node does. Owns no key file.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Who runs the command (`$USER`).
pub fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "apinode-admin".into())
}

/// Records an offline change through the node's logging configuration and
/// waits for the record to be on disk, as the node does.
pub fn record_offline(data_dir: &Path, msg_type: &str, details: Value) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let registry = audit::appender::AppenderRegistry::new();
    let (writer, guard) =
        crate::logging::init(data_dir, &env, &registry).context("starting the logging configuration")?;
    let node_id = crate::config::ServerConfig::load(data_dir, &env, crate::config::Overrides::default())
        .map(|c| c.node_id)
        .unwrap_or_else(|_| crate::config::ServerConfig::default().node_id);
    let mut extra = json!({"auth": {"keyId": null, "label": "apinode-admin (offline)"}});
    if let (Some(r), Value::Object(d)) = (extra.as_object_mut(), details) {
        r.extend(d);
    }
    let user = whoami();
    let record = audit::Message::event(audit::Topic::Generic, log::Level::Info, &node_id, msg_type, Some(&user), extra);
    // Offline changes are written to this machine's log4j loggers only: the
    // node's network targets are not started by the CLI (their spools belong
    // to the running node).
    let (ticket, receipt) = audit::commit::Ticket::new(true);
    let taken = writer.emit(record.topic.target(), record.level, record.text.clone(), Some(&ticket));
    ticket.seal();
    let written = receipt.wait_blocking();
    guard.shutdown();
    if !taken {
        bail!(
            "the admin audit record could not be written (the logger {} is OFF); the change was not made",
            record.topic.logger()
        );
    }
    written.context("the admin audit record could not be written; the change was not made")
}
