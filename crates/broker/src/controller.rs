//! Controller operations: validate an admin change, append it through the
//! metadata quorum as records, publish the new image and bring the
//! partitions in line. A single node is its own one-voter quorum
//! (`LocalQuorum`); the broker sees only the `Quorum` trait.
//!
//! Validation and append are one step: each operation decides its records
//! against the latest image as the single writer, so two racing
//! requests (two CreateTopics for one name) cannot both pass validation
//! against an image that predates the other's append. A change that needs
//! partition logs (a new topic, more partitions) creates them before its
//! record is appended, and removes them if the append fails, so the
//! metadata never names partitions that do not exist.

mod scram;

pub(crate) use scram::ScramAlteration;

use crate::config;
use crate::locks::MutexExt;
use crate::partition::LogSettings;
use crate::partitions::NewLogs;
use crate::state::BrokerState;
use sluice_metadata::quorum::{QuorumError, QuorumFuture};
use sluice_metadata::{MetadataImage, MetadataRecord, Uuid};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

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

fn fold_for_metrics(name: &str) -> String {
    name.replace('.', "_")
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

/// A CreateTopics entry; `-1` means the broker default.
pub(crate) struct NewTopic<'a> {
    pub(crate) name: &'a str,
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i16,
    pub(crate) assignment: &'a [(i32, Vec<i32>)],
    pub(crate) configs: &'a BTreeMap<String, String>,
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

    /// Validates a CreateTopics entry against `image`.
    fn plan_topic(&self, image: &MetadataImage, topic: &NewTopic) -> Result<TopicPlan, ApiError> {
        let NewTopic {
            name,
            partitions,
            replication_factor,
            assignment,
            configs,
        } = *topic;
        validate_topic_name(name)?;
        if image.topic(name).is_some() {
            return Err(ApiError::new(
                error::TOPIC_ALREADY_EXISTS,
                format!("Topic '{name}' already exists."),
            ));
        }
        // Metric names replace '.' with '_', so Kafka refuses names that
        // collide that way.
        let folded = fold_for_metrics(name);
        if let Some(other) = image.topics().find(|t| fold_for_metrics(&t.name) == folded) {
            return Err(ApiError::new(
                error::INVALID_TOPIC_EXCEPTION,
                format!(
                    "Topic '{name}' collides with existing topic: {}. Topic names that differ only in '.' and '_' collide.",
                    other.name
                ),
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

    /// Makes this operation the single writer until the guard drops.
    fn writer(&self) -> MutexGuard<'a, ()> {
        self.state.controller.locked("controller")
    }

    /// Appends records through the quorum; the image right after them.
    fn append(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, ApiError> {
        committed(self.state.quorum.append(records))
            .map(|(_, image)| image)
            .map_err(quorum_error)
    }

    /// Decides records against the latest image and appends them, as the
    /// single writer throughout. `decide` returns the records (none:
    /// nothing to change) and a value for the caller.
    pub(crate) fn commit_with<T>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), ApiError>,
    ) -> Result<T, ApiError> {
        let _writer = self.writer();
        let (records, value) = decide(&self.state.quorum.image())?;
        if !records.is_empty() {
            let image = self.append(records)?;
            self.publish(&image)?;
        }
        Ok(value)
    }

    /// Validates and (unless `validate_only`) creates a topic: its
    /// partition logs first, then the record. Returns the plan and the new
    /// topic id (nil when only validating).
    pub(crate) fn create_topic(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<(TopicPlan, Uuid), ApiError> {
        let _writer = self.writer();
        let image = self.state.quorum.image();
        let plan = self.plan_topic(&image, topic)?;
        if validate_only {
            return Ok((plan, Uuid::nil()));
        }
        let id = Uuid::new_v4();
        let settings = self.log_settings(topic.configs, &image);
        let logs = self
            .state
            .partitions
            .create_logs(topic.name, id, 0..plan.partitions, &settings)
            .map_err(|e| {
                tracing::warn!(topic = topic.name, partitions = plan.partitions, error = %e, "cannot create the topic's partitions; nothing was created");
                ApiError::new(
                    error::KAFKA_STORAGE_ERROR,
                    format!(
                        "Cannot create the {} partitions of topic '{}': {e}. Nothing was created.",
                        plan.partitions, topic.name
                    ),
                )
            })?;
        let record = MetadataRecord::TopicCreated {
            name: topic.name.to_string(),
            id,
            partitions: plan.partitions,
            replicas: vec![self.state.node_id],
            configs: topic.configs.clone(),
        };
        self.append_with_logs(record, logs)?;
        Ok((plan, id))
    }

    /// Deletes a topic named by `name` or, when `None`, by `id`; returns
    /// its name and id.
    pub(crate) fn delete_topic(
        &self,
        name: Option<&str>,
        id: Uuid,
    ) -> Result<(String, Uuid), ApiError> {
        self.commit_with(|image| {
            let topic = match name {
                Some(n) => image.topic(n).ok_or_else(|| {
                    ApiError::new(
                        error::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic '{n}' does not exist."),
                    )
                })?,
                None => image.topic_by_id(&id).ok_or_else(|| {
                    ApiError::new(
                        error::UNKNOWN_TOPIC_ID,
                        format!("Topic id {id} does not exist."),
                    )
                })?,
            };
            if !self.state.config.get_bool("delete.topic.enable") {
                return Err(ApiError::new(
                    error::TOPIC_DELETION_DISABLED,
                    "Topic deletion is disabled (delete.topic.enable=false).",
                ));
            }
            Ok((
                vec![MetadataRecord::TopicDeleted { topic_id: topic.id }],
                (topic.name.clone(), topic.id),
            ))
        })
    }

    /// Grows topic `name` to `total` partitions (CreatePartitions); each
    /// assignment lists the replicas of one new partition. The new logs
    /// are created before the record.
    pub(crate) fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: &[Vec<i32>],
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _writer = self.writer();
        let image = self.state.quorum.image();
        let topic = image.topic(name).ok_or_else(|| {
            ApiError::new(
                error::UNKNOWN_TOPIC_OR_PARTITION,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let current = topic.partitions.len() as i32;
        let invalid = |code, message: String| Err(ApiError::new(code, message));
        if total < current {
            return invalid(error::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {total}."));
        }
        if total == current {
            return invalid(
                error::INVALID_PARTITIONS,
                format!("Topic already has {current} partitions."),
            );
        }
        if !assignments.is_empty() && assignments.len() as i32 != total - current {
            return invalid(
                error::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "Increasing the number of partitions by {} but {} assignments provided.",
                    total - current,
                    assignments.len()
                ),
            );
        }
        if let Some(bad) = assignments
            .iter()
            .flatten()
            .find(|b| **b != self.state.node_id)
        {
            return invalid(
                error::INVALID_REPLICA_ASSIGNMENT,
                format!("Unknown broker {bad} in replica assignment."),
            );
        }
        if assignments.iter().any(|a| a.len() != 1) {
            return invalid(
                error::INVALID_REPLICA_ASSIGNMENT,
                "Each new partition needs exactly one replica on a single broker.".into(),
            );
        }
        if validate_only {
            return Ok(());
        }
        let (topic_id, settings) = (topic.id, self.log_settings(&topic.configs, &image));
        let logs = self
            .state
            .partitions
            .create_logs(name, topic_id, current..total, &settings)
            .map_err(|e| {
                ApiError::new(
                    error::KAFKA_STORAGE_ERROR,
                    format!("Cannot create partitions {current}..{total} of topic '{name}': {e}. Nothing was created."),
                )
            })?;
        let record = MetadataRecord::PartitionsCreated {
            topic_id,
            total,
            replicas: vec![self.state.node_id],
        };
        self.append_with_logs(record, logs)
    }

    /// Appends `record` for partitions whose `logs` exist already: they are
    /// served from the moment the image naming them is published, and
    /// removed again if the append fails.
    fn append_with_logs(&self, record: MetadataRecord, logs: NewLogs) -> Result<(), ApiError> {
        match self.append(vec![record]) {
            Ok(image) => {
                self.state.partitions.install(logs);
                self.publish(&image)
            }
            Err(e) => {
                self.state.partitions.discard(logs);
                Err(e)
            }
        }
    }

    /// Publishes `image` (as the single writer, so images are published in
    /// log order) and brings the partitions in line.
    fn publish(&self, image: &Arc<MetadataImage>) -> Result<(), ApiError> {
        self.state.set_image(Arc::clone(image));
        reconcile_partitions(self.state, image)
            .map_err(|e| ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string()))
    }

    fn log_settings(
        &self,
        overrides: &BTreeMap<String, String>,
        image: &MetadataImage,
    ) -> LogSettings {
        LogSettings::from_topic(&self.state.topic_settings(overrides, image))
    }
}

/// What a client is told when the quorum refuses or fails an append.
fn quorum_error(e: QuorumError) -> ApiError {
    let code = match e {
        QuorumError::NotLeader { .. } | QuorumError::ShuttingDown => error::NOT_CONTROLLER,
        QuorumError::Timeout => error::REQUEST_TIMED_OUT,
        QuorumError::Storage(_) => error::KAFKA_STORAGE_ERROR,
        QuorumError::Config(_) => error::UNKNOWN_SERVER_ERROR,
    };
    ApiError::new(code, e.to_string())
}

/// The outcome of a quorum operation, from the controller's synchronous
/// code. The one-voter quorum of a single node completes its appends
/// before returning them, so one poll finds the result; the controller
/// becomes asynchronous when a Raft quorum backs the broker (issue 13).
/// Until then an operation still pending is reported as timed out, which
/// is the quorum's own meaning of Timeout: its outcome is unknown.
pub(crate) fn committed<T>(
    mut pending: QuorumFuture<'_, Result<T, QuorumError>>,
) -> Result<T, QuorumError> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match pending.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => Err(QuorumError::Timeout),
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
    if state.image().topic(name).is_some() {
        return Ok(());
    }
    let partitions = state.broker_i64(partitions_setting) as i32;
    let replication = state.broker_i64(replication_setting) as i16;
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            state.broker_i64(segment_bytes_setting).to_string(),
        ),
    ]);
    let topic = NewTopic {
        name,
        partitions,
        replication_factor: replication,
        assignment: &[],
        configs: &configs,
    };
    match Controller::new(state).create_topic(&topic, false) {
        Ok(_) => {
            tracing::info!(partitions, "created {name}");
            Ok(())
        }
        Err(e) if e.code == error::TOPIC_ALREADY_EXISTS => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use crate::handlers::create_topics;
    use crate::test_support::test_state;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use sluice_metadata::{entry_at, MetadataRecord, Uuid};
    use sluice_protocol::error;
    use std::sync::{Arc, Barrier};

    /// Every TopicCreated in the metadata log: (name, id).
    fn topics_created(log: &std::path::Path) -> Vec<(String, Uuid)> {
        let bytes = std::fs::read(log).unwrap();
        let mut created = Vec::new();
        let mut at = 0;
        while let Some(entry) = entry_at(&bytes, at) {
            assert!(entry.problem.is_none());
            if let MetadataRecord::TopicCreated { name, id, .. } =
                MetadataRecord::decode(entry.payload).unwrap()
            {
                created.push((name, id));
            }
            at = entry.end();
        }
        created
    }

    #[test]
    fn concurrent_creates_of_one_name_create_it_once() {
        const CREATORS: usize = 16;
        let (dir, state) = test_state();
        let start = Arc::new(Barrier::new(CREATORS));
        let creators: Vec<_> = (0..CREATORS)
            .map(|_| {
                let (state, start) = (state.clone(), start.clone());
                std::thread::spawn(move || {
                    let topic = CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("race")))
                        .with_num_partitions(2)
                        .with_replication_factor(1);
                    let request = CreateTopicsRequest::default().with_topics(vec![topic]);
                    start.wait();
                    let ResponseKind::CreateTopics(response) =
                        create_topics::handle(&state, request, 7)
                    else {
                        panic!("no CreateTopics response")
                    };
                    let result = &response.topics[0];
                    (result.error_code, result.topic_id)
                })
            })
            .collect();
        let results: Vec<(i16, Uuid)> = creators.into_iter().map(|c| c.join().unwrap()).collect();
        let created: Vec<Uuid> = results
            .iter()
            .filter(|(code, _)| *code == error::NONE)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(created.len(), 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|(code, _)| *code == error::NONE || *code == error::TOPIC_ALREADY_EXISTS),
            "{results:?}"
        );
        assert_eq!(state.image().topic("race").unwrap().id, created[0]);
        let log = dir.path().join("__cluster_metadata-0").join("metadata.log");
        assert_eq!(topics_created(&log), vec![("race".to_string(), created[0])]);
        assert_eq!(
            state.partitions.get("race", 1).unwrap().topic_id,
            created[0],
            "the partitions belong to the topic the image names"
        );
    }
}
