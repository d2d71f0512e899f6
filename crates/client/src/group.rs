//! Consumer-group administration: list, describe, delete groups, and read,
//! alter or delete their committed offsets.
//!
//! Every group request goes to the group's coordinator, found with
//! FindCoordinator; a request that fails because the coordinator moved or is
//! still loading is retried against a freshly looked-up coordinator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use sluice_protocol::error as codes;
use sluice_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use sluice_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};

use crate::admin::{s, Admin};
use crate::connection::Connection;
use crate::error::{Error, KafkaError, Result};

/// What a coordinator coordinates (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordinatorType {
    Group = 0,
    Transaction = 1,
}

/// A group as listed by ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups, empty for groups that
    /// only commit offsets).
    pub protocol_type: String,
    /// State (`Empty`, `Stable`, ...); `None` from brokers older than
    /// ListGroups v4.
    pub state: Option<String>,
    /// Group type (`classic`, `consumer`); `None` before ListGroups v5.
    pub group_type: Option<String>,
    /// The broker coordinating the group.
    pub coordinator: i32,
}

/// The partitions assigned to one member, decoded from the consumer
/// protocol's `ConsumerProtocolAssignment`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberAssignment {
    /// Version of the assignment schema.
    pub version: i16,
    /// Assigned partitions per topic, in the order the leader wrote them.
    pub partitions: Vec<(String, Vec<i32>)>,
    /// Assignor-specific user data.
    pub user_data: Option<Bytes>,
}

impl MemberAssignment {
    /// Decodes a `ConsumerProtocolAssignment`: i16 version, an array of
    /// (topic string, array of i32 partitions), nullable user data bytes.
    /// An empty buffer (a member that has not synced yet) is an empty
    /// assignment.
    pub fn decode(bytes: &[u8]) -> Result<MemberAssignment> {
        if bytes.is_empty() {
            return Ok(MemberAssignment::default());
        }
        let mut buf = bytes;
        let err = |what: &str| Error::Protocol(format!("consumer assignment: truncated {what}"));
        let version = get_i16(&mut buf).ok_or_else(|| err("version"))?;
        if version < 0 {
            return Err(Error::Protocol(format!(
                "consumer assignment: invalid version {version}"
            )));
        }
        let n = get_len(&mut buf).ok_or_else(|| err("topic count"))?;
        let mut partitions = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = get_i16(&mut buf).ok_or_else(|| err("topic name"))?;
            let len = usize::try_from(len).map_err(|_| err("topic name"))?;
            if buf.len() < len {
                return Err(err("topic name"));
            }
            let topic = String::from_utf8(buf[..len].to_vec())
                .map_err(|_| Error::Protocol("consumer assignment: topic is not UTF-8".into()))?;
            buf.advance(len);
            let np = get_len(&mut buf).ok_or_else(|| err("partition count"))?;
            if buf.len() < np * 4 {
                return Err(err("partitions"));
            }
            let ps = (0..np).map(|_| buf.get_i32()).collect();
            partitions.push((topic, ps));
        }
        // User data: absent in a truncated v0 encoding, -1 for null.
        let user_data = if buf.remaining() >= 4 {
            let len = buf.get_i32();
            if len < 0 {
                None
            } else {
                let len = len as usize;
                if buf.len() < len {
                    return Err(err("user data"));
                }
                Some(Bytes::copy_from_slice(&buf[..len]))
            }
        } else {
            None
        };
        Ok(MemberAssignment {
            version,
            partitions,
            user_data,
        })
    }
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

/// An array length: i32, with -1 (null) read as empty.
fn get_len(buf: &mut &[u8]) -> Option<usize> {
    if buf.remaining() < 4 {
        return None;
    }
    Some(usize::try_from(buf.get_i32()).unwrap_or(0))
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id issued by the coordinator.
    pub member_id: String,
    /// Static membership id, when the member set `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host, as the broker saw it.
    pub client_host: String,
    /// The assignment, decoded when the group uses the `consumer` protocol
    /// type and the bytes decode; `None` otherwise (see `raw_assignment`).
    pub assignment: Option<MemberAssignment>,
    /// The assignment bytes as sent by the group leader.
    pub raw_assignment: Bytes,
}

/// A group as described by DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State: `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`
    /// or `Dead` (also what the broker reports for unknown groups).
    pub state: String,
    /// Protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// The selected protocol (the assignor, e.g. `range`).
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
    /// The broker coordinating the group.
    pub coordinator: i32,
}

impl GroupDescription {
    /// True when the group has no active members (state `Empty` or `Dead`),
    /// so its offsets may be altered from outside.
    pub fn is_inactive(&self) -> bool {
        matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

/// A committed offset of a group for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the committed offset, -1 when unknown.
    pub leader_epoch: i32,
    /// Commit metadata string.
    pub metadata: Option<String>,
}

impl GroupOffset {
    /// An offset to commit, without leader epoch or metadata.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        GroupOffset {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }
    }
}

