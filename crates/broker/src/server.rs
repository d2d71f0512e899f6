//! Listener, connection loop and broker lifecycle.
//!
//! Each connection is served by a reader (decode frame, run the in-order
//! part of the handler) and a writer that sends responses strictly in request
//! order. Handlers may defer the slow part of their answer (waiting for a
//! group-commit sync, a long-poll fetch) as a task; the reader goes on with
//! the next request meanwhile, so pipelined produces share one fdatasync.

use crate::config::BrokerConfig;
use crate::connection::{accept_loop, ListenerContext};
use crate::connection_limits::ConnectionLimits;
use crate::controller::reconcile_partitions;
use crate::descriptors::DescriptorBudget;
use crate::group::GroupCoordinator;
use crate::partitions::{Partitions, METADATA_TOPIC};
use crate::quorum_setup;
use crate::security::principal::PrincipalRules;
use crate::security::tls::TlsServer;
use crate::state::{now_ms, BrokerState};
use crate::txn::TransactionCoordinator;
#[cfg(test)]
use sluice_metadata::quorum::LocalQuorum;
use sluice_metadata::quorum::Quorum;
use sluice_metadata::{MetadataLog, MetadataRecord};
use sluice_storage::{DirLock, LogDir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    /// Where the first client listener is bound.
    local_addr: SocketAddr,
    /// Every client listener's name and bound address.
    listener_addrs: Vec<(String, SocketAddr)>,
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
    /// The data directory belongs to another node or cluster, or its
    /// `meta.properties` is unreadable.
    #[error("{0}")]
    DataDir(String),
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
        let meta = crate::meta_properties::read(&data_dir).map_err(StartError::DataDir)?;
        if let Some(meta) = &meta {
            crate::meta_properties::check_node(&data_dir, meta, config.node_id())
                .map_err(StartError::DataDir)?;
        }
        // A new cluster takes the id the directory was formatted with.
        let formatted_cluster_id = meta.as_ref().map(|m| m.cluster_id.clone());
        let new_cluster_id = || {
            formatted_cluster_id
                .clone()
                .unwrap_or_else(crate::meta_properties::new_id)
        };
        let limits = Arc::new(ConnectionLimits::from_config(&config).map_err(StartError::Config)?);
        let explicit_max_connections = config
            .explicit("max.connections")
            .map(|_| config.get_i64("max.connections").max(0) as u64);
        let listeners = config.listeners().map_err(StartError::Config)?;
        crate::security::authorizer::Authorizer::from_config(&config)
            .map_err(StartError::Config)?;
        // Checked now so bad SASL settings stop the start before binding;
        // the state builds its own copy.
        crate::security::SaslConfig::from_config(&config).map_err(StartError::Config)?;
        let mode = quorum_setup::mode(&config, &listeners).map_err(StartError::Config)?;
        let controller_tls = listeners.controller.is_some() && listeners.controller_protocol.tls();
        let tls = match listeners.clients.iter().any(|c| c.protocol.tls()) || controller_tls {
            true => Some(Arc::new(
                TlsServer::from_config(&config).map_err(StartError::Config)?,
            )),
            false => None,
        };
        let principal_rules = Arc::new(
            PrincipalRules::parse(
                config
                    .get("ssl.principal.mapping.rules")
                    .unwrap_or("DEFAULT"),
            )
            .map_err(|e| StartError::Config(format!("ssl.principal.mapping.rules: {e}")))?,
        );
        let mut bound = Vec::with_capacity(listeners.clients.len());
        for client in &listeners.clients {
            let listen = client.bind.address();
            let listener =
                TcpListener::bind(&listen)
                    .await
                    .map_err(|source| StartError::Listen {
                        addr: format!("{}://{listen}", client.name()),
                        source,
                    })?;
            let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
                addr: listen.clone(),
                source,
            })?;
            bound.push((client.clone(), listener, local_addr));
        }
        let local_addr = bound[0].2;
        let listener_addrs = bound
            .iter()
            .map(|(c, _, addr)| (c.name().to_string(), *addr))
            .collect();
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
        // Every listener is advertised: as advertised.listeners says, or
        // else at its bound address (an ephemeral port, ":0", is only known
        // once bound).
        let advertised = bound
            .iter()
            .map(|(client, _, addr)| match &client.advertised {
                Some(a) => format!("{}://{}:{}", a.name, a.host, a.port),
                None => format!("{}://{}:{}", client.name(), addr.ip(), addr.port()),
            })
            .collect::<Vec<_>>()
            .join(",");
        config
            .set("advertised.listeners", &advertised)
            .expect("bound addresses are valid listeners");
        let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
        let identity = Arc::new(sluice_metadata::quorum::ClusterIdentity::new(
            formatted_cluster_id.clone(),
        ));
        let joined = quorum_setup::join(
            &config,
            &listeners,
            &mode,
            &metadata_dir,
            tls.as_ref(),
            Arc::clone(&identity),
        )
        .await
        .inspect_err(|_| http_task.abort())?;
        if let quorum_setup::Mode::Raft { .. } = mode {
            quorum_setup::await_cluster(
                &joined.quorum,
                config.node_id(),
                new_cluster_id,
                &identity,
            )
            .await
            .inspect_err(|_| http_task.abort())?;
        }
        let opened = {
            let config = config.clone();
            let dir = data_dir.clone();
            let quorum = Arc::clone(&joined.quorum);
            let cluster_id = new_cluster_id();
            tokio::task::spawn_blocking(move || {
                let state = open_state_with(config, dir.clone(), quorum, cluster_id)?;
                DescriptorBudget::measure(&state.partitions).report(explicit_max_connections);
                Ok::<_, StartError>(state)
            })
            .await
            .expect("open task panicked")
        };
        let state = opened.inspect_err(|_| http_task.abort())?;
        let cluster_id = state.image().cluster_id.clone().unwrap_or_default();
        crate::meta_properties::check_cluster(&data_dir, meta.as_ref(), state.node_id, &cluster_id)
            .map_err(StartError::DataDir)
            .inspect_err(|_| http_task.abort())?;
        let state = Arc::new(state);
        let jwks = load_oauth_keys(&state)
            .await
            .inspect_err(|_| http_task.abort())?;
        let incarnation_id = sluice_metadata::Uuid::new_v4();
        register_at_start(&state, incarnation_id, &mode).await;
        crate::coordination::resume_loaded(&state);
        let mut tasks = joined.tasks;
        tasks.push(http_task);
        for (client, listener, _) in bound {
            let context = Arc::new(ListenerContext {
                name: Arc::from(client.name()),
                protocol: client.protocol,
                tls: tls.clone().filter(|_| client.protocol.tls()),
                principal_rules: Arc::clone(&principal_rules),
            });
            tasks.push(tokio::spawn(accept_loop(
                listener,
                context,
                state.clone(),
                Arc::clone(&limits),
                data_dir_lock.clone(),
                stopped.clone(),
            )));
        }
        if let Some(keys) = jwks {
            tasks.push(tokio::spawn(keys.refresh_task(stopped.clone())));
        }
        if let Some(tls) = tls {
            tasks.push(tokio::spawn(crate::security::tls::reload_task(
                tls,
                stopped.clone(),
            )));
        }
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
            listener_addrs,
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

    /// Where the first client listener is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every client listener: its name and where it is bound.
    pub fn listener_addrs(&self) -> &[(String, SocketAddr)] {
        &self.listener_addrs
    }

    /// The address clients of the first listener are told to connect to.
    pub fn advertised_address(&self) -> String {
        let own = &self.state.listeners[0];
        format!("{}:{}", own.host, own.port)
    }

    /// Every client listener as advertised: `NAME://host:port`.
    pub fn advertised_listeners(&self) -> Vec<String> {
        self.state
            .listeners
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
            .collect()
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
    open_state_with(config, data_dir, quorum, crate::meta_properties::new_id())
}

