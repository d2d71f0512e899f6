//! Serving the Kafka listeners: one accept loop per client listener, and
//! per connection a reader that decodes requests in order and a writer that
//! sends their responses in the same order. TLS listeners (SSL, SASL_SSL)
//! first complete a rustls handshake, bounded in time, and take the client
//! certificate's subject as the principal; SASL listeners then require a
//! login before anything but ApiVersions and the SASL APIs.

use crate::config::BrokerConfig;
use crate::connection_limits::{
    AcceptBackoff, ConnectionLimits, ConnectionSlot, LogThrottle, LOG_INTERVAL,
};
use crate::handlers::{self, Peer, Reply};
use crate::listeners::SecurityProtocol;
use crate::quota::request::QuotaAccount;
use crate::security::principal::{self, PrincipalRules};
use crate::security::tls::TlsServer;
use crate::security::ConnectionAuth;
use crate::state::BrokerState;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use sluice_protocol::envelope::{self, RequestHead};
use sluice_protocol::frame;
use sluice_storage::DirLock;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Requests a connection may have in flight before the reader waits.
const MAX_IN_FLIGHT: usize = 128;

/// What every connection of one listener shares.
pub(crate) struct ListenerContext {
    pub(crate) name: Arc<str>,
    pub(crate) protocol: SecurityProtocol,
    /// The TLS server side, on SSL and SASL_SSL listeners.
    pub(crate) tls: Option<Arc<TlsServer>>,
    /// `ssl.principal.mapping.rules`, for client certificates.
    pub(crate) principal_rules: Arc<PrincipalRules>,
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    context: Arc<ListenerContext>,
    state: Arc<BrokerState>,
    limits: Arc<ConnectionLimits>,
    _data_dir_lock: Arc<DirLock>,
    mut stopped: watch::Receiver<bool>,
) {
    let timeouts = ConnectionTimeouts::from_config(&state.config);
    let mut backoff = AcceptBackoff::new();
    let failures_log = LogThrottle::new(LOG_INTERVAL);
    // As in Kafka, the inter-broker listener is spared the broker-wide
    // limits only when there are other listeners to limit.
    let inter_broker = *context.name == *state.inter_broker_listener && state.listeners.len() > 1;
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => return,
            permit = limits.wait_for_slot(&context.name, inter_broker) => permit,
        };
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff.succeeded();
                // Refused connections are dropped, which closes them at once.
                let Ok(slot) = limits.admit(peer.ip(), permit) else {
                    continue;
                };
                let throttle = if state.quotas.ip_active() {
                    state.quotas.connection_created(&state.image(), peer.ip())
                } else {
                    crate::quota::Throttle::default()
                };
                if !throttle.is_zero() {
                    // Kafka's ConnectionThrottledException: the connection
                    // is held, unserved, for the throttle, then closed.
                    tracing::debug!(%peer, throttle_ms = throttle.ms(), "closing connection: the address is over its connection_creation_rate quota");
                    tokio::spawn(async move {
                        tokio::time::sleep(throttle.0).await;
                        drop((socket, slot));
                    });
                    continue;
                }
                let _ = socket.set_nodelay(true);
                tokio::spawn(open_connection(
                    socket,
                    peer,
                    Arc::clone(&context),
                    state.clone(),
                    timeouts,
                    slot,
                ));
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) the pending connection
                // stays in the backlog and accept fails again at once.
                let pause = backoff.failed();
                if let Some(failures) = failures_log.record(std::time::Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        failures,
                        max_pause_ms = pause.as_millis() as u64,
                        "accepting connections fails; backing off (logged at most every {}s)",
                        LOG_INTERVAL.as_secs()
                    );
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Completes the TLS handshake on TLS listeners, works out who the client
/// is, and serves the connection. A handshake that fails or takes longer
/// than `socket.request.read.timeout.ms` closes only this connection.
async fn open_connection(
    socket: TcpStream,
    peer: SocketAddr,
    context: Arc<ListenerContext>,
    state: Arc<BrokerState>,
    timeouts: ConnectionTimeouts,
    slot: ConnectionSlot,
) {
    let sasl = context.protocol.sasl();
    let Some(tls) = &context.tls else {
        let auth = if sasl {
            ConnectionAuth::sasl(&context.name)
        } else {
            ConnectionAuth::none()
        };
        let (reader, writer) = socket.into_split();
        serve_connection(reader, writer, peer, context, state, timeouts, slot, auth).await;
        return;
    };
    let handshake = tls.acceptor().accept(socket);
    let stream = match tokio::time::timeout(timeouts.request_read, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%peer, listener = %context.name, error = %e, "closing connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, listener = %context.name, "closing connection: no TLS handshake within socket.request.read.timeout.ms");
            return;
        }
    };
    let auth = if sasl {
        ConnectionAuth::sasl(&context.name)
    } else {
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first());
        match certificate.map(|c| certificate_principal(c, &context.principal_rules)) {
            None => ConnectionAuth::certificate(None),
            Some(Ok(principal)) => ConnectionAuth::certificate(Some(principal)),
            Some(Err(reason)) => {
                tracing::info!(%peer, listener = %context.name, %reason, "closing connection");
                return;
            }
        }
    };
    let (reader, writer) = tokio::io::split(stream);
    serve_connection(reader, writer, peer, context, state, timeouts, slot, auth).await;
}

