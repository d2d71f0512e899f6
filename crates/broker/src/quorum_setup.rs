//! How a node joins the metadata quorum: a single node is its own
//! one-voter quorum over the metadata log; with `controller.quorum.voters`
//! it is one voter of a Raft quorum that speaks on its CONTROLLER
//! listener. Either way the broker then registers, heartbeats, and follows
//! the image the quorum publishes.

use crate::config::BrokerConfig;
use crate::listeners::Listeners;
use crate::server::StartError;
use crate::state::BrokerState;
use sluice_metadata::duties::{self, Duties, LeaderRebalance};
use sluice_metadata::quorum::{
    serve_tcp, ClusterIdentity, LocalQuorum, Quorum, QuorumConfig, QuorumError, RaftQuorum,
    TcpTransport, VoterLinks,
};
use sluice_metadata::{BrokerEndpoint, MetadataLog, MetadataRecord, Uuid};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Files that only a Raft voter's metadata directory holds.
const RAFT_LOG_FILE: &str = "quorum.log";

/// The voters of a Raft quorum, from `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Voters(pub(crate) BTreeMap<i32, String>);

/// Parses `id@host:port,id@host:port`.
pub(crate) fn parse_voters(value: &str) -> Result<Voters, String> {
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || format!("controller.quorum.voters: '{entry}' is not id@host:port");
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(bad)?;
        let (_, port) = address.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        if voters.insert(id, address.to_string()).is_some() {
            return Err(format!("controller.quorum.voters names node {id} twice"));
        }
    }
    Ok(Voters(voters))
}

/// How this node takes part in the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A one-voter quorum over the metadata log (no voters configured).
    Single,
    /// One voter of a Raft quorum.
    Raft { voters: Voters },
}

/// Checks the quorum settings against each other and the listeners.
pub(crate) fn mode(config: &BrokerConfig, listeners: &Listeners) -> Result<Mode, String> {
    let roles = config.get("process.roles").unwrap_or_default();
    let mut roles: Vec<&str> = roles.split(',').map(str::trim).collect();
    roles.sort_unstable();
    if roles != ["broker", "controller"] {
        return Err(format!(
            "process.roles={}: only combined nodes (broker,controller) are supported yet",
            config.get("process.roles").unwrap_or_default()
        ));
    }
    let voters = parse_voters(config.get("controller.quorum.voters").unwrap_or_default())?;
    if voters.0.is_empty() {
        if listeners.controller.is_some() {
            return Err(
                "a CONTROLLER listener is configured but controller.quorum.voters is empty: \
                 set the voters (id@host:port of each controller), or drop the listener \
                 for a single node"
                    .to_string(),
            );
        }
        return Ok(Mode::Single);
    }
    let node_id = config.node_id();
    let Some(address) = voters.0.get(&node_id) else {
        return Err(format!(
            "node.id {node_id} is not among controller.quorum.voters ({}): a combined node must be a voter",
            voters.0.keys().map(i32::to_string).collect::<Vec<_>>().join(", ")
        ));
    };
    if config.get("controller.listener.names").is_none() {
        return Err(
            "controller.listener.names must be set when controller.quorum.voters is (e.g. CONTROLLER)"
                .to_string(),
        );
    }
    let Some(controller) = &listeners.controller else {
        return Err(format!(
            "controller.listener.names is {} but listeners has no such listener (e.g. add CONTROLLER://{address})",
            config.get("controller.listener.names").unwrap_or_default()
        ));
    };
    let voter_port = address.rsplit_once(':').map(|(_, p)| p);
    if voter_port != Some(controller.port.to_string().as_str()) {
        return Err(format!(
            "controller.quorum.voters puts node {node_id} at {address}, but its {} listener is on port {}",
            controller.name, controller.port
        ));
    }
    // Checked now: a voter connects to its peers over this listener.
    crate::security::inter_broker::InterBrokerSecurity::from_config(config, listeners)?;
    Ok(Mode::Raft { voters })
}