/// Errors after which the coordinator is looked up again and the request
/// retried.
pub(crate) fn coordinator_retriable(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(14 /* COORDINATOR_LOAD_IN_PROGRESS */)
            | Some(15 /* COORDINATOR_NOT_AVAILABLE */)
            | Some(16 /* NOT_COORDINATOR */)
    ) || matches!(e, Error::Disconnected(_) | Error::Io { .. })
}

const COORDINATOR_ATTEMPTS: u32 = 6;

fn group_err(code: i16, message: Option<String>, group: &str) -> Result<()> {
    Error::check(code, message, format!("group '{group}'"))
}

impl Admin {
    /// Finds the coordinator of `group` (FindCoordinator, key type 0) and
    /// returns its broker id and a connection to it.
    pub async fn find_group_coordinator(&self, group: &str) -> Result<(i32, Arc<Connection>)> {
        self.find_coordinator(group, CoordinatorType::Group).await
    }

    /// Finds the coordinator of a group or of a transactional id and
    /// returns its broker id and a connection to it.
    pub(crate) async fn find_coordinator(
        &self,
        key: &str,
        key_type: CoordinatorType,
    ) -> Result<(i32, Arc<Connection>)> {
        let conn = self.cluster.any_connection().await?;
        let batched = conn
            .negotiated_version(ApiKey::FindCoordinator)
            .is_some_and(|v| v >= 4);
        let req = FindCoordinatorRequest::default().with_key_type(key_type as i8);
        let req = if batched {
            req.with_coordinator_keys(vec![s(key)])
        } else {
            req.with_key(s(key))
        };
        let what = match key_type {
            CoordinatorType::Group => format!("group '{key}'"),
            CoordinatorType::Transaction => format!("transactional id '{key}'"),
        };
        let resp = conn.call(req).await?;
        let (code, msg, node) = if batched {
            let c = resp
                .coordinators
                .into_iter()
                .find(|c| c.key.as_str() == key)
                .ok_or_else(|| Error::Protocol(format!("FindCoordinator: no answer for {what}")))?;
            (c.error_code, c.error_message, c.node_id.0)
        } else {
            (resp.error_code, resp.error_message, resp.node_id.0)
        };
        Error::check(
            code,
            msg.map(|m| m.to_string()),
            format!("coordinator of {what}"),
        )?;
        Ok((node, self.cluster.broker_connection(node).await?))
    }

