//! Hostile request bodies for every API key and version `kafka-protocol`
//! can decode. A decoder that trusts a count and reserves memory for it
//! aborts the whole process ("memory allocation of … bytes failed"), which
//! no `catch_unwind` can stop — so these tests fail by killing their test
//! binary. Every decode must instead return an error (or a value) quickly.
//!
//! Deterministic: a fixed seed, printed, so a failure replays exactly.

use crate::compression::decode_batches;
use crate::envelope::decode_request;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

/// SplitMix64: tiny, seedable and good enough to scatter bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every (API key, version) pair the decoder knows.
fn all_versions() -> Vec<(ApiKey, i16)> {
    ApiKey::iter()
        .flat_map(|key| {
            let range = key.valid_versions();
            (range.min..=range.max).map(move |v| (key, v))
        })
        .collect()
}

/// A request header for `key`/`version` with an empty client id and, for
/// flexible headers, no tagged fields; then `body`.
fn frame(key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(key as i16);
    buf.put_i16(version);
    buf.put_i32(1);
    if key.request_header_version(version) >= 1 {
        buf.put_i16(0); // client id: empty string
    }
    if key.request_header_version(version) >= 2 {
        buf.put_u8(0); // no tagged fields
    }
    buf.extend_from_slice(body);
    buf.freeze()
}

/// The huge counts a hostile peer would send: classic i32 and compact
/// unsigned varint, at the largest and at a merely large value.
const HUGE_COUNTS: &[&[u8]] = &[
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x10, 0x00, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0x7f],
];

#[test]
fn huge_counts_at_every_position_are_errors_not_aborts() {
    // Zeros decode as empty strings, zero integers and empty arrays, so a
    // huge count after `prefix` zero bytes lands on the first array field
    // (or string, or nested array) that many bytes in.
    for (key, version) in all_versions() {
        for prefix in 0..48 {
            for count in HUGE_COUNTS {
                let mut body = vec![0u8; prefix];
                body.extend_from_slice(count);
                body.extend_from_slice(&[0u8; 16]);
                let _ = decode_request(frame(key, version, &body));
            }
        }
    }
}

#[test]
fn metadata_v1_with_two_billion_topics_is_an_error() {
    // The 16-byte request that used to kill the broker.
    let body = [0x7f, 0xff, 0xff, 0xff];
    assert!(decode_request(frame(ApiKey::Metadata, 1, &body)).is_err());
}

#[test]
fn random_bodies_for_every_api_and_version_are_errors_not_aborts() {
    const SEED: u64 = 0x5eed_0011;
    println!("hostile request sweep seed {SEED:#x}");
    let mut rng = Rng(SEED);
    let versions = all_versions();
    for round in 0..20_000 {
        let (key, version) = versions[round % versions.len()];
        let len = rng.below(96);
        let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Bias towards the shapes that matter: big counts and small values.
        if len >= 4 && rng.below(2) == 0 {
            let at = rng.below(len - 3);
            body[at..at + 4].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        }
        let _ = decode_request(frame(key, version, &body));
    }
}

/// A v2 batch header claiming `record_count` records over `payload`, with a
/// CRC that does not matter to the decoder.
fn batch_claiming(record_count: i32, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i64(0); // base offset
    buf.put_i32((49 + payload.len()) as i32); // batch length
    buf.put_i32(0); // partition leader epoch
    buf.put_i8(2); // magic
    buf.put_u32(0); // crc
    buf.put_i16(0); // attributes: no compression
    buf.put_i32(0); // last offset delta
    buf.put_i64(0); // base timestamp
    buf.put_i64(0); // max timestamp
    buf.put_i64(-1); // producer id
    buf.put_i16(-1); // producer epoch
    buf.put_i32(-1); // base sequence
    buf.put_i32(record_count);
    buf.extend_from_slice(payload);
    buf.freeze()
}

#[test]
fn record_batches_with_huge_counts_are_errors_not_aborts() {
    // A batch claiming two billion records, and a record claiming two
    // billion headers (zigzag varint 0xfe 0xff 0xff 0xff 0x0f = i32::MAX).
    let _ = decode_batches(batch_claiming(i32::MAX, &[0; 8]));
    let record_with_huge_header_count = [
        0x20, // record length (zigzag 16)
        0x00, // attributes
        0x00, // timestamp delta
        0x00, // offset delta
        0x01, // key: null
        0x01, // value: null
        0xfe, 0xff, 0xff, 0xff, 0x0f, // header count: i32::MAX
        0, 0, 0, 0, 0,
    ];
    let _ = decode_batches(batch_claiming(1, &record_with_huge_header_count));
}
