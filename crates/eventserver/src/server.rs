//! The event server's HTTP side and lifecycle: `POST /events` (key check,
//! batch check, then storage on the blocking pool, answered 200 only after
//! the store has synced), `GET /isAlive/`, and [`run`]: settings, runtime log
//! (`run/eventserver.log`), store, `run/eventserver.pid` and `.port`, serve
//! until SIGTERM or SIGINT, graceful stop. Errors are JSON
//! `{"errorType", "message"}` as on the node. Handlers stay short; the rules
//! live in `ingest` and `store`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;

use serve::ClientName;

use crate::config::EventServerConfig;
use crate::ingest::{self, BatchError};
use crate::store::Store;
use crate::witness;

/// What every request shares.
#[derive(Debug)]
pub struct Server {
    config: EventServerConfig,
    store: Mutex<Store>,
}

impl Server {
    /// A server over an opened store.
    pub fn new(config: EventServerConfig, store: Store) -> Server {
        Server { config, store: Mutex::new(store) }
    }
}

/// An answer other than 200.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, error_type, message: message.into() }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"errorType": self.error_type, "message": self.message}))).into_response()
    }
}

/// The routes.
pub fn router(server: Arc<Server>) -> Router {
    let limit = server.config.max_batch_bytes;
    Router::new()
        .route("/events", post(ingest_events))
        .route("/isAlive", get(is_alive))
        .route("/isAlive/", get(is_alive))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(server)
}

async fn is_alive() -> &'static str {
    "OK"
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

async fn ingest_events(
    State(server): State<Arc<Server>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    client: Option<Extension<ClientName>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let refused = |r: Refusal| {
        log::warn!("Refused a batch from {}: {} {}", addr.ip(), r.status.as_u16(), r.message);
        r
    };
    let body = body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "the batch is larger than {} bytes (maxBatchBytes); send smaller batches",
                server.config.max_batch_bytes
            )
        } else {
            e.body_text()
        };
        refused(Refusal::new(status, "BatchTooLarge", message))
    })?;
    let key = presented_key(&headers);
    let config = &server.config;
    if config.auth_required {
        let known = key.is_some_and(|k| {
            config
                .keys
                .iter()
                .chain(config.destinations.iter().filter_map(|d| d.required_key.as_ref()))
                .any(|c| same(c, k))
        });
        if !known {
            let why = if key.is_some() { "the key is not known" } else { "send Authorization: Bearer <key>" };
            return Err(refused(Refusal::new(StatusCode::UNAUTHORIZED, "Unauthorized", why)));
        }
    }
    let events = ingest::parse(&body, config.max_batch_events).map_err(|e| {
        let status = match e {
            BatchError::TooMany(..) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        refused(Refusal::new(status, "InvalidBatch", e.to_string()))
    })?;
    let client_name = client.map(|Extension(ClientName(n))| n);
    for (i, event) in events.iter().enumerate() {
        for d in config.destinations.iter().filter(|d| d.takes(&event.topic, event.routing_key.as_deref())) {
            if let Some(required) = &d.required_client_name
                && client_name.as_deref() != Some(required.as_str())
            {
                let message = format!(
                    "[{i}]: destination {:?} takes only events from the client certificate {required:?}; this connection presented {}",
                    d.name,
                    client_name.as_deref().map_or_else(|| "none".to_owned(), |n| format!("{n:?}"))
                );
                return Err(refused(Refusal::new(StatusCode::FORBIDDEN, "Forbidden", message)));
            }
            if let Some(required) = &d.required_key
                && !key.is_some_and(|k| same(required, k))
            {
                let message = format!(
                    "[{i}]: destination {:?} takes only events sent with its own key (topic {}, routing key {})",
                    d.name,
                    event.topic,
                    event.routing_key.as_deref().unwrap_or("none")
                );
                return Err(refused(Refusal::new(StatusCode::FORBIDDEN, "Forbidden", message)));
            }
        }
    }
    let origin = addr.ip().to_string();
    let for_store = server.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<std::io::Result<crate::store::Outcome>, String> {
        let mut store = for_store.store.lock().unwrap_or_else(PoisonError::into_inner);
        let roots_of = |e: &ingest::Event| store.routes(e).map(|d| d.root.clone()).collect();
        let accepted = witness::check(&for_store.config.witness, &events, &roots_of, &|e| store.has(&e.event_id))?;
        let outcome = store.write(&events, &origin, client_name.as_deref());
        if outcome.is_ok()
            && let Err(e) = witness::keep(&accepted)
        {
            log::error!("Cannot keep the latest witnessed checkpoints: {e}");
        }
        Ok(outcome)
    })
    .await;
    let written = match written {
        Ok(Err(conflict)) => {
            return Err(refused(Refusal::new(StatusCode::CONFLICT, "InconsistentCheckpoint", conflict)));
        }
        Ok(Ok(w)) => Ok(w),
        Err(e) => Err(e),
    };
    match written {
        Ok(Ok(o)) => {
            log::debug!("Stored {} events from {} ({} duplicates)", o.stored, addr.ip(), o.duplicates);
            if o.unrouted > 0 {
                log::warn!("{} events from {} match no destination and were not stored", o.unrouted, addr.ip());
            }
            Ok(axum::Json(json!({"stored": o.stored, "duplicates": o.duplicates, "unrouted": o.unrouted}))
                .into_response())
        }
        Ok(Err(e)) => {
            log::error!("Cannot store a batch from {}: {e}", addr.ip());
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "StorageFailed",
                format!("the batch could not be stored: {e}"),
            ))
        }
        Err(e) => {
            Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "StorageFailed", format!("storage task failed: {e}")))
        }
    }
}

