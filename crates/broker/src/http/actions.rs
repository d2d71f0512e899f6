//! The console's changes: create and delete topics, reset a group's
//! offsets (with a dry run). Each is carried out as the Kafka request a
//! client would send (CreateTopics, DeleteTopics, OffsetCommit), through
//! the same handlers, so it is validated and refused exactly as Kafka's
//! admin tools would be; the Kafka error is named in the JSON answer.
//!
//! Changes need `Content-Type: application/json` (POST) or the DELETE
//! method: a browser sends neither across origins without a CORS
//! preflight, which this server never answers, so another web page cannot
//! make a user's browser change the broker.

use super::api::{error, json_response, serving};
use super::Started;
use crate::handlers::{self, Reply};
use crate::state::BrokerState;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post};
use axum::Router;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use sluice_protocol::envelope::Request;
use sluice_protocol::error::{self as kafka_error, ErrorCode};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Request bodies are small JSON objects.
const MAX_BODY: usize = 64 * 1024;

pub(super) fn routes() -> Router<Arc<Started>> {
    Router::new()
        .route("/api/v1/topics", post(create_topic))
        .route("/api/v1/topics/{topic}", delete(delete_topic))
        .route("/api/v1/groups/{group}/offsets/reset", post(reset_offsets))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// The JSON body of a POST, or the 4xx that says why not.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Runs a Kafka request through the broker's own handlers.
async fn kafka(
    state: &Arc<BrokerState>,
    key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Option<ResponseKind> {
    let request = Request {
        api_key: key,
        header: RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_client_id(Some(s("sluice-console"))),
        body,
    };
    match handlers::dispatch(state, request, "console").await {
        Reply::Now(body) => Some(*body),
        Reply::Later(future) => Some(future.await),
        Reply::Nothing => None,
    }
}

/// The HTTP status for a Kafka error a change was refused with.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        kafka_error::TOPIC_ALREADY_EXISTS => StatusCode::CONFLICT,
        kafka_error::UNKNOWN_TOPIC_OR_PARTITION | kafka_error::UNKNOWN_TOPIC_ID => {
            StatusCode::NOT_FOUND
        }
        kafka_error::UNKNOWN_MEMBER_ID
        | kafka_error::ILLEGAL_GENERATION
        | kafka_error::REBALANCE_IN_PROGRESS
        | kafka_error::NON_EMPTY_GROUP => StatusCode::CONFLICT,
        kafka_error::KAFKA_STORAGE_ERROR | kafka_error::UNKNOWN_SERVER_ERROR => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        kafka_error::NOT_COORDINATOR
        | kafka_error::COORDINATOR_NOT_AVAILABLE
        | kafka_error::NOT_CONTROLLER
        | kafka_error::REQUEST_TIMED_OUT => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn refused(code: ErrorCode, message: Option<&str>) -> Response {
    json_response(
        status_of(code),
        json!({
            "error": message.filter(|m| !m.is_empty()).unwrap_or(kafka_error::name(code)),
            "kafka_error": kafka_error::name(code),
        }),
    )
}

async fn create_topic(
    State(started): State<Arc<Started>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "name (a string) is required");
    };
    let partitions = match body.get("partitions") {
        None | Some(Value::Null) => -1,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "partitions must be a whole number"),
        },
    };
    let configs: BTreeMap<String, String> = match body.get("configs") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => {
            let mut configs = BTreeMap::new();
            for (k, v) in map {
                let Some(v) = v.as_str() else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("config {k} must be a string"),
                    );
                };
                configs.insert(k.clone(), v.to_string());
            }
            configs
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "configs must be an object of strings",
            )
        }
    };
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![topic]);
    let Some(ResponseKind::CreateTopics(r)) = kafka(
        &state,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(request),
    )
    .await
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CreateTopics gave no answer",
        );
    };
    let Some(result) = r.topics.first() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CreateTopics answered no topic",
        );
    };
    if result.error_code != kafka_error::NONE {
        return refused(result.error_code, result.error_message.as_deref());
    }
    json_response(
        StatusCode::CREATED,
        json!({ "name": name, "id": result.topic_id.to_string(), "partitions": result.num_partitions }),
    )
}

