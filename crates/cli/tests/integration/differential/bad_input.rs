//! Frames a client should never send: an API version the broker does not
//! support, an unknown API key, a frame cut short, a length past
//! `socket.request.max.bytes`, a body that does not parse. Each either gets
//! the answer Kafka gives or the connection closed, as Kafka does.

use sluice_protocol::kafka_protocol::messages::{ApiKey, RequestKind};

use super::wire::Wire;
use super::{Obs, Side};

/// A frame with a v1 request header (no client id) and `body`.
fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&99i32.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes());
    payload.extend_from_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// "answered", or "closed" when the broker drops the connection.
fn outcome(side: &Side, bytes: &[u8]) -> String {
    let mut wire: Wire = side.connection();
    match wire.send_raw(bytes) {
        Some(_) => "answered",
        None => "closed",
    }
    .to_string()
}

pub(crate) fn bad_input(side: &mut Side, obs: &mut Obs) {
    let metadata_max = side
        .own_versions
        .get(&(ApiKey::Metadata as i16))
        .map_or(0, |r| r.1);
    obs.put(
        "metadata_version_too_new",
        outcome(
            side,
            &frame(ApiKey::Metadata as i16, metadata_max + 1, &[0, 0, 0, 0]),
        ),
    );
    obs.put("unknown_api_key", outcome(side, &frame(999, 0, &[])));
    obs.put("negative_api_key", outcome(side, &frame(-5, 0, &[])));
    obs.put(
        "body_garbage",
        outcome(
            side,
            &frame(ApiKey::Metadata as i16, 1, &[0xff, 0xff, 0xff, 0x00]),
        ),
    );
    obs.put("negative_length", outcome(side, &(-4i32).to_be_bytes()));
    let mut oversize = (200_000_000i32).to_be_bytes().to_vec();
    oversize.extend_from_slice(&frame(ApiKey::Metadata as i16, 1, &[0, 0, 0, 0])[4..]);
    obs.put(
        "length_past_socket_request_max_bytes",
        outcome(side, &oversize),
    );
    obs.put(
        "produce_version_zero",
        outcome(
            side,
            &frame(ApiKey::Produce as i16, 0, &[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
    );
    // A well-formed request still works on a fresh connection afterwards.
    let mut wire = side.connection();
    let ok = matches!(
        wire.send(RequestKind::Metadata(Default::default())),
        sluice_protocol::kafka_protocol::messages::ResponseKind::Metadata(_)
    );
    obs.put("still_serving", ok);
}
