//! CreatePartitions (key 37): grow a topic's partition count.

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind,
};
use sluice_protocol::error;
use std::collections::HashSet;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::CreatePartitions, 0, 3);

pub(crate) fn handle(state: &BrokerState, request: CreatePartitionsRequest) -> ResponseKind {
    let controller = Controller::new(state);
    let mut response = CreatePartitionsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    let mut answered_duplicates = HashSet::new();
    for topic in request.topics {
        // The crate defaults the nullable message to "", Kafka sends null.
        let mut result = CreatePartitionsTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_message(None);
        let name = topic.name.to_string();
        if duplicates.contains(&name) {
            // A duplicated topic is refused, once, as Kafka does.
            if answered_duplicates.insert(name) {
                result.error_code = error::INVALID_REQUEST;
                result.error_message = Some(str_bytes("Duplicate topic in request."));
                response.results.push(result);
            }
            continue;
        }
        let assignments: Vec<Vec<i32>> = topic
            .assignments
            .iter()
            .flatten()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        if let Err(e) = controller.create_partitions(
            &topic.name,
            topic.count,
            &assignments,
            request.validate_only,
        ) {
            result.error_code = e.code;
            result.error_message = Some(str_bytes(e.message));
        }
        response.results.push(result);
    }
    ResponseKind::CreatePartitions(response)
}
