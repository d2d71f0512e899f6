//! Group metadata records in `__consumer_offsets`, in Kafka's layouts
//! (group-coordinator's `*Key.json`/`*Value.json`), so that tools reading the
//! topic understand them and a restart rebuilds every group.
//!
//! A key is an int16 record type (Kafka calls it the key version) followed
//! by the group id and, for per-member records, the member id; so the
//! cleaner of the compacted topic keeps exactly the latest record per group
//! or per member, and a tombstone (null value) deletes it.
//!
//! Classic groups: `GroupMetadataKey` (type 2) with `GroupMetadataValue`,
//! written in version 3 as Kafka does, read in versions 0-4. KIP-848
//! consumer groups: `ConsumerGroupMetadata` (3, group epoch and the
//! subscribed topics' metadata hash of KIP-1101),
//! `ConsumerGroupMemberMetadata` (5), `ConsumerGroupTargetAssignmentMetadata`
//! (6), `ConsumerGroupTargetAssignmentMember` (7) and
//! `ConsumerGroupCurrentMemberAssignment` (8), all flexible version 0.

use super::assignor::Partitions;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The record types of group metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RecordType {
    ClassicGroup,
    ConsumerGroup,
    MemberMetadata,
    TargetAssignmentMetadata,
    TargetAssignmentMember,
    CurrentMemberAssignment,
}

impl RecordType {
    fn code(self) -> i16 {
        match self {
            RecordType::ClassicGroup => 2,
            RecordType::ConsumerGroup => 3,
            RecordType::MemberMetadata => 5,
            RecordType::TargetAssignmentMetadata => 6,
            RecordType::TargetAssignmentMember => 7,
            RecordType::CurrentMemberAssignment => 8,
        }
    }

    fn from_code(code: i16) -> Option<RecordType> {
        Some(match code {
            2 => RecordType::ClassicGroup,
            3 => RecordType::ConsumerGroup,
            5 => RecordType::MemberMetadata,
            6 => RecordType::TargetAssignmentMetadata,
            7 => RecordType::TargetAssignmentMember,
            8 => RecordType::CurrentMemberAssignment,
            _ => return None,
        })
    }

    fn has_member(self) -> bool {
        matches!(
            self,
            RecordType::MemberMetadata
                | RecordType::TargetAssignmentMember
                | RecordType::CurrentMemberAssignment
        )
    }
}

/// The key of a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MetadataKey {
    pub(crate) record_type: RecordType,
    pub(crate) group: String,
    /// Set exactly for the per-member record types.
    pub(crate) member: Option<String>,
}

impl MetadataKey {
    pub(crate) fn group(record_type: RecordType, group: &str) -> Self {
        MetadataKey {
            record_type,
            group: group.to_string(),
            member: None,
        }
    }

    pub(crate) fn member(record_type: RecordType, group: &str, member: &str) -> Self {
        MetadataKey {
            record_type,
            group: group.to_string(),
            member: Some(member.to_string()),
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(self.record_type.code());
        put_string(&mut buf, &self.group);
        if let Some(member) = &self.member {
            put_string(&mut buf, member);
        }
        buf.freeze()
    }

    /// `None` for keys that are not group metadata (offset commits, record
    /// types Sluice does not use) or that are malformed.
    pub(crate) fn decode(key: &[u8]) -> Option<MetadataKey> {
        let mut r = Reader(key);
        let record_type = RecordType::from_code(r.i16()?)?;
        let group = r.string()?;
        let member = if record_type.has_member() {
            Some(r.string()?)
        } else {
            None
        };
        r.0.is_empty().then_some(MetadataKey {
            record_type,
            group,
            member,
        })
    }
}

/// A decoded group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetadataValue {
    ClassicGroup(ClassicGroupValue),
    ConsumerGroup(ConsumerGroupValue),
    MemberMetadata(MemberMetadataValue),
    TargetAssignmentMetadata { assignment_epoch: i32 },
    TargetAssignmentMember { partitions: Partitions },
    CurrentMemberAssignment(CurrentAssignmentValue),
}

/// `GroupMetadataValue`: a classic group after its last completed
/// rebalance (or once empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassicGroupValue {
    pub(crate) protocol_type: String,
    pub(crate) generation: i32,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) current_state_timestamp: i64,
    pub(crate) members: Vec<ClassicMemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassicMemberValue {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// `ConsumerGroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerGroupValue {
    pub(crate) epoch: i32,
    /// Tagged field 0 (KIP-1101): a fingerprint of the subscribed topics'
    /// metadata, so a restart does not mistake it for a change.
    pub(crate) metadata_hash: i64,
}