/// `User:` and the certificate's subject as `ssl.principal.mapping.rules`
/// map it; `Err` (no rule matches, an unreadable subject) refuses it.
fn certificate_principal(certificate: &[u8], rules: &PrincipalRules) -> Result<String, String> {
    let subject = principal::subject_name(certificate)?;
    rules
        .apply(&subject)
        .map(|name| format!("User:{name}"))
        .ok_or_else(|| {
            format!("no ssl.principal.mapping.rules rule matches the client certificate's subject {subject}")
        })
}

/// How long a connection may be silent, or take over one request.
#[derive(Debug, Clone, Copy)]
struct ConnectionTimeouts {
    /// `connections.max.idle.ms`; `None` when -1 turns it off.
    idle: Option<Duration>,
    /// `socket.request.read.timeout.ms`: first byte to last of one request.
    request_read: Duration,
}

impl ConnectionTimeouts {
    fn from_config(config: &BrokerConfig) -> ConnectionTimeouts {
        let idle_ms = config.get_i64("connections.max.idle.ms");
        ConnectionTimeouts {
            idle: u64::try_from(idle_ms).ok().map(Duration::from_millis),
            request_read: Duration::from_millis(
                config.get_i64("socket.request.read.timeout.ms").max(1) as u64,
            ),
        }
    }

    /// When the reader should next look at the clock; `None` to wait for
    /// bytes however long they take. `request_started` is when the partial
    /// request in the buffer began to arrive.
    fn deadline(&self, activity: &Activity, request_started: Option<Instant>) -> Option<Instant> {
        let idle = self.idle.map(|idle| {
            let deadline = activity.last() + idle;
            if activity.busy() {
                // A response is still due: no sooner than one idle period on.
                deadline.max(Instant::now() + idle)
            } else {
                deadline
            }
        });
        let read = request_started.map(|started| started + self.request_read);
        match (idle, read) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Why the connection must close now, if it must.
    fn expired(
        &self,
        activity: &Activity,
        request_started: Option<Instant>,
    ) -> Option<&'static str> {
        if request_started.is_some_and(|started| started.elapsed() >= self.request_read) {
            return Some("a request did not arrive whole within socket.request.read.timeout.ms");
        }
        let idle_for = activity.last().elapsed();
        if !activity.busy() && self.idle.is_some_and(|idle| idle_for >= idle) {
            return Some("idle for longer than connections.max.idle.ms");
        }
        None
    }
}

