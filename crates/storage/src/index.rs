//! Sparse offset and time indexes, in Kafka's on-disk format.
//!
//! Each segment keeps its indexes in memory (a `Vec` of entries) and writes
//! them out whole when the segment stops being active (roll, close, recovery).
//! The active segment's index files are therefore stale until then; after an
//! unclean shutdown the active segment is scanned and its indexes rebuilt.

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy {
    /// Bytes per entry on disk.
    const LEN: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
    /// Whether `self` may follow `previous` in a well-formed index.
    fn follows(&self, previous: &Self) -> bool;
    fn relative_offset(&self) -> u32;
}

/// `.index` entry: the batch starting at `relative_offset` (from the segment's
/// base offset) begins at byte `position` of the `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }

    fn follows(&self, previous: &Self) -> bool {
        self.relative_offset > previous.relative_offset && self.position > previous.position
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// `.timeindex` entry: `timestamp` is the largest batch max timestamp seen in
/// the segment so far, first reached by the batch starting at `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        }
    }

    fn follows(&self, previous: &Self) -> bool {
        self.timestamp > previous.timestamp && self.relative_offset > previous.relative_offset
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

/// An in-memory copy of one index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Index<E> {
    entries: Vec<E>,
}

pub(crate) type OffsetIndex = Index<OffsetEntry>;
pub(crate) type TimeIndex = Index<TimeEntry>;

impl<E: IndexEntry> Index<E> {
    pub(crate) fn new() -> Self {
        Index {
            entries: Vec::new(),
        }
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Size of the index file.
    pub(crate) fn bytes(&self) -> u64 {
        (self.entries.len() * E::LEN) as u64
    }

    /// Whether one more entry would make the file larger than `max_bytes`.
    pub(crate) fn is_full(&self, max_bytes: u64) -> bool {
        ((self.entries.len() + 1) * E::LEN) as u64 > max_bytes
    }

    /// Appends an entry; callers keep entries ordered (see `IndexEntry::follows`).
    pub(crate) fn push(&mut self, entry: E) {
        debug_assert!(self.last().is_none_or(|last| entry.follows(&last)));
        self.entries.push(entry);
    }

    /// The last entry for which `is_before` holds, for a predicate that is
    /// true for a prefix of the entries.
    pub(crate) fn last_where(&self, is_before: impl Fn(&E) -> bool) -> Option<E> {
        let end = self.entries.partition_point(is_before);
        end.checked_sub(1).map(|i| self.entries[i])
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * E::LEN);
        for entry in &self.entries {
            entry.encode(&mut out);
        }
        out
    }

    /// Parses an index file. `None` when the file cannot be a well-formed index
    /// for a segment spanning `relative_offset_limit` offsets: a size that is
    /// not a whole number of entries, entries out of order, or beyond the end.
    pub(crate) fn decode(bytes: &[u8], relative_offset_limit: u64) -> Option<Self> {
        let chunks = bytes.chunks_exact(E::LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let entries: Vec<E> = chunks.map(E::decode).collect();
        let ordered = entries.windows(2).all(|w| w[1].follows(&w[0]));
        let in_range = entries
            .last()
            .is_none_or(|last| u64::from(last.relative_offset()) < relative_offset_limit);
        (ordered && in_range).then_some(Index { entries })
    }
}

impl OffsetIndex {
    /// Byte position of the last indexed batch starting at or before
    /// `relative_offset`; 0 (the segment start) when there is none.
    pub(crate) fn position_for(&self, relative_offset: u32) -> u32 {
        self.last_where(|e| e.relative_offset <= relative_offset)
            .map_or(0, |e| e.position)
    }
}

impl TimeIndex {
    /// Records a new maximum timestamp; ignored unless it grows the maximum
    /// (Kafka's time index only ever increases).
    pub(crate) fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        let grows = self
            .last()
            .map_or(timestamp >= 0, |l| timestamp > l.timestamp);
        if grows
            && self
                .last()
                .is_none_or(|l| relative_offset > l.relative_offset)
        {
            self.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }

    /// Relative offset from which a search for the first batch with max
    /// timestamp >= `timestamp` can start: every batch up to and including the
    /// returned one has a smaller max timestamp.
    pub(crate) fn last_below(&self, timestamp: i64) -> Option<u32> {
        self.last_where(|e| e.timestamp < timestamp)
            .map(|e| e.relative_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::new();
        for &(relative_offset, position) in entries {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn offset_lookup_finds_last_entry_at_or_before() {
        let index = offset_index(&[(10, 100), (20, 200), (30, 300)]);
        assert_eq!(index.position_for(0), 0);
        assert_eq!(index.position_for(9), 0);
        assert_eq!(index.position_for(10), 100);
        assert_eq!(index.position_for(19), 100);
        assert_eq!(index.position_for(20), 200);
        assert_eq!(index.position_for(1000), 300);
        assert_eq!(OffsetIndex::new().position_for(5), 0);
    }

    #[test]
    fn offset_index_round_trips_in_kafka_format() {
        let index = offset_index(&[(1, 70), (5, 400)]);
        let bytes = index.encode();
        assert_eq!(bytes, [0, 0, 0, 1, 0, 0, 0, 70, 0, 0, 0, 5, 0, 0, 1, 144]);
        assert_eq!(OffsetIndex::decode(&bytes, 6), Some(index));
    }

    #[test]
    fn decode_refuses_inconsistent_files() {
        let bytes = offset_index(&[(1, 70), (5, 400)]).encode();
        assert_eq!(OffsetIndex::decode(&bytes[..15], 6), None, "partial entry");
        assert_eq!(OffsetIndex::decode(&bytes, 5), None, "beyond the segment");
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(OffsetIndex::decode(&swapped, 6), None, "out of order");
        assert_eq!(OffsetIndex::decode(&[], 0), Some(OffsetIndex::new()));
    }

    #[test]
    fn time_index_only_grows_and_finds_search_start() {
        let mut index = TimeIndex::new();
        index.maybe_push(-1, 0);
        index.maybe_push(100, 0);
        index.maybe_push(100, 3);
        index.maybe_push(90, 5);
        index.maybe_push(200, 7);
        assert_eq!(index.last_below(100), None);
        assert_eq!(index.last_below(101), Some(0));
        assert_eq!(index.last_below(200), Some(0));
        assert_eq!(index.last_below(201), Some(7));
        let bytes = index.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(TimeIndex::decode(&bytes, 8), Some(index));
    }

    #[test]
    fn fullness_counts_the_next_entry() {
        let index = offset_index(&[(1, 1)]);
        assert!(!index.is_full(16));
        assert!(index.is_full(15));
    }
}
