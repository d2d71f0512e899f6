//! Metadata (key 3): brokers, cluster id, controller, topics with ids and
//! partition leaders; creates unknown topics when `auto.create.topics.enable`
//! and the client allows it. v13 adds a top-level error code
//! (REBOOTSTRAP_REQUIRED, KIP-1102) a single node never needs: always NONE.

use super::{str_bytes, ApiSupport};
use crate::controller::{validate_topic_name, Controller, NewTopic};
use crate::security::authorizer::{all_operations, resource, OPERATIONS_NOT_REQUESTED};
use crate::state::BrokerState;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use sluice_metadata::{TopicImage, Uuid};
use sluice_protocol::error;
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::Metadata, 0, 13);

/// `listener` is the one the client connected to: brokers are described by
/// their endpoints on it.
pub(crate) fn handle(
    state: &BrokerState,
    request: MetadataRequest,
    version: i16,
    listener: &str,
) -> ResponseKind {
    let brokers = state
        .live_brokers(&state.image(), listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(state.cluster_id())))
        .with_controller_id(BrokerId(state.controller_id()))
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED);
    // v0 has no null topic list: an empty list means "all topics".
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let operations = Operations {
        topics: request.include_topic_authorized_operations,
        cluster: request.include_cluster_authorized_operations,
    };
    let Some(requested) = requested else {
        let image = state.image();
        response.topics = image.topics().map(|t| describe(state, t)).collect();
        return ResponseKind::Metadata(operations.fill(response));
    };
    // Before v4 a request could not forbid auto-creation.
    let allow_create = (version < 4 || request.allow_auto_topic_creation)
        && state.config.get_bool("auto.create.topics.enable");
    for wanted in requested {
        let image = state.image();
        // A topic id, when set, names the topic: the Java client sends an
        // empty name beside it (v10+).
        let by_id = !wanted.topic_id.is_nil();
        let topic = match (&wanted.name, wanted.topic_id) {
            (Some(name), _) if !by_id => {
                if let Some(t) = image.topic(name) {
                    describe(state, t)
                } else if allow_create && validate_topic_name(name).is_ok() {
                    auto_create(state, name)
                } else {
                    let code = if validate_topic_name(name).is_err() {
                        error::INVALID_TOPIC_EXCEPTION
                    } else {
                        error::UNKNOWN_TOPIC_OR_PARTITION
                    };
                    unknown(Some(name.0.to_string()), Uuid::nil(), code)
                }
            }
            (_, id) => match image.topic_by_id(&id) {
                Some(t) => describe(state, t),
                None => unknown(None, id, error::UNKNOWN_TOPIC_ID),
            },
        };
        response.topics.push(topic);
    }
    ResponseKind::Metadata(operations.fill(response))
}

/// Which `authorized_operations` (KIP-430) the request asked for. Without
/// an authorizer every operation is allowed, so they are all reported;
/// with one, authorization narrows them to the caller's.
struct Operations {
    topics: bool,
    /// v8–v10 only.
    cluster: bool,
}

impl Operations {
    fn fill(&self, mut response: MetadataResponse) -> MetadataResponse {
        if self.cluster {
            response.cluster_authorized_operations = all_operations(resource::CLUSTER);
        }
        if self.topics {
            // Kafka leaves out topic ids it does not know.
            for topic in &mut response.topics {
                if topic.error_code != error::UNKNOWN_TOPIC_ID {
                    topic.topic_authorized_operations = all_operations(resource::TOPIC);
                }
            }
        }
        response
    }
}

fn auto_create(state: &BrokerState, name: &str) -> MetadataResponseTopic {
    let created = Controller::new(state).create_topic(
        &NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            assignment: &[],
            configs: &BTreeMap::new(),
        },
        false,
    );
    match created {
        Ok(_) => {
            tracing::info!(topic = name, "auto-created topic");
            match state.image().topic(name) {
                Some(t) => describe(state, t),
                None => unknown(
                    Some(name.to_string()),
                    Uuid::nil(),
                    error::LEADER_NOT_AVAILABLE,
                ),
            }
        }
        // Lost a race with another creator: describe what exists.
        Err(e) if e.code == error::TOPIC_ALREADY_EXISTS => match state.image().topic(name) {
            Some(t) => describe(state, t),
            None => unknown(
                Some(name.to_string()),
                Uuid::nil(),
                error::LEADER_NOT_AVAILABLE,
            ),
        },
        Err(e) => {
            tracing::warn!(topic = name, error = %e.message, "auto-creation failed");
            unknown(Some(name.to_string()), Uuid::nil(), e.code)
        }
    }
}

fn unknown(name: Option<String>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// A topic as Metadata answers it. A partition whose log this node cannot
/// open is offline: no leader and LEADER_NOT_AVAILABLE, with this node among
/// its offline replicas, as Kafka answers a partition without a live leader.
fn describe(state: &BrokerState, topic: &TopicImage) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
        .with_partitions(
            topic
                .partitions
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    let index = index as i32;
                    let replicas = p.replicas.iter().map(|r| BrokerId(*r)).collect();
                    let described = MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(replicas);
                    let offline = p.leader == state.node_id
                        && state
                            .partitions
                            .offline_reason(&topic.name, index)
                            .is_some();
                    if offline || p.leader < 0 {
                        let down = if offline {
                            vec![state.node_id]
                        } else {
                            p.replicas.clone()
                        };
                        described
                            .with_error_code(error::LEADER_NOT_AVAILABLE)
                            .with_leader_id(BrokerId(-1))
                            .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                            .with_offline_replicas(down.into_iter().map(BrokerId).collect())
                    } else {
                        described
                            .with_leader_id(BrokerId(p.leader))
                            .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                    }
                })
                .collect(),
        )
}
