//! Malformed and hostile input on raw TCP connections, and record-batch
//! validation errors in Produce responses.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

use bytes::Bytes;
use sluice_protocol::batch::build_uncompressed_batch;
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::error;
use sluice_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use sluice_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use sluice_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, ProduceRequest, RequestHeader,
    RequestKind, ResponseKind, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::{InProcBroker, PATIENCE};

pub(crate) fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one response frame (without its length prefix); `None` on EOF.
pub(crate) fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("reading a response: {e}"),
    }
    let len = i32::from_be_bytes(len);
    assert!(len >= 0, "negative response length {len}");
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).expect("response body");
    Some(Bytes::from(body))
}

/// The broker must close the connection without answering.
pub(crate) fn expect_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected the connection to close, got {n} bytes"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: expected the connection to close: {e}"),
    }
}

fn header(api: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
}

pub(crate) fn api_versions_request(correlation_id: i32) -> Bytes {
    encode_request(
        &header(ApiKey::ApiVersions, 3, correlation_id),
        &RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("raw"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    )
    .unwrap()
}

/// Sends a request and decodes its response.
pub(crate) fn call(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    let corr = 4242;
    s.write_all(&encode_request(&header(api, version, corr), &body).unwrap())
        .unwrap();
    let frame = read_frame(s).expect("a response");
    let (got_corr, resp) = decode_response(api, version, frame).expect("decodable response");
    assert_eq!(got_corr, corr);
    resp
}

/// A fresh connection completes an ApiVersions v3 round trip.
pub(crate) fn assert_serving(addr: &str) {
    let mut s = connect(addr);
    match call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("raw"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    ) {
        ResponseKind::ApiVersions(r) => {
            assert_eq!(r.error_code, 0);
            assert!(r
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Metadata as i16));
        }
        other => panic!("unexpected response {other:?}"),
    }
}

/// Header bytes for any api key/version, built by hand (the codec refuses
/// versions it does not know).
fn raw_header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&api_key.to_be_bytes());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&correlation_id.to_be_bytes());
    v.extend_from_slice(&3i16.to_be_bytes());
    v.extend_from_slice(b"raw");
    v
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    assert_serving(&addr);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", vec![0xff, 0xff, 0xff, 0xfe, 0, 18, 0, 3]),
        (
            "length above socket.request.max.bytes",
            (200 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("length i32::MAX", i32::MAX.to_be_bytes().to_vec()),
        (
            "garbage",
            framed(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        ("header too short", framed(&[0, 18, 0])),
        ("unknown API key", framed(&raw_header(9999, 0, 1))),
        ("negative API key", framed(&raw_header(-5, 0, 1))),
        (
            "unimplemented API (JoinGroup)",
            framed(&raw_header(ApiKey::JoinGroup as i16, 5, 1)),
        ),
        (
            "Metadata v99",
            framed(&raw_header(ApiKey::Metadata as i16, 99, 1)),
        ),
        (
            "Metadata v-1",
            framed(&raw_header(ApiKey::Metadata as i16, -1, 1)),
        ),
        ("Produce v2 (advertised, refused)", {
            let mut p = raw_header(ApiKey::Produce as i16, 2, 1);
            p.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 0]);
            framed(&p)
        }),
        ("Metadata v12 with a truncated body", {
            let mut p = raw_header(ApiKey::Metadata as i16, 12, 1);
            p.push(0); // header tagged fields
            p.extend_from_slice(&[0x05, 0x00]); // topics: 4 entries, then nothing
            framed(&p)
        }),
    ];
    for (what, bytes) in cases {
        let mut s = connect(&addr);
        s.write_all(&bytes).unwrap();
        expect_closed(&mut s, what);
        assert_serving(&addr);
    }

    // A frame cut short, then the client goes away.
    let mut s = connect(&addr);
    let full = api_versions_request(1);
    s.write_all(&full[..full.len() / 2]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    expect_closed(&mut s, "truncated frame");
    drop(s);
    assert_serving(&addr);

    // A good request, then garbage on the same connection: the good one is
    // answered, then the connection closes.
    let mut s = connect(&addr);
    let mut bytes = api_versions_request(77).to_vec();
    bytes.extend_from_slice(&framed(&raw_header(9999, 0, 78)));
    s.write_all(&bytes).unwrap();
    let frame = read_frame(&mut s).expect("the good request is answered");
    let (corr, _) = decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
    assert_eq!(corr, 77);
    expect_closed(&mut s, "garbage after a good request");
    assert_serving(&addr);
}

#[test]
fn api_versions_unknown_version_is_answered_in_v0() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    let mut s = connect(&addr);
    let mut payload = raw_header(ApiKey::ApiVersions as i16, 99, 31337);
    // Whatever a future version's body looks like.
    payload.extend_from_slice(&[0, 1, 2, 3, 4, 5]);
    s.write_all(&framed(&payload)).unwrap();
    let frame = read_frame(&mut s).expect("an answer to ApiVersions v99");
    let (corr, resp) = decode_response(ApiKey::ApiVersions, 0, frame).expect("a v0 body");
    assert_eq!(corr, 31337);
    let ResponseKind::ApiVersions(r) = resp else {
        panic!("not an ApiVersions response");
    };
    assert_eq!(r.error_code, error::UNSUPPORTED_VERSION);
    let av = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions in the list");
    assert!(av.max_version >= 3, "ApiVersions max {}", av.max_version);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));

    // The client retries with a version it can use, on the same connection.
    s.write_all(&api_versions_request(31338)).unwrap();
    let frame = read_frame(&mut s).expect("retry answered");
    let (corr, resp) = decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
    assert_eq!(corr, 31338);
    let ResponseKind::ApiVersions(r) = resp else {
        panic!("not an ApiVersions response");
    };
    assert_eq!(r.error_code, 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    let mut s = connect(&addr);
    let mut bytes = Vec::new();
    for corr in 100..120 {
        bytes.extend_from_slice(&api_versions_request(corr));
    }
    s.write_all(&bytes).unwrap();
    for corr in 100..120 {
        let frame = read_frame(&mut s).expect("response");
        let (got, _) = decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
        assert_eq!(got, corr);
    }
}

