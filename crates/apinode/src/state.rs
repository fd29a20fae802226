//! The state every request handler shares ([`Node`]): the data directory,
//! validated settings, the registry of services, admin keys, the admin lock,
//! metrics, the recent-query rings and the node's audit runtime. It depends
//! on nothing that serves HTTP; starting, serving and stopping live in
//! `server`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use audit::AuditRuntime;
use audit::commit::{Durability, OnWriteFailure, Unrecorded};
use audit::runtime::EntityMessage;
use serde_json::Value;

use crate::auth::KeyHasher;
use crate::auth::admin_keys::{AdminKeyStore, KeyStoreError};
use crate::auth::throttle::AuthThrottle;
use crate::config::ServerConfig;
use crate::entity::Entity;
use crate::metrics::{Metrics, ServeStats};
use crate::query_ring::QueryRings;
use crate::registry::Registry;

/// What every request handler shares.
#[derive(Debug)]
pub struct Node {
    /// The data directory (services, config, run).
    pub data_dir: PathBuf,
    /// Validated settings.
    pub config: ServerConfig,
    /// Every service.
    pub registry: Registry,
    /// Admin API keys.
    pub admin_keys: AdminKeyStore,
    /// Serialises admin changes (validate, stage, record, commit).
    pub admin_lock: tokio::sync::Mutex<()>,
    /// Request counters.
    pub metrics: Metrics,
    /// `GET /metrics` (none when `metrics.enabled` is false).
    pub prometheus: Option<crate::prometheus::Prometheus>,
    /// Each service's recent query records.
    pub queries: QueryRings,
    /// The audit trail: every record the node makes goes through it.
    pub audit: Arc<AuditRuntime>,
    /// Hashes key secrets with the node's pepper.
    pub key_hasher: KeyHasher,
    /// The keys of HMAC'd audit fields (docs/privacy.md).
    pub hmac_keys: crate::privacy::HmacKeys,
    /// Authentication failures per client address and minute.
    pub auth_throttle: AuthThrottle,
    /// Connections accepted, refused and timed out.
    pub serve_stats: Arc<ServeStats>,
    /// The TLS settings the port serves with (none: plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Node {
    /// Loads the registry and admin keys of `data_dir` with settings `config`,
    /// recording through `audit`.
    ///
    /// # Errors
    /// [`KeyStoreError`] when `config/admin-keys.json` is unreadable.
    pub fn load(data_dir: &Path, config: ServerConfig, audit: Arc<AuditRuntime>) -> Result<Node, KeyStoreError> {
        let admin_keys = AdminKeyStore::open(data_dir)?;
        let registry = Registry::load(data_dir);
        let key_hasher = admin_keys.hasher().clone();
        let hmac_keys = crate::privacy::HmacKeys::open(data_dir)
            .map_err(|source| KeyStoreError::Io { path: crate::privacy::hmac_keys::FILE.to_owned(), source })?;
        let auth_throttle = AuthThrottle::new(config.limits.auth_failures_per_minute);
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let prometheus = config.metrics.enabled.then(|| crate::prometheus::Prometheus::new(audit.clone(), started));
        Ok(Node {
            prometheus,
            key_hasher,
            hmac_keys,
            auth_throttle,
            serve_stats: Arc::default(),
            tls: None,
            data_dir: data_dir.to_path_buf(),
            config,
            registry,
            admin_keys,
            admin_lock: tokio::sync::Mutex::new(()),
            metrics: Metrics::default(),
            queries: QueryRings::default(),
            audit,
        })
    }

    /// Records audit messages as the node's durability says (never waits on
    /// the async runtime's workers).
    ///
    /// # Errors
    /// [`Unrecorded`] when some record could not be written.
    pub async fn record(&self, messages: Vec<audit::Message>) -> Result<(), Unrecorded> {
        self.audit.submit(messages, Durability::Async).await
    }

    /// As [`Node::record`], with the durability raised to `at_least` (a
    /// service's `auditDurability`).
    ///
    /// # Errors
    /// [`Unrecorded`] when some record could not be written.
    pub async fn record_at(&self, messages: Vec<audit::Message>, at_least: Durability) -> Result<(), Unrecorded> {
        self.audit.submit(messages, at_least).await
    }

    /// Whether a request whose records were not recorded must be refused
    /// (`auditLog.onWriteFailure: REFUSE`).
    pub fn refuses_unrecorded(&self) -> bool {
        self.audit.on_write_failure() == OnWriteFailure::Refuse
    }

    /// Publishes an entity audit message of `entity`.
    pub async fn entity(&self, entity: Entity<'_>, kind: &str, user: &str, payload: Value) {
        let msg: EntityMessage = crate::entity::message(entity, kind, user, payload);
        self.audit.publish_entity(msg).await;
    }
}
