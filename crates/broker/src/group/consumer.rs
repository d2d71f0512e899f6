//! The KIP-848 consumer group protocol (ConsumerGroupHeartbeat) as a state
//! machine. The broker owns the assignment: every change of membership,
//! subscriptions or subscribed topics' metadata bumps the *group epoch*; the
//! next heartbeat computes a new *target assignment* (at that epoch) with a
//! server-side assignor; each member then converges to its target on its
//! own heartbeats, incrementally: it first gives up the partitions it must
//! revoke (keeping its epoch), and only once it reports them gone is it
//! given its new partitions and the new epoch — and a partition that
//! another member still owns is handed over only after that member has
//! released it. No member ever stops for everyone else, unlike a classic
//! rebalance.
//!
//! The group, its members, target and current assignments are mirrored by
//! Kafka's consumer group records in `__consumer_offsets` (see
//! [`ConsumerGroup::metadata_records`]) and rebuilt from them at start, so
//! members carry on at their epochs across a broker restart.

use super::assignor::{Assignor, MemberSpec, Partitions, TopicPartition};
use super::records::{
    ConsumerGroupValue, CurrentAssignmentValue, MemberMetadataValue, MetadataKey, MetadataValue,
    RecordType,
};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The member epoch of a member leaving the group.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member leaving for a while (a restart): it
/// keeps its partitions until its session expires.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// Group-level settings from the broker config.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroupConfig {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) max_size: usize,
    /// `group.consumer.assignors`; the first is the default.
    pub(crate) assignors: Vec<Assignor>,
}

/// Where a member stands in converging to its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// It owns its whole target assignment at the target epoch.
    Stable,
    /// It must first give up `pending_revocation` (and report so).
    UnrevokedPartitions,
    /// It has the target epoch but waits for partitions other members
    /// still own.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed_topics: BTreeSet<String>,
    /// KIP-848 regex subscription (v1 SubscribedTopicRegex), matched in
    /// full against topic names, as Kafka's RE2/J `matches()` does.
    pub(crate) subscribed_regex: Option<TopicRegex>,
    pub(crate) server_assignor: Option<Assignor>,
    rebalance_timeout: Duration,
    pub(crate) member_epoch: i32,
    previous_member_epoch: i32,
    pub(crate) state: MemberState,
    /// What the member is told it owns.
    pub(crate) assigned: Partitions,
    /// Partitions it must give up; nobody else gets them meanwhile.
    pub(crate) pending_revocation: Partitions,
    last_heard: Instant,
    session_timeout: Duration,
    /// When a member that has not revoked in time is fenced.
    revocation_deadline: Option<Instant>,
}

impl MemberState {
    /// Kafka's MemberState byte in ConsumerGroupCurrentMemberAssignment.
    fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    fn from_code(code: i8) -> Option<MemberState> {
        match code {
            0 => Some(MemberState::Stable),
            1 => Some(MemberState::UnrevokedPartitions),
            2 => Some(MemberState::UnreleasedPartitions),
            _ => None,
        }
    }
}

impl ConsumerMember {
    fn new(id: String, instance_id: Option<String>, now: Instant) -> Self {
        ConsumerMember {
            id,
            instance_id,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topics: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            rebalance_timeout: Duration::ZERO,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            last_heard: now,
            session_timeout: Duration::MAX,
            revocation_deadline: None,
        }
    }

    /// The topics the member subscribes to: its names, and the existing
    /// topics its regex matches, internal ones included, as Kafka's
    /// coordinator matches every topic name (only authorization filters).
    pub(crate) fn subscriptions(&self, topics: &dyn TopicLookup) -> BTreeSet<String> {
        let mut all = self.subscribed_topics.clone();
        if let Some(regex) = &self.subscribed_regex {
            all.extend(
                topics
                    .names()
                    .into_iter()
                    .filter(|name| regex.matches(name)),
            );
        }
        all
    }