/// `ConsumerGroupMemberMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberMetadataValue {
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed_topics: Vec<String>,
    pub(crate) subscribed_regex: Option<String>,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) server_assignor: Option<String>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentAssignmentValue {
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked, 2 unreleased partitions.
    pub(crate) state: i8,
    pub(crate) assigned: Partitions,
    pub(crate) pending_revocation: Partitions,
}

/// The GroupMetadataValue version Kafka writes.
const CLASSIC_VALUE_VERSION: i16 = 3;
/// The first flexible GroupMetadataValue version.
const CLASSIC_FLEXIBLE_VERSION: i16 = 4;
/// Tag of ConsumerGroupMetadataValue's MetadataHash.
const METADATA_HASH_TAG: u32 = 0;

impl MetadataValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            MetadataValue::ClassicGroup(v) => encode_classic(&mut buf, v),
            MetadataValue::ConsumerGroup(v) => {
                buf.put_i16(0);
                buf.put_i32(v.epoch);
                if v.metadata_hash == 0 {
                    put_uvarint(&mut buf, 0);
                } else {
                    put_uvarint(&mut buf, 1);
                    put_uvarint(&mut buf, METADATA_HASH_TAG);
                    put_uvarint(&mut buf, 8);
                    buf.put_i64(v.metadata_hash);
                }
            }
            MetadataValue::MemberMetadata(v) => {
                buf.put_i16(0);
                put_compact_nullable(&mut buf, v.instance_id.as_deref());
                put_compact_nullable(&mut buf, v.rack_id.as_deref());
                put_compact_string(&mut buf, &v.client_id);
                put_compact_string(&mut buf, &v.client_host);
                put_uvarint(&mut buf, v.subscribed_topics.len() as u32 + 1);
                for topic in &v.subscribed_topics {
                    put_compact_string(&mut buf, topic);
                }
                put_compact_nullable(&mut buf, v.subscribed_regex.as_deref());
                buf.put_i32(v.rebalance_timeout_ms);
                put_compact_nullable(&mut buf, v.server_assignor.as_deref());
                put_uvarint(&mut buf, 0);
            }
            MetadataValue::TargetAssignmentMetadata { assignment_epoch } => {
                buf.put_i16(0);
                buf.put_i32(*assignment_epoch);
                put_uvarint(&mut buf, 0);
            }
            MetadataValue::TargetAssignmentMember { partitions } => {
                buf.put_i16(0);
                put_topic_partitions(&mut buf, partitions);
                put_uvarint(&mut buf, 0);
            }
            MetadataValue::CurrentMemberAssignment(v) => {
                buf.put_i16(0);
                buf.put_i32(v.member_epoch);
                buf.put_i32(v.previous_member_epoch);
                buf.put_i8(v.state);
                put_topic_partitions(&mut buf, &v.assigned);
                put_topic_partitions(&mut buf, &v.pending_revocation);
                put_uvarint(&mut buf, 0);
            }
        }
        buf.freeze()
    }

    /// Decodes the value of a record with key type `record_type`; `None`
    /// if it is malformed or of a version Sluice does not know.
    pub(crate) fn decode(record_type: RecordType, value: &[u8]) -> Option<MetadataValue> {
        let mut r = Reader(value);
        let version = r.i16()?;
        if record_type == RecordType::ClassicGroup {
            return decode_classic(&mut r, version).map(MetadataValue::ClassicGroup);
        }
        if version != 0 {
            return None;
        }
        let decoded = match record_type {
            RecordType::ClassicGroup => return None,
            RecordType::ConsumerGroup => {
                let epoch = r.i32()?;
                let mut metadata_hash = 0;
                r.tagged_fields(|tag, mut field| {
                    if tag == METADATA_HASH_TAG {
                        metadata_hash = field.i64()?;
                    }
                    Some(())
                })?;
                MetadataValue::ConsumerGroup(ConsumerGroupValue {
                    epoch,
                    metadata_hash,
                })
            }
            RecordType::MemberMetadata => {
                let instance_id = r.compact_nullable()?;
                let rack_id = r.compact_nullable()?;
                let client_id = r.compact_string()?;
                let client_host = r.compact_string()?;
                let count = r.compact_len()?;
                let mut subscribed_topics = Vec::new();
                for _ in 0..count {
                    subscribed_topics.push(r.compact_string()?);
                }
                let subscribed_regex = r.compact_nullable()?;
                let rebalance_timeout_ms = r.i32()?;
                let server_assignor = r.compact_nullable()?;
                // Tag 0 (ClassicMemberMetadata) is for members that joined
                // with the classic protocol, which Sluice's consumer groups
                // do not take.
                r.tagged_fields(|_, _| Some(()))?;
                MetadataValue::MemberMetadata(MemberMetadataValue {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topics,
                    subscribed_regex,
                    rebalance_timeout_ms,
                    server_assignor,
                })
            }
            RecordType::TargetAssignmentMetadata => {
                let assignment_epoch = r.i32()?;
                r.tagged_fields(|_, _| Some(()))?;
                MetadataValue::TargetAssignmentMetadata { assignment_epoch }
            }
            RecordType::TargetAssignmentMember => {
                let partitions = r.topic_partitions()?;
                r.tagged_fields(|_, _| Some(()))?;
                MetadataValue::TargetAssignmentMember { partitions }
            }
            RecordType::CurrentMemberAssignment => {
                let member_epoch = r.i32()?;
                let previous_member_epoch = r.i32()?;
                let state = r.i8()?;
                let assigned = r.topic_partitions()?;
                let pending_revocation = r.topic_partitions()?;
                r.tagged_fields(|_, _| Some(()))?;
                MetadataValue::CurrentMemberAssignment(CurrentAssignmentValue {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned,
                    pending_revocation,
                })
            }
        };
        r.0.is_empty().then_some(decoded)
    }
}