async fn delete_topic(State(started): State<Arc<Started>>, Path(name): Path<String>) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(s(&name))))
        ]);
    let Some(ResponseKind::DeleteTopics(r)) = kafka(
        &state,
        ApiKey::DeleteTopics,
        6,
        RequestKind::DeleteTopics(request),
    )
    .await
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DeleteTopics gave no answer",
        );
    };
    match r.responses.first() {
        Some(t) if t.error_code == kafka_error::NONE => {
            json_response(StatusCode::OK, json!({ "deleted": name }))
        }
        Some(t) => refused(t.error_code, t.error_message.as_deref()),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DeleteTopics answered no topic",
        ),
    }
}

/// POST `{"topic": T, "to": "earliest"|"latest"|"offset", "offset": N,
/// "dry_run": bool}`: every partition of T, or the one in `"partition"`.
async fn reset_offsets(
    State(started): State<Arc<Started>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = match serving(&started) {
        Ok(state) => state,
        Err(response) => return response,
    };
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(topic) = body.get("topic").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "topic (a string) is required");
    };
    let dry_run = body
        .get("dry_run")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let to = body.get("to").and_then(Value::as_str).unwrap_or("");
    let explicit = body.get("offset").and_then(Value::as_i64);
    if !matches!(to, "earliest" | "latest" | "offset") {
        return error(
            StatusCode::BAD_REQUEST,
            "to must be earliest, latest or offset",
        );
    }
    if to == "offset" && explicit.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "to=offset needs offset (a whole number)",
        );
    }
    let Some(count) = state
        .image()
        .topic(topic)
        .map(|t| t.partitions.len() as i32)
    else {
        return error(StatusCode::NOT_FOUND, format!("no topic named '{topic}'"));
    };
    let only = body.get("partition").and_then(Value::as_i64);
    let committed: BTreeMap<i32, i64> = state
        .groups
        .lock()
        .committed_offsets()
        .into_iter()
        .filter(|(g, t, ..)| *g == group && t == topic)
        .map(|(_, _, p, o)| (p, o))
        .collect();
    let mut plan = Vec::new();
    for index in (0..count).filter(|i| only.is_none_or(|p| p == i64::from(*i))) {
        let Some(partition) = state.partitions.get(topic, index) else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("partition {index} of '{topic}' is offline"),
            );
        };
        let (start, end) = (partition.log_start_offset(), partition.high_watermark());
        let target = match to {
            "earliest" => start,
            "latest" => end,
            _ => explicit.unwrap_or(start),
        };
        if !(start..=end).contains(&target) {
            return error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("offset {target} is outside partition {index}'s range {start}..{end}"),
            );
        }
        plan.push((index, committed.get(&index).copied(), target));
    }
    if plan.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("'{topic}' has no such partition"),
        );
    }
    let planned: Vec<Value> = plan
        .iter()
        .map(|(p, current, target)| json!({ "partition": p, "current": current, "target": target }))
        .collect();
    if dry_run {
        return json_response(
            StatusCode::OK,
            json!({ "dry_run": true, "offsets": planned }),
        );
    }
    // As kafka-consumer-groups --reset-offsets: a commit outside any
    // generation, which the coordinator refuses while members are active.
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    plan.iter()
                        .map(|(p, _, target)| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*target)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                ),
        ]);
    let Some(ResponseKind::OffsetCommit(r)) = kafka(
        &state,
        ApiKey::OffsetCommit,
        8,
        RequestKind::OffsetCommit(request),
    )
    .await
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "OffsetCommit gave no answer",
        );
    };
    let failed = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|&c| c != kafka_error::NONE);
    match failed {
        Some(kafka_error::UNKNOWN_MEMBER_ID) => json_response(
            StatusCode::CONFLICT,
            json!({
                "error": format!("group '{group}' has active members; stop its consumers before resetting its offsets"),
                "kafka_error": "UNKNOWN_MEMBER_ID",
            }),
        ),
        Some(code) => refused(code, None),
        None => json_response(
            StatusCode::OK,
            json!({ "dry_run": false, "offsets": planned }),
        ),
    }
}