    /// Everything nobody else may be given yet.
    fn owned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.assigned.iter().chain(&self.pending_revocation)
    }
}

/// The group's state as DescribeGroups, ListGroups and
/// ConsumerGroupDescribe report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerGroupState {
    Empty,
    /// The group epoch moved past the target assignment's.
    Assigning,
    /// Some member has not reached its target yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A ConsumerGroupHeartbeat as the state machine sees it; `None` fields
/// are "unchanged since the last heartbeat".
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1 when unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_topics: Option<Vec<String>>,
    /// `Some("")` clears the regex.
    pub(crate) subscribed_regex: Option<String>,
    pub(crate) server_assignor: Option<String>,
    pub(crate) owned: Option<Partitions>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

/// What a heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatAnswer {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    /// Sent when it changed or the member asked for everything.
    pub(crate) assignment: Option<Partitions>,
}

/// An error code with Kafka's kind of message.
pub(crate) type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

/// Resolves a topic name to its id and partition count.
pub(crate) trait TopicLookup {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic's name (regex subscriptions are matched against them).
    fn names(&self) -> Vec<String>;
}

/// A member's topic regex: the pattern as the client sent it, compiled to
/// match whole names.
#[derive(Debug, Clone)]
pub(crate) struct TopicRegex {
    pub(crate) pattern: String,
    compiled: regex::Regex,
}

impl TopicRegex {
    pub(crate) fn new(pattern: &str) -> Result<TopicRegex, String> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|compiled| TopicRegex {
                pattern: pattern.to_string(),
                compiled,
            })
            .map_err(|e| format!("SubscribedTopicRegex {pattern:?} is invalid: {e}"))
    }

    fn matches(&self, name: &str) -> bool {
        self.compiled.is_match(name)
    }
}

pub(crate) struct ConsumerGroup {
    pub(crate) id: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// Each member's target assignment at `assignment_epoch`.
    pub(crate) target: BTreeMap<String, Partitions>,
    /// The assignor that computed the target.
    pub(crate) assignor: Option<Assignor>,
    /// Fingerprint of the subscribed topics' metadata the target was
    /// computed for: a change (partitions added, topic deleted or created)
    /// bumps the group epoch.
    metadata_hash: u64,
}

impl ConsumerGroup {
    pub(crate) fn new(id: &str) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            assignor: None,
            metadata_hash: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The records that describe the group in `__consumer_offsets`, as
    /// Kafka's coordinator writes them: the group epoch, the target
    /// assignment's epoch, and per member its subscription, its target and
    /// its current assignment.
    /// A group that never had a member has none.
    pub(crate) fn metadata_records(&self) -> Vec<(MetadataKey, MetadataValue)> {
        if self.group_epoch == 0 {
            return Vec::new();
        }
        let id = self.id.as_str();
        let mut records = vec![
            (
                MetadataKey::group(RecordType::ConsumerGroup, id),
                MetadataValue::ConsumerGroup(ConsumerGroupValue {
                    epoch: self.group_epoch,
                    metadata_hash: self.metadata_hash as i64,
                }),
            ),
            (
                MetadataKey::group(RecordType::TargetAssignmentMetadata, id),
                MetadataValue::TargetAssignmentMetadata {
                    assignment_epoch: self.assignment_epoch,
                },
            ),
        ];
        for m in self.members.values() {
            records.push((
                MetadataKey::member(RecordType::MemberMetadata, id, &m.id),
                MetadataValue::MemberMetadata(MemberMetadataValue {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topics: m.subscribed_topics.iter().cloned().collect(),
                    subscribed_regex: m.subscribed_regex.as_ref().map(|r| r.pattern.clone()),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    server_assignor: m.server_assignor.map(|a| a.name().to_string()),
                }),
            ));
            records.push((
                MetadataKey::member(RecordType::CurrentMemberAssignment, id, &m.id),
                MetadataValue::CurrentMemberAssignment(CurrentAssignmentValue {
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    state: m.state.code(),
                    assigned: m.assigned.clone(),
                    pending_revocation: m.pending_revocation.clone(),
                }),
            ));
        }
        for (member, partitions) in &self.target {
            records.push((
                MetadataKey::member(RecordType::TargetAssignmentMember, id, member),
                MetadataValue::TargetAssignmentMember {
                    partitions: partitions.clone(),
                },
            ));
        }
        records
    }