fn encode_classic(buf: &mut BytesMut, v: &ClassicGroupValue) {
    buf.put_i16(CLASSIC_VALUE_VERSION);
    put_string(buf, &v.protocol_type);
    buf.put_i32(v.generation);
    put_nullable(buf, v.protocol.as_deref());
    put_nullable(buf, v.leader.as_deref());
    buf.put_i64(v.current_state_timestamp);
    buf.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(buf, &m.member_id);
        put_nullable(buf, m.instance_id.as_deref());
        put_string(buf, &m.client_id);
        put_string(buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        buf.put_i32(m.subscription.len() as i32);
        buf.put_slice(&m.subscription);
        buf.put_i32(m.assignment.len() as i32);
        buf.put_slice(&m.assignment);
    }
}

/// GroupMetadataValue v0-v4: v1 adds the rebalance timeout, v2 the state
/// timestamp, v3 the group instance id, v4 is the flexible encoding.
fn decode_classic(r: &mut Reader<'_>, version: i16) -> Option<ClassicGroupValue> {
    if !(0..=CLASSIC_FLEXIBLE_VERSION).contains(&version) {
        return None;
    }
    let flexible = version >= CLASSIC_FLEXIBLE_VERSION;
    let string = |r: &mut Reader<'_>| {
        if flexible {
            r.compact_string()
        } else {
            r.string()
        }
    };
    let nullable = |r: &mut Reader<'_>| {
        if flexible {
            r.compact_nullable()
        } else {
            r.nullable()
        }
    };
    let bytes = |r: &mut Reader<'_>| {
        if flexible {
            r.compact_bytes()
        } else {
            r.bytes()
        }
    };
    let protocol_type = string(r)?;
    let generation = r.i32()?;
    let protocol = nullable(r)?;
    let leader = nullable(r)?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = if flexible {
        r.compact_len()?
    } else {
        usize::try_from(r.i32()?).ok()?
    };
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = string(r)?;
        let instance_id = if version >= 3 { nullable(r)? } else { None };
        let client_id = string(r)?;
        let client_host = string(r)?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = bytes(r)?;
        let assignment = bytes(r)?;
        if flexible {
            r.tagged_fields(|_, _| Some(()))?;
        }
        members.push(ClassicMemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            // Before v1 the session timeout was both.
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    if flexible {
        r.tagged_fields(|_, _| Some(()))?;
    }
    r.0.is_empty().then_some(ClassicGroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_compact_string(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, s.len() as u32 + 1);
    buf.put_slice(s.as_bytes());
}

fn put_compact_nullable(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_string(buf, s),
        None => put_uvarint(buf, 0),
    }
}

