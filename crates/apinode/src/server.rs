//! A node's lifecycle: settings and registry loaded from the data directory,
//! logging and the audit runtime started, the listener bound,
//! `run/apinode.pid` and `run/apinode.port` written, then serving until
//! SIGTERM or SIGINT, and a graceful stop (requests in flight finish, the
//! last audit messages are sent, the audit runtime stops in its order, the
//! pid file is removed last). [`RunningNode`] is a server started in this
//! process (tests). The only module that imports `http` to serve.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use audit::AuditRuntime;
use audit::appender::AppenderRegistry;
use audit::runtime::{Logging, RuntimeSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Overrides, ServerConfig};
use crate::problems::Problems;
use crate::state::Node;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid settings.
    #[error("invalid configuration: {0}")]
    Config(Problems),
    /// The runtime log could not start.
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    /// The audit runtime could not start.
    #[error(transparent)]
    Audit(#[from] audit::runtime::StartError),
    /// The admin keys could not be read or the local secret written.
    #[error(transparent)]
    Keys(#[from] crate::auth::admin_keys::KeyStoreError),
    /// The TLS certificate, key or CA cannot be used.
    #[error("config/server.json: tls: {0}")]
    Tls(#[from] serve::TlsError),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// How long a graceful stop keeps trying to deliver spooled audit messages
/// to a destination that answers (what is left stays in the spool).
const AUDIT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server running in this process, for tests and embedding.
#[derive(Debug)]
pub struct RunningNode {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningNode {
    /// Serves `node` on `listener` in a background task.
    pub fn spawn(listener: TcpListener, node: Arc<Node>) -> std::io::Result<RunningNode> {
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let app = app(node.clone());
            crate::http::serve(listener, &node, app, async {
                let _ = rx.await;
            })
            .await
        });
        Ok(RunningNode { addr, stop: Some(tx), task })
    }

    /// Stops gracefully and waits for the server to finish.
    ///
    /// # Errors
    /// The server's I/O error, if it had one.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Runs a node from the command line until a stop signal: loads settings,
/// starts the runtime log, loads services, binds, writes the pid and port
/// files, serves, and cleans up.
///
/// # Errors
/// [`StartError`] when the node cannot start or its listener fails.
pub async fn run(data_dir: &Path, env: &HashMap<String, String>, overrides: Overrides) -> Result<(), StartError> {
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir).map_err(io(format!("creating {}", run_dir.display())))?;
    let config = ServerConfig::load(data_dir, env, overrides).map_err(StartError::Config)?;
    let registry = AppenderRegistry::new();
    // Trees before appenders: each file appender opens its tree as it is built.
    let integrity = &config.audit.integrity;
    if integrity.enabled {
        let ctx = audit::integrity::Integrity::open(data_dir, &config.node_id, integrity)
            .map_err(io(format!("opening the audit integrity state ({})", audit::integrity::KEY_FILE)))?;
        registry.set_integrity(ctx);
    }
    let (writer, guard) = crate::logging::init(data_dir, env, &registry)?;
    log::info!("Starting apinode {} on data directory {}", env!("CARGO_PKG_VERSION"), data_dir.display());
    if !config.unused_keys.is_empty() {
        log::warn!("config/server.json: keys not used by this version: {}", config.unused_keys.join(", "));
    }
    crate::permissions::secure(data_dir);
    let audit = start_audit(&config, &run_dir, Logging { writer, guard, registry })?;
    log::info!("Audit targets: {:?}", audit.dispatcher());
    let started_at = crate::audit_log::now();
    let addr = SocketAddr::new(config.bind, config.port);
    let tls = match &config.tls {
        Some(t) => {
            let files = t.resolved(data_dir).files;
            let built = files.server_config()?;
            log::info!(
                "HTTPS with {}{}",
                files.cert_file.display(),
                files.client_ca_file.as_ref().map_or(String::new(), |c| format!(
                    "; clients must present a certificate signed by {}",
                    c.display()
                ))
            );
            Some(built)
        }
        None => None,
    };
    let mut node = Node::load(data_dir, config, audit.clone())?;
    node.tls = tls;
    node.admin_keys.write_local_secret(data_dir)?;
    let node = Arc::new(node);
    let listener = TcpListener::bind(addr).await.map_err(io(format!("binding {addr}")))?;
    let bound = listener.local_addr().map_err(io("reading the bound address"))?;
    let pid_file = run_dir.join("apinode.pid");
    std::fs::write(run_dir.join("apinode.port"), format!("{}\n", bound.port()))
        .map_err(io("writing run/apinode.port"))?;
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(io("writing run/apinode.pid"))?;
    log::info!("Listening on {bound}");
    let lifecycle = |msg_type: &str, details: serde_json::Value| {
        crate::audit_log::node_event(&node.config.node_id, msg_type, details)
    };
    let start = lifecycle(
        "node-start",
        serde_json::json!({"pid": std::process::id(), "port": bound.port(), "version": env!("CARGO_PKG_VERSION")}),
    );
    let _ = node.record(vec![start]).await;
    let usage = crate::resource_usage::Usage::new(&node.config.node_id, started_at);
    let usage_task = tokio::spawn(usage.clone().run(node.clone()));
    let signal = stop_signal(audit.clone());
    let summaries = tokio::spawn(auth_summaries(node.clone()));
    let served = crate::http::serve(listener, &node, app(node.clone()), signal).await;
    summaries.abort();
    log::info!("Stopped serving; requests in flight have finished; draining the audit targets");
    usage_task.abort();
    let mut last = usage.final_messages(&node.metrics, &audit);
    last.extend(summary_messages(&node, true));
    last.push(lifecycle("node-stop", serde_json::json!({"pid": std::process::id()})));
    let _ = node.record(last).await;
    let stopping = audit.clone();
    let _ = tokio::task::spawn_blocking(move || {
        stopping.shutdown(std::time::Instant::now() + AUDIT_DRAIN_TIMEOUT);
    })
    .await;
    let _ = std::fs::remove_file(&pid_file);
    served.map_err(io("serving"))
}

/// The whole HTTP API of `node`: the user API with the admin API nested,
/// and `/metrics` (behind the admin key when `metrics.auth` is `ADMIN_KEY`).
pub fn app(node: Arc<Node>) -> axum::Router {
    let mut metrics = crate::http::observe::metrics_router(&node);
    if node.config.metrics.admin_key {
        metrics = metrics.route_layer(axum::middleware::from_fn_with_state(node.clone(), crate::admin::require_admin));
    }
    crate::http::router(node.clone(), crate::admin::router(node), metrics)
}

/// Every 5 s, the `authfail` summaries of the minutes that are over
/// (addresses that went past `authFailuresPerMinute`).
async fn auth_summaries(node: Arc<Node>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        let messages = summary_messages(&node, false);
        let _ = node.record(messages).await;
    }
}

fn summary_messages(node: &Node, all: bool) -> Vec<audit::Message> {
    node.auth_throttle
        .take_summaries(all)
        .iter()
        .map(|s| crate::audit_log::auth_failure_summary(&node.config.node_id, s))
        .collect()
}

/// Starts the audit runtime of `config` on `logging`.
fn start_audit(config: &ServerConfig, run_dir: &Path, logging: Logging) -> Result<Arc<AuditRuntime>, StartError> {
    let entity = &config.entity_audit;
    let entity_kafka = match (entity.enabled, entity.connection.as_ref()) {
        (true, Some(name)) => {
            let properties = config.kafka.get(name).map(Vec::as_slice).unwrap_or_default();
            log::info!("Entity audit messages go to the Kafka topic {} on connection {name}", entity.topic);
            Some((properties, entity.topic.as_str()))
        }
        _ => None,
    };
    let spool_root = run_dir.join("spool");
    let settings =
        RuntimeSettings { node_id: &config.node_id, audit: &config.audit, spool_root: &spool_root, entity_kafka };
    Ok(AuditRuntime::start(&settings, Some(logging))?)
}

/// Resolves on SIGTERM or SIGINT. SIGHUP makes every log file of `audit`
/// reopen (`bin/dss reopenlogs`, after an external logrotate).
async fn stop_signal(audit: Arc<AuditRuntime>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        log::error!("Cannot install signal handlers; the node stops only when killed");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { log::info!("SIGTERM received, stopping"); return; }
            _ = int.recv() => { log::info!("SIGINT received, stopping"); return; }
            _ = hup.recv() => {
                audit.reopen_logs();
                log::info!("SIGHUP received, log files reopened");
            }
        }
    }
}
