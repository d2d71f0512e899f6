//! `/api/v1`: the JSON the console reads (docs/openapi.yaml describes it).
//! The reads: the cluster, topics with their partitions and
//! configs, records of a partition by offset (bounded: at most
//! [`MAX_RECORDS`] records and [`MAX_READ_BYTES`] bytes per call, never a
//! whole topic), consumer groups with their committed offsets and lag.
//! Every input is checked; a bad one is a 4xx with a JSON `error` message.

use super::Started;
use crate::state::BrokerState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// Records one call returns at most (`limit` defaults to 50).
const MAX_RECORDS: usize = 500;
const DEFAULT_RECORDS: usize = 50;
/// Bytes of batches one call reads at most.
const MAX_READ_BYTES: usize = 1 << 20;

pub(super) fn routes() -> Router<Arc<Started>> {
    Router::new()
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/topics", get(topics))
        .route("/api/v1/topics/{topic}", get(topic))
        .route(
            "/api/v1/topics/{topic}/partitions/{partition}/records",
            get(records),
        )
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{group}", get(group))
}

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

pub(super) fn serving(started: &Started) -> Result<Arc<BrokerState>, Response> {
    started
        .serving
        .get()
        .map(|(state, _)| Arc::clone(state))
        .ok_or_else(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the broker is starting: logs are being recovered",
            )
        })
}

async fn cluster(State(started): State<Arc<Started>>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let image = state.image();
    let partitions: usize = image.topics().map(|t| t.partitions.len()).sum();
    let quorum = state.quorum.status();
    json_response(
        StatusCode::OK,
        json!({
            "cluster_id": image.cluster_id,
            "controller": quorum.leader,
            "brokers": [{
                "id": state.node_id,
                "host": state.own_endpoint(&state.inter_broker_listener).host,
                "port": state.own_endpoint(&state.inter_broker_listener).port,
                "listeners": state.listeners.iter().map(|l| json!({
                    "name": l.name,
                    "host": l.host,
                    "port": l.port,
                })).collect::<Vec<_>>(),
            }],
            "topics": image.topics().count(),
            "partitions": partitions,
            "under_replicated_partitions": image
                .topics()
                .flat_map(|t| t.partitions.iter())
                .filter(|p| p.isr.len() < p.replicas.len())
                .count(),
            "offline_partitions": state.partitions.offline_count(),
        }),
    )
}

async fn topics(State(started): State<Arc<Started>>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let image = state.image();
    let listed: Vec<Value> = image
        .topics()
        .map(|t| {
            let (mut size, mut records) = (0u64, 0i64);
            let mut traffic = (0u64, 0u64, 0u64);
            for index in 0..t.partitions.len() as i32 {
                if let Some(p) = state.partitions.get(&t.name, index) {
                    size += p.stats.log_size_bytes();
                    records += p.high_watermark() - p.log_start_offset();
                    let (bytes_in, bytes_out, records_in) = p.stats.traffic();
                    traffic.0 += bytes_in;
                    traffic.1 += bytes_out;
                    traffic.2 += records_in;
                }
            }
            json!({
                "name": t.name,
                "id": t.id.to_string(),
                "internal": t.name.starts_with("__"),
                "partitions": t.partitions.len(),
                "size_bytes": size,
                "records": records,
                "bytes_in_total": traffic.0,
                "bytes_out_total": traffic.1,
                "records_in_total": traffic.2,
            })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(listed))
}

async fn topic(State(started): State<Arc<Started>>, Path(name): Path<String>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let image = state.image();
    let Some(t) = image.topic(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no topic named '{name}'"));
    };
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let log = state.partitions.get(&t.name, index as i32);
            json!({
                "partition": index,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "online": log.is_some(),
                "log_start_offset": log.as_ref().map(|l| l.log_start_offset()),
                "high_watermark": log.as_ref().map(|l| l.high_watermark()),
                "size_bytes": log.as_ref().map(|l| l.stats.log_size_bytes()),
            })
        })
        .collect();
    let configs: Vec<Value> = state
        .topic_settings(&t.configs, &image)
        .into_iter()
        .map(|(name, (value, source))| {
            json!({ "name": name, "value": value, "source": format!("{source:?}") })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "name": t.name,
            "id": t.id.to_string(),
            "internal": t.name.starts_with("__"),
            "partitions": partitions,
            "configs": configs,
        }),
    )
}