/// A `[]TopicPartitions` of (topic id, partitions) with empty tagged fields.
fn put_topic_partitions(buf: &mut BytesMut, partitions: &Partitions) {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(*topic).or_default().push(*partition);
    }
    put_uvarint(buf, by_topic.len() as u32 + 1);
    for (topic, partitions) in by_topic {
        buf.put_slice(topic.as_bytes());
        put_uvarint(buf, partitions.len() as u32 + 1);
        for p in partitions {
            buf.put_i32(p);
        }
        put_uvarint(buf, 0);
    }
}

/// Reads Kafka's primitive types; every read is checked, `None` on
/// truncated or malformed input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?.get_i8())
    }

    fn i16(&mut self) -> Option<i16> {
        Some(self.take(2)?.get_i16())
    }

    fn i32(&mut self) -> Option<i32> {
        Some(self.take(4)?.get_i32())
    }

    fn i64(&mut self) -> Option<i64> {
        Some(self.take(8)?.get_i64())
    }

    fn uvarint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn utf8(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn nullable(&mut self) -> Option<Option<String>> {
        match self.i16()? {
            -1 => Some(None),
            len => Some(Some(self.utf8(usize::try_from(len).ok()?)?)),
        }
    }

    fn string(&mut self) -> Option<String> {
        self.nullable()?
    }

    fn bytes(&mut self) -> Option<Bytes> {
        match self.i32()? {
            // Null bytes read as empty.
            -1 => Some(Bytes::new()),
            len => Some(Bytes::copy_from_slice(
                self.take(usize::try_from(len).ok()?)?,
            )),
        }
    }

    /// A compact length (stored plus one); `None` inside for null.
    fn compact_nullable_len(&mut self) -> Option<Option<usize>> {
        let n = self.uvarint()? as usize;
        Some(n.checked_sub(1))
    }

    fn compact_len(&mut self) -> Option<usize> {
        self.compact_nullable_len()?
    }

    fn compact_nullable(&mut self) -> Option<Option<String>> {
        match self.compact_nullable_len()? {
            None => Some(None),
            Some(len) => Some(Some(self.utf8(len)?)),
        }
    }

    fn compact_string(&mut self) -> Option<String> {
        self.compact_nullable()?
    }

    fn compact_bytes(&mut self) -> Option<Bytes> {
        let len = self.compact_nullable_len()?.unwrap_or(0);
        Some(Bytes::copy_from_slice(self.take(len)?))
    }

    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.take(16)?).ok()
    }

    /// Reads a tagged-field section, handing each field's bytes to `field`.
    fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, Reader<'a>) -> Option<()>,
    ) -> Option<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            field(tag, Reader(self.take(size)?))?;
        }
        Some(())
    }

    fn topic_partitions(&mut self) -> Option<Partitions> {
        let mut partitions = Partitions::new();
        for _ in 0..self.compact_len()? {
            let topic = self.uuid()?;
            for _ in 0..self.compact_len()? {
                partitions.insert((topic, self.i32()?));
            }
            // Tag 0 (AssignmentEpochs, KIP-1251) is not used by Sluice.
            self.tagged_fields(|_, _| Some(()))?;
        }
        Some(partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

    fn round_trip(key: MetadataKey, value: MetadataValue) {
        let encoded_key = key.encode();
        let decoded_key = MetadataKey::decode(&encoded_key).expect("key decodes");
        assert_eq!(decoded_key, key);
        let decoded = MetadataValue::decode(key.record_type, &value.encode());
        assert_eq!(decoded, Some(value));
    }

    fn classic_value() -> ClassicGroupValue {
        ClassicGroupValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1_700_000_000_000,
            members: vec![ClassicMemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        }
    }

    #[test]
    fn every_record_type_round_trips() {
        round_trip(
            MetadataKey::group(RecordType::ClassicGroup, "g"),
            MetadataValue::ClassicGroup(classic_value()),
        );
        for metadata_hash in [0, -42] {
            round_trip(
                MetadataKey::group(RecordType::ConsumerGroup, "g"),
                MetadataValue::ConsumerGroup(ConsumerGroupValue {
                    epoch: 3,
                    metadata_hash,
                }),
            );
        }
        round_trip(
            MetadataKey::member(RecordType::MemberMetadata, "g", "m"),
            MetadataValue::MemberMetadata(MemberMetadataValue {
                instance_id: None,
                rack_id: Some("r1".into()),
                client_id: "c".into(),
                client_host: "/10.0.0.1".into(),
                subscribed_topics: vec!["a".into(), "b".into()],
                subscribed_regex: None,
                rebalance_timeout_ms: 30_000,
                server_assignor: Some("uniform".into()),
            }),
        );
        round_trip(
            MetadataKey::group(RecordType::TargetAssignmentMetadata, "g"),
            MetadataValue::TargetAssignmentMetadata {
                assignment_epoch: 3,
            },
        );
        round_trip(
            MetadataKey::member(RecordType::TargetAssignmentMember, "g", "m"),
            MetadataValue::TargetAssignmentMember {
                partitions: [(T, 0), (T, 2), (Uuid::from_u128(9), 1)].into(),
            },
        );
        round_trip(
            MetadataKey::member(RecordType::CurrentMemberAssignment, "g", "m"),
            MetadataValue::CurrentMemberAssignment(CurrentAssignmentValue {
                member_epoch: 3,
                previous_member_epoch: 2,
                state: 1,
                assigned: [(T, 0)].into(),
                pending_revocation: [(T, 1)].into(),
            }),
        );
    }

    #[test]
    fn offset_commit_keys_are_not_metadata() {
        assert_eq!(
            MetadataKey::decode(&crate::group::offsets::encode_key("g", "t", 0)),
            None
        );
        assert_eq!(MetadataKey::decode(&[0, 2, 0]), None, "truncated");
    }

    /// A GroupMetadataKey and a v3 value, byte by byte per Kafka's schema.
    #[test]
    fn decodes_classic_group_bytes_built_by_hand() {
        let key = [0, 2, 0, 1, b'g'];
        assert_eq!(
            MetadataKey::decode(&key),
            Some(MetadataKey::group(RecordType::ClassicGroup, "g"))
        );
        let mut v = vec![0, 3]; // version 3
        v.extend([0, 8]);
        v.extend(b"consumer");
        v.extend(7i32.to_be_bytes()); // generation
        v.extend([0, 5]);
        v.extend(b"range");
        v.extend([0, 2]);
        v.extend(b"m1"); // leader
        v.extend(1_700_000_000_000i64.to_be_bytes());
        v.extend(1i32.to_be_bytes()); // one member
        v.extend([0, 2]);
        v.extend(b"m1");
        v.extend([0, 2]);
        v.extend(b"i1"); // group instance id
        v.extend([0, 1]);
        v.extend(b"c");
        v.extend([0, 10]);
        v.extend(b"/127.0.0.1");
        v.extend(300_000i32.to_be_bytes());
        v.extend(45_000i32.to_be_bytes());
        v.extend(3i32.to_be_bytes());
        v.extend(b"sub");
        v.extend(3i32.to_be_bytes());
        v.extend(b"asg");
        assert_eq!(
            MetadataValue::decode(RecordType::ClassicGroup, &v),
            Some(MetadataValue::ClassicGroup(classic_value()))
        );
        assert_eq!(MetadataValue::ClassicGroup(classic_value()).encode(), v);
        assert_eq!(
            MetadataValue::decode(RecordType::ClassicGroup, &v[..v.len() - 1]),
            None,
            "truncated"
        );
    }

    /// GroupMetadataValue v0 (no rebalance timeout, timestamp or instance
    /// id) and v4 (flexible), as older and newer Kafka versions write them.
    #[test]
    fn decodes_other_classic_versions() {
        let mut v0 = vec![0, 0, 0, 8];
        v0.extend(b"consumer");
        v0.extend(1i32.to_be_bytes());
        v0.extend([0xff, 0xff, 0xff, 0xff]); // null protocol and leader
        v0.extend(0i32.to_be_bytes());
        let Some(MetadataValue::ClassicGroup(g)) =
            MetadataValue::decode(RecordType::ClassicGroup, &v0)
        else {
            panic!("v0 decodes")
        };
        assert_eq!((g.generation, g.protocol, g.members.len()), (1, None, 0));

        let mut v4 = vec![0, 4, 9];
        v4.extend(b"consumer");
        v4.extend(2i32.to_be_bytes());
        v4.extend([6]);
        v4.extend(b"range");
        v4.extend([3]);
        v4.extend(b"m1");
        v4.extend(5i64.to_be_bytes());
        v4.extend([2]); // one member
        v4.extend([3]);
        v4.extend(b"m1");
        v4.extend([0]); // null instance id
        v4.extend([2]);
        v4.extend(b"c");
        v4.extend([2]);
        v4.extend(b"h");
        v4.extend(10i32.to_be_bytes());
        v4.extend(20i32.to_be_bytes());
        v4.extend([2, b's', 2, b'a']);
        v4.extend([0]); // member tagged fields
        v4.extend([1, 9, 1, 0xaa]); // an unknown tagged field is skipped
        let Some(MetadataValue::ClassicGroup(g)) =
            MetadataValue::decode(RecordType::ClassicGroup, &v4)
        else {
            panic!("v4 decodes")
        };
        assert_eq!(g.current_state_timestamp, 5);
        assert_eq!(g.members[0].assignment, Bytes::from_static(b"a"));
        assert_eq!(g.members[0].rebalance_timeout_ms, 10);
    }

    /// Consumer group records, byte by byte per Kafka's flexible schemas.
    #[test]
    fn decodes_consumer_group_bytes_built_by_hand() {
        let mut key = vec![0, 8, 0, 1, b'g', 0, 1, b'm'];
        assert_eq!(
            MetadataKey::decode(&key),
            Some(MetadataKey::member(
                RecordType::CurrentMemberAssignment,
                "g",
                "m"
            ))
        );
        key[1] = 3;
        assert_eq!(MetadataKey::decode(&key), None, "group key has no member");

        let mut v = vec![0, 0];
        v.extend(4i32.to_be_bytes());
        v.extend([1, 0, 8]); // tag 0, 8 bytes
        v.extend(99i64.to_be_bytes());
        assert_eq!(
            MetadataValue::decode(RecordType::ConsumerGroup, &v),
            Some(MetadataValue::ConsumerGroup(ConsumerGroupValue {
                epoch: 4,
                metadata_hash: 99
            }))
        );

        let mut v = vec![0, 0];
        v.extend(5i32.to_be_bytes()); // member epoch
        v.extend(4i32.to_be_bytes()); // previous
        v.push(2); // unreleased partitions
        v.push(2); // one topic
        v.extend(T.as_bytes());
        v.push(3); // two partitions
        v.extend(0i32.to_be_bytes());
        v.extend(1i32.to_be_bytes());
        v.extend([1, 0, 9, 3]); // AssignmentEpochs (tag 0): skipped
        v.extend(5i32.to_be_bytes());
        v.extend(5i32.to_be_bytes());
        v.push(1); // no partitions pending revocation
        v.push(0); // no tagged fields
        assert_eq!(
            MetadataValue::decode(RecordType::CurrentMemberAssignment, &v),
            Some(MetadataValue::CurrentMemberAssignment(
                CurrentAssignmentValue {
                    member_epoch: 5,
                    previous_member_epoch: 4,
                    state: 2,
                    assigned: [(T, 0), (T, 1)].into(),
                    pending_revocation: Partitions::new(),
                }
            ))
        );

        let mut v = vec![0, 0];
        v.push(0); // null instance id
        v.extend([2, b'r']);
        v.extend([2, b'c']);
        v.extend([2, b'h']);
        v.extend([2, 2, b't']); // one topic "t"
        v.push(0); // null regex
        v.extend(45_000i32.to_be_bytes());
        v.extend([6]);
        v.extend(b"range");
        v.push(0);
        assert_eq!(
            MetadataValue::decode(RecordType::MemberMetadata, &v),
            Some(MetadataValue::MemberMetadata(MemberMetadataValue {
                instance_id: None,
                rack_id: Some("r".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                subscribed_topics: vec!["t".into()],
                subscribed_regex: None,
                rebalance_timeout_ms: 45_000,
                server_assignor: Some("range".into()),
            }))
        );

        let mut v = vec![0, 0];
        v.extend(6i32.to_be_bytes());
        v.push(0);
        assert_eq!(
            MetadataValue::decode(RecordType::TargetAssignmentMetadata, &v),
            Some(MetadataValue::TargetAssignmentMetadata {
                assignment_epoch: 6
            })
        );
        let mut v = vec![0, 0, 2];
        v.extend(T.as_bytes());
        v.extend([2]);
        v.extend(3i32.to_be_bytes());
        v.extend([0, 0]);
        assert_eq!(
            MetadataValue::decode(RecordType::TargetAssignmentMember, &v),
            Some(MetadataValue::TargetAssignmentMember {
                partitions: [(T, 3)].into()
            })
        );
        assert_eq!(
            MetadataValue::decode(RecordType::TargetAssignmentMember, &[0, 1, 1, 0]),
            None,
            "unknown version"
        );
    }
}