fn create_topic(s: &mut TcpStream, name: &str, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    match call(s, ApiKey::CreateTopics, 7, RequestKind::CreateTopics(req)) {
        ResponseKind::CreateTopics(r) => {
            assert_eq!(r.topics.len(), 1);
            assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// Produces `records` with acks=1 and returns (error code, base offset).
fn produce(s: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    let req = produce_request(topic, 1, records);
    match call(s, ApiKey::Produce, 9, RequestKind::Produce(req)) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn produce_rejects_corrupt_and_oversized_batches() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    let mut s = connect(&addr);
    create_topic(&mut s, "checked", &[("max.message.bytes", "1000")]);

    let good =
        build_uncompressed_batch(now_ms(), &[(Some(b"k"), Some(b"v1")), (None, Some(b"v2"))]);

    // A flipped byte inside the records: the CRC no longer matches.
    let mut corrupt = good.to_vec();
    let at = corrupt.len() - 3;
    corrupt[at] ^= 0xff;
    assert_eq!(
        produce(&mut s, "checked", Bytes::from(corrupt)).0,
        error::CORRUPT_MESSAGE
    );

    // A batch length pointing past the end of the record set.
    let mut torn = good.to_vec();
    torn.truncate(torn.len() - 5);
    assert_eq!(
        produce(&mut s, "checked", Bytes::from(torn)).0,
        error::CORRUPT_MESSAGE
    );

    // Larger than the topic's max.message.bytes.
    let big = vec![b'x'; 4000];
    let oversized = build_uncompressed_batch(now_ms(), &[(None, Some(&big))]);
    assert_eq!(
        produce(&mut s, "checked", oversized).0,
        error::MESSAGE_TOO_LARGE
    );

    // Rejections consumed no offsets; the connection is still usable.
    assert_eq!(produce(&mut s, "checked", good.clone()), (0, 0));
    assert_eq!(produce(&mut s, "checked", good), (0, 2));
}

/// acks=0 produce gets no response at all: the next frame on the
/// connection answers the request after it.
#[test]
fn acks_zero_produce_gets_no_response() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    let mut s = connect(&addr);
    create_topic(&mut s, "fire-and-forget", &[]);
    let batch = build_uncompressed_batch(now_ms(), &[(None, Some(b"v"))]);
    let mut bytes = encode_request(
        &header(ApiKey::Produce, 9, 500),
        &RequestKind::Produce(produce_request("fire-and-forget", 0, batch.clone())),
    )
    .unwrap()
    .to_vec();
    bytes.extend_from_slice(&api_versions_request(501));
    s.write_all(&bytes).unwrap();
    let frame = read_frame(&mut s).expect("a response");
    let (corr, _) = decode_response(ApiKey::ApiVersions, 3, frame).unwrap();
    assert_eq!(corr, 501, "acks=0 produce must not be answered");
    // It was appended all the same.
    assert_eq!(produce(&mut s, "fire-and-forget", batch), (0, 1));
}

/// Fetch past the log end is OFFSET_OUT_OF_RANGE (what drives clients'
/// auto.offset.reset); at the log end it is an empty, successful read.
#[test]
fn fetch_out_of_range() {
    let b = InProcBroker::start(&[]);
    let addr = b.bootstrap();
    let mut s = connect(&addr);
    create_topic(&mut s, "ranged", &[]);
    let batch = build_uncompressed_batch(now_ms(), &[(None, Some(b"a")), (None, Some(b"b"))]);
    assert_eq!(produce(&mut s, "ranged", batch), (0, 0));
    let fetch = |s: &mut TcpStream, offset: i64| {
        let req = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("ranged")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        match call(s, ApiKey::Fetch, 12, RequestKind::Fetch(req)) {
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                (
                    p.error_code,
                    p.high_watermark,
                    p.records.as_ref().map_or(0, |r| r.len()),
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let (code, hw, len) = fetch(&mut s, 0);
    assert_eq!((code, hw), (0, 2));
    assert!(len > 0);
    assert_eq!(fetch(&mut s, 2), (0, 2, 0));
    assert_eq!(fetch(&mut s, 3).0, error::OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch(&mut s, -5).0, error::OFFSET_OUT_OF_RANGE);
}