/// `key=value` pairs of a query string (no percent-decoding: every value
/// taken is a number).
fn query_number(query: Option<&str>, key: &str) -> Result<Option<i64>, Response> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
    else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{key} must be a whole number, not '{value}'"),
        )
    })
}

/// Text when the bytes are UTF-8, base64 otherwise.
fn content(bytes: Option<&Bytes>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!({ "text": text }),
            Err(_) => json!({ "base64": base64(b) }),
        },
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn records(
    State(started): State<Arc<Started>>,
    Path((name, partition)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let Ok(index) = partition.parse::<i32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("partition must be a number, not '{partition}'"),
        );
    };
    let Some(log) = state.partitions.get(&name, index) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no partition {index} of a topic named '{name}' on this broker"),
        );
    };
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    let offset = match query_number(query.as_deref(), "offset") {
        Ok(offset) => offset.unwrap_or(start),
        Err(response) => return response,
    };
    let limit = match query_number(query.as_deref(), "limit") {
        Ok(None) => DEFAULT_RECORDS,
        Ok(Some(n)) if (1..=MAX_RECORDS as i64).contains(&n) => n as usize,
        Ok(Some(n)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be between 1 and {MAX_RECORDS}, not {n}"),
            )
        }
        Err(response) => return response,
    };
    if offset < start || offset > end {
        return error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("offset {offset} is outside the partition's range {start}..{end}"),
        );
    }
    let read = tokio::task::spawn_blocking(move || {
        let data = log.read(offset, MAX_READ_BYTES)?;
        sluice_protocol::compression::decode_batches(data)
            .map_err(|e| sluice_storage::StorageError::Corrupt(e.to_string()))
    })
    .await;
    let decoded = match read {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the partition failed: {e}"),
            )
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the read task failed"),
    };
    let listed: Vec<Value> = decoded
        .iter()
        .filter(|r| r.offset >= offset && !r.control)
        .take(limit)
        .map(|r| {
            let headers: Vec<Value> = r
                .headers
                .iter()
                .map(|(k, v)| json!({ "key": k.to_string(), "value": content(v.as_ref()) }))
                .collect();
            json!({
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": content(r.key.as_ref()),
                "value": content(r.value.as_ref()),
                "headers": headers,
            })
        })
        .collect();
    let next = decoded
        .iter()
        .filter(|r| r.offset >= offset)
        .nth(limit)
        .map_or_else(
            || decoded.last().map_or(offset, |r| r.offset + 1).max(offset),
            |r| r.offset,
        );
    json_response(
        StatusCode::OK,
        json!({
            "topic": name,
            "partition": index,
            "log_start_offset": start,
            "high_watermark": end,
            "records": listed,
            "next_offset": next.min(end),
        }),
    )
}

async fn groups(State(started): State<Arc<Started>>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let groups = state.groups.lock();
    let listed: Vec<Value> = groups
        .all_ids()
        .into_iter()
        .map(|id| {
            let (group_state, protocol, members) =
                match (groups.groups.get(&id), groups.consumer_groups.get(&id)) {
                    (Some(g), _) => (g.state.name(), "classic", g.members.len()),
                    (None, Some(g)) => (g.state().name(), "consumer", g.members.len()),
                    (None, None) => ("Empty", "classic", 0),
                };
            json!({ "group_id": id, "state": group_state, "protocol": protocol, "members": members })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(listed))
}

async fn group(State(started): State<Arc<Started>>, Path(id): Path<String>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let (known, committed) = {
        let groups = state.groups.lock();
        (groups.all_ids().contains(&id), groups.committed_offsets())
    };
    if !known {
        return error(StatusCode::NOT_FOUND, format!("no group '{id}'"));
    }
    let offsets: Vec<Value> = committed
        .into_iter()
        .filter(|(group, ..)| *group == id)
        .map(|(_, topic, partition, offset)| {
            let end = state
                .partitions
                .get(&topic, partition)
                .map(|p| p.high_watermark());
            json!({
                "topic": topic,
                "partition": partition,
                "committed_offset": offset,
                "high_watermark": end,
                "lag": end.map(|end| (end - offset).max(0)),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "group_id": id, "offsets": offsets }),
    )
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_as_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }
}
