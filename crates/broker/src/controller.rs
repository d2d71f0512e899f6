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

mod acls;
mod quotas;
mod scram;

pub(crate) use quotas::QuotaAlteration;
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", error::name(self.code), self.message)
    }
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

    /// Brokers that may take new replicas: the registered unfenced ones
    /// and this node (which serves, so it is alive, registered or not yet).
    fn usable_brokers(&self, image: &MetadataImage) -> Vec<i32> {
        let mut brokers = sluice_metadata::cluster::usable_brokers(image);
        if !brokers.contains(&self.state.node_id) {
            brokers.push(self.state.node_id);
            brokers.sort_unstable();
        }
        brokers
    }

    fn node_count(&self, image: &MetadataImage) -> i32 {
        i32::try_from(self.usable_brokers(image).len()).unwrap_or(i32::MAX)
    }

    /// Replicas for `partitions` new partitions of `replication_factor`,
    /// spread over the usable brokers from a random one.
    fn place(
        &self,
        image: &MetadataImage,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<i32>>, ApiError> {
        // Any start will do, as long as topics do not all begin on one node.
        let start = (Uuid::new_v4().as_u128() % 1024) as usize;
        let brokers = self.usable_brokers(image);
        sluice_metadata::cluster::place_replicas(&brokers, partitions, replication_factor, start)
            .map_err(|brokers| {
                ApiError::new(
                    error::INVALID_REPLICATION_FACTOR,
                    format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {brokers} broker(s) are registered."),
                )
            })
    }

    /// Checks one partition's explicit assignment: registered brokers,
    /// each once, `factor` of them when the other partitions set it.
    fn check_assignment(
        &self,
        image: &MetadataImage,
        replicas: &[i32],
        factor: Option<usize>,
    ) -> Result<(), ApiError> {
        if replicas.is_empty() {
            return Err(ApiError::new(
                error::INVALID_REPLICA_ASSIGNMENT,
                "The manual partition assignment includes an empty replica list.",
            ));
        }
        if let Some(bad) = replicas
            .iter()
            .find(|r| !image.brokers.contains_key(r) && **r != self.state.node_id)
        {
            return Err(ApiError::new(
                error::INVALID_REPLICA_ASSIGNMENT,
                format!("Replica assignment refers to unknown broker {bad}."),
            ));
        }
        let mut distinct = replicas.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != replicas.len() {
            return Err(ApiError::new(
                error::INVALID_REPLICA_ASSIGNMENT,
                format!("Duplicate brokers not allowed in replica assignment: {replicas:?}."),
            ));
        }
        if factor.is_some_and(|f| f != replicas.len()) {
            return Err(ApiError::new(
                error::INVALID_REPLICA_ASSIGNMENT,
                "All partitions in the manual partition assignment must have the same number of replicas.",
            ));
        }
        Ok(())
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
                let factor = assignment.first().map(|(_, r)| r.len());
                self.check_assignment(image, replicas, factor)?;
            }
            let factor = assignment.first().map_or(1, |(_, r)| r.len());
            (
                assignment.len() as i32,
                i16::try_from(factor).unwrap_or(i16::MAX),
            )
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
        if i32::from(replication_factor) > self.node_count(image) {
            return Err(ApiError::new(
                error::INVALID_REPLICATION_FACTOR,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                    self.node_count(image)
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

    /// Appends records decided against `image`, unless the metadata
    /// changed meanwhile (then `Stale`, and the caller decides again).
    fn append(
        &self,
        image: &MetadataImage,
        records: Vec<MetadataRecord>,
    ) -> Result<Result<Arc<MetadataImage>, u64>, ApiError> {
        match committed(self.state.quorum.append_after(image.offset, records)) {
            Ok((_, image)) => Ok(Ok(image)),
            Err(QuorumError::Stale { applied }) => {
                self.await_image(applied);
                Ok(Err(applied))
            }
            Err(e) => Err(quorum_error(e)),
        }
    }

    /// Waits (a little) until this node has applied `offset` records, so
    /// the next decision sees what made the last one stale.
    fn await_image(&self, offset: u64) {
        for _ in 0..200 {
            if self.state.quorum.image().offset >= offset {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Decides records against the latest image and appends them, as the
    /// single writer throughout. `decide` returns the records (none:
    /// nothing to change) and a value for the caller. Decided on a node
    /// that is not the active controller, the append is forwarded and
    /// refused if the controller's image moved on; it is then decided
    /// again against the newer image.
    pub(crate) fn commit_with<T>(
        &self,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), ApiError>,
    ) -> Result<T, ApiError> {
        let _writer = self.writer();
        for _ in 0..STALE_RETRIES {
            let image = self.state.quorum.image();
            let (records, value) = decide(&image)?;
            if records.is_empty() {
                return Ok(value);
            }
            if let Ok(image) = self.append(&image, records)? {
                self.publish(&image)?;
                return Ok(value);
            }
        }
        Err(stale_too_often())
    }

    /// Validates and (unless `validate_only`) creates a topic: the logs
    /// of its partitions this node leads first, then the record. Returns
    /// the plan and the new topic id (nil when only validating).
    pub(crate) fn create_topic(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<(TopicPlan, Uuid), ApiError> {
        let _writer = self.writer();
        for _ in 0..STALE_RETRIES {
            let image = self.state.quorum.image();
            let plan = self.plan_topic(&image, topic)?;
            if validate_only {
                return Ok((plan, Uuid::nil()));
            }
            let assignments = if topic.assignment.is_empty() {
                self.place(&image, plan.partitions, plan.replication_factor)?
            } else {
                topic.assignment.iter().map(|(_, r)| r.clone()).collect()
            };
            let id = Uuid::new_v4();
            let settings = self.log_settings(topic.configs, &image);
            let led_here = led_by(&assignments, self.state.node_id, 0);
            let logs = self
                .state
                .partitions
                .create_logs(topic.name, id, led_here, &settings)
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
                replicas: Vec::new(),
                assignments,
                configs: topic.configs.clone(),
            };
            if self.append_with_logs(&image, record, logs)? {
                return Ok((plan, id));
            }
        }
        Err(stale_too_often())
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
        for _ in 0..STALE_RETRIES {
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
            let factor = topic.partitions.first().map(|p| p.replicas.len());
            for replicas in assignments {
                self.check_assignment(&image, replicas, factor)?;
            }
            let placed = if assignments.is_empty() {
                let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
                self.place(&image, total - current, i16::try_from(factor).unwrap_or(1))?
            } else {
                assignments.to_vec()
            };
            if validate_only {
                return Ok(());
            }
            let (topic_id, settings) = (topic.id, self.log_settings(&topic.configs, &image));
            let logs = self
                .state
                .partitions
                .create_logs(name, topic_id, led_by(&placed, self.state.node_id, current), &settings)
                .map_err(|e| {
                    ApiError::new(
                        error::KAFKA_STORAGE_ERROR,
                        format!("Cannot create partitions {current}..{total} of topic '{name}': {e}. Nothing was created."),
                    )
                })?;
            let record = MetadataRecord::PartitionsCreated {
                topic_id,
                total,
                replicas: Vec::new(),
                assignments: placed,
            };
            if self.append_with_logs(&image, record, logs)? {
                return Ok(());
            }
        }
        Err(stale_too_often())
    }

    /// Appends `record` for partitions whose `logs` exist already: they are
    /// served from the moment the image naming them is published, and
    /// removed again if the append fails.
    /// False when the append was stale (the logs are discarded then too).
    fn append_with_logs(
        &self,
        image: &MetadataImage,
        record: MetadataRecord,
        logs: NewLogs,
    ) -> Result<bool, ApiError> {
        // Held from before the append, so the metadata listener cannot
        // reconcile the new image (and open these logs a second time)
        // before they are installed.
        let reconciling = self.state.reconciling.locked("reconcile");
        match self.append(image, vec![record]) {
            Ok(Ok(image)) => {
                self.state.partitions.install(logs);
                publish_reconciling(self.state, &image, reconciling)
                    .map_err(|e| ApiError::new(error::KAFKA_STORAGE_ERROR, e.to_string()))?;
                Ok(true)
            }
            Ok(Err(_)) => {
                self.state.partitions.discard(logs);
                Ok(false)
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
        publish(self.state, image)
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

/// How often one change is decided again because the metadata moved on
/// under it before it gives up.
const STALE_RETRIES: usize = 8;

fn stale_too_often() -> ApiError {
    ApiError::new(
        error::REQUEST_TIMED_OUT,
        "The metadata kept changing while this change was decided; try again.",
    )
}

/// The indexes (from `first`) and replicas of the partitions in
/// `assignments` that `node` leads: the ones whose logs it creates before
/// the record (followers open theirs when they see it).
fn led_by(assignments: &[Vec<i32>], node: i32, first: i32) -> Vec<(i32, Vec<i32>)> {
    (first..)
        .zip(assignments)
        .filter(|(_, replicas)| replicas.first() == Some(&node))
        .map(|(index, replicas)| (index, replicas.clone()))
        .collect()
}

/// Publishes `image` unless it or a newer one is out, and brings the
/// partitions in line with it.
pub(crate) fn publish(
    state: &BrokerState,
    image: &Arc<MetadataImage>,
) -> Result<(), sluice_storage::StorageError> {
    publish_reconciling(state, image, state.reconciling.locked("reconcile"))
}

/// [`publish`] with the reconcile lock already held.
fn publish_reconciling(
    state: &BrokerState,
    image: &Arc<MetadataImage>,
    _reconciling: MutexGuard<'_, ()>,
) -> Result<(), sluice_storage::StorageError> {
    // Published (and reconciled) already: the controller publishes its own
    // appends, and the metadata listener then sees the same image.
    if state.image().offset >= image.offset {
        return Ok(());
    }
    state.set_image(Arc::clone(image));
    reconcile_partitions(state, image)
}

/// What a client is told when the quorum refuses or fails an append.
fn quorum_error(e: QuorumError) -> ApiError {
    let code = match e {
        QuorumError::NotLeader { .. } | QuorumError::ShuttingDown => error::NOT_CONTROLLER,
        QuorumError::Timeout => error::REQUEST_TIMED_OUT,
        QuorumError::Storage(_) => error::KAFKA_STORAGE_ERROR,
        QuorumError::Config(_) => error::UNKNOWN_SERVER_ERROR,
        QuorumError::Stale { .. } => error::REQUEST_TIMED_OUT,
        QuorumError::StaleBrokerEpoch { .. } => error::STALE_BROKER_EPOCH,
    };
    ApiError::new(code, e.to_string())
}

/// The outcome of a quorum operation, from the controller's synchronous
/// code (which runs off the async reactor). The one-voter quorum of a
/// single node completes its appends before returning them, so the first
/// poll finds the result; a Raft append is waited for with this thread
/// parked, while the runtime's workers drive it.
pub(crate) fn committed<T>(
    mut pending: QuorumFuture<'_, Result<T, QuorumError>>,
) -> Result<T, QuorumError> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut wait = || {
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        loop {
            match pending.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(outcome) => return outcome,
                std::task::Poll::Pending => std::thread::park(),
            }
        }
    };
    // On a runtime worker (a handler that did not move off the reactor),
    // hand the worker's other tasks to another thread first, or they would
    // wait behind this one; the Raft append runs on those tasks.
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// Brings open partitions in line with `image` (new logs, new settings,
/// deleted topics).
pub(crate) fn reconcile_partitions(
    state: &BrokerState,
    image: &MetadataImage,
) -> Result<(), sluice_storage::StorageError> {
    state.partitions.reconcile(image, |overrides| {
        LogSettings::from_topic(&state.topic_settings(overrides, image))
    })?;
    state.coordination.leadership_changed();
    Ok(())
}

/// How many brokers the cluster has or is meant to have: those registered,
/// or the configured voters if more (every voter of a combined cluster is
/// a broker too). Internal topics are created with at most this many
/// replicas, so one node needs no replication setting and a cluster that
/// is still starting does not get an internal topic with too few.
fn expected_brokers(state: &BrokerState) -> usize {
    let voters = state
        .config
        .get("controller.quorum.voters")
        .map_or(0, |v| v.split(',').filter(|e| !e.trim().is_empty()).count());
    state.image().brokers.len().max(voters).max(1)
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
    let replication = state
        .broker_i64(replication_setting)
        .min(expected_brokers(state) as i64) as i16;
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
            tracing::info!(partitions, replication, "created {name}");
            // Empty, so loading it takes no time: the caller (which holds no
            // coordinator lock) can be served at once.
            if let Err(e) = state.coordination.sync(state) {
                tracing::error!(error = %e, "cannot load the coordinator state of {name}");
            }
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
