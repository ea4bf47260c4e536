//! The HTTP/1.1 accept loop: hyper's connection builder, with the limits
//! `axum::serve` does not expose.
//!
//! - header read timeout (`http.header_timeout_seconds`): hyper closes a
//!   connection whose request head is not complete in time (a slowloris
//!   sending a byte every few seconds). hyper also runs this timer while a
//!   keep-alive connection waits for its next request.
//! - idle timeout (`http.idle_timeout_seconds`): a connection with no
//!   request in progress for this long is closed (gracefully: a request
//!   that starts meanwhile is answered first).
//! - connection cap (`http.max_connections`): a connection is accepted only
//!   when a slot is free; the others wait in the kernel's listen backlog
//!   (and are refused by the kernel once that is full).
//! - the body read timeout lives in the router (`RequestBodyTimeoutLayer`),
//!   where a stalled body becomes a 408 in obol's error shape.
//!
//! Shutdown: on `stop` the loop stops accepting, every connection is told
//! to finish its in-flight request and close, and `serve` returns when the
//! last one has; the caller bounds that with `http.shutdown_grace_seconds`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The connection limits of `http.*`.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop`, then waits for open
/// connections to finish their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        // A slot first, then accept: beyond the cap, connections queue in
        // the kernel instead of each costing a task and a buffer here.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead
                    // of spinning on an error that persists.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = {
            let router = router.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                let busy = activity.begin();
                let router = router.clone();
                async move {
                    let response = router.oneshot(req.map(axum::body::Body::new)).await;
                    drop(busy);
                    response
                }
            })
        };
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        let idle = limits.idle_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let mut closing = false;
            loop {
                let wait = idle.saturating_sub(activity.idle_for());
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %remote, "connection ended with an error");
                        }
                        break;
                    }
                    () = stop.cancelled(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep(wait.max(Duration::from_millis(10))), if !closing => {
                        if activity.idle_for() >= idle {
                            tracing::debug!(%remote, "closing an idle connection");
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Requests in progress on one connection, and since when it has had none.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` when the last request ended.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Zero while a request is in progress.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst));
        self.start.elapsed().saturating_sub(since)
    }
}

/// Held while a request is handled; its drop marks the request done.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(now, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