    /// Rebuilds a group from its records at load (see
    /// [`ConsumerGroup::metadata_records`]). Every member's session starts
    /// at `now`, and one that was revoking partitions gets its rebalance
    /// timeout again, as in Kafka. A member without its subscription record
    /// is skipped.
    pub(crate) fn from_records(
        id: &str,
        records: Vec<(MetadataKey, MetadataValue)>,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) -> ConsumerGroup {
        let mut group = ConsumerGroup::new(id);
        let mut assignments = Vec::new();
        for (key, value) in records {
            let member = key.member.unwrap_or_default();
            match value {
                MetadataValue::ConsumerGroup(v) => {
                    group.group_epoch = v.epoch;
                    group.metadata_hash = v.metadata_hash as u64;
                }
                MetadataValue::TargetAssignmentMetadata { assignment_epoch } => {
                    group.assignment_epoch = assignment_epoch;
                }
                MetadataValue::TargetAssignmentMember { partitions } => {
                    group.target.insert(member, partitions);
                }
                MetadataValue::MemberMetadata(v) => {
                    let mut m = ConsumerMember::new(member.clone(), v.instance_id, now);
                    m.rack_id = v.rack_id;
                    m.client_id = v.client_id;
                    m.client_host = v.client_host;
                    m.subscribed_topics = v.subscribed_topics.into_iter().collect();
                    m.subscribed_regex = v
                        .subscribed_regex
                        .as_deref()
                        .and_then(|p| TopicRegex::new(p).ok());
                    m.server_assignor = v.server_assignor.as_deref().and_then(Assignor::from_name);
                    m.rebalance_timeout =
                        Duration::from_millis(v.rebalance_timeout_ms.max(0) as u64);
                    m.session_timeout = config.session_timeout;
                    group.members.insert(member, m);
                }
                MetadataValue::CurrentMemberAssignment(v) => assignments.push((member, v)),
                MetadataValue::ClassicGroup(_) => {}
            }
        }
        for (member_id, v) in assignments {
            let Some(member) = group.members.get_mut(&member_id) else {
                tracing::warn!(group = %id, member = %member_id, "assignment record of an unknown member skipped");
                continue;
            };
            let Some(state) = MemberState::from_code(v.state) else {
                tracing::warn!(group = %id, member = %member_id, state = v.state, "assignment record with an unknown member state skipped");
                continue;
            };
            member.member_epoch = v.member_epoch;
            member.previous_member_epoch = v.previous_member_epoch;
            member.state = state;
            member.assigned = v.assigned;
            member.pending_revocation = v.pending_revocation;
            if state == MemberState::UnrevokedPartitions {
                member.revocation_deadline = Some(now + member.rebalance_timeout);
            }
        }
        let members = &group.members;
        group
            .target
            .retain(|member, _| members.contains_key(member));
        if !group.target.is_empty() {
            group.assignor = Some(group.choose_assignor(config));
        }
        group
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.member_epoch != self.assignment_epoch)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    fn bump_group_epoch(&mut self) {
        self.group_epoch += 1;
    }

