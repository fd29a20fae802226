//! The idle timeout of a server connection: tokio and hyper have none.
//! Owns nothing but the wrapped stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Counts a request in progress on a connection while it lives.
pub struct Busy(Arc<AtomicUsize>);

impl Busy {
    /// One more request in progress on the connection counted by `active`.
    pub fn enter(active: &Arc<AtomicUsize>) -> Busy {
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
    /// Peeks at the first bytes without consuming them.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await
    }

    /// Wraps `inner`; `active` counts its requests in progress.
    pub fn new(inner: TcpStream, idle: Duration, active: Arc<AtomicUsize>) -> IdleTimeout {
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
