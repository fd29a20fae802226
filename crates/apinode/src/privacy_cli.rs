//! The offline half of `apinode-admin`'s privacy commands (docs/privacy.md):
//! `audit-hash` and `audit-hmac-rotate` with the node stopped. Each writes
//! its admin audit record through the node's own logging configuration
//! before it answers or changes anything, as the admin API does. It never
//! prints a secret, nor records a looked-up value.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::admin::audit_policy::check_hashed_field;
use crate::offline::record_offline;
use crate::privacy::HmacKeys;
use crate::registry::files::ServiceFile;

/// The tokens of `value` in `field` of `service`, from the files.
///
/// # Errors
/// An unknown service, a field its policy does not HMAC, or an audit
/// record that could not be written.
pub fn offline_hash(data_dir: &Path, service: &str, field: &str, value: &Value) -> anyhow::Result<Value> {
    let path = data_dir.join("services").join(service).join("service.json");
    if crate::ids::ServiceId::new(service).is_err() || !path.is_file() {
        bail!("NotFound: unknown service {service:?}");
    }
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: ServiceFile =
        serde_json::from_slice(&text).with_context(|| format!("{} is not valid", path.display()))?;
    check_hashed_field(file.audit_policy.as_ref(), service, field)
        .map_err(|m| anyhow::anyhow!("InvalidRequest: {m}"))?;
    let keys = HmacKeys::open(data_dir)?;
    record_offline(data_dir, "audit-hash-lookup", json!({"serviceId": service, "field": field}))?;
    Ok(json!({"serviceId": service, "field": field, "tokens": keys.tokens(value)}))
}

/// A new audit HMAC key, made current.
///
/// # Errors
/// When the record or the key file cannot be written.
pub fn offline_rotate(data_dir: &Path) -> anyhow::Result<Value> {
    let keys = HmacKeys::open(data_dir)?;
    let key = keys.prepare();
    let id = key.id().to_owned();
    record_offline(data_dir, "audit-hmac-rotate", json!({"keyId": id}))?;
    keys.commit(key)?;
    Ok(json!({"keyId": id}))
}
