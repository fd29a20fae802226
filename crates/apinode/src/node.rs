//! A node's lifecycle: settings and registry loaded from the data directory,
//! the listener bound, `run/apinode.pid` and `run/apinode.port` written, then
//! serving until SIGTERM or SIGINT, and a graceful stop (requests in flight
//! finish; the pid file is removed last). [`Node`] is the state every handler
//! shares; [`RunningNode`] is a server started in this process (tests).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::keys::AdminKeyStore;
use crate::config::{Overrides, ServerConfig};
use crate::metrics::Metrics;
use crate::problems::Problems;
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
    /// Each service's recent query records.
    pub queries: QueryRings,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid settings.
    #[error("invalid configuration: {0}")]
    Config(Problems),
    /// The runtime log could not start.
    #[error(transparent)]
    Logging(#[from] crate::logging::LoggingError),
    /// An audit target could not start.
    #[error(transparent)]
    Audit(#[from] audit::dispatch::BuildError),
    /// The admin keys could not be read or the local secret written.
    #[error(transparent)]
    Keys(#[from] crate::admin::keys::KeyStoreError),
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

impl Node {
    /// Loads the registry and admin keys of `data_dir` with settings `config`.
    ///
    /// # Errors
    /// [`StartError::Keys`] when `config/admin-keys.json` is unreadable.
    pub fn load(data_dir: &Path, config: ServerConfig) -> Result<Node, StartError> {
        let admin_keys = AdminKeyStore::open(data_dir)?;
        let registry = Registry::load(data_dir);
        Ok(Node {
            data_dir: data_dir.to_path_buf(),
            config,
            registry,
            admin_keys,
            admin_lock: tokio::sync::Mutex::new(()),
            metrics: Metrics::default(),
            queries: QueryRings::default(),
        })
    }
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
        let task = tokio::spawn(crate::http::serve(listener, node, async {
            let _ = rx.await;
        }));
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
    let logging = crate::logging::init(data_dir, env)?;
    log::info!("Starting apinode {} on data directory {}", env!("CARGO_PKG_VERSION"), data_dir.display());
    if !config.unused_keys.is_empty() {
        log::warn!("config/server.json: keys not used by this version: {}", config.unused_keys.join(", "));
    }
    let dispatcher = audit::dispatch::Dispatcher::build(&config.audit, &run_dir.join("spool"), &config.node_id)?;
    log::info!("Audit targets: {dispatcher:?}");
    let dispatcher = audit::dispatch::install(dispatcher).map_err(|_| StartError::Io {
        what: "installing the audit dispatcher".into(),
        source: std::io::Error::other("one is installed already"),
    })?;
    let started_at = crate::audit_log::now();
    let entity = &config.entity_audit;
    if let (true, Some(name)) = (entity.enabled, entity.connection.as_ref()) {
        let properties = config.kafka.get(name).cloned().unwrap_or_default();
        crate::entity::start_kafka(&properties, &entity.topic, &run_dir.join("spool/entity-audit")).map_err(|e| {
            StartError::Io {
                what: format!("starting entity audit to Kafka ({name})"),
                source: std::io::Error::other(e),
            }
        })?;
        log::info!("Entity audit messages go to the Kafka topic {} on connection {name}", entity.topic);
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let mut node = Node::load(data_dir, config)?;
    node.admin_keys.write_local_secret(data_dir)?;
    let node = Arc::new(node);
    let listener = TcpListener::bind(addr).await.map_err(io(format!("binding {addr}")))?;
    let bound = listener.local_addr().map_err(io("reading the bound address"))?;
    let pid_file = run_dir.join("apinode.pid");
    std::fs::write(run_dir.join("apinode.port"), format!("{}\n", bound.port()))
        .map_err(io("writing run/apinode.port"))?;
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(io("writing run/apinode.pid"))?;
    log::info!("Listening on {bound}");
    let node_id = node.config.node_id.clone();
    let lifecycle = |msg_type: &str, details: serde_json::Value| {
        audit::Message::event(audit::Topic::Generic, log::Level::Info, &node_id, msg_type, None, details)
    };
    dispatcher.send(lifecycle(
        "node-start",
        serde_json::json!({"pid": std::process::id(), "port": bound.port(), "version": env!("CARGO_PKG_VERSION")}),
    ));
    let period = Arc::new(std::sync::Mutex::new(crate::resource_usage::Period::default()));
    let usage_task = tokio::spawn(crate::resource_usage::run(node.clone(), period.clone(), started_at.clone()));
    let served = crate::http::serve(listener, node.clone(), stop_signal()).await;
    log::info!("Stopped serving; requests in flight have finished; draining the audit targets");
    usage_task.abort();
    let (usage, drops) = {
        let mut p = period.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let usage = crate::resource_usage::message(&node, &mut p, &started_at, true);
        (usage, crate::resource_usage::drops_message(&node, &mut p))
    };
    dispatcher.send(usage);
    if let Some(d) = drops {
        dispatcher.send(d);
    }
    dispatcher.send(lifecycle("node-stop", serde_json::json!({"pid": std::process::id()})));
    let drained = tokio::task::spawn_blocking(|| {
        let deadline = std::time::Instant::now() + AUDIT_DRAIN_TIMEOUT;
        audit::dispatch::global().shutdown(deadline);
        crate::entity::stop_kafka(deadline);
    });
    let _ = drained.await;
    log::info!("Audit targets drained; writing the last log records");
    logging.shutdown();
    // Kafka appenders take the writer's last records, then drain.
    let _ = tokio::task::spawn_blocking(|| {
        audit::kafka::appender::shutdown_all(std::time::Instant::now() + AUDIT_DRAIN_TIMEOUT);
    })
    .await;
    let _ = std::fs::remove_file(&pid_file);
    served.map_err(io("serving"))
}

/// Resolves on SIGTERM or SIGINT. SIGHUP makes every log file reopen
/// (`bin/dss reopenlogs`, after an external logrotate).
async fn stop_signal() {
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
                audit::appender::request_reopen();
                log::info!("SIGHUP received, log files reopened");
            }
        }
    }
}
