//! Partition reassignment (KIP-455): AlterPartitionReassignments and
//! ListPartitionReassignments, as `kafka-reassign-partitions` uses them.

use sluice_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use sluice_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use sluice_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use std::collections::BTreeMap;

use crate::admin::{s, Admin};
use crate::error::{name, Error, Result};

/// A move to ask for: `replicas` `None` cancels the one in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    pub topic: String,
    pub partition: i32,
    pub replicas: Option<Vec<i32>>,
}

/// The broker's answer for one move: `None`, or (error name, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<(String, String)>,
}

/// A reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// The target replicas, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Admin {
    /// Starts, replaces or cancels the moves; each gets its own answer.
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[PartitionMove],
    ) -> Result<Vec<MoveResult>> {
        let conn = self.cluster().any_connection().await?;
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for m in moves {
            by_topic.entry(&m.topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(m.partition)
                    .with_replicas(
                        m.replicas
                            .as_ref()
                            .map(|r| r.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ReassignableTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let resp = conn.call(request).await?;
        Error::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
            "partition reassignment",
        )?;
        Ok(resp
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.to_string();
                t.partitions.into_iter().map(move |p| MoveResult {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    error: (p.error_code != 0).then(|| {
                        (
                            name(p.error_code).to_string(),
                            p.error_message.map(|m| m.to_string()).unwrap_or_default(),
                        )
                    }),
                })
            })
            .collect())
    }

    /// The reassignments in progress, of every topic or of `topics`.
    pub async fn list_partition_reassignments(
        &self,
        topics: Option<&[String]>,
    ) -> Result<Vec<OngoingReassignment>> {
        let conn = self.cluster().any_connection().await?;
        let asked = match topics {
            None => None,
            Some(topics) => {
                let mut asked = Vec::new();
                for topic in topics {
                    let described = self.describe_topic(topic).await?;
                    asked.push(
                        ListPartitionReassignmentsTopics::default()
                            .with_name(TopicName(s(topic)))
                            .with_partition_indexes(
                                described.partitions.iter().map(|p| p.partition).collect(),
                            ),
                    );
                }
                Some(asked)
            }
        };
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(asked);
        let resp = conn.call(request).await?;
        Error::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
            "listing partition reassignments",
        )?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect();
        Ok(resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.to_string();
                t.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }
}
