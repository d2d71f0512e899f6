//! Listener, connection loop and broker lifecycle.
//!
//! Each connection is served by a reader (decode frame, run the in-order
//! part of the handler) and a writer that sends responses strictly in request
//! order. Handlers may defer the slow part of their answer (waiting for a
//! group-commit sync, a long-poll fetch) as a task; the reader goes on with
//! the next request meanwhile, so pipelined produces share one fdatasync.

use crate::config::BrokerConfig;
use crate::connection_limits::{
    AcceptBackoff, ConnectionLimits, ConnectionSlot, LogThrottle, LOG_INTERVAL,
};
use crate::controller::reconcile_partitions;
use crate::descriptors::DescriptorBudget;
use crate::group::GroupCoordinator;
use crate::handlers::{self, Reply};
use crate::partitions::{Partitions, METADATA_TOPIC};
use crate::quorum_setup;
use crate::security::ConnectionAuth;
use crate::state::{now_ms, BrokerState};
use crate::txn::TransactionCoordinator;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
#[cfg(test)]
use sluice_metadata::quorum::LocalQuorum;
use sluice_metadata::quorum::Quorum;
use sluice_metadata::{MetadataLog, MetadataRecord};
use sluice_protocol::envelope::{self, RequestHead};
use sluice_protocol::frame;
use sluice_storage::{DirLock, LogDir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Requests a connection may have in flight before the reader waits.
const MAX_IN_FLIGHT: usize = 128;

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    local_addr: SocketAddr,
    data_dir: PathBuf,
    state: Arc<BrokerState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Shared with the accept loop, so that a broker dropped without
    /// [`Broker::shutdown`] keeps its directory locked while it still serves.
    data_dir_lock: Arc<DirLock>,
    scrub_probe: Arc<crate::scrubber::ScrubProbe>,
    http_addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] sluice_storage::StorageError),
    #[error("metadata: {0}")]
    Metadata(#[from] sluice_metadata::MetadataError),
    #[error("invalid setting: {0}")]
    Config(String),
    #[error(
        "the metadata log {} is missing or holds no cluster, but {} holds partition \
         directories; refusing to start a new cluster over existing data. Restore \
         metadata.log (and metadata.snapshot) from a backup, or move the partition \
         directories out of the data directory to start empty (see docs/OPERATIONS.md, \
         \"The metadata log: damage and repair\").",
        metadata_log.display(), data_dir.display()
    )]
    MetadataMissing {
        metadata_log: PathBuf,
        data_dir: PathBuf,
    },
}

