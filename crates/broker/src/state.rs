//! State shared by every connection of a running broker.

use crate::config::{self, BrokerConfig, ConfigSource};
use crate::group::GroupCoordinator;
use crate::handlers::fetch::session::FetchSessionCache;
use crate::locks::RwLockExt;
use crate::metrics::BrokerMetrics;
use crate::partitions::Partitions;
use crate::txn::TransactionCoordinator;
use sluice_metadata::quorum::Quorum;
use sluice_metadata::{BrokerEndpoint, MetadataImage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) struct BrokerState {
    pub(crate) config: BrokerConfig,
    pub(crate) node_id: i32,
    /// Every client listener as advertised, in the order of `listeners`.
    /// A client is told of each broker by its endpoint on the listener the
    /// client connected to.
    pub(crate) listeners: Vec<BrokerEndpoint>,
    /// The listener other brokers reach this one on, and that this one
    /// reaches them on (`inter.broker.listener.name`).
    pub(crate) inter_broker_listener: String,
    /// How connections to other brokers are secured (TLS, SASL login).
    pub(crate) inter_broker: crate::security::inter_broker::InterBrokerSecurity,
    pub(crate) rack: Option<String>,
    /// Held while the partitions are brought in line with an image, so
    /// the controller and the metadata listener never open a log twice.
    pub(crate) reconciling: Mutex<()>,
    /// The metadata quorum (on a single node its one-voter log): the
    /// controller appends records through it.
    pub(crate) quorum: Arc<dyn Quorum>,
    /// Held by a controller operation from reading the image it decides
    /// against until the image with its records is published: the single
    /// writer, so no decision misses an earlier append.
    pub(crate) controller: Mutex<()>,
    /// The current image, swapped whole after every metadata change.
    image: RwLock<Arc<MetadataImage>>,
    pub(crate) partitions: Partitions,
    /// The replica fetchers copying followed partitions from their leaders.
    pub(crate) fetchers: crate::replication::Fetchers,
    pub(crate) fetch_sessions: Mutex<FetchSessionCache>,
    pub(crate) groups: GroupCoordinator,
    pub(crate) txns: TransactionCoordinator,
    /// Which internal partitions the coordinators have loaded.
    pub(crate) coordination: crate::coordination::Coordination,
    /// (next producer id, end of the reserved block).
    pub(crate) producer_ids: Mutex<(i64, i64)>,
    pub(crate) metrics: BrokerMetrics,
    /// SASL mechanisms and session lifetime, read once at start.
    pub(crate) sasl: crate::security::SaslConfig,
    /// The ACL authorizer (`authorizer.class.name`); allows all when off.
    pub(crate) authorizer: crate::security::authorizer::Authorizer,
    /// Failed SASL logins by client address, for the per-address limit.
    pub(crate) failed_logins: crate::security::failed_logins::FailedLogins,
    /// Client quotas (`producer_byte_rate`, ...) and their sensors.
    pub(crate) quotas: crate::quota::QuotaManager,
}

