//! A `sluice serve` process under a sweep of hostile requests: for every API
//! key and version the broker advertises, bodies whose counts claim billions
//! of elements at every position, and seeded random bodies. Each request
//! goes on its own connection followed by an ApiVersions; the broker may
//! answer, refuse or close that connection, but it must keep serving
//! everyone else. The seed is printed so a failure replays exactly.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseKind,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::{free_port, BrokerProcess, PATIENCE};

const SEED: u64 = 0x5eed_0011;
/// Correlation id of the ApiVersions sent after each hostile request.
const PROBE_ID: i32 = 0x0bad_f00d;

fn api_versions(correlation_id: i32) -> Vec<u8> {
    encode_request(
        &RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sweep"))),
        &RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("sweep"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    )
    .unwrap()
    .to_vec()
}

/// The (api key, version) pairs a fresh connection's ApiVersions lists.
fn advertised(addr: &str) -> Vec<(i16, i16)> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&api_versions(1)).unwrap();
    let frame = read_frame(&mut s).expect("an ApiVersions response");
    let (_, body) = decode_response(ApiKey::ApiVersions, 3, frame.into()).expect("decodes");
    let ResponseKind::ApiVersions(r) = body else {
        panic!("not an ApiVersions response")
    };
    r.api_keys
        .iter()
        .flat_map(|k| (k.min_version..=k.max_version).map(move |v| (k.api_key, v)))
        .collect()
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    if len < 0 {
        return None;
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// A request frame: length, header (v1 or v2 as the API wants) and `body`.
fn hostile_frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&7i32.to_be_bytes());
    payload.extend_from_slice(&0i16.to_be_bytes()); // client id ""
    let flexible_header = ApiKey::try_from(api_key)
        .map(|k| k.request_header_version(version) >= 2)
        .unwrap_or(false);
    if flexible_header {
        payload.push(0); // no tagged fields
    }
    payload.extend_from_slice(body);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Sends one hostile request and a probe on a new connection, then reads
/// until the probe's answer, a close or a quiet second (a long poll or a
/// join that waits is not a failure; a dead broker is found by the caller).
fn send_one(addr: &str, frame: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut request = frame.to_vec();
    request.extend_from_slice(&api_versions(PROBE_ID));
    if s.write_all(&request).is_err() {
        return;
    }
    while let Some(response) = read_frame(&mut s) {
        if response.get(..4) == Some(&PROBE_ID.to_be_bytes()[..]) {
            return;
        }
    }
}

/// SplitMix64, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn assert_alive(addr: &str, after: &str) {
    let mut s = TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("broker stopped accepting after {after}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&api_versions(2)).unwrap();
    match read_frame(&mut s) {
        Some(_) => {}
        None => {
            let mut rest = Vec::new();
            let why = match s.read_to_end(&mut rest) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => "timed out".to_string(),
                other => format!("{other:?}"),
            };
            panic!("broker stopped answering after {after} ({why})")
        }
    }
}

#[test]
fn hostile_requests_for_every_advertised_api_never_kill_the_broker() {
    println!("hostile request sweep seed {SEED:#x}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let broker = BrokerProcess::spawn(free_port(), &dir.path().join("data"), &log, &[]);
    let addr = broker.bootstrap();
    let mut rng = Rng(SEED);
    let counts: [&[u8]; 2] = [&[0x7f, 0xff, 0xff, 0xff], &[0xff, 0xff, 0xff, 0xff, 0x0f]];
    for (api_key, version) in advertised(&addr) {
        if api_key == ApiKey::ApiVersions as i16 {
            continue; // the probe itself; KIP-511 handling is tested elsewhere
        }
        for prefix in 0..24 {
            for count in counts {
                let mut body = vec![0u8; prefix];
                body.extend_from_slice(count);
                body.extend_from_slice(&[0u8; 8]);
                send_one(&addr, &hostile_frame(api_key, version, &body));
            }
        }
        for _ in 0..4 {
            let len = (rng.next() % 80) as usize;
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            send_one(&addr, &hostile_frame(api_key, version, &body));
        }
        assert_alive(&addr, &format!("API key {api_key} v{version}"));
    }
    broker.terminate();
}
