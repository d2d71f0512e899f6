//! CreatePartitions (key 37): grow a topic's partition count.

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind,
};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::CreatePartitions, 0, 3);

pub(crate) fn handle(state: &BrokerState, request: CreatePartitionsRequest) -> ResponseKind {
    let controller = Controller::new(state);
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
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
