//! Serving one listener with the limits of docs/security.md "Hostile and
//! slow clients": at most `maxConnections` open connections (one more is
//! closed at once, counted, and logged at most once a minute, instead of
//! exhausting file descriptors); a client must send its whole request head
//! within `headerReadTimeoutSeconds` (hyper's header timeout); a connection
//! with no traffic and no request in progress for `idleTimeoutSeconds` is
//! closed ([`IdleTimeout`]); and a graceful stop that lets requests in
//! progress finish for at most `stopGraceSeconds`, then closes every
//! connection, slow or not. With TLS, the handshake must complete within
//! the head timeout, a plain HTTP request gets a 400 saying to use HTTPS,
//! and a client certificate's name travels with each request
//! ([`ClientName`]). The body read timeout is enforced where bodies are
//! read (by the application). Each request gets the client's address as
//! axum's `ConnectInfo`. Owns the accept loop and connections; it knows no
//! route.

use std::future::Future;
use std::io;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::idle::{Busy, IdleTimeout};
use crate::stats::ServeStats;
use crate::tls::ClientName;

/// The limits the server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Open client connections, at most.
    pub max_connections: usize,
    /// Time to send a whole request head.
    pub header_read_timeout: Duration,
    /// A connection with no traffic and no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// A graceful stop waits this long for requests in progress.
    pub stop_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then stops gracefully within `limits.stop_grace`.
///
/// # Errors
/// Never in practice: accept errors (too many open files) are logged and
/// retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stats: Arc<ServeStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut last_refusal_log: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    log::error!("Cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                log::warn!(
                    "maxConnections ({}) connections are open: new ones are closed at once ({} so far)",
                    limits.max_connections,
                    stats.refused.load(Ordering::Relaxed)
                );
                last_refusal_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let active = Arc::new(AtomicUsize::new(0));
        let io = IdleTimeout::new(stream, limits.idle_timeout, active.clone());
        let conn = Connection { app: app.clone(), addr, active, limits, watcher: graceful.watcher() };
        let (stats, tls) = (stats.clone(), tls.clone());
        stats.open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            let timed_out = match tls {
                None => conn.serve(io, None).await,
                Some(config) => match handshake(io, config, limits.header_read_timeout).await {
                    Ok((tls_io, name)) => conn.serve(tls_io, name).await,
                    Err(e) => {
                        stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                        log::debug!("TLS with {addr} failed: {e}");
                        false
                    }
                },
            };
            if timed_out {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        log::info!("Stopping: {open} connections open; requests in progress get {} s", limits.stop_grace.as_secs());
    }
    if tokio::time::timeout(limits.stop_grace, graceful.shutdown()).await.is_err() {
        log::warn!(
            "Stopping: {} connections still open after {} s are closed",
            connections.len(),
            limits.stop_grace.as_secs()
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// One accepted connection, to be served once its transport is ready.
struct Connection {
    app: Router,
    addr: SocketAddr,
    active: Arc<AtomicUsize>,
    limits: ServeLimits,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    /// Serves HTTP/1.1 on `io`; each request gets the client's address
    /// (and its certificate's name). Returns whether it ended on a timeout.
    async fn serve<I>(self, io: I, name: Option<ClientName>) -> bool
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { app, addr, active, limits, watcher } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            if let Some(n) = &name {
                request.extensions_mut().insert(n.clone());
            }
            let busy = Busy::enter(&active);
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(busy);
                response
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_headers(1000);
        match watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await {
            Err(e) => e.is_timeout() || is_timeout(&e),
            Ok(()) => false,
        }
    }
}

/// The TLS handshake, within `timeout`; a plain HTTP request is answered
/// with a clear 400 instead. Returns the stream and the client
/// certificate's name, if one was presented.
async fn handshake(
    io: IdleTimeout,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> io::Result<(tokio_rustls::server::TlsStream<IdleTimeout>, Option<ClientName>)> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(timeout, io.peek(&mut first)).await;
    match peeked {
        Ok(Ok(1)) if first[0] != 0x16 => {
            // Not a TLS record (0x16 = handshake): someone speaks plain HTTP.
            answer_plain_http(io, timeout).await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, "plain HTTP sent to the TLS port"));
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake in time")),
    }
    let accepted = tokio::time::timeout(timeout, tokio_rustls::TlsAcceptor::from(config).accept(io))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake took too long"))??;
    let name = accepted
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(crate::tls::client_name)
        .map(ClientName);
    Ok((accepted, name))
}

/// The 400 for a plain HTTP request on the TLS port. The request head is
/// read first (to its blank line, at most 16 KiB, within `timeout`) and the
/// connection drained for up to a second after the answer: a socket closed
/// with unread bytes makes the kernel send a reset, which can discard the
/// answer before the client reads it, or kill a client still writing its
/// head with SIGPIPE (bin/dss's probe, writing line by line, was).
async fn answer_plain_http(mut io: IdleTimeout, timeout: Duration) {
    const MAX_HEAD: usize = 16 * 1024;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !ends_head(&head) {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let _ = tokio::time::timeout_at(deadline, io.write_all(&crate::tls::plain_http_answer())).await;
    let _ = io.shutdown().await;
    let linger = tokio::time::Instant::now() + timeout.min(Duration::from_secs(1));
    while let Ok(Ok(n)) = tokio::time::timeout_at(linger, io.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// Whether `head` holds a whole HTTP request head (a blank line).
fn ends_head(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

fn is_timeout(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}