/// Starts the runtime log: `run/eventserver.log`.
fn start_log(run_dir: &Path) -> anyhow::Result<log4rs::Handle> {
    use log4rs::append::file::FileAppender;
    use log4rs::config::{Appender, Config, Root};
    use log4rs::encode::pattern::PatternEncoder;
    let file = FileAppender::builder()
        .encoder(Box::new(PatternEncoder::new("[{d(%Y/%m/%d-%H:%M:%S%.3f)}] [{T}] [{l}] {t} - {m}{n}")))
        .build(run_dir.join("eventserver.log"))?;
    let config = Config::builder()
        .appender(Appender::builder().build("file", Box::new(file)))
        .build(Root::builder().appender("file").build(log::LevelFilter::Info))?;
    Ok(log4rs::init_config(config)?)
}

/// Runs the event server of `data_dir` until SIGTERM or SIGINT.
///
/// # Errors
/// Invalid settings (every problem), a store or a port that cannot be opened.
pub async fn run(data_dir: &Path, env: &HashMap<String, String>) -> anyhow::Result<()> {
    let config = EventServerConfig::load(data_dir, env)
        .map_err(|p| anyhow::anyhow!("invalid configuration:\n  {}", p.join("\n  ")))?;
    let run_dir = data_dir.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let _log = start_log(&run_dir)?;
    log::info!("Starting the event server {} on data directory {}", env!("CARGO_PKG_VERSION"), data_dir.display());
    let store = Store::open(config.destinations.clone(), config.fsync, config.dedup_window_hours)?;
    for d in &config.destinations {
        log::info!(
            "Destination {:?}: root {}, topics {}, routing keys {}, {}",
            d.name,
            d.root.display(),
            d.filter.topics.as_ref().map_or("ALL".into(), |t| t.iter().cloned().collect::<Vec<_>>().join(",")),
            d.filter.routing_keys.as_ref().map_or("ALL".into(), |t| t.iter().cloned().collect::<Vec<_>>().join(",")),
            if d.required_key.is_some() { "its own key required" } else { "no key of its own" }
        );
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    std::fs::write(run_dir.join("eventserver.port"), format!("{}\n", bound.port()))?;
    let pid_file = run_dir.join("eventserver.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
    log::info!("Listening on {bound}");
    let tls = match &config.tls {
        Some(t) => {
            let built = t.files.server_config().map_err(|e| anyhow::anyhow!("config/eventserver.json: tls: {e}"))?;
            log::info!(
                "HTTPS with {}{}",
                t.files.cert_file.display(),
                t.files
                    .client_ca_file
                    .as_ref()
                    .map_or(String::new(), |c| format!("; nodes must present a certificate signed by {}", c.display()))
            );
            Some(built)
        }
        None => None,
    };
    let app = router(Arc::new(Server::new(config, store)));
    let stats = Arc::new(serve::ServeStats::default());
    let served = serve::serve(listener, app, serve::ServeLimits::default(), tls, stats, stop_signal()).await;
    log::info!("Stopped; every acknowledged batch is on disk");
    let _ = std::fs::remove_file(&pid_file);
    Ok(served?)
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        log::error!("Cannot install signal handlers; the event server stops only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received, stopping"),
        _ = int.recv() => log::info!("SIGINT received, stopping"),
    }
}
