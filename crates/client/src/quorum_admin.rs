//! The controller quorum and partition leadership: DescribeQuorum (as
//! `kafka-metadata-quorum describe` shows it) and ElectLeaders (as
//! `kafka-leader-election` asks for it).

use sluice_protocol::kafka_protocol::messages::describe_quorum_request::{
    PartitionData, TopicData,
};
use sluice_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use sluice_protocol::kafka_protocol::messages::{
    DescribeQuorumRequest, ElectLeadersRequest, TopicName,
};

use crate::admin::{s, Admin};
use crate::error::{name, Error, Result};

/// KRaft's metadata topic, the only one with a quorum.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// The metadata quorum from DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The active controller (-1 while there is none).
    pub leader_id: i32,
    /// The leader's epoch (its Raft term).
    pub leader_epoch: i32,
    /// The quorum's committed end.
    pub high_watermark: i64,
    /// The voters, by id.
    pub voters: Vec<QuorumVoter>,
}

/// One voter of the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    /// Its log end as the leader last saw it (-1: unknown).
    pub log_end_offset: i64,
    /// How far behind the high watermark it is (`None`: unknown).
    pub lag: Option<i64>,
}

/// What ElectLeaders elects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica, if it is in sync.
    Preferred,
    /// Any live replica for a partition without a leader, even one out of
    /// sync (what only the lost in-sync replicas had is lost).
    Unclean,
}

/// One partition's ElectLeaders answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    /// `None`: a new leader was elected; else Kafka's error name and message.
    pub error: Option<(String, String)>,
}

impl Admin {
    /// The metadata quorum: leader, epoch, high watermark and voters.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription> {
        let conn = self.cluster().any_connection().await?;
        let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(s(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let resp = conn.call(request).await?;
        Error::check(
            resp.error_code,
            resp.error_message.map(|m| m.to_string()),
            "quorum",
        )?;
        let partition = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| Error::Protocol("DescribeQuorum answered no partition".into()))?;
        Error::check(
            partition.error_code,
            partition.error_message.map(|m| m.to_string()),
            METADATA_TOPIC,
        )?;
        let hw = partition.high_watermark;
        let mut voters: Vec<QuorumVoter> = partition
            .current_voters
            .iter()
            .map(|v| QuorumVoter {
                id: v.replica_id.0,
                log_end_offset: v.log_end_offset,
                lag: (v.log_end_offset >= 0 && hw >= 0).then(|| (hw - v.log_end_offset).max(0)),
            })
            .collect();
        voters.sort_by_key(|v| v.id);
        Ok(QuorumDescription {
            leader_id: partition.leader_id.0,
            leader_epoch: partition.leader_epoch,
            high_watermark: hw,
            voters,
        })
    }

    /// Elects leaders for `partitions` (`None`: every partition; then only
    /// those that needed an election are answered).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionResult>> {
        let conn = self.cluster().any_connection().await?;
        let topic_partitions = partitions.map(|partitions| {
            let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
            for (topic, partition) in partitions {
                by_topic.entry(topic).or_default().push(*partition);
            }
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(s(topic)))
                        .with_partitions(partitions)
                })
                .collect()
        });
        let request = ElectLeadersRequest::default()
            .with_election_type(match election {
                ElectionType::Preferred => 0,
                ElectionType::Unclean => 1,
            })
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(30_000);
        let resp = conn.call(request).await?;
        Error::check(resp.error_code, None, "leader election")?;
        let mut results = Vec::new();
        for topic in resp.replica_election_results {
            for p in topic.partition_result {
                let error = (p.error_code != 0).then(|| {
                    (
                        name(p.error_code).to_string(),
                        p.error_message.map(|m| m.to_string()).unwrap_or_default(),
                    )
                });
                results.push(ElectionResult {
                    topic: topic.topic.to_string(),
                    partition: p.partition_id,
                    error,
                });
            }
        }
        Ok(results)
    }
}