    /// Runs `op` against the coordinator of `group`, looking the coordinator
    /// up again after NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    /// COORDINATOR_LOAD_IN_PROGRESS or a dropped connection.
    async fn on_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T>
    where
        F: Fn(i32, Arc<Connection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let res = match self.find_group_coordinator(group).await {
                Ok((node, conn)) => op(node, conn).await,
                Err(e) => Err(e),
            };
            match res {
                Err(e) if coordinator_retriable(&e) && attempt + 1 < COORDINATOR_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(group, error = %e, attempt, "retrying group request");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    /// Lists the groups of every broker (ListGroups), optionally only those
    /// in one of `states` (e.g. `["Stable", "Empty"]`; case-insensitive).
    /// Sorted by group id.
    pub async fn list_groups(&self, states: &[String]) -> Result<Vec<GroupListing>> {
        let md = self.cluster.refresh_metadata(Some(&[])).await?;
        let mut out = Vec::new();
        for &id in md.brokers.keys() {
            let conn = self.cluster.broker_connection(id).await?;
            let v = conn.negotiated_version(ApiKey::ListGroups).unwrap_or(0);
            let mut req = ListGroupsRequest::default();
            if v >= 4 {
                req = req.with_states_filter(states.iter().map(|st| s(st.clone())).collect());
            }
            let resp = conn.call(req).await?;
            Error::check(resp.error_code, None, format!("groups of broker {id}"))?;
            for g in resp.groups {
                out.push(GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: (v >= 4).then(|| g.group_state.to_string()),
                    group_type: (v >= 5).then(|| g.group_type.to_string()),
                    coordinator: id,
                });
            }
        }
        if !states.is_empty() && !out.iter().all(|g| g.state.is_some()) {
            // The broker cannot filter: describe to learn the states.
            let ids: Vec<String> = out.iter().map(|g| g.group_id.clone()).collect();
            let described = self.describe_groups(&ids).await?;
            for (g, d) in out.iter_mut().zip(described) {
                g.state = Some(d.state);
            }
        }
        if !states.is_empty() {
            out.retain(|g| {
                g.state
                    .as_deref()
                    .is_some_and(|st| states.iter().any(|f| f.eq_ignore_ascii_case(st)))
            });
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes groups (DescribeGroups at each group's coordinator), in the
    /// order of `ids`. An unknown group fails with GROUP_ID_NOT_FOUND on
    /// DescribeGroups v6+; older versions report it in state `Dead` with no
    /// members.
    pub async fn describe_groups(&self, ids: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let d = self
                .on_coordinator(id, |node, conn| async move {
                    let resp = conn
                        .call(
                            DescribeGroupsRequest::default()
                                .with_groups(vec![GroupId(s(id.clone()))]),
                        )
                        .await?;
                    let g = resp
                        .groups
                        .into_iter()
                        .find(|g| g.group_id.0.as_str() == id)
                        .ok_or_else(|| {
                            Error::Protocol(format!("DescribeGroups: no answer for group '{id}'"))
                        })?;
                    group_err(g.error_code, g.error_message.map(|m| m.to_string()), id)?;
                    let consumer = g.protocol_type.as_str() == "consumer";
                    let members = g
                        .members
                        .into_iter()
                        .map(|m| GroupMember {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: if consumer {
                                MemberAssignment::decode(&m.member_assignment).ok()
                            } else {
                                None
                            },
                            raw_assignment: m.member_assignment,
                        })
                        .collect();
                    Ok(GroupDescription {
                        group_id: g.group_id.0.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        protocol: g.protocol_data.to_string(),
                        members,
                        coordinator: node,
                    })
                })
                .await?;
            out.push(d);
        }
        Ok(out)
    }

    /// All committed offsets of a group (OffsetFetch with topics = null),
    /// sorted by topic and partition. Partitions without a committed offset
    /// are left out.
    pub async fn list_group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        self.on_coordinator(group, |_, conn| async move {
            let v = conn
                .negotiated_version(ApiKey::OffsetFetch)
                .ok_or_else(|| Error::UnsupportedVersion {
                    addr: conn.addr().to_string(),
                    api: "OffsetFetch".into(),
                })?;
            let mut out = Vec::new();
            let mut push = |topic: &str, p: i32, offset: i64, epoch: i32, md: Option<String>| {
                if offset >= 0 {
                    out.push(GroupOffset {
                        topic: topic.to_string(),
                        partition: p,
                        offset,
                        leader_epoch: epoch,
                        metadata: md,
                    });
                }
            };
            if v >= 8 {
                let req = OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s(group)))
                        .with_topics(None),
                ]);
                let resp = conn.call_version(req, v, self.timeout).await?;
                let g = resp
                    .groups
                    .into_iter()
                    .find(|g| g.group_id.0.as_str() == group)
                    .ok_or_else(|| {
                        Error::Protocol(format!("OffsetFetch: no answer for group '{group}'"))
                    })?;
                group_err(g.error_code, None, group)?;
                for t in g.topics {
                    for p in t.partitions {
                        partition_err(p.error_code, t.name.0.as_str(), p.partition_index)?;
                        push(
                            t.name.0.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.map(|m| m.to_string()),
                        );
                    }
                }
            } else {
                let req = OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(None);
                let resp = conn.call_version(req, v, self.timeout).await?;
                group_err(resp.error_code, None, group)?;
                for t in resp.topics {
                    for p in t.partitions {
                        partition_err(p.error_code, t.name.0.as_str(), p.partition_index)?;
                        push(
                            t.name.0.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.map(|m| m.to_string()),
                        );
                    }
                }
            }
            out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(out)
        })
        .await
    }

    /// Commits `offsets` for a group from outside it (OffsetCommit with
    /// generation -1 and an empty member id). The coordinator accepts this
    /// only while the group has no members; otherwise it answers
    /// UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION. Fails with the first
    /// per-partition error.
    pub async fn alter_group_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for o in offsets {
            topics.entry(o.topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(o.partition)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch)
                    .with_committed_metadata(Some(s(o.metadata.clone().unwrap_or_default()))),
            );
        }
        let topics: Vec<OffsetCommitRequestTopic> = topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect();
        let topics = &topics;
        self.on_coordinator(group, |_, conn| async move {
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_group_instance_id(None)
                .with_retention_time_ms(-1)
                .with_topics(topics.clone());
            let resp = conn.call(req).await?;
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != codes::NONE {
                        return Err(commit_error(
                            p.error_code,
                            group,
                            t.name.0.as_str(),
                            p.partition_index,
                        ));
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Deletes groups (DeleteGroups at each group's coordinator). A group
    /// with members fails with NON_EMPTY_GROUP, an unknown one with
    /// GROUP_ID_NOT_FOUND. Fails with the first error.
    pub async fn delete_groups(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.on_coordinator(id, |_, conn| async move {
                let resp = conn
                    .call(
                        DeleteGroupsRequest::default()
                            .with_groups_names(vec![GroupId(s(id.clone()))]),
                    )
                    .await?;
                for r in resp.results {
                    group_err(r.error_code, None, r.group_id.0.as_str())?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes a group's committed offsets for `partitions` (OffsetDelete).
    /// Refused with GROUP_SUBSCRIBED_TO_TOPIC for topics the active group
    /// consumes. Fails with the first error.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for (t, p) in partitions {
            topics
                .entry(t.as_str())
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(*p));
        }
        let topics: Vec<OffsetDeleteRequestTopic> = topics
            .into_iter()
            .map(|(t, ps)| {
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect();
        let topics = &topics;
        self.on_coordinator(group, |_, conn| async move {
            let resp = conn
                .call(
                    OffsetDeleteRequest::default()
                        .with_group_id(GroupId(s(group)))
                        .with_topics(topics.clone()),
                )
                .await?;
            group_err(resp.error_code, None, group)?;
            for t in resp.topics {
                for p in t.partitions {
                    partition_err(p.error_code, t.name.0.as_str(), p.partition_index)?;
                }
            }
            Ok(())
        })
        .await
    }
}

fn partition_err(code: i16, topic: &str, partition: i32) -> Result<()> {
    Error::check(code, None, format!("{topic}-{partition}"))
}

/// A per-partition OffsetCommit error; explains the fencing errors an
/// external commit gets while the group has members.
fn commit_error(code: i16, group: &str, topic: &str, partition: i32) -> Error {
    let message = match code {
        25 /* UNKNOWN_MEMBER_ID */ | 22 /* ILLEGAL_GENERATION */ => Some(format!(
            "group '{group}' has active members; offsets can only be altered while it is empty"
        )),
        _ => None,
    };
    Error::Kafka(
        KafkaError::new(code, message).on(format!("{topic}-{partition} of group '{group}'")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn encode(version: i16, parts: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i16(version);
        b.put_i32(parts.len() as i32);
        for (t, ps) in parts {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
            b.put_i32(ps.len() as i32);
            for p in *ps {
                b.put_i32(*p);
            }
        }
        match user_data {
            Some(u) => {
                b.put_i32(u.len() as i32);
                b.put_slice(u);
            }
            None => b.put_i32(-1),
        }
        b
    }

    #[test]
    fn decodes_consumer_assignment() {
        let bytes = encode(0, &[("orders", &[0, 2]), ("audit", &[1])], None);
        let a = MemberAssignment::decode(&bytes).unwrap();
        assert_eq!(a.version, 0);
        assert_eq!(
            a.partitions,
            vec![
                ("orders".to_string(), vec![0, 2]),
                ("audit".to_string(), vec![1])
            ]
        );
        assert_eq!(a.user_data, None);

        let bytes = encode(3, &[("t", &[5])], Some(b"sticky"));
        let a = MemberAssignment::decode(&bytes).unwrap();
        assert_eq!(a.version, 3);
        assert_eq!(a.partitions, vec![("t".to_string(), vec![5])]);
        assert_eq!(a.user_data.as_deref(), Some(&b"sticky"[..]));
    }

    #[test]
    fn empty_assignment_and_missing_user_data() {
        assert_eq!(
            MemberAssignment::decode(&[]).unwrap(),
            MemberAssignment::default()
        );
        // No user data field at all.
        let mut bytes = encode(1, &[("t", &[0])], None);
        bytes.truncate(bytes.len() - 4);
        let a = MemberAssignment::decode(&bytes).unwrap();
        assert_eq!(a.partitions, vec![("t".to_string(), vec![0])]);
        assert_eq!(a.user_data, None);
    }

    #[test]
    fn truncated_assignment_is_an_error() {
        let bytes = encode(0, &[("orders", &[0, 1, 2])], Some(b"x"));
        for cut in [1, 5, 9, 14, 20] {
            assert!(
                MemberAssignment::decode(&bytes[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
        // User data length larger than what follows.
        let mut bytes = encode(0, &[], Some(b"abc"));
        bytes.truncate(bytes.len() - 1);
        assert!(MemberAssignment::decode(&bytes).is_err());
    }

    #[test]
    fn inactive_states() {
        let mut d = GroupDescription {
            group_id: "g".into(),
            state: "Empty".into(),
            protocol_type: "consumer".into(),
            protocol: String::new(),
            members: Vec::new(),
            coordinator: 0,
        };
        assert!(d.is_inactive());
        d.state = "Dead".into();
        assert!(d.is_inactive());
        for st in ["Stable", "PreparingRebalance", "CompletingRebalance"] {
            d.state = st.into();
            assert!(!d.is_inactive());
        }
    }

    #[test]
    fn fencing_errors_explain_active_members() {
        let e = commit_error(25, "g", "t", 0);
        assert_eq!(e.code(), Some(25));
        assert!(e.to_string().contains("active members"), "{e}");
        assert!(!commit_error(3, "g", "t", 0)
            .to_string()
            .contains("active members"));
    }
}
