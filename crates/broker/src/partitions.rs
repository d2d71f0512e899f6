//! The registry of the replicas this node holds (the partitions it leads,
//! which clients are served from, and those it follows), kept in step
//! with the metadata image. It opens their logs (before the metadata records a new
//! topic, so a topic exists whole or not at all), moves aside directories
//! nobody owns instead of deleting them, and knows which partitions are
//! offline and why, so that clients are told instead of left waiting.

use crate::flusher::Flusher;
use crate::locks::RwLockExt;
use crate::partition::{LogSettings, Partition, PartitionSpec};
use crate::replica::{AssignedRole, Assignment};
use crate::state::now_ms;
use sluice_metadata::{MetadataImage, Uuid};
use sluice_protocol::error::{self, ErrorCode};
use sluice_storage::{LogDir, StorageError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

type Key = (String, i32);

/// The metadata log's directory sits beside the partitions, as in KRaft.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

/// Registry of open partitions, kept in step with the metadata image.
pub(crate) struct Partitions {
    log_dir: LogDir,
    map: RwLock<HashMap<Key, Arc<Partition>>>,
    /// Partitions the image puts on this node whose log cannot be opened,
    /// with the reason. Every reconcile tries them again.
    offline: RwLock<HashMap<Key, String>>,
    /// Partitions the image has that another broker leads (or none does):
    /// clients asking here are told NOT_LEADER_OR_FOLLOWER.
    elsewhere: RwLock<HashSet<Key>>,
    /// Replicas this node follows: their fetchers copy the leader's log.
    followers: RwLock<HashMap<Key, Arc<Partition>>>,
    node_id: i32,
    /// The high watermarks checkpointed by the last run: where replicas
    /// opened in this one start theirs.
    checkpointed: HashMap<Key, i64>,
    pub(crate) data_available: Arc<Notify>,
    flusher: Flusher,
}

/// Logs opened for a change the metadata does not hold yet: given to
/// [`Partitions::install`] once it does, or to [`Partitions::discard`].
pub(crate) struct NewLogs(Vec<Partition>);

impl Partitions {
    pub(crate) fn new(log_dir: LogDir, node_id: i32) -> Self {
        let checkpointed = crate::replication::checkpoint::read(log_dir.path());
        Partitions {
            log_dir,
            followers: RwLock::new(HashMap::new()),
            node_id,
            checkpointed,
            map: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashMap::new()),
            elsewhere: RwLock::new(HashSet::new()),
            data_available: Arc::new(Notify::new()),
            flusher: Flusher::start(),
        }
    }

    /// Partitions whose log could not be opened.
    pub(crate) fn offline_count(&self) -> usize {
        self.offline.read_locked("offline partitions").len()
    }

    /// The group-commit fdatasync latencies.
    pub(crate) fn fsync_seconds(&self) -> &crate::metrics::Histogram {
        self.flusher.fsync_seconds()
    }

    pub(crate) fn log_dir_path(&self) -> &std::path::Path {
        self.log_dir.path()
    }

    /// The most segment files the logs keep open (`log.max.open.segment.files`).
    pub(crate) fn max_open_segment_files(&self) -> usize {
        self.log_dir.open_files().max_open()
    }

    pub(crate) fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.map
            .read_locked("partitions")
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Partition>> {
        self.map
            .read_locked("partitions")
            .values()
            .cloned()
            .collect()
    }

    /// Why a partition the image puts here has no open log, if it has none.
    pub(crate) fn offline_reason(&self, topic: &str, index: i32) -> Option<String> {
        self.offline
            .read_locked("offline partitions")
            .get(&(topic.to_string(), index))
            .cloned()
    }

    fn led_elsewhere(&self, topic: &str, index: i32) -> bool {
        self.elsewhere
            .read_locked("partitions led elsewhere")
            .contains(&(topic.to_string(), index))
    }

    /// What a coordinator lookup that lands here is told for an internal
    /// partition this node does not serve.
    pub(crate) fn not_here_code(&self, topic: &str, index: i32) -> ErrorCode {
        if self.led_elsewhere(topic, index) {
            error::NOT_COORDINATOR
        } else {
            error::COORDINATOR_NOT_AVAILABLE
        }
    }

    /// The answer for a partition without an open log: NOT_LEADER_OR_FOLLOWER
    /// when another broker leads it, KAFKA_STORAGE_ERROR with the reason
    /// when it is offline (as Kafka answers a partition in a failed log
    /// dir), else UNKNOWN_TOPIC_OR_PARTITION.
    pub(crate) fn missing(&self, topic: &str, index: i32) -> (ErrorCode, Option<String>) {
        if self.led_elsewhere(topic, index) {
            return (
                error::NOT_LEADER_OR_FOLLOWER,
                Some(format!("this broker does not lead {topic}-{index}")),
            );
        }
        match self.offline_reason(topic, index) {
            Some(reason) => (
                error::KAFKA_STORAGE_ERROR,
                Some(format!("partition {topic}-{index} is offline: {reason}")),
            ),
            None => (error::UNKNOWN_TOPIC_OR_PARTITION, None),
        }
    }

    fn open(
        &self,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        assignment: Assignment,
        settings: LogSettings,
    ) -> Result<Partition, StorageError> {
        let spec = PartitionSpec {
            topic: topic.to_string(),
            topic_id,
            index,
            node_id: self.node_id,
            assignment,
            settings,
            high_watermark: self.checkpointed.get(&(topic.to_string(), index)).copied(),
        };
        Partition::open(
            &self.log_dir,
            spec,
            self.data_available.clone(),
            self.flusher.clone(),
            now_ms(),
        )
    }

    /// Opens the logs of the new partitions `indexes` of `topic` before the
    /// metadata records them. A directory already there belongs to no
    /// topic the metadata knows, so it is moved aside first. On failure
    /// every directory made here is removed again and nothing is left.
    pub(crate) fn create_logs(
        &self,
        topic: &str,
        topic_id: Uuid,
        led: impl IntoIterator<Item = (i32, Vec<i32>)>,
        settings: &LogSettings,
    ) -> Result<NewLogs, StorageError> {
        let mut created = NewLogs(Vec::new());
        for (index, replicas) in led {
            if self.get_any(&(topic.to_string(), index)).is_some() {
                // A newer image has this partition already (another node
                // created the topic first): its directory is in use, and
                // this creation's append will be refused as stale.
                continue;
            }
            let assignment = Assignment {
                leader_epoch: 0,
                role: AssignedRole::Lead {
                    isr: replicas.clone(),
                    replicas,
                },
            };
            let opened = self
                .set_aside_stray(topic, index)
                .and_then(|()| self.open(topic, topic_id, index, assignment, settings.clone()));
            match opened {
                Ok(partition) => created.0.push(partition),
                Err(e) => {
                    self.discard(created);
                    if self.log_dir.has_log(topic, index) {
                        self.delete_created(topic, index);
                    }
                    return Err(e);
                }
            }
        }
        Ok(created)
    }

    fn set_aside_stray(&self, topic: &str, index: i32) -> Result<(), StorageError> {
        if self.log_dir.has_log(topic, index) {
            let aside = self.log_dir.move_aside(topic, index, now_ms())?;
            tracing::warn!(topic, index, moved_to = %aside.display(), "moved aside a directory left for a partition the metadata does not know, before creating it anew");
        }
        Ok(())
    }

    /// Removes logs made for a change that did not happen. A directory the
    /// registry serves by now is left alone: another node's change of the
    /// same name won (two brokers creating `__consumer_offsets` at once),
    /// and this node opened that partition from the winner's image on the
    /// directory its own attempt had made.
    pub(crate) fn discard(&self, logs: NewLogs) {
        for partition in logs.0 {
            let (topic, index) = (partition.topic.clone(), partition.index);
            // Closes its files before the directory goes.
            drop(partition);
            if self.get_any(&(topic.clone(), index)).is_some() {
                tracing::debug!(
                    topic,
                    index,
                    "kept the directory of a discarded creation: the metadata's partition uses it"
                );
                continue;
            }
            self.delete_created(&topic, index);
        }
    }

    fn delete_created(&self, topic: &str, index: i32) {
        if let Err(e) = self.log_dir.delete_log(topic, index) {
            tracing::error!(topic, index, error = %e, "cannot remove the directory of a partition whose creation failed");
        }
    }

    /// Serves logs from [`Partitions::create_logs`] once the metadata has them.
    pub(crate) fn install(&self, logs: NewLogs) {
        let mut map = self.map.write_locked("partitions");
        let mut offline = self.offline.write_locked("offline partitions");
        for partition in logs.0 {
            let key = (partition.topic.clone(), partition.index);
            offline.remove(&key);
            map.insert(key, Arc::new(partition));
        }
    }

    /// Brings the replicas this node holds in line with `image`: opens the
    /// logs of partitions assigned here that it lacks, gives every replica
    /// its role (leader or follower, with the image's leader epoch and
    /// ISR), applies changed settings, and deletes the logs of partitions
    /// no longer assigned here (their topic is gone). A replica that stops
    /// leading keeps its data and follows.
    /// A log that cannot be opened leaves its partition offline (logged,
    /// and reported to clients) instead of failing the others.
    /// `settings_for` resolves a topic's effective settings.
    pub(crate) fn reconcile(
        &self,
        image: &MetadataImage,
        settings_for: impl Fn(&BTreeMap<String, String>) -> LogSettings,
    ) -> Result<(), StorageError> {
        let node_id = self.node_id;
        let mut assigned: HashMap<Key, (Uuid, Assignment, LogSettings)> = HashMap::new();
        let mut elsewhere = HashSet::new();
        for topic in image.topics() {
            let settings = settings_for(&topic.configs);
            for (index, p) in topic.partitions.iter().enumerate() {
                let key = (topic.name.clone(), index as i32);
                if p.leader != node_id {
                    elsewhere.insert(key.clone());
                }
                if !p.replicas.contains(&node_id) && p.leader != node_id {
                    continue;
                }
                let role = if p.leader == node_id {
                    AssignedRole::Lead {
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                    }
                } else {
                    AssignedRole::Follow { leader: p.leader }
                };
                let assignment = Assignment {
                    leader_epoch: p.leader_epoch,
                    role,
                };
                assigned.insert(key, (topic.id, assignment, settings.clone()));
            }
        }
        *self.elsewhere.write_locked("partitions led elsewhere") = elsewhere;
        let mut stale = Vec::new();
        for registry in [&self.map, &self.followers] {
            let mut map = registry.write_locked("partitions");
            map.retain(|key, p| {
                let kept = assigned.get(key).is_some_and(|(id, ..)| *id == p.topic_id);
                if !kept {
                    stale.push(key.clone());
                }
                kept
            });
        }
        for key in stale {
            self.log_dir.delete_log(&key.0, key.1)?;
        }
        self.offline
            .write_locked("offline partitions")
            .retain(|key, _| assigned.contains_key(key));
        let now = now_ms();
        let mut missing = Vec::new();
        for (key, (topic_id, assignment, settings)) in assigned {
            let existing = self.get_any(&key);
            match existing {
                Some(partition) => {
                    partition.apply_settings(settings);
                    partition.apply_assignment(&assignment, now);
                    self.file(key, partition, &assignment);
                }
                None => missing.push((key, topic_id, assignment, settings)),
            }
        }
        // Opened without the registry locked: produce and fetch go on.
        for (key, topic_id, assignment, settings) in missing {
            match self.open(&key.0, topic_id, key.1, assignment.clone(), settings) {
                Ok(partition) => {
                    self.offline.write_locked("offline partitions").remove(&key);
                    self.file(key, Arc::new(partition), &assignment);
                }
                Err(e) => {
                    tracing::error!(topic = %key.0, partition = key.1, error = %e, "partition offline: its log cannot be opened; clients are told LEADER_NOT_AVAILABLE until a later metadata change opens it");
                    self.offline
                        .write_locked("offline partitions")
                        .insert(key, e.to_string());
                }
            }
        }
        Ok(())
    }

    /// The replica `key` holds here, led or followed.
    fn get_any(&self, key: &Key) -> Option<Arc<Partition>> {
        let led = self.map.read_locked("partitions").get(key).cloned();
        led.or_else(|| {
            self.followers
                .read_locked("followed partitions")
                .get(key)
                .cloned()
        })
    }

    /// Files a replica under its role: clients are served only from the
    /// partitions this node leads.
    fn file(&self, key: Key, partition: Arc<Partition>, assignment: &Assignment) {
        let (to, from) = match assignment.role {
            AssignedRole::Lead { .. } => (&self.map, &self.followers),
            AssignedRole::Follow { .. } => (&self.followers, &self.map),
        };
        from.write_locked("partitions").remove(&key);
        to.write_locked("partitions").insert(key, partition);
    }

    /// The replicas this node follows.
    /// A partition this broker follows (a consumer may read it, KIP-392).
    pub(crate) fn follower(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.followers
            .read_locked("followed partitions")
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub(crate) fn followed(&self) -> Vec<Arc<Partition>> {
        self.followers
            .read_locked("followed partitions")
            .values()
            .cloned()
            .collect()
    }

    /// Moves aside (never deletes) partition directories that no topic in
    /// the image owns: a crash during topic deletion leaves them, but so
    /// does metadata that lost records, and then they hold the only copy
    /// of the data. Returns how many were moved.
    pub(crate) fn move_orphans_aside(&self, image: &MetadataImage) -> Result<usize, StorageError> {
        let mut moved = 0;
        for (topic, index) in self.log_dir.existing_partitions()? {
            if topic == METADATA_TOPIC {
                continue;
            }
            let owned = image
                .topic(&topic)
                .is_some_and(|t| (index as usize) < t.partitions.len());
            if !owned {
                let aside = self.log_dir.move_aside(&topic, index, now_ms())?;
                tracing::warn!(
                    topic,
                    index,
                    moved_to = %aside.display(),
                    "moved aside the directory of a partition the metadata does not know; delete it once you know it is not needed"
                );
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Whether the data directory holds partition directories (besides the
    /// metadata log's own).
    pub(crate) fn any_on_disk(&self) -> Result<bool, StorageError> {
        Ok(self
            .log_dir
            .existing_partitions()?
            .iter()
            .any(|(topic, _)| topic != METADATA_TOPIC))
    }

    /// Writes every replica's high watermark to the data directory's
    /// checkpoint (see `replication::checkpoint`).
    pub(crate) fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        let mut entries: Vec<(String, i32, i64)> = self
            .all()
            .into_iter()
            .chain(self.followed())
            .map(|p| (p.topic.clone(), p.index, p.high_watermark()))
            .collect();
        entries.sort();
        crate::replication::checkpoint::write(self.log_dir.path(), &entries)
    }

    /// Syncs and closes every log, then marks the shutdown clean.
    pub(crate) fn close_all(&self) -> Result<(), StorageError> {
        if let Err(e) = self.checkpoint_high_watermarks() {
            tracing::warn!(error = %e, "cannot write the high-watermark checkpoint at shutdown");
        }
        let mut drained: Vec<Arc<Partition>> = self
            .map
            .write_locked("partitions")
            .drain()
            .map(|(_, p)| p)
            .collect();
        drained.extend(
            self.followers
                .write_locked("followed partitions")
                .drain()
                .map(|(_, p)| p),
        );
        let mut all_closed = true;
        for partition in drained {
            match Arc::try_unwrap(partition) {
                Ok(p) => p.close()?,
                Err(shared) => {
                    // A request still holds it: sync its data, and let the
                    // next start recover it as after a crash.
                    shared.sync_appended()?;
                    all_closed = false;
                }
            }
        }
        if all_closed {
            self.log_dir.mark_clean_shutdown();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::server::{open_state, StartError};
    use crate::test_support::{create_topic, open_test_state};
    use std::path::Path;

    fn config() -> crate::config::BrokerConfig {
        crate::config::BrokerConfig::from_settings([
            ("listeners", "127.0.0.1:0"),
            ("advertised.listeners", "127.0.0.1:9092"),
        ])
        .unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_partition_directory_nobody_owns_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        create_topic(&open_test_state(dir.path()), "kept", 1).await;
        std::fs::create_dir(dir.path().join("ghost-0")).unwrap();
        std::fs::write(dir.path().join("ghost-0").join("data"), b"only copy").unwrap();
        // "kept" has one partition: a second directory is no partition of it.
        std::fs::create_dir(dir.path().join("kept-1")).unwrap();
        let state = open_test_state(dir.path());
        assert!(state.partitions.get("kept", 0).is_some());
        let names = names_in(dir.path());
        let aside: Vec<&String> = names.iter().filter(|n| n.ends_with("-orphaned")).collect();
        assert_eq!(aside.len(), 2, "{names:?}");
        assert!(aside[0].starts_with("ghost-0."), "{names:?}");
        assert!(aside[1].starts_with("kept-1."), "{names:?}");
        assert_eq!(
            std::fs::read(dir.path().join(aside[0]).join("data")).unwrap(),
            b"only copy"
        );
        assert!(!names.contains(&"ghost-0".to_string()));
        drop(state);
        // Moved aside once: the next start leaves them alone.
        drop(open_test_state(dir.path()));
        assert_eq!(names_in(dir.path()), names);
    }

    #[tokio::test]
    async fn a_partition_whose_log_cannot_be_opened_is_reported_offline() {
        use crate::test_support::call;
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::StrBytes;
        use sluice_protocol::error;
        let dir = tempfile::tempdir().unwrap();
        create_topic(&open_test_state(dir.path()), "t", 2).await;
        // A file where the directory should be: the log cannot be opened.
        std::fs::remove_dir_all(dir.path().join("t-1")).unwrap();
        std::fs::write(dir.path().join("t-1"), b"").unwrap();
        let state = open_test_state(dir.path());
        assert!(state.partitions.get("t", 0).is_some(), "the others serve");
        assert!(state.partitions.offline_reason("t", 1).is_some());

        let name = TopicName(StrBytes::from_static_str("t"));
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name.clone())),
        ])));
        let Some(ResponseKind::Metadata(metadata)) = call(&state, ApiKey::Metadata, 12, body).await
        else {
            panic!("no Metadata response")
        };
        let partitions = &metadata.topics[0].partitions;
        assert_eq!(partitions[0].error_code, error::NONE);
        assert_eq!(partitions[1].error_code, error::LEADER_NOT_AVAILABLE);
        assert_eq!(partitions[1].leader_id.0, -1);
        assert_eq!(
            partitions[1].offline_replicas,
            vec![BrokerId(state.node_id)]
        );

        let body = RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name)
                    .with_partition_data(
                        vec![PartitionProduceData::default().with_index(1)],
                    )]),
        );
        let Some(ResponseKind::Produce(produce)) = call(&state, ApiKey::Produce, 9, body).await
        else {
            panic!("no Produce response")
        };
        let answer = &produce.responses[0].partition_responses[0];
        assert_eq!(answer.error_code, error::KAFKA_STORAGE_ERROR);
        assert!(answer
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("t-1 is offline")));
    }

    #[tokio::test]
    async fn a_missing_metadata_log_with_partitions_on_disk_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        create_topic(&open_test_state(dir.path()), "orders", 2).await;
        let metadata_dir = dir.path().join("__cluster_metadata-0");
        std::fs::remove_file(metadata_dir.join("metadata.log")).unwrap();
        let before = names_in(dir.path());
        match open_state(config(), dir.path().to_path_buf()) {
            Err(e @ StartError::MetadataMissing { .. }) => {
                let message = e.to_string();
                assert!(message.contains("metadata.log"), "{message}");
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("started a new cluster over existing partitions"),
        }
        assert_eq!(names_in(dir.path()), before, "nothing moved or deleted");
        assert!(before.contains(&"orders-0".to_string()));
        // An empty log (every record torn away) is the same case.
        std::fs::write(metadata_dir.join("metadata.log"), b"").unwrap();
        assert!(matches!(
            open_state(config(), dir.path().to_path_buf()),
            Err(StartError::MetadataMissing { .. })
        ));
    }

    #[tokio::test]
    async fn a_damaged_metadata_log_refuses_to_start_and_keeps_every_partition() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = open_test_state(dir.path());
            create_topic(&state, "a", 1).await;
            create_topic(&state, "b", 1).await;
        }
        let log = dir.path().join("__cluster_metadata-0").join("metadata.log");
        let mut bytes = std::fs::read(&log).unwrap();
        // Inside the first record (the cluster id): nothing after it may go.
        for byte in &mut bytes[12..16] {
            *byte ^= 0xff;
        }
        std::fs::write(&log, &bytes).unwrap();
        let before = names_in(dir.path());
        match open_state(config(), dir.path().to_path_buf()) {
            Err(StartError::Metadata(e)) => {
                let message = e.to_string();
                assert!(message.contains(&log.display().to_string()), "{message}");
                assert!(message.contains("byte offset 0"), "{message}");
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("started on a damaged metadata log"),
        }
        assert_eq!(names_in(dir.path()), before);
        assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log is untouched");
    }
}
