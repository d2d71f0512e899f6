//! Committed offsets and their records in `__consumer_offsets`.
//!
//! Records use Kafka's own layout, so tools that read the topic understand
//! them: key `OffsetCommitKey` v1 (group, topic, partition) and value
//! `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit time); a
//! null value deletes the offset. The topic is compacted by design: only the
//! latest record per key matters, which is exactly what replay keeps.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};

/// The internal topic that stores committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Kafka's GroupMetadataKey version: group metadata, not an offset (see
/// [`super::records`]).
const GROUP_METADATA_KEY_VERSION: i16 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
}

/// topic -> partition -> committed offset, for one group.
pub(crate) type GroupOffsets = BTreeMap<String, BTreeMap<i32, CommittedOffset>>;

/// Every group's committed offsets.
#[derive(Default)]
pub(crate) struct OffsetStore {
    groups: HashMap<String, GroupOffsets>,
    /// (group, topic, partition) -> end offset in `__consumer_offsets` of
    /// the record last applied, so commits that become durable out of order
    /// still apply in log order. Kept for tombstones too.
    positions: HashMap<(String, String, i32), i64>,
}

impl OffsetStore {
    pub(crate) fn get(&self, group: &str) -> Option<&GroupOffsets> {
        self.groups.get(group)
    }

    pub(crate) fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    pub(crate) fn put(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<CommittedOffset>,
    ) {
        match value {
            Some(v) => {
                self.groups
                    .entry(group.to_string())
                    .or_default()
                    .entry(topic.to_string())
                    .or_default()
                    .insert(partition, v);
            }
            None => {
                if let Some(topics) = self.groups.get_mut(group) {
                    if let Some(parts) = topics.get_mut(topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            topics.remove(topic);
                        }
                    }
                    if topics.is_empty() {
                        self.groups.remove(group);
                    }
                }
            }
        }
    }

    /// [`Self::put`] for a record at `position` in `__consumer_offsets`,
    /// unless a record later in the log was applied already.
    pub(crate) fn put_at(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<CommittedOffset>,
        position: i64,
    ) {
        let key = (group.to_string(), topic.to_string(), partition);
        match self.positions.get(&key) {
            Some(applied) if *applied > position => return,
            _ => {}
        }
        self.positions.insert(key, position);
        self.put(group, topic, partition, value);
    }

    /// Keeps only the groups `keep` accepts (and their log positions).
    pub(crate) fn retain_groups(&mut self, mut keep: impl FnMut(&String) -> bool) {
        self.groups.retain(|group, _| keep(group));
        self.positions.retain(|(group, _, _), _| keep(group));
    }

    /// Applies one record read back from `__consumer_offsets`.
    pub(crate) fn replay(&mut self, key: &[u8], value: Option<&[u8]>) {
        match decode_key(key) {
            Some(OffsetKey::Commit {
                group,
                topic,
                partition,
            }) => {
                let value = value.and_then(decode_value);
                self.put(&group, &topic, partition, value);
            }
            Some(OffsetKey::GroupMetadata) | None => {}
        }
    }
}

enum OffsetKey {
    Commit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata,
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

pub(crate) fn encode_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

pub(crate) fn encode_value(value: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + value.metadata.len());
    buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata);
    buf.put_i64(value.commit_timestamp);
    buf.freeze()
}

fn decode_key(mut buf: &[u8]) -> Option<OffsetKey> {
    if buf.remaining() < 2 {
        return None;
    }
    match buf.get_i16() {
        0 | 1 => {
            let group = get_string(&mut buf)?;
            let topic = get_string(&mut buf)?;
            if buf.remaining() < 4 {
                return None;
            }
            Some(OffsetKey::Commit {
                group,
                topic,
                partition: buf.get_i32(),
            })
        }
        GROUP_METADATA_KEY_VERSION => Some(OffsetKey::GroupMetadata),
        _ => None,
    }
}

/// The (group, topic, partition) an offset commit record's key names.
pub(crate) fn commit_key(key: &[u8]) -> Option<(String, String, i32)> {
    match decode_key(key)? {
        OffsetKey::Commit {
            group,
            topic,
            partition,
        } => Some((group, topic, partition)),
        OffsetKey::GroupMetadata => None,
    }
}

/// Decodes OffsetCommitValue v0-v3 (v2 adds an expire timestamp, v3 the
/// leader epoch and drops it).
fn decode_value(mut buf: &[u8]) -> Option<CommittedOffset> {
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if buf.remaining() < 8 {
        return None;
    }
    let offset = buf.get_i64();
    let leader_epoch = if version >= 3 {
        if buf.remaining() < 4 {
            return None;
        }
        buf.get_i32()
    } else {
        -1
    };
    let metadata = get_string(&mut buf)?;
    if buf.remaining() < 8 {
        return None;
    }
    let commit_timestamp = buf.get_i64();
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// Kafka's partition for a group: `abs(hashCode(group)) % partitions`, with
/// Java's `String.hashCode`.
pub(crate) fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    // Utils.abs: Integer.MIN_VALUE maps to 0.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip() {
        let mut store = OffsetStore::default();
        let value = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1000,
        };
        store.replay(&encode_key("g", "t", 2), Some(&encode_value(&value)));
        assert_eq!(store.get("g").unwrap()["t"][&2], value);
        store.replay(&encode_key("g", "t", 2), None);
        assert!(store.get("g").is_none());
    }

    #[test]
    fn group_partition_matches_java_hash_code() {
        // "abc".hashCode() == 96354; 96354 % 50 == 4.
        assert_eq!(partition_for("abc", 50), 4);
        // "console-consumer-1".hashCode() is negative; abs is used.
        let h = "console-consumer-1"
            .bytes()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        assert_eq!(partition_for("console-consumer-1", 50), h.abs() % 50);
    }
}
