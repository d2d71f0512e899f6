//! State shared by every connection of a running broker.

use crate::config::{self, BrokerConfig, ConfigSource};
use crate::group::GroupCoordinator;
use crate::handlers::fetch::session::FetchSessionCache;
use crate::locks::RwLockExt;
use crate::metrics::BrokerMetrics;
use crate::partitions::Partitions;
use crate::txn::TransactionCoordinator;
use sluice_metadata::quorum::Quorum;
use sluice_metadata::MetadataImage;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) struct BrokerState {
    pub(crate) config: BrokerConfig,
    pub(crate) node_id: i32,
    pub(crate) advertised_host: String,
    pub(crate) advertised_port: i32,
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
    pub(crate) fetch_sessions: Mutex<FetchSessionCache>,
    pub(crate) groups: GroupCoordinator,
    pub(crate) txns: TransactionCoordinator,
    /// (next producer id, end of the reserved block).
    pub(crate) producer_ids: Mutex<(i64, i64)>,
    pub(crate) metrics: BrokerMetrics,
    /// SASL mechanisms and session lifetime, read once at start.
    pub(crate) sasl: crate::security::SaslConfig,
}

impl BrokerState {
    pub(crate) fn new(
        config: BrokerConfig,
        quorum: Arc<dyn Quorum>,
        partitions: Partitions,
    ) -> Self {
        let advertised = config.advertised_address();
        let (host, port) = advertised.rsplit_once(':').expect("validated listener");
        let slots = config.get_i64("max.incremental.fetch.session.cache.slots") as usize;
        let image = quorum.image();
        let sasl = crate::security::SaslConfig::from_config(&config);
        BrokerState {
            node_id: config.node_id(),
            advertised_host: host.to_string(),
            advertised_port: port.parse().expect("validated port"),
            config,
            quorum,
            controller: Mutex::new(()),
            image: RwLock::new(image),
            partitions,
            fetch_sessions: Mutex::new(FetchSessionCache::new(slots)),
            groups: GroupCoordinator::default(),
            txns: TransactionCoordinator::default(),
            // Nothing reserved yet: the first InitProducerId reserves a block.
            producer_ids: Mutex::new((0, 0)),
            metrics: BrokerMetrics::default(),
            sasl,
        }
    }

    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.image.read_locked("image").clone()
    }

    pub(crate) fn set_image(&self, image: Arc<MetadataImage>) {
        *self.image.write_locked("image") = image;
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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
