//! Listener, connection loop and broker lifecycle.
//!
//! Each connection is served by a reader (decode frame, run the in-order
//! part of the handler) and a writer that sends responses strictly in request
//! order. Handlers may defer the slow part of their answer (waiting for a
//! group-commit sync, a long-poll fetch) as a task; the reader goes on with
//! the next request meanwhile, so pipelined produces share one fdatasync.

use crate::config::BrokerConfig;
use crate::controller::reconcile_partitions;
use crate::group::GroupCoordinator;
use crate::handlers::{self, Reply};
use crate::locks::MutexExt;
use crate::partitions::{Partitions, METADATA_TOPIC};
use crate::state::{now_ms, BrokerState};
use crate::txn::TransactionCoordinator;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use sluice_metadata::{MetadataLog, MetadataRecord};
use sluice_protocol::envelope::{self, RequestHead};
use sluice_protocol::frame;
use sluice_storage::LogDir;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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
    scrub_probe: Arc<crate::scrubber::ScrubProbe>,
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
        let listen = config.listen_address();
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
        let mut config = config;
        if config.explicit("advertised.listeners").is_none() {
            // An ephemeral port (":0") is only known once bound.
            let advertised = format!("{}:{}", local_addr.ip(), local_addr.port());
            config
                .set("advertised.listeners", &advertised)
                .expect("a bound address is a valid listener");
        }
        let state = {
            let config = config.clone();
            let dir = data_dir.clone();
            tokio::task::spawn_blocking(move || open_state(config, dir))
                .await
                .expect("open task panicked")?
        };
        let state = Arc::new(state);
        TransactionCoordinator::resume_prepared(&state);
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            state.clone(),
            stopped.clone(),
        ))];
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
        tasks.push(tokio::spawn(group_timer(state.clone(), stopped)));
        tracing::info!(%local_addr, data_dir = %data_dir.display(), "broker started");
        Ok(Broker {
            local_addr,
            data_dir,
            state,
            stop,
            tasks,
            scrub_probe,
        })
    }

    /// What the background scrubber (`log.scrub.interval.ms`) has found.
    pub fn scrub_probe(&self) -> &crate::scrubber::ScrubProbe {
        &self.scrub_probe
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

    /// Stops accepting, syncs and closes every log, and marks the shutdown
    /// clean so the next start skips full recovery.
    pub async fn shutdown(self) -> Result<(), sluice_storage::StorageError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        let state = self.state;
        tokio::task::spawn_blocking(move || {
            // The second copy of the metadata, current as of this stop.
            if let Err(e) = state.metadata.locked("metadata").write_snapshot() {
                tracing::warn!(error = %e, "cannot write the metadata snapshot at shutdown");
            }
            state.partitions.close_all()
        })
        .await
        .expect("close task panicked")
    }
}

pub(crate) fn open_state(
    config: BrokerConfig,
    data_dir: PathBuf,
) -> Result<BrokerState, StartError> {
    let log_dir = LogDir::open(&data_dir)?;
    let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
    let mut metadata = MetadataLog::open(&metadata_dir)?;
    let partitions = Partitions::new(log_dir);
    if metadata.image().cluster_id.is_none() {
        // A new cluster only on an empty data directory: partitions
        // without metadata mean the metadata was lost, not that none exists.
        if partitions.any_on_disk()? {
            return Err(StartError::MetadataMissing {
                metadata_log: MetadataLog::file_in(&metadata_dir),
                data_dir,
            });
        }
        metadata.append(&[MetadataRecord::ClusterCreated {
            cluster_id: new_cluster_id(),
            node_id: config.node_id(),
        }])?;
    }
    let state = BrokerState::new(config, metadata, partitions);
    let image = state.image();
    state.partitions.move_orphans_aside(&image)?;
    reconcile_partitions(&state, &image)?;
    let committed = state.groups.load(&state)?;
    if committed > 0 {
        tracing::info!(records = committed, "loaded committed offsets");
    }
    let transactional_ids = state.txns.load(&state)?;
    if transactional_ids > 0 {
        tracing::info!(transactional_ids, "loaded transaction state");
    }
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
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(serve_connection(socket, peer, state.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// A response slot in request order: ready bytes, or a task producing them.
enum Outgoing {
    Ready(Bytes),
    Pending(JoinHandle<Option<Bytes>>),
}

async fn serve_connection(socket: TcpStream, peer: SocketAddr, state: Arc<BrokerState>) {
    let (mut reader, mut writer) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let bytes = match out {
                Outgoing::Ready(b) => b,
                Outgoing::Pending(task) => match task.await {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(_) => return,
                },
            };
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let max_frame = state.config.get_i64("socket.request.max.bytes") as usize;
    // Kafka reports client hosts as "/<ip>".
    let client_host = format!("/{}", peer.ip());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'conn: loop {
        let frame = loop {
            match frame::take_frame(&mut buf, max_frame) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    break 'conn;
                }
            }
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(_) => {}
            }
        };
        match handle_frame(&state, frame, &client_host).await {
            Ok(Some(out)) => {
                if tx.send(out).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Decodes and dispatches one request. `Err` closes the connection, as Kafka
/// does for requests it cannot parse.
async fn handle_frame(
    state: &Arc<BrokerState>,
    frame: Bytes,
    client_host: &str,
) -> Result<Option<Outgoing>, String> {
    let head = RequestHead::peek(&frame).map_err(|e| e.to_string())?;
    let api_key =
        ApiKey::try_from(head.api_key).map_err(|_| format!("unknown API key {}", head.api_key))?;
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
    let request = envelope::decode_request(frame).map_err(|e| e.to_string())?;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    let encode = move |body: kafka_protocol::messages::ResponseKind| {
        envelope::encode_response(api_key, version, correlation_id, &body)
            .map_err(|e| {
                tracing::error!(error = %e, "failed to encode response");
            })
            .ok()
    };
    Ok(
        match handlers::dispatch(state, request, client_host).await {
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