    /// Handles one ConsumerGroupHeartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        req: Heartbeat,
        config: &ConsumerGroupConfig,
        topics: &dyn TopicLookup,
        now: Instant,
    ) -> Result<HeartbeatAnswer, Refusal> {
        let server_assignor = match req.server_assignor.as_deref() {
            None => None,
            Some(name) => match Assignor::from_name(name) {
                Some(a) if config.assignors.contains(&a) => Some(a),
                _ => {
                    return refuse(
                        error::UNSUPPORTED_ASSIGNOR,
                        format!(
                            "ServerAssignor {name} is not supported. Supported assignors: {}.",
                            config
                                .assignors
                                .iter()
                                .map(|a| a.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                }
            },
        };
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&req);
        }
        let full_request = req.rebalance_timeout_ms != -1
            && (req.subscribed_topics.is_some() || req.subscribed_regex.is_some())
            && req.owned.is_some();
        let regex = match req.subscribed_regex.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(pattern) => match TopicRegex::new(pattern) {
                Ok(regex) => Some(Some(regex)),
                Err(message) => return refuse(error::INVALID_REGULAR_EXPRESSION, &message),
            },
        };
        // Anything that changes the assignment's inputs bumps the group
        // epoch, once per heartbeat.
        let (member_id, mut bump) = if req.member_epoch == 0 {
            self.join(&req, config, now)?
        } else {
            self.check_member(&req)?;
            (req.member_id.clone(), false)
        };
        let Some(member) = self.members.get_mut(&member_id) else {
            return refuse(error::UNKNOWN_MEMBER_ID, "The member is not in the group.");
        };
        let assigned_before = member.assigned.clone();
        member.last_heard = now;
        member.session_timeout = config.session_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        if req.rack_id.is_some() {
            member.rack_id = req.rack_id;
        }
        if req.rebalance_timeout_ms >= 0 {
            member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        if let Some(names) = req.subscribed_topics {
            let names: BTreeSet<String> = names.into_iter().collect();
            if names != member.subscribed_topics {
                member.subscribed_topics = names;
                bump = true;
            }
        }
        if let Some(regex) = regex {
            let pattern = |r: &Option<TopicRegex>| r.as_ref().map(|r| r.pattern.clone());
            if pattern(&regex) != pattern(&member.subscribed_regex) {
                member.subscribed_regex = regex;
                bump = true;
            }
        }
        if server_assignor.is_some() && server_assignor != member.server_assignor {
            member.server_assignor = server_assignor;
            bump = true;
        }
        self.refresh_target(config, topics, bump);
        self.reconcile(&member_id, req.owned.as_ref(), now);
        let member = &self.members[&member_id];
        let changed = member.assigned != assigned_before;
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.member_epoch,
            assignment: (req.member_epoch == 0 || full_request || changed)
                .then(|| member.assigned.clone()),
        })
    }

    /// A member joining (or rejoining) with epoch 0; returns its id and
    /// whether it is new to the group.
    fn join(
        &mut self,
        req: &Heartbeat,
        config: &ConsumerGroupConfig,
        now: Instant,
    ) -> Result<(String, bool), Refusal> {
        if let Some(instance) = &req.instance_id {
            let holder = self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| (m.id.clone(), m.member_epoch));
            match holder {
                Some((old_id, _)) if old_id == req.member_id => return Ok((old_id, false)),
                Some((old_id, STATIC_LEAVE_EPOCH)) => {
                    // A static member back from a restart takes over its
                    // predecessor's assignment and epoch: nothing moves.
                    let Some(mut member) = self.members.remove(&old_id) else {
                        return refuse(error::UNKNOWN_MEMBER_ID, "The member is not in the group.");
                    };
                    member.id = req.member_id.clone();
                    member.member_epoch = member.previous_member_epoch;
                    if let Some(target) = self.target.remove(&old_id) {
                        self.target.insert(req.member_id.clone(), target);
                    }
                    self.members.insert(req.member_id.clone(), member);
                    return Ok((req.member_id.clone(), false));
                }
                Some(_) => {
                    return refuse(
                        error::UNRELEASED_INSTANCE_ID,
                        format!("Static member with instance id {instance} is still in use by another member; it must leave first."),
                    )
                }
                None => {}
            }
        } else if self.members.contains_key(&req.member_id) {
            // A member rejoining (after it was fenced, say) with the same
            // id: it gets its current assignment again.
            return Ok((req.member_id.clone(), false));
        }
        if self.members.contains_key(&req.member_id) {
            return refuse(
                error::INVALID_REQUEST,
                "A static member rejoined with the member id of another member.",
            );
        }
        if self.members.len() >= config.max_size {
            return refuse(
                error::GROUP_MAX_SIZE_REACHED,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    config.max_size
                ),
            );
        }
        let member = ConsumerMember::new(req.member_id.clone(), req.instance_id.clone(), now);
        self.members.insert(req.member_id.clone(), member);
        Ok((req.member_id.clone(), true))
    }

    /// Checks a heartbeat of a member that is already in the group.
    fn check_member(&self, req: &Heartbeat) -> Result<(), Refusal> {
        if let Some(instance) = &req.instance_id {
            match self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
            {
                None => {
                    return refuse(
                        error::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance} is unknown."),
                    )
                }
                Some(m) if m.id != req.member_id => {
                    return refuse(
                        error::FENCED_INSTANCE_ID,
                        format!("Instance id {instance} is used by another member."),
                    )
                }
                Some(_) => {}
            }
        }
        let Some(member) = self.members.get(&req.member_id) else {
            return refuse(
                error::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {} is not a member of group {}.",
                    req.member_id, self.id
                ),
            );
        };
        // A member one epoch behind that owns no more than its current
        // assignment only missed the answer that bumped its epoch.
        let missed_answer = req.member_epoch == member.previous_member_epoch
            && req
                .owned
                .as_ref()
                .is_some_and(|owned| owned.is_subset(&member.assigned));
        if req.member_epoch > member.member_epoch
            || (req.member_epoch < member.member_epoch && !missed_answer)
        {
            return refuse(
                error::FENCED_MEMBER_EPOCH,
                format!(
                    "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    req.member_epoch, member.member_epoch
                ),
            );
        }
        Ok(())
    }

    fn leave(&mut self, req: &Heartbeat) -> Result<HeartbeatAnswer, Refusal> {
        let member_id = match &req.instance_id {
            Some(instance) => match self
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
            {
                Some(m) if m.id == req.member_id => m.id.clone(),
                Some(_) => {
                    return refuse(
                        error::FENCED_INSTANCE_ID,
                        format!("Instance id {instance} is used by another member."),
                    )
                }
                None => {
                    return refuse(
                        error::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance} is unknown."),
                    )
                }
            },
            None => req.member_id.clone(),
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            let Some(member) = self.members.get_mut(&member_id) else {
                return refuse(error::UNKNOWN_MEMBER_ID, "The member is not in the group.");
            };
            if member.instance_id.is_none() {
                return refuse(
                    error::INVALID_REQUEST,
                    "Only static members can leave with member epoch -2.",
                );
            }
            // Remembered so the member's successor resumes at this epoch.
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = STATIC_LEAVE_EPOCH;
        } else if self.remove_member(&member_id).is_none() {
            return refuse(
                error::UNKNOWN_MEMBER_ID,
                format!("Member {member_id} is not a member of group {}.", self.id),
            );
        }
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: req.member_epoch,
            assignment: None,
        })
    }

    fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        self.target.remove(member_id);
        self.bump_group_epoch();
        Some(member)
    }

    /// Fingerprint of every subscribed topic's name, id and partition
    /// count. FNV-1a, fixed here rather than Rust's `DefaultHasher`, because
    /// it is persisted: a restart must compute the same value.
    fn subscription_metadata_hash(&self, topics: &dyn TopicLookup) -> u64 {
        let names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.subscriptions(topics))
            .collect();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for name in names {
            feed(&(name.len() as u32).to_be_bytes());
            feed(name.as_bytes());
            match topics.topic(&name) {
                Some((id, partitions)) => {
                    feed(&[1]);
                    feed(id.as_bytes());
                    feed(&partitions.to_be_bytes());
                }
                None => feed(&[0]),
            }
        }
        hash
    }

    /// The assignor members ask for most, else the configured default.
    fn choose_assignor(&self, config: &ConsumerGroupConfig) -> Assignor {
        let mut votes: HashMap<Assignor, usize> = HashMap::new();
        for a in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(a).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(a, n)| (*n, std::cmp::Reverse(a.name())))
            .map(|(a, _)| a)
            .or_else(|| config.assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    /// Bumps the group epoch if asked to or if subscribed topics changed,
    /// and computes a new target assignment if the group epoch moved past
    /// it.
    fn refresh_target(
        &mut self,
        config: &ConsumerGroupConfig,
        topics: &dyn TopicLookup,
        bump: bool,
    ) {
        let hash = self.subscription_metadata_hash(topics);
        if bump || hash != self.metadata_hash {
            self.metadata_hash = hash;
            self.bump_group_epoch();
        }
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let assignor = self.choose_assignor(config);
        let empty = Partitions::new();
        let mut partition_counts = BTreeMap::new();
        let specs: BTreeMap<String, MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| {
                let subscribed = m
                    .subscriptions(topics)
                    .iter()
                    .filter_map(|name| topics.topic(name))
                    .map(|(id, count)| {
                        partition_counts.insert(id, count);
                        id
                    })
                    .collect();
                let current = self.target.get(&m.id).unwrap_or(&empty);
                (
                    m.id.clone(),
                    MemberSpec {
                        subscribed,
                        current,
                    },
                )
            })
            .collect();
        let target = assignor.assign(&specs, &partition_counts);
        self.target = target;
        self.assignor = Some(assignor);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member toward its target assignment, as far as the
    /// partitions it `owned` (as it reports them) and the other members
    /// allow.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.assignment_epoch;
        let owned_by_others: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.owned().copied())
            .collect();
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        match member.state {
            MemberState::UnrevokedPartitions => {
                let revoked = owned.is_some_and(|o| o.is_disjoint(&member.pending_revocation));
                if !revoked {
                    return;
                }
                member.pending_revocation.clear();
                member.revocation_deadline = None;
            }
            MemberState::Stable if member.member_epoch == target_epoch => return,
            MemberState::Stable | MemberState::UnreleasedPartitions => {}
        }
        let revoke: Partitions = member.assigned.difference(&target).copied().collect();
        if !revoke.is_empty() {
            member.assigned.retain(|tp| target.contains(tp));
            member.pending_revocation = revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revocation_deadline = Some(now + member.rebalance_timeout);
            return;
        }
        let mut unreleased = false;
        for tp in target.difference(&member.assigned.clone()) {
            if owned_by_others.contains(tp) {
                unreleased = true;
            } else {
                member.assigned.insert(*tp);
            }
        }
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        if member.member_epoch != target_epoch {
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = target_epoch;
        }
    }

    /// Validates an OffsetCommit (v9+ carries the member epoch) or an
    /// OffsetFetch of a member.
    pub(crate) fn check_offset_member(&self, member_id: &str, member_epoch: i32) -> ErrorCode {
        match self.members.get(member_id) {
            None => error::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != member_epoch => error::STALE_MEMBER_EPOCH,
            Some(_) => error::NONE,
        }
    }

    /// Fences members whose session expired or who did not revoke
    /// partitions within their rebalance timeout; returns whether any was.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let fenced: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now.saturating_duration_since(m.last_heard) > m.session_timeout
                    || m.revocation_deadline.is_some_and(|d| now > d)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &fenced {
            tracing::info!(group = %self.id, member = %id, "consumer group member fenced: session or rebalance timeout");
            self.remove_member(id);
        }
        !fenced.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Topics(BTreeMap<String, (Uuid, i32)>);

    impl TopicLookup for Topics {
        fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.get(name).copied()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    const T: Uuid = Uuid::from_u128(1);

    fn topics(partitions: i32) -> Topics {
        Topics(BTreeMap::from([("t".to_string(), (T, partitions))]))
    }

    fn config() -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            heartbeat_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            max_size: 3,
            assignors: vec![Assignor::Uniform, Assignor::Range],
        }
    }

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 60_000,
            subscribed_topics: Some(vec!["t".into()]),
            owned: Some(Partitions::new()),
            ..Heartbeat::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Partitions) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned.clone()),
            ..Heartbeat::default()
        }
    }

    fn parts(ps: &[i32]) -> Partitions {
        ps.iter().map(|&p| (T, p)).collect()
    }

    #[test]
    fn revocation_comes_before_reassignment() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(4));
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a"), &cfg, &t, now).unwrap();
        assert_eq!(
            (a.member_epoch, a.assignment.clone()),
            (1, Some(parts(&[0, 1, 2, 3])))
        );
        assert_eq!(g.state(), ConsumerGroupState::Stable);

        // b joins: epoch 2; a still owns everything, so b gets nothing yet.
        let b = g.heartbeat(join("b"), &cfg, &t, now).unwrap();
        assert_eq!(
            (b.member_epoch, b.assignment.clone()),
            (2, Some(parts(&[])))
        );
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        assert_eq!(g.state(), ConsumerGroupState::Reconciling);

        // a is told to keep two partitions, at its old epoch.
        let a = g
            .heartbeat(beat("a", 1, &parts(&[0, 1, 2, 3])), &cfg, &t, now)
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        let kept = a.assignment.clone().unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);

        // b asks again: the partitions are still a's.
        let b = g
            .heartbeat(beat("b", 2, &parts(&[])), &cfg, &t, now)
            .unwrap();
        assert_eq!(b.assignment, None);

        // a reports it revoked them: new epoch, and b can have them.
        let a = g.heartbeat(beat("a", 1, &kept), &cfg, &t, now).unwrap();
        assert_eq!((a.member_epoch, a.assignment), (2, None));
        let b = g
            .heartbeat(beat("b", 2, &parts(&[])), &cfg, &t, now)
            .unwrap();
        let given = b.assignment.unwrap();
        assert_eq!(given.len(), 2);
        assert!(given.is_disjoint(&kept));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn epochs_are_checked() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(2));
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("a"), &cfg, &t, now).unwrap();
        let err = g
            .heartbeat(beat("a", 5, &parts(&[])), &cfg, &t, now)
            .unwrap_err();
        assert_eq!(err.0, error::FENCED_MEMBER_EPOCH);
        let err = g
            .heartbeat(beat("zz", 1, &parts(&[])), &cfg, &t, now)
            .unwrap_err();
        assert_eq!(err.0, error::UNKNOWN_MEMBER_ID);
        // A member that missed the answer with epoch 1 may come back with 0
        // (its previous epoch) while owning nothing more than it has.
        assert!(g
            .heartbeat(beat("a", 0, &parts(&[])), &cfg, &t, now)
            .is_ok());
        assert_eq!(g.check_offset_member("a", 1), error::NONE);
        assert_eq!(g.check_offset_member("a", 0), error::STALE_MEMBER_EPOCH);
    }

    #[test]
    fn leaving_and_expiry_bump_the_group_epoch() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(2));
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("a"), &cfg, &t, now).unwrap();
        g.heartbeat(join("b"), &cfg, &t, now).unwrap();
        assert_eq!(g.group_epoch, 2);
        let left = g
            .heartbeat(beat("b", LEAVE_EPOCH, &parts(&[])), &cfg, &t, now)
            .unwrap();
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        assert_eq!(g.group_epoch, 3);
        g.tick(now + Duration::from_secs(46));
        assert!(g.is_empty());
        assert_eq!(g.group_epoch, 4);
        assert_eq!(g.state(), ConsumerGroupState::Empty);
    }

    #[test]
    fn a_member_that_does_not_revoke_in_time_is_fenced() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(2));
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a"), &cfg, &t, now).unwrap();
        let owned = a.assignment.unwrap();
        g.heartbeat(join("b"), &cfg, &t, now).unwrap();
        g.heartbeat(beat("a", 1, &owned), &cfg, &t, now).unwrap();
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        // a keeps heartbeating but never lets go within its 60 s.
        let later = now + Duration::from_secs(40);
        g.heartbeat(beat("a", 1, &owned), &cfg, &t, later).unwrap();
        g.heartbeat(beat("b", 2, &parts(&[])), &cfg, &t, later)
            .unwrap();
        g.tick(now + Duration::from_secs(61));
        assert!(!g.members.contains_key("a"));
        let b = g
            .heartbeat(
                beat("b", 2, &parts(&[])),
                &cfg,
                &t,
                now + Duration::from_secs(62),
            )
            .unwrap();
        assert_eq!(b.assignment, Some(parts(&[0, 1])), "b gets everything");
    }

    #[test]
    fn group_size_is_limited() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(2));
        let mut g = ConsumerGroup::new("g");
        for id in ["a", "b", "c"] {
            g.heartbeat(join(id), &cfg, &t, now).unwrap();
        }
        let err = g.heartbeat(join("d"), &cfg, &t, now).unwrap_err();
        assert_eq!(err.0, error::GROUP_MAX_SIZE_REACHED);
    }

    #[test]
    fn static_member_restart_keeps_its_partitions() {
        let now = Instant::now();
        let (cfg, t) = (config(), topics(2));
        let mut g = ConsumerGroup::new("g");
        let with_instance = |mut h: Heartbeat| {
            h.instance_id = Some("i1".into());
            h
        };
        let first = g
            .heartbeat(with_instance(join("m1")), &cfg, &t, now)
            .unwrap();
        let epoch = g.group_epoch;
        // Another process with the same instance id while m1 is alive.
        let err = g
            .heartbeat(with_instance(join("m2")), &cfg, &t, now)
            .unwrap_err();
        assert_eq!(err.0, error::UNRELEASED_INSTANCE_ID);
        // m1 leaves temporarily; m2 takes over without a new epoch.
        g.heartbeat(
            with_instance(beat("m1", STATIC_LEAVE_EPOCH, &parts(&[]))),
            &cfg,
            &t,
            now,
        )
        .unwrap();
        let second = g
            .heartbeat(with_instance(join("m2")), &cfg, &t, now)
            .unwrap();
        assert_eq!(second.member_epoch, first.member_epoch);
        assert_eq!(second.assignment, first.assignment);
        assert_eq!(g.group_epoch, epoch);
        let err = g
            .heartbeat(with_instance(beat("m1", 1, &parts(&[]))), &cfg, &t, now)
            .unwrap_err();
        assert_eq!(err.0, error::FENCED_INSTANCE_ID);
    }

    #[test]
    fn new_partitions_are_assigned_on_the_next_heartbeat() {
        let now = Instant::now();
        let cfg = config();
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a"), &cfg, &topics(2), now).unwrap();
        let owned = a.assignment.unwrap();
        let a = g
            .heartbeat(beat("a", 1, &owned), &cfg, &topics(3), now)
            .unwrap();
        assert_eq!((a.member_epoch, a.assignment), (2, Some(parts(&[0, 1, 2]))));
        // The topic is deleted: everything is revoked.
        let gone = Topics(BTreeMap::new());
        let a = g
            .heartbeat(beat("a", 2, &parts(&[0, 1, 2])), &cfg, &gone, now)
            .unwrap();
        assert_eq!(a.assignment, Some(parts(&[])));
    }

    #[test]
    fn unknown_assignor_is_refused() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new("g");
        let mut h = join("a");
        h.server_assignor = Some("sticky".into());
        let err = g.heartbeat(h, &config(), &topics(1), now).unwrap_err();
        assert_eq!(err.0, error::UNSUPPORTED_ASSIGNOR);
    }
}