impl Broker {
    /// Opens the data directory (recovering logs and replaying metadata),
    /// binds the listener and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        let data_dir = PathBuf::from(config.log_dir());
        // Before anything is read or written, and before binding, so a
        // second broker on this directory is refused for the right reason.
        let data_dir_lock = Arc::new(DirLock::acquire(&data_dir)?);
        let limits = ConnectionLimits::from_config(&config).map_err(StartError::Config)?;
        let explicit_max_connections = config
            .explicit("max.connections")
            .map(|_| config.get_i64("max.connections").max(0) as u64);
        let listeners = config.listeners().map_err(StartError::Config)?;
        let mode = quorum_setup::mode(&config, &listeners).map_err(StartError::Config)?;
        let listen = listeners.client.address();
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: listen.clone(),
            source,
        })?;
        let http_listeners = bind_http(&config).await?;
        let http_addrs = http_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let http_started = Arc::new(crate::http::Started::default());
        let (stop, stopped) = watch::channel(false);
        let http_limits = crate::http::HttpLimits {
            max_connections: config.get_i64("http.max.connections").max(1) as usize,
            requests_per_second: u32::try_from(config.get_i64("http.max.requests.per.second"))
                .unwrap_or(u32::MAX),
        };
        let http_task = tokio::spawn(crate::http::serve(
            http_listeners,
            http_limits,
            Arc::clone(&http_started),
            stopped.clone(),
        ));
        let mut config = config;
        if config.explicit("advertised.listeners").is_none() {
            // An ephemeral port (":0") is only known once bound.
            let advertised = format!(
                "{}://{}:{}",
                listeners.client.name,
                local_addr.ip(),
                local_addr.port()
            );
            config
                .set("advertised.listeners", &advertised)
                .expect("a bound address is a valid listener");
        }
        let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
        let joined = quorum_setup::join(&config, &listeners, &mode, &metadata_dir)
            .await
            .inspect_err(|_| http_task.abort())?;
        if let quorum_setup::Mode::Raft { .. } = mode {
            quorum_setup::await_cluster(&joined.quorum, config.node_id(), new_cluster_id).await?;
        }
        let opened = {
            let config = config.clone();
            let dir = data_dir.clone();
            let quorum = Arc::clone(&joined.quorum);
            tokio::task::spawn_blocking(move || {
                let state = open_state_with(config, dir.clone(), quorum)?;
                DescriptorBudget::measure(&state.partitions).report(explicit_max_connections);
                Ok::<_, StartError>(state)
            })
            .await
            .expect("open task panicked")
        };
        let state = opened.inspect_err(|_| http_task.abort())?;
        let state = Arc::new(state);
        let incarnation_id = sluice_metadata::Uuid::new_v4();
        register_at_start(&state, incarnation_id, &mode).await;
        crate::coordination::resume_loaded(&state);
        let mut tasks = joined.tasks;
        tasks.push(http_task);
        tasks.push(tokio::spawn(accept_loop(
            listener,
            state.clone(),
            limits,
            data_dir_lock.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(quorum_setup::heartbeat_task(
            state.clone(),
            incarnation_id,
            stopped.clone(),
        )));
        tasks.push(quorum_setup::duties_task(&state, stopped.clone()));
        tasks.push(tokio::spawn(crate::coordination::coordination_task(
            state.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(quorum_setup::metadata_listener(
            state.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(crate::retention::retention_task(
            state.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(crate::cleaner::cleaner_task(
            state.clone(),
            stopped.clone(),
        )));
        let scrub_probe = Arc::default();
        tasks.push(tokio::spawn(crate::scrubber::scrubber_task(
            state.clone(),
            Arc::clone(&scrub_probe),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(lazy_flusher(state.clone(), stopped.clone())));
        tasks.push(tokio::spawn(crate::replication::supervise(
            state.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(group_timer(state.clone(), stopped)));
        http_started.set(state.clone(), Arc::clone(&scrub_probe));
        tracing::info!(%local_addr, data_dir = %data_dir.display(), "broker started");
        Ok(Broker {
            local_addr,
            data_dir,
            state,
            stop,
            tasks,
            data_dir_lock,
            scrub_probe,
            http_addrs,
        })
    }

    /// Creates each user's SCRAM credential unless the user has one for
    /// that mechanism already (`sluice serve --add-scram`, as Kafka's
    /// `kafka-storage format --add-scram`); returns the users created.
    pub async fn add_scram_if_absent(
        &self,
        users: &[crate::ScramBootstrap],
    ) -> Result<Vec<String>, String> {
        let state = Arc::clone(&self.state);
        let users = users.to_vec();
        tokio::task::spawn_blocking(move || {
            let controller = crate::controller::Controller::new(&state);
            let mut created = Vec::new();
            for user in users {
                let added = controller
                    .add_scram_if_absent(
                        &user.name,
                        user.mechanism,
                        &user.password,
                        user.iterations,
                    )
                    .map_err(|e| {
                        format!(
                            "--add-scram for {} ({}): {}",
                            user.name, user.mechanism, e.message
                        )
                    })?;
                if added {
                    created.push(format!("{} ({})", user.name, user.mechanism));
                }
            }
            Ok(created)
        })
        .await
        .map_err(|e| format!("--add-scram failed: {e}"))?
    }

    /// What the background scrubber (`log.scrub.interval.ms`) has found.
    pub fn scrub_probe(&self) -> &crate::scrubber::ScrubProbe {
        &self.scrub_probe
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address clients are told to connect to.
    pub fn advertised_address(&self) -> String {
        format!(
            "{}:{}",
            self.state.advertised_host, self.state.advertised_port
        )
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn cluster_id(&self) -> String {
        self.state.cluster_id()
    }

    /// Stops accepting, hands this broker's leaderships to other in-sync
    /// replicas (controlled shutdown, in a cluster), syncs and closes every
    /// log, and marks the shutdown clean so the next start skips full
    /// recovery. The data directory is
    /// unlocked only after its logs are closed.
    pub async fn shutdown(self) -> Result<(), sluice_storage::StorageError> {
        let _ = self.stop.send(true);
        // Heartbeats have stopped; the quorum's connections still serve.
        crate::replication::controlled_shutdown(&self.state).await;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        let state = self.state;
        let closed = tokio::task::spawn_blocking(move || {
            // The second copy of the metadata, current as of this stop.
            if let Err(e) = crate::controller::committed(state.quorum.close()) {
                tracing::warn!(error = %e, "cannot write the metadata snapshot at shutdown");
            }
            state.partitions.close_all()
        })
        .await
        .expect("close task panicked");
        drop(self.data_dir_lock);
        closed
    }
}

/// Registers this broker with the controller; a cluster node keeps trying
/// until the quorum takes it, a single node goes on with its earlier
/// registration if it cannot write (a full disk).
async fn register_at_start(
    state: &BrokerState,
    incarnation_id: sluice_metadata::Uuid,
    mode: &quorum_setup::Mode,
) {
    loop {
        match quorum_setup::register(state, incarnation_id).await {
            Ok(()) => return,
            Err(e) if *mode == quorum_setup::Mode::Single => {
                tracing::warn!(error = %e, "cannot record this broker's registration; keeping the earlier one");
                return;
            }
            Err(e) => {
                tracing::info!(error = %e, "waiting to register with the controller");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Opens a single node's state on `data_dir` (its own one-voter quorum).
#[cfg(test)]
pub(crate) fn open_state(
    config: BrokerConfig,
    data_dir: PathBuf,
) -> Result<BrokerState, StartError> {
    let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
    let quorum = Arc::new(LocalQuorum::new(
        config.node_id(),
        MetadataLog::open(&metadata_dir)?,
    ));
    open_state_with(config, data_dir, quorum)
}

/// Opens the partitions of `data_dir` and the coordinators' state, with
/// the metadata from `quorum`. A single node with no cluster yet makes one.
pub(crate) fn open_state_with(
    config: BrokerConfig,
    data_dir: PathBuf,
    quorum: Arc<dyn Quorum>,
) -> Result<BrokerState, StartError> {
    let max_open_segment_files = config.get_i64("log.max.open.segment.files");
    let log_dir = LogDir::open_keeping(
        &data_dir,
        usize::try_from(max_open_segment_files).unwrap_or(usize::MAX),
    )?;
    let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
    let partitions = Partitions::new(log_dir, config.node_id());
    if quorum.image().cluster_id.is_none() {
        // A new cluster only on an empty data directory: partitions
        // without metadata mean the metadata was lost, not that none exists.
        if partitions.any_on_disk()? {
            return Err(StartError::MetadataMissing {
                metadata_log: MetadataLog::file_in(&metadata_dir),
                data_dir,
            });
        }
        crate::controller::committed(quorum.append(vec![MetadataRecord::ClusterCreated {
            cluster_id: new_cluster_id(),
            node_id: config.node_id(),
        }]))
        .map_err(|e| StartError::Config(format!("cannot create the cluster: {e}")))?;
    }
    let state = BrokerState::new(config, quorum, partitions);
    let image = state.image();
    state.partitions.move_orphans_aside(&image)?;
    reconcile_partitions(&state, &image)?;
    state.coordination.sync(&state)?;
    Ok(state)
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = *sluice_metadata::Uuid::new_v4().as_bytes();
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<BrokerState>,
    limits: ConnectionLimits,
    _data_dir_lock: Arc<DirLock>,
    mut stopped: watch::Receiver<bool>,
) {
    let timeouts = ConnectionTimeouts::from_config(&state.config);
    let mut backoff = AcceptBackoff::new();
    let failures_log = LogThrottle::new(LOG_INTERVAL);
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => return,
            permit = limits.wait_for_slot() => permit,
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
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve_connection(
                    socket,
                    peer,
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
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
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

async fn serve_connection(
    socket: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    timeouts: ConnectionTimeouts,
    _slot: ConnectionSlot,
) {
    let (mut reader, mut writer) = socket.into_split();
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
            }
            writer_activity.touch();
            writer_activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    });
    let max_frame = state.config.get_i64("socket.request.max.bytes") as usize;
    // What this connection must prove before it is served: the listener's
    // security protocol decides (SASL_*: ConnectionAuth::sasl()).
    let mut auth = if state.listener_protocol.starts_with("SASL_") {
        ConnectionAuth::sasl()
    } else {
        ConnectionAuth::none()
    };
    // Kafka reports client hosts as "/<ip>".
    let client_host = format!("/{}", peer.ip());
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
                    tracing::warn!(%peer, error = %e, "closing connection");
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
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        match handle_frame(&state, frame, &client_host, &mut auth).await {
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

/// Binds every `http.listeners` address (none when it is empty).
async fn bind_http(config: &BrokerConfig) -> Result<Vec<TcpListener>, StartError> {
    let value = config.get("http.listeners").unwrap_or_default();
    let addrs = crate::config::parse_http_listeners(value).map_err(StartError::Config)?;
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: format!("http://{addr} (http.listeners; empty turns HTTP off)"),
                source,
            })?;
        if let Ok(bound) = listener.local_addr() {
            tracing::info!(http = %format!("http://{bound}"), "serving /metrics, /healthz and /readyz");
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Decodes and dispatches one request. `Err` closes the connection, as Kafka
/// does for requests it cannot parse.
async fn handle_frame(
    state: &Arc<BrokerState>,
    frame: Bytes,
    client_host: &str,
    auth: &mut ConnectionAuth,
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
    let request = envelope::decode_request(frame).map_err(|e| e.to_string())?;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    let metrics_state = Arc::clone(state);
    let client_id = request
        .header
        .client_id
        .as_deref()
        .unwrap_or_default()
        .to_string();
    let peer = client_host.to_string();
    let principal = auth.principal().to_string();
    let encode = move |body: kafka_protocol::messages::ResponseKind| {
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
    Ok(
        match handlers::dispatch_authenticating(state, request, client_host, auth).await {
            Reply::Now(body) => Some(Outgoing::Ready(
                encode(*body).ok_or("response encoding failed")?,
            )),
            Reply::Later(response) => Some(Outgoing::Pending(tokio::spawn(async move {
                encode(response.await)
            }))),
            Reply::Nothing => None,
        },
    )
}

/// Syncs partitions under the lazy flush policy (`flush.messages` > 1) once
/// `flush.ms` has passed since their last sync.
async fn lazy_flusher(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        for partition in state.partitions.all() {
            if partition.settings().sync_before_ack() {
                continue;
            }
            if let Some(end) = partition.lazy_flush_due(now) {
                if let Err(e) = partition.make_durable(end).await {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
                }
            }
        }
    }
}

/// Expires silent group members and ends overdue rebalances.
/// Also expires committed offsets every `offsets.retention.check.interval.ms`
/// aborts timed-out transactions every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, and forgets
/// idle producers every `producer.id.expiration.check.interval.ms`.
async fn group_timer(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let expiry_interval =
        Duration::from_millis(state.broker_i64("offsets.retention.check.interval.ms") as u64);
    let mut next_expiry = tokio::time::Instant::now() + expiry_interval;
    let txn_interval = Duration::from_millis(
        state.broker_i64("transaction.abort.timed.out.transaction.cleanup.interval.ms") as u64,
    );
    let mut next_txn_check = tokio::time::Instant::now() + txn_interval;
    let producer_interval =
        Duration::from_millis(state.broker_i64("producer.id.expiration.check.interval.ms") as u64);
    let mut next_producer_check = tokio::time::Instant::now() + producer_interval;
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => GroupCoordinator::tick(&state, std::time::Instant::now()),
        }
        if tokio::time::Instant::now() >= next_expiry {
            next_expiry += expiry_interval;
            let expired = GroupCoordinator::expire_offsets(&state, now_ms());
            if expired > 0 {
                tracing::info!(expired, "expired committed offsets");
            }
        }
        if tokio::time::Instant::now() >= next_txn_check {
            next_txn_check += txn_interval;
            TransactionCoordinator::abort_expired(&state, now_ms());
        }
        if tokio::time::Instant::now() >= next_producer_check {
            next_producer_check += producer_interval;
            let expiration_ms = state.broker_i64("producer.id.expiration.ms");
            let expired: usize = state
                .partitions
                .all()
                .iter()
                .map(|p| p.expire_producers(now_ms(), expiration_ms))
                .sum();
            if expired > 0 {
                tracing::info!(expired, "forgot idle producers");
            }
        }
    }
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