/// A started quorum, the tasks that serve it, and the address its
/// listener is bound to (Raft only).
pub(crate) struct Joined {
    pub(crate) quorum: Arc<dyn Quorum>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

/// Opens (single) or starts (Raft) this node's quorum in `metadata_dir`.
pub(crate) async fn join(
    config: &BrokerConfig,
    listeners: &Listeners,
    mode: &Mode,
    metadata_dir: &Path,
    tls: Option<&Arc<crate::security::tls::TlsServer>>,
    identity: Arc<ClusterIdentity>,
) -> Result<Joined, StartError> {
    let raft_log = metadata_dir.join(RAFT_LOG_FILE);
    match mode {
        Mode::Single => {
            if raft_log.exists() {
                return Err(StartError::Config(format!(
                    "{} belongs to a node of a cluster (it holds a controller quorum log); \
                     start it with the controller.quorum.voters it had",
                    metadata_dir.display()
                )));
            }
            let dir = metadata_dir.to_path_buf();
            let log = tokio::task::spawn_blocking(move || MetadataLog::open(&dir))
                .await
                .map_err(|e| StartError::Config(e.to_string()))??;
            Ok(Joined {
                quorum: Arc::new(LocalQuorum::new(config.node_id(), log)),
                tasks: Vec::new(),
            })
        }
        Mode::Raft { voters } => {
            let single_log = MetadataLog::file_in(metadata_dir);
            if std::fs::metadata(&single_log).is_ok_and(|m| m.len() > 0) {
                return Err(StartError::Config(format!(
                    "{} holds a single node's metadata log; a node of a cluster needs a data \
                     directory of its own (converting a single node is not supported yet)",
                    single_log.display()
                )));
            }
            std::fs::create_dir_all(metadata_dir).map_err(|e| {
                StartError::Config(format!("cannot create {}: {e}", metadata_dir.display()))
            })?;
            let controller = listeners
                .controller
                .as_ref()
                .expect("a Raft node has a controller listener");
            let listener = TcpListener::bind(controller.address())
                .await
                .map_err(|source| StartError::Listen {
                    addr: format!("{}://{}", controller.name, controller.address()),
                    source,
                })?;
            let mut quorum_config = QuorumConfig::new(
                config.node_id(),
                voters.0.clone(),
                metadata_dir.to_path_buf(),
            );
            quorum_config.election_timeout =
                millis(config, "controller.quorum.election.timeout.ms");
            quorum_config.heartbeat_interval = quorum_config.election_timeout / 5;
            quorum_config.append_timeout = millis(config, "controller.quorum.request.timeout.ms");
            let security = crate::security::inter_broker::quorum_security(config, listeners, tls)
                .map_err(StartError::Config)?;
            let links = VoterLinks { security, identity };
            let transport = Arc::new(TcpTransport::new(voters.0.clone(), links.clone()));
            let quorum = RaftQuorum::start(quorum_config, transport)
                .await
                .map_err(|e| StartError::Config(format!("metadata quorum: {e}")))?;
            let server = tokio::spawn(serve_tcp(listener, quorum.rpc_handler(), links));
            Ok(Joined {
                quorum: Arc::new(quorum),
                tasks: vec![server],
            })
        }
    }
}

fn millis(config: &BrokerConfig, name: &str) -> Duration {
    Duration::from_millis(u64::try_from(config.get_i64(name)).unwrap_or(1).max(1))
}

/// Waits until the quorum has a cluster id and a leader, making the id if
/// this node leads a quorum that has none (a new cluster). Logs while it
/// waits for a majority of voters; refuses to go on once a voter of
/// another cluster was seen (this node's directory is another cluster's).
pub(crate) async fn await_cluster(
    quorum: &Arc<dyn Quorum>,
    node_id: i32,
    new_cluster_id: impl Fn() -> String,
    identity: &ClusterIdentity,
) -> Result<(), StartError> {
    let step = Duration::from_millis(100);
    let mut steps: u64 = 0;
    loop {
        if let Some(conflict) = identity.conflict() {
            return Err(StartError::DataDir(conflict));
        }
        // A leader remembered from the log is not proof of this cluster:
        // a peer must have exchanged cluster ids with this node first
        // (unless it is the only voter).
        let lone = quorum.status().voters.len() <= 1;
        if let Some(cluster_id) = &quorum.image().cluster_id {
            if quorum.status().leader.is_some() && (lone || identity.confirmed()) {
                identity.set(cluster_id);
                return Ok(());
            }
        }
        if quorum.status().leader == Some(node_id) {
            let created = MetadataRecord::ClusterCreated {
                cluster_id: new_cluster_id(),
                node_id,
            };
            match quorum.append(vec![created]).await {
                Ok(_) => continue,
                Err(QuorumError::Storage(e)) => {
                    return Err(StartError::Config(format!("metadata quorum: {e}")))
                }
                Err(_) => {}
            }
        }
        steps += 1;
        // About every five seconds.
        if steps.is_multiple_of(50) {
            tracing::info!(
                status = ?quorum.status(),
                "waiting for a majority of controller.quorum.voters to elect a leader"
            );
        }
        tokio::time::sleep(step).await;
    }
}

/// The endpoints this node advertises, one per client listener.
fn endpoints(state: &BrokerState) -> Vec<BrokerEndpoint> {
    state.listeners.clone()
}

/// Registers this broker (a new broker epoch). A single node whose
/// registration already says the same keeps it, so a restart writes
/// nothing (and starts on a full disk).
pub(crate) async fn register(state: &BrokerState, incarnation_id: Uuid) -> Result<(), QuorumError> {
    let endpoints = endpoints(state);
    let single = state.quorum.status().voters.len() <= 1;
    let unchanged = state
        .quorum
        .image()
        .brokers
        .get(&state.node_id)
        .is_some_and(|b| b.endpoints == endpoints && b.rack == state.rack && !b.fenced);
    if single && unchanged {
        return Ok(());
    }
    let registration = MetadataRecord::BrokerRegistered {
        node_id: state.node_id,
        incarnation_id,
        endpoints,
        rack: state.rack.clone(),
    };
    state.quorum.append(vec![registration]).await.map(|_| ())
}

/// Heartbeats to the active controller every `broker.heartbeat.interval.ms`
/// and registers again when told its epoch is stale.
pub(crate) async fn heartbeat_task(
    state: Arc<BrokerState>,
    incarnation_id: Uuid,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = millis(&state.config, "broker.heartbeat.interval.ms");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        let epoch = state
            .quorum
            .image()
            .brokers
            .get(&state.node_id)
            .map(|b| b.epoch);
        let outcome = match epoch {
            Some(epoch) => state.quorum.heartbeat(state.node_id, epoch).await,
            None => Err(QuorumError::StaleBrokerEpoch {
                node_id: state.node_id,
                epoch: -1,
            }),
        };
        match outcome {
            Ok(()) => {}
            Err(QuorumError::StaleBrokerEpoch { .. }) => {
                tracing::info!("registering again with the controller (stale broker epoch)");
                if let Err(e) = register(&state, incarnation_id).await {
                    tracing::warn!(error = %e, "cannot register with the controller");
                }
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
    }
}

/// The controller duties (fencing, leader election) for this node.
pub(crate) fn duties_task(
    state: &Arc<BrokerState>,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let duties = Duties {
        node_id: state.node_id,
        session_timeout: millis(&state.config, "broker.session.timeout.ms"),
        tick: Duration::from_millis(250),
        unclean_leader_election: state.config.get("unclean.leader.election.enable") == Some("true"),
        leader_rebalance: (state.config.get("auto.leader.rebalance.enable") == Some("true")).then(
            || LeaderRebalance {
                every: Duration::from_secs(
                    u64::try_from(
                        state
                            .config
                            .get_i64("leader.imbalance.check.interval.seconds"),
                    )
                    .unwrap_or(300),
                ),
            },
        ),
    };
    tokio::spawn(duties::run(Arc::clone(&state.quorum), duties, stopped))
}

/// The metadata listener: publishes each image the quorum applies (other
/// nodes' changes too) and brings the partitions in line with it.
pub(crate) async fn metadata_listener(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let mut images = state.quorum.watch();
    loop {
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = stopped.changed() => return,
        }
        let image = images.borrow_and_update().clone();
        let state = Arc::clone(&state);
        let published =
            tokio::task::spawn_blocking(move || crate::controller::publish(&state, &image)).await;
        if let Ok(Err(e)) = published {
            tracing::error!(error = %e, "cannot bring the partitions in line with the metadata");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(settings: &[(&str, &str)]) -> Result<Mode, String> {
        let config = BrokerConfig::from_settings(settings.iter().copied())?;
        mode(&config, &config.listeners()?)
    }

    const CLUSTER: &[(&str, &str)] = &[
        ("node.id", "2"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
        ),
        ("controller.listener.names", "CONTROLLER"),
        (
            "controller.quorum.voters",
            "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
        ),
    ];

    #[test]
    fn no_voters_is_a_single_node_and_voters_a_raft_node() {
        assert_eq!(check(&[]), Ok(Mode::Single));
        let Ok(Mode::Raft { voters }) = check(CLUSTER) else {
            panic!("a Raft node")
        };
        assert_eq!(voters.0.len(), 3);
    }

    #[test]
    fn inconsistent_settings_are_refused_with_what_is_wrong() {
        let with = |key: &str, value: &str| {
            let mut settings: Vec<(&str, &str)> =
                CLUSTER.iter().copied().filter(|(k, _)| *k != key).collect();
            if !value.is_empty() {
                settings.push((key, value));
            }
            check(&settings).unwrap_err()
        };
        assert!(with("node.id", "4").contains("not among controller.quorum.voters"));
        assert!(with("controller.listener.names", "").contains("CONTROLLER"));
        assert!(with("listeners", "PLAINTEXT://127.0.0.1:9192")
            .contains("listeners has no such listener"));
        assert!(with("controller.quorum.voters", "1@h:1,2@h:9999,3@h:3").contains("port 9193"));
        assert!(with("controller.quorum.voters", "1@h:1,1@h:2").contains("twice"));
        assert!(with("controller.quorum.voters", "x@h:1").contains("id@host:port"));
        assert!(with("process.roles", "broker").contains("only combined"));
        assert!(check(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193"
            ),
            ("controller.listener.names", "CONTROLLER"),
        ])
        .unwrap_err()
        .contains("controller.quorum.voters is empty"));
    }
}