impl BrokerState {
    pub(crate) fn new(
        config: BrokerConfig,
        quorum: Arc<dyn Quorum>,
        partitions: Partitions,
    ) -> Self {
        let listeners = config.listeners().expect("listeners are checked at start");
        let inter_broker_listener = listeners.inter_broker.clone();
        // Checked at start on a node with peers (quorum_setup::mode); a
        // single node never connects to another broker.
        let inter_broker =
            crate::security::inter_broker::InterBrokerSecurity::from_config(&config, &listeners)
                .unwrap_or_default();
        // Broker::start has advertised every listener by then.
        let listeners = listeners
            .clients
            .into_iter()
            .map(|c| {
                let advertised = c.advertised.unwrap_or(c.bind);
                BrokerEndpoint {
                    name: advertised.name,
                    host: advertised.host,
                    port: advertised.port,
                }
            })
            .collect();
        let slots = config.get_i64("max.incremental.fetch.session.cache.slots") as usize;
        let image = quorum.image();
        let quotas = crate::quota::QuotaManager::from_config(&config, &image);
        let sasl = crate::security::SaslConfig::from_config(&config)
            .expect("SASL settings are checked at start");
        let config_for_authorizer = config.clone();
        let failed_logins = crate::security::failed_logins::FailedLogins::new(
            u32::try_from(config.get_i64("sasl.failed.authentications.per.ip.per.minute"))
                .unwrap_or(u32::MAX),
        );
        BrokerState {
            node_id: config.node_id(),
            listeners,
            inter_broker_listener,
            inter_broker,
            rack: config.get("broker.rack").map(str::to_string),
            reconciling: Mutex::new(()),
            config,
            quorum,
            controller: Mutex::new(()),
            image: RwLock::new(image),
            partitions,
            fetchers: crate::replication::Fetchers::default(),
            fetch_sessions: Mutex::new(FetchSessionCache::new(slots)),
            groups: GroupCoordinator::default(),
            txns: TransactionCoordinator::default(),
            coordination: Default::default(),
            // Nothing reserved yet: the first InitProducerId reserves a block.
            producer_ids: Mutex::new((0, 0)),
            metrics: BrokerMetrics::default(),
            sasl,
            failed_logins,
            quotas,
            authorizer: crate::security::authorizer::Authorizer::from_config(
                &config_for_authorizer,
            )
            .expect("authorizer.class.name is checked at start"),
        }
    }

    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.image.read_locked("image").clone()
    }

    /// Publishes `image` unless a newer one is published already (the
    /// controller and the metadata listener both publish).
    pub(crate) fn set_image(&self, image: Arc<MetadataImage>) {
        let mut current = self.image.write_locked("image");
        if image.offset >= current.offset {
            self.quotas.observe(&image);
            *current = image;
        }
    }

    /// This node's advertised endpoint on `listener` (its first listener's
    /// for a name it does not have).
    pub(crate) fn own_endpoint(&self, listener: &str) -> &BrokerEndpoint {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .unwrap_or(&self.listeners[0])
    }

    /// The brokers clients of `listener` may use, by node id, with the
    /// address of their endpoint on that listener: registered and unfenced
    /// ones, and always this node itself with its own advertised address.
    pub(crate) fn live_brokers(&self, image: &MetadataImage, listener: &str) -> Vec<LiveBroker> {
        let mut brokers: Vec<LiveBroker> = image
            .brokers
            .iter()
            .filter(|(id, b)| **id != self.node_id && !b.fenced)
            .filter_map(|(id, b)| self.described(*id, b, listener))
            .collect();
        let own = self.own_endpoint(listener);
        brokers.push(LiveBroker {
            node_id: self.node_id,
            host: own.host.clone(),
            port: i32::from(own.port),
            rack: self.rack.clone(),
        });
        brokers.sort_by_key(|b| b.node_id);
        brokers
    }

    /// `broker` as clients of `listener` are told of it: its endpoint on
    /// that listener (or its first), if it has any.
    pub(crate) fn described(
        &self,
        node_id: i32,
        broker: &sluice_metadata::BrokerImage,
        listener: &str,
    ) -> Option<LiveBroker> {
        let endpoint = broker
            .endpoint(listener)
            .or_else(|| broker.endpoints.first())?;
        Some(LiveBroker {
            node_id,
            host: endpoint.host.clone(),
            port: i32::from(endpoint.port),
            rack: broker.rack.clone(),
        })
    }

    /// The leader (-1: none) of `topic`-`index` in the current image;
    /// `None` if there is no such partition.
    pub(crate) fn partition_leader(&self, topic: &str, index: i32) -> Option<i32> {
        let image = self.image();
        let partitions = &image.topic(topic)?.partitions;
        partitions
            .get(usize::try_from(index).ok()?)
            .map(|p| p.leader)
    }

    /// A live broker by id.
    pub(crate) fn live_broker(
        &self,
        image: &MetadataImage,
        node_id: i32,
        listener: &str,
    ) -> Option<LiveBroker> {
        self.live_brokers(image, listener)
            .into_iter()
            .find(|b| b.node_id == node_id)
    }

    /// The node that answers controller requests: the quorum's leader
    /// (any broker forwards to it), or this node while there is none.
    pub(crate) fn controller_id(&self) -> i32 {
        self.quorum.status().leader.unwrap_or(self.node_id)
    }

    pub(crate) fn cluster_id(&self) -> String {
        self.image().cluster_id.clone().unwrap_or_default()
    }

    /// Effective broker setting (dynamic override, static, default).
    pub(crate) fn broker_setting(&self, name: &str) -> config::Resolved {
        let image = self.image();
        config::resolve_broker(name, &self.config, self.dynamic(&image))
    }

    /// This node's dynamic settings in `image`: its own, then the cluster's.
    pub(crate) fn dynamic<'a>(&self, image: &'a MetadataImage) -> config::Dynamic<'a> {
        config::Dynamic::of(image, self.node_id)
    }

    pub(crate) fn broker_i64(&self, name: &str) -> i64 {
        self.broker_setting(name)
            .value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} has a numeric default"))
    }

    /// All effective topic settings for a topic's overrides.
    pub(crate) fn topic_settings(
        &self,
        overrides: &BTreeMap<String, String>,
        image: &MetadataImage,
    ) -> BTreeMap<&'static str, (String, ConfigSource)> {
        config::TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let r = config::resolve_topic(def, overrides, &self.config, self.dynamic(image));
                (def.name, (r.value.unwrap_or_default(), r.source))
            })
            .collect()
    }
}

/// A broker as Metadata, DescribeCluster and FindCoordinator describe it.
#[derive(Debug, Clone)]
pub(crate) struct LiveBroker {
    pub(crate) node_id: i32,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) rack: Option<String>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