/// What the reader and writer of one connection share to tell whether the
/// connection is idle: requests whose response is not yet written, and when
/// the last byte went either way.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Until when (ms after `started`) a throttled client's next request
    /// waits unread; 0 when it is not throttled.
    muted_until_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            muted_until_ms: AtomicU64::new(0),
        }
    }

    /// Reads nothing more from the client for `throttle` (KIP-219): its
    /// response goes out now, its next request waits. One mute lasts at
    /// most `max` (a whole quota window): a client still in debt after it
    /// is throttled again by its next request, while a client that hung up
    /// does not hold its connection slot for an unbounded debt.
    fn mute_for(&self, throttle: Duration, max: Duration) {
        if throttle.is_zero() {
            return;
        }
        let until = self.started.elapsed().saturating_add(throttle.min(max));
        let until = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.muted_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// When a muted connection may be read again.
    fn muted_until(&self) -> Option<Instant> {
        let until = self.muted_until_ms.load(Ordering::Relaxed);
        let until = self.started + Duration::from_millis(until);
        (until > Instant::now()).then_some(until)
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// A response slot in request order: ready bytes, or a task producing them.
enum Outgoing {
    Ready(Bytes),
    Pending(JoinHandle<Option<Bytes>>),
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    mut reader: impl AsyncRead + Unpin + Send + 'static,
    mut writer: impl AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    context: Arc<ListenerContext>,
    state: Arc<BrokerState>,
    timeouts: ConnectionTimeouts,
    _slot: ConnectionSlot,
    mut auth: ConnectionAuth,
) {
    let _counted = state.metrics.connection_opened();
    let activity = Arc::new(Activity::new());
    let (tx, mut rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let writer_activity = activity.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let bytes = match out {
                Outgoing::Ready(b) => Some(b),
                Outgoing::Pending(task) => match task.await {
                    Ok(b) => b,
                    Err(_) => return,
                },
            };
            if let Some(bytes) = bytes {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
                // A TLS session may hold encrypted bytes back until flushed
                // (a no-op on plain TCP); flush once no response is queued.
                if rx.is_empty() && writer.flush().await.is_err() {
                    return;
                }
            }
            writer_activity.touch();
            writer_activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    });
    let max_frame = state.config.get_i64("socket.request.max.bytes") as usize;
    // Kafka reports client hosts as "/<ip>".
    let client = Peer {
        host: format!("/{}", peer.ip()),
        listener: Arc::clone(&context.name),
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'conn: loop {
        // When the request being read began to arrive.
        let mut request_started = (!buf.is_empty()).then(Instant::now);
        let frame = loop {
            let limit = if auth.authenticated() {
                max_frame
            } else {
                max_frame.min(state.sasl.max_receive_size)
            };
            match frame::take_frame(&mut buf, limit) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => {
                    if looks_like_tls(&buf) && !context.protocol.tls() {
                        tracing::warn!(%peer, listener = %context.name, "closing connection: a TLS handshake on a listener without TLS (use the SSL or SASL_SSL listener)");
                    } else {
                        tracing::warn!(%peer, error = %e, "closing connection");
                    }
                    break 'conn;
                }
            }
            let read = reader.read_buf(&mut buf);
            let read = match timeouts.deadline(&activity, request_started) {
                None => read.await,
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), read).await {
                    Ok(read) => read,
                    Err(_) => match timeouts.expired(&activity, request_started) {
                        Some(reason) => {
                            tracing::debug!(%peer, reason, "closing connection");
                            break 'conn;
                        }
                        None => continue,
                    },
                },
            };
            match read {
                Ok(0) | Err(_) => break 'conn,
                Ok(_) => {
                    activity.touch();
                    request_started.get_or_insert_with(Instant::now);
                }
            }
        };
        if let Some(until) = activity.muted_until() {
            tokio::time::sleep_until(until.into()).await;
        }
        if auth.expects_raw_token() {
            match raw_sasl_token(&state, frame, &client, &mut auth).await {
                Ok(reply) => {
                    activity.in_flight.fetch_add(1, Ordering::Relaxed);
                    if tx.send(Outgoing::Ready(reply)).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(reason) => {
                    tracing::info!(%peer, %reason, "closing connection");
                    break;
                }
            }
        }
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        match handle_frame(&state, frame, &client, &mut auth, &activity).await {
            Ok(Some(out)) => {
                if tx.send(out).await.is_err() {
                    break;
                }
                if let Some(reason) = auth.take_close() {
                    // The reply (an authentication error) is still written.
                    tracing::info!(%peer, %reason, "closing connection");
                    break;
                }
            }
            Ok(None) => {
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// One SASL token sent as a raw frame after SaslHandshake v0: the reply is
/// the mechanism's answer as a raw frame; a failure closes the connection
/// (after `connection.failed.authentication.delay.ms`), as v0 has no way
/// to carry an error.
async fn raw_sasl_token(
    state: &Arc<BrokerState>,
    token: Bytes,
    client: &Peer,
    auth: &mut ConnectionAuth,
) -> Result<Bytes, String> {
    let (outcome, delay) =
        handlers::sasl_authenticate::authenticate(state, auth, token.to_vec(), &client.host).await;
    if outcome.error_code != sluice_protocol::error::NONE {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        return Err("failed SASL authentication (SaslHandshake v0, raw tokens)".to_string());
    }
    let len = u32::try_from(outcome.auth_bytes.len()).map_err(|_| "SASL token too large")?;
    let mut reply = Vec::with_capacity(4 + outcome.auth_bytes.len());
    reply.extend_from_slice(&len.to_be_bytes());
    reply.extend_from_slice(&outcome.auth_bytes);
    Ok(Bytes::from(reply))
}

/// Decodes and dispatches one request. `Err` closes the connection, as Kafka
/// does for requests it cannot parse.
async fn handle_frame(
    state: &Arc<BrokerState>,
    frame: Bytes,
    client: &Peer,
    auth: &mut ConnectionAuth,
    activity: &Arc<Activity>,
) -> Result<Option<Outgoing>, String> {
    let head = RequestHead::peek(&frame).map_err(|e| e.to_string())?;
    let api_key =
        ApiKey::try_from(head.api_key).map_err(|_| format!("unknown API key {}", head.api_key))?;
    auth.admit(api_key, Instant::now())?;
    let Some(range) = handlers::supported(api_key) else {
        return Err(format!("unsupported API {api_key:?}"));
    };
    if head.api_version < range.min || head.api_version > range.max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 so any client can read the error.
            let body = handlers::api_versions::unsupported_version_response();
            return envelope::encode_response(api_key, 0, head.correlation_id, &body)
                .map(|b| Some(Outgoing::Ready(b)))
                .map_err(|e| e.to_string());
        }
        return Err(format!(
            "unsupported version {} of {api_key:?}",
            head.api_version
        ));
    }
    if head.api_version < range.min_implemented {
        return Err(format!(
            "{api_key:?} v{} is advertised for client feature detection but not served (use v{} or later)",
            head.api_version, range.min_implemented
        ));
    }
    let received = Instant::now();
    let frame_len = frame.len();
    let mut request = envelope::decode_request(frame).map_err(|e| e.to_string())?;
    let from_inter_broker = *client.listener == *state.inter_broker_listener;
    let account = QuotaAccount::open(
        state,
        &mut request,
        frame_len,
        auth.principal(),
        from_inter_broker,
    );
    let max_mute = state.quotas.max_mute();
    if let Some(account) = &account {
        // A produce's throttle is known on arrival: later requests wait now,
        // not once its (deferred) response is ready.
        activity.mute_for(account.arrival_throttle().0, max_mute);
    }
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    let metrics_state = Arc::clone(state);
    let client_id = request
        .header
        .client_id
        .as_deref()
        .unwrap_or_default()
        .to_string();
    let peer = client.host.clone();
    let principal = auth.principal().to_string();
    let muting = Arc::clone(activity);
    let encode = move |mut body: kafka_protocol::messages::ResponseKind,
                       account: Option<QuotaAccount>| {
        if let Some(account) = account {
            muting.mute_for(account.close(&metrics_state, &mut body).0, max_mute);
        }
        let error = crate::metrics::error_of(&body);
        let encoded = envelope::encode_response(api_key, version, correlation_id, &body);
        let elapsed = received.elapsed();
        metrics_state
            .metrics
            .record_request(api_key, error, elapsed);
        // The request log: what was asked and how it went, never payloads.
        tracing::debug!(
            target: "sluice::request",
            api = ?api_key,
            version,
            correlation_id,
            client_id = %client_id,
            client = %peer,
            principal = %principal,
            error = sluice_protocol::error::name(error),
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        encoded
            .map_err(|e| {
                tracing::error!(error = %e, "failed to encode response");
            })
            .ok()
    };
    let reply = match &account {
        None => handlers::dispatch_authenticating(state, request, client, auth).await,
        Some(account) => {
            let dispatch = handlers::dispatch_authenticating(state, request, client, auth);
            account.timed(Box::pin(dispatch)).await
        }
    };
    Ok(match reply {
        Reply::Now(body) => Some(Outgoing::Ready(
            encode(*body, account).ok_or("response encoding failed")?,
        )),
        Reply::Later(response) => Some(Outgoing::Pending(tokio::spawn(async move {
            let body = match &account {
                None => response.await,
                Some(account) => account.timed(response).await,
            };
            encode(body, account)
        }))),
        Reply::Nothing => {
            if let Some(account) = account {
                activity.mute_for(account.close_silent().0, max_mute);
            }
            None
        }
    })
}

/// Whether `buf` starts like a TLS record carrying a handshake (a client
/// speaking TLS to a plaintext listener): content type 22, version 3.x.
fn looks_like_tls(buf: &[u8]) -> bool {
    buf.len() >= 3 && buf[0] == 0x16 && buf[1] == 0x03 && buf[2] <= 0x04
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        idle: Some(Duration::from_secs(10)),
        request_read: Duration::from_secs(30),
    };

    /// A connection whose last byte went `ago`.
    fn quiet_for(ago: Duration) -> Activity {
        Activity {
            started: Instant::now() - ago,
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            muted_until_ms: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_connection_is_idle_only_without_bytes_or_a_response_due() {
        let activity = quiet_for(Duration::from_secs(20));
        assert!(TIMEOUTS.expired(&activity, None).is_some());
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        assert_eq!(TIMEOUTS.expired(&activity, None), None);
        // While a response is due the reader looks again an idle period on.
        let deadline = TIMEOUTS.deadline(&activity, None).unwrap();
        assert!(deadline > Instant::now() + Duration::from_secs(9));
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        activity.touch();
        assert_eq!(TIMEOUTS.expired(&activity, None), None);
    }

    #[test]
    fn a_request_must_arrive_whole_within_the_read_timeout() {
        let activity = quiet_for(Duration::from_secs(40));
        // Bytes keep trickling in, so the connection is not idle...
        activity.touch();
        let started = Some(Instant::now() - Duration::from_secs(31));
        // ...but the request began too long ago.
        let reason = TIMEOUTS.expired(&activity, started).unwrap();
        assert!(
            reason.contains("socket.request.read.timeout.ms"),
            "{reason}"
        );
        assert_eq!(TIMEOUTS.expired(&activity, Some(Instant::now())), None);
    }

    #[test]
    fn minus_one_turns_the_idle_timeout_off() {
        let config = BrokerConfig::from_settings([("connections.max.idle.ms", "-1")]).unwrap();
        let timeouts = ConnectionTimeouts::from_config(&config);
        let activity = quiet_for(Duration::from_secs(40));
        assert_eq!(timeouts.expired(&activity, None), None);
        assert_eq!(timeouts.deadline(&activity, None), None);
    }
}