/// Opens the partitions of `data_dir` and the coordinators' state, with
/// the metadata from `quorum`. A single node with no cluster yet makes
/// one, with the id `new_cluster_id`.
pub(crate) fn open_state_with(
    config: BrokerConfig,
    data_dir: PathBuf,
    quorum: Arc<dyn Quorum>,
    new_cluster_id: String,
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
            cluster_id: new_cluster_id,
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

/// Fetches the OAUTHBEARER signing keys before any client connects, when a
/// listener checks signed tokens, and warns when one accepts unsigned ones.
async fn load_oauth_keys(
    state: &BrokerState,
) -> Result<Option<Arc<crate::security::oauth::JwksKeys>>, StartError> {
    let sasl = &state.sasl;
    if !sasl
        .enabled
        .contains(&crate::security::Mechanism::OAuthBearer)
    {
        return Ok(None);
    }
    if sasl.oauth.accepts_unsigned() {
        tracing::warn!("OAUTHBEARER accepts unsigned tokens (the unsecured validator, for development only): set sasl.oauthbearer.jwks.endpoint.url to check signatures");
    }
    let Some(keys) = sasl.oauth.keys() else {
        return Ok(None);
    };
    let count = keys.load().await.map_err(StartError::Config)?;
    tracing::info!(keys = count, "OAUTHBEARER signing keys loaded");
    Ok(Some(Arc::clone(keys)))
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
