//! Partition selection: Java-compatible murmur2 for keyed records, sticky
//! partitioning for records without a key.

use std::collections::HashMap;

use rand::Rng;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`,
/// returning the same (signed) value as the Java client.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % num_partitions
}

/// Sticky partitioning for records without a key: all such records for a
/// topic go to one partition until a batch for it is closed, then another
/// partition is chosen at random.
#[derive(Debug, Default)]
pub(crate) struct StickyPartitioner {
    current: HashMap<String, i32>,
}

impl StickyPartitioner {
    /// The sticky partition for `topic`, choosing one among `available`
    /// (partitions with a leader) or, if none is, among all `num_partitions`.
    pub(crate) fn partition(&mut self, topic: &str, available: &[i32], num_partitions: i32) -> i32 {
        if let Some(&p) = self.current.get(topic) {
            if p < num_partitions {
                return p;
            }
        }
        let p = pick(available, num_partitions, None);
        self.current.insert(topic.to_string(), p);
        p
    }

    /// Called when the open batch for `topic`/`partition` is closed (full or
    /// sent): if it is the sticky partition, switch to another one.
    pub(crate) fn batch_closed(
        &mut self,
        topic: &str,
        partition: i32,
        available: &[i32],
        num_partitions: i32,
    ) {
        if self.current.get(topic) == Some(&partition) {
            let p = pick(available, num_partitions, Some(partition));
            self.current.insert(topic.to_string(), p);
        }
    }
}

fn pick(available: &[i32], num_partitions: i32, avoid: Option<i32>) -> i32 {
    let mut rng = rand::rng();
    let candidates: Vec<i32> = if available.is_empty() {
        (0..num_partitions).collect()
    } else {
        available.to_vec()
    };
    let filtered: Vec<i32> = candidates
        .iter()
        .copied()
        .filter(|p| Some(*p) != avoid)
        .collect();
    let from = if filtered.is_empty() {
        &candidates
    } else {
        &filtered
    };
    from[rng.random_range(0..from.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), *expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn murmur2_handles_every_tail_length() {
        // Must not panic and must be deterministic for 0..=3 trailing bytes.
        for len in 0..12 {
            let data: Vec<u8> = (0..len as u8).collect();
            assert_eq!(murmur2(&data), murmur2(&data));
        }
        // Bytes >= 0x80 are treated as unsigned (Java masks with 0xff).
        assert_ne!(murmur2(&[0xff]), murmur2(&[0x7f]));
    }

    #[test]
    fn key_partition_is_positive_modulo() {
        assert_eq!(to_positive(-1), i32::MAX);
        // toPositive(-973932308) % 3
        let expected = (-973932308i32 & 0x7fff_ffff) % 3;
        assert_eq!(partition_for_key(b"21", 3), expected);
        for n in 1..20 {
            let p = partition_for_key(b"foobar", n);
            assert!((0..n).contains(&p));
        }
    }

    #[test]
    fn sticky_stays_until_batch_closed_then_moves() {
        let mut s = StickyPartitioner::default();
        let all = [0, 1, 2, 3];
        let first = s.partition("t", &all, 4);
        for _ in 0..100 {
            assert_eq!(s.partition("t", &all, 4), first);
        }
        // Closing a batch on another partition changes nothing.
        s.batch_closed("t", (first + 1) % 4, &all, 4);
        assert_eq!(s.partition("t", &all, 4), first);
        s.batch_closed("t", first, &all, 4);
        let second = s.partition("t", &all, 4);
        assert_ne!(second, first);
        // Only available partitions are chosen.
        let mut s = StickyPartitioner::default();
        for _ in 0..50 {
            let p = s.partition("u", &[2], 4);
            assert_eq!(p, 2);
            s.batch_closed("u", p, &[2], 4);
        }
        // Single partition topics always stick to 0.
        let mut s = StickyPartitioner::default();
        assert_eq!(s.partition("v", &[0], 1), 0);
        s.batch_closed("v", 0, &[0], 1);
        assert_eq!(s.partition("v", &[0], 1), 0);
    }
}
