//! Serving one listener with the limits of docs/security.md "Hostile and
//! slow clients": at most `maxConnections` open connections (one more is
//! closed at once, counted, and logged at most once a minute, instead of
//! exhausting file descriptors); a client must send its whole request head
//! within `headerReadTimeoutSeconds` (hyper's header timeout); a connection
//! with no traffic and no request in progress for `idleTimeoutSeconds` is
//! closed ([`IdleTimeout`]); and a graceful stop that lets requests in
//! progress finish for at most `stopGraceSeconds`, then closes every
//! connection, slow or not. The body read timeout is enforced where bodies
//! are read (`request::read_body`). Each request gets the client's address
//! as axum's `ConnectInfo`. Owns the accept loop and connections; it knows
//! no route.

use std::future::Future;
use std::io;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::metrics::ServeStats;

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

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// gracefully within `limits.stop_grace`.
///
/// # Errors
/// Never in practice: accept errors (too many open files) are logged and
/// retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
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
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout, active.clone()));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
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
        let conn = graceful.watch(builder.serve_connection(io, service));
        let stats = stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            if let Err(e) = conn.await
                && (e.is_timeout() || is_timeout(&e))
            {
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

fn is_timeout(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
}

/// Counts a request in progress on a connection while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(active: &Arc<AtomicUsize>) -> Busy {
        active.fetch_add(1, Ordering::SeqCst);
        Busy(active.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection that fails with `TimedOut` once it has had no traffic for
/// `idle` while no request is in progress on it (a keep-alive connection
/// left open, or a client that sends nothing). Written here because tokio
/// and hyper have no idle timeout for a server connection.
pub struct IdleTimeout {
    inner: TcpStream,
    idle: Duration,
    /// The last traffic (or request in progress) seen.
    last: tokio::time::Instant,
    /// Armed for `last + idle`; re-armed when it fires early, so that
    /// traffic costs an `Instant::now()`, not a timer update.
    deadline: Pin<Box<tokio::time::Sleep>>,
    active: Arc<AtomicUsize>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, idle: Duration, active: Arc<AtomicUsize>) -> IdleTimeout {
        let last = tokio::time::Instant::now();
        IdleTimeout { inner, idle, last, deadline: Box::pin(tokio::time::sleep_until(last + idle)), active }
    }

    fn progress(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    /// On a pending operation: the error, once idle for too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = tokio::time::Instant::now();
            if self.active.load(Ordering::SeqCst) > 0 {
                self.last = now;
            }
            let due = self.last + self.idle;
            if due <= now {
                return Some(io::Error::new(io::ErrorKind::TimedOut, "idle connection closed"));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                self.progress();
                Poll::Ready(r)
            }
            Poll::Pending => match self.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.progress();
                Poll::Ready(r)
            }
            Poll::Pending => match self.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
