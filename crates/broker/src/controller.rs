//! Controller operations: validate an admin change, append it to the
//! metadata log as records, publish the new image and bring the partitions in
//! line. A single node is its own one-voter quorum; every change goes through
//! [`Controller::commit`], the one place a cluster quorum will plug in.

use crate::config;
use crate::partition::LogSettings;
use crate::state::BrokerState;
use sluice_metadata::{MetadataImage, MetadataRecord, Uuid};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A refused or failed change: Kafka error code plus a message for the client.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

pub(crate) struct Controller<'a> {
    state: &'a BrokerState,
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| {
        Err(ApiError::new(
            error::INVALID_TOPIC_EXCEPTION,
            format!("Topic name \"{name}\" is illegal, {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("it can't be empty");
    }
    if name == "." || name == ".." {
        return invalid("it can't be '.' or '..'");
    }
    if name.len() > 249 {
        return invalid("it can't be longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("it contains a character other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// Validates topic config overrides by Kafka's types and ranges.
pub(crate) fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (key, value) in configs {
        let def = config::topic_def(key).ok_or_else(|| {
            ApiError::new(
                error::INVALID_CONFIG,
                format!("Unknown topic config name: {key}"),
            )
        })?;
        config::validate(key, def.ty, def.check, value)
            .map_err(|m| ApiError::new(error::INVALID_CONFIG, m))?;
    }
    Ok(())
}

/// The new topic's shape after defaults are applied.
pub(crate) struct TopicPlan {
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i16,
}

impl<'a> Controller<'a> {
    pub(crate) fn new(state: &'a BrokerState) -> Self {
        Controller { state }
    }

    fn node_count(&self) -> i32 {
        1
    }

    /// Validates a CreateTopics entry; `-1` means the broker default.
    pub(crate) fn plan_topic(
        &self,
        image: &MetadataImage,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignment: &[(i32, Vec<i32>)],
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicPlan, ApiError> {
        validate_topic_name(name)?;
        if image.topic(name).is_some() {
            return Err(ApiError::new(
                error::TOPIC_ALREADY_EXISTS,
                format!("Topic '{name}' already exists."),
            ));
        }
        if !assignment.is_empty() && (partitions != -1 || replication_factor != -1) {
            return Err(ApiError::new(
                error::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let (partitions, replication_factor) = if assignment.is_empty() {
            let p = if partitions == -1 {
                self.state.broker_i64("num.partitions") as i32
            } else {
                partitions
            };
            let rf = if replication_factor == -1 {
                self.state.broker_i64("default.replication.factor") as i16
            } else {
                replication_factor
            };
            (p, rf)
        } else {
            for (index, (partition, replicas)) in assignment.iter().enumerate() {
                if *partition != index as i32 {
                    return Err(ApiError::new(
                        error::INVALID_REPLICA_ASSIGNMENT,
                        "Partitions should be numbered 0, 1, 2, ... in the replica assignment.",
                    ));
                }
                if let Some(bad) = replicas.iter().find(|r| **r != self.state.node_id) {
                    return Err(ApiError::new(
                        error::INVALID_REPLICA_ASSIGNMENT,
                        format!("Replica assignment refers to unknown broker {bad}."),
                    ));
                }
                if replicas.len() != 1 {
                    return Err(ApiError::new(
                        error::INVALID_REPLICA_ASSIGNMENT,
                        "Each partition needs exactly one distinct replica on a single broker.",
                    ));
                }
            }
            (assignment.len() as i32, 1)
        };
        if partitions <= 0 {
            return Err(ApiError::new(
                error::INVALID_PARTITIONS,
                "Number of partitions was set to an invalid non-positive value.",
            ));
        }
        if replication_factor <= 0 {
            return Err(ApiError::new(
                error::INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0.",
            ));
        }
        if i32::from(replication_factor) > self.node_count() {
            return Err(ApiError::new(
                error::INVALID_REPLICATION_FACTOR,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                    self.node_count()
                ),
            ));
        }
        validate_topic_configs(configs)?;
        Ok(TopicPlan {
            partitions,
            replication_factor,
        })
    }

    pub(crate) fn create_topic(
        &self,
        name: &str,
        plan: &TopicPlan,
        configs: BTreeMap<String, String>,
    ) -> Result<Uuid, ApiError> {
        let id = Uuid::new_v4();
        self.commit(vec![MetadataRecord::TopicCreated {
            name: name.to_string(),
            id,
            partitions: plan.partitions,
            replicas: vec![self.state.node_id],
            configs,
        }])?;
        Ok(id)
    }

    pub(crate) fn delete_topic(&self, topic_id: Uuid) -> Result<(), ApiError> {
        self.commit(vec![MetadataRecord::TopicDeleted { topic_id }])
    }

    pub(crate) fn create_partitions(&self, topic_id: Uuid, total: i32) -> Result<(), ApiError> {
        self.commit(vec![MetadataRecord::PartitionsCreated {
            topic_id,
            total,
            replicas: vec![self.state.node_id],
        }])
    }

    pub(crate) fn alter_topic_configs(
        &self,
        topic_id: Uuid,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), ApiError> {
        self.commit(vec![MetadataRecord::TopicConfigChanged {
            topic_id,
            changes,
        }])
    }

    pub(crate) fn alter_broker_configs(
        &self,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), ApiError> {
        self.commit(vec![MetadataRecord::BrokerConfigChanged { changes }])
    }

    /// Appends records durably, publishes the image, reconciles partitions.
    pub(crate) fn commit(&self, records: Vec<MetadataRecord>) -> Result<(), ApiError> {
        let mut log = self.state.metadata.lock().expect("metadata lock");
        let image = Arc::new(
            log.append(&records)
                .map_err(|e| ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string()))?
                .clone(),
        );
        self.state.set_image(image.clone());
        reconcile_partitions(self.state, &image)
            .map_err(|e| ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string()))
    }
}

/// Brings open partitions in line with `image` (new logs, new settings,
/// deleted topics).
pub(crate) fn reconcile_partitions(
    state: &BrokerState,
    image: &MetadataImage,
) -> Result<(), sluice_storage::StorageError> {
    state
        .partitions
        .reconcile(image, state.node_id, |overrides| {
            LogSettings::from_topic(&state.topic_settings(overrides, image))
        })
}

/// Creates an internal compacted topic (`__consumer_offsets`,
/// `__transaction_state`) on first use, sized by the named broker settings.
pub(crate) fn ensure_internal_topic(
    state: &BrokerState,
    name: &str,
    partitions_setting: &str,
    replication_setting: &str,
    segment_bytes_setting: &str,
) -> Result<(), ApiError> {
    let image = state.image();
    if image.topic(name).is_some() {
        return Ok(());
    }
    let controller = Controller::new(state);
    let partitions = state.broker_i64(partitions_setting) as i32;
    let replication = state.broker_i64(replication_setting) as i16;
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            state.broker_i64(segment_bytes_setting).to_string(),
        ),
    ]);
    match controller
        .plan_topic(&image, name, partitions, replication, &[], &configs)
        .and_then(|plan| controller.create_topic(name, &plan, configs))
    {
        Ok(_) => {
            tracing::info!(partitions, "created {name}");
            Ok(())
        }
        Err(e) if e.code == error::TOPIC_ALREADY_EXISTS => Ok(()),
        Err(e) => Err(e),
    }
}
