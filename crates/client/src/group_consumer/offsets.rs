//! Committing and reading a member's group offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};

use crate::admin::s;
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};

/// Who commits: OffsetCommit is fenced by member id, generation (or
/// KIP-848 member epoch) and static instance id.
#[derive(Debug, Clone)]
pub(super) struct Committer {
    pub(super) group: String,
    pub(super) generation: i32,
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
}

/// Commits `offsets` (topic, partition, next offset to read); fails with
/// the first per-partition error.
pub(super) async fn commit_offsets(
    conn: &Connection,
    who: &Committer,
    offsets: &[(String, i32, i64)],
) -> Result<()> {
    let group = who.group.as_str();
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in offsets {
        topics.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(""))),
        );
    }
    // v7 brought the instance id.
    let instance_id = who
        .instance_id
        .as_ref()
        .filter(|_| conn.negotiated_version(ApiKey::OffsetCommit) >= Some(7));
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(who.generation)
        .with_member_id(s(&*who.member_id))
        .with_group_instance_id(instance_id.map(|i| s(&**i)))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = conn.call(req).await?;
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != codes::NONE {
                return Err(Error::Kafka(KafkaError::new(p.error_code, None).on(
                    format!(
                        "committing {}-{} for group '{group}'",
                        t.name.0.as_str(),
                        p.partition_index
                    ),
                )));
            }
        }
    }
    Ok(())
}

/// The group's committed offsets for `parts` (-1 when there is none).
pub(super) async fn fetch_committed(
    conn: &Connection,
    group: &str,
    parts: &[(String, i32)],
    require_stable: bool,
) -> Result<BTreeMap<(String, i32), i64>> {
    let v = conn
        .negotiated_version(ApiKey::OffsetFetch)
        .ok_or_else(|| Error::UnsupportedVersion {
            addr: conn.addr().to_string(),
            api: "OffsetFetch".into(),
        })?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let resource = format!("offsets of group '{group}'");
    let mut out = BTreeMap::new();
    let mut add = |t: &str, p: i32, code: i16, o: i64| -> Result<()> {
        Error::check(code, None, format!("{t}-{p} of group '{group}'"))?;
        out.insert((t.to_string(), p), o);
        Ok(())
    };
    if v >= 8 {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(*t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let req = OffsetFetchRequest::default()
            .with_require_stable(require_stable)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_member_epoch(-1)
                .with_topics(Some(topics))]);
        let resp = conn.call_version(req, v, conn_timeout()).await?;
        for g in resp.groups {
            Error::check(g.error_code, None, resource.clone())?;
            for t in g.topics {
                for p in t.partitions {
                    add(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.error_code,
                        p.committed_offset,
                    )?;
                }
            }
        }
    } else {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(*t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        let mut req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(topics));
        // v7 brought require_stable.
        if v >= 7 {
            req = req.with_require_stable(require_stable);
        }
        let resp = conn.call_version(req, v, conn_timeout()).await?;
        Error::check(resp.error_code, None, resource)?;
        for t in resp.topics {
            for p in t.partitions {
                add(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code,
                    p.committed_offset,
                )?;
            }
        }
    }
    Ok(out)
}

fn conn_timeout() -> Duration {
    Duration::from_secs(30)
}
