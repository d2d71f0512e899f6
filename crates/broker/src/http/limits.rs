//! Bounds on what HTTP clients can take, so that a slow or hostile one
//! cannot affect the Kafka listeners or the other HTTP clients: at most
//! `http.max.connections` connections at once (each holds a descriptor the
//! Kafka listener shares the limit of; further ones wait in the backlog),
//! and at most `http.max.requests.per.second` requests from one client
//! address (a token bucket with one second of burst; more are answered 429
//! with Retry-After).

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A listener that accepts only while fewer than its limit are open.
pub(super) struct LimitedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl LimitedListener {
    pub(super) fn new(listener: TcpListener, max_connections: usize) -> LimitedListener {
        LimitedListener {
            listener,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }
}

/// A connection holding its slot until it closes.
pub(super) struct CountedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    return (
                        CountedStream {
                            stream,
                            _slot: slot,
                        },
                        peer,
                    )
                }
                Err(e) => {
                    // Out of descriptors and the like: back off, as the
                    // Kafka accept loop does, rather than spin.
                    tracing::debug!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The client address a request came from, for the rate limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Per-address token buckets: (tokens, last refill).
pub(super) struct RateLimit {
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Addresses remembered at most; idle ones are forgotten beyond it.
const MAX_TRACKED: usize = 10_000;

impl RateLimit {
    pub(super) fn new(per_second: u32) -> Arc<RateLimit> {
        Arc::new(RateLimit {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token for `ip`; `false` when its bucket is empty.
    fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let full = self.per_second;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * full < full
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.per_second);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(super) async fn rate_limited(
    State(limit): State<Arc<RateLimit>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    if limit.admit(peer.ip(), Instant::now()) {
        return next.run(request).await;
    }
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "1")],
        "too many requests from this address (http.max.requests.per.second)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_a_second_of_burst_then_refills() {
        let limit = RateLimit::new(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| limit.admit(ip, t0)));
        assert!(!limit.admit(ip, t0), "the burst is spent");
        assert!(limit.admit(other, t0), "each address has its own bucket");
        assert!(limit.admit(ip, t0 + Duration::from_millis(400)), "refilled");
        assert!(!limit.admit(ip, t0 + Duration::from_millis(400)));
    }
}
