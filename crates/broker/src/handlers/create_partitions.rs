//! CreatePartitions (key 37): grow a topic's partition count.

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind,
};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::CreatePartitions, 0, 3);

pub(crate) fn handle(state: &BrokerState, request: CreatePartitionsRequest) -> ResponseKind {
    let controller = Controller::new(state);
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let image = state.image();
        let fail = |result: &mut CreatePartitionsTopicResult, code, message: String| {
            result.error_code = code;
            result.error_message = Some(str_bytes(message));
        };
        match image.topic(&topic.name) {
            None => fail(
                &mut result,
                error::UNKNOWN_TOPIC_OR_PARTITION,
                format!("The topic '{}' does not exist.", topic.name.0),
            ),
            Some(t) => {
                let current = t.partitions.len() as i32;
                let assignments = topic.assignments.as_deref().unwrap_or_default();
                if topic.count < current {
                    fail(&mut result, error::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {}.", topic.count));
                } else if topic.count == current {
                    fail(
                        &mut result,
                        error::INVALID_PARTITIONS,
                        format!("Topic already has {current} partitions."),
                    );
                } else if !assignments.is_empty()
                    && assignments.len() as i32 != topic.count - current
                {
                    fail(&mut result, error::INVALID_REPLICA_ASSIGNMENT, format!("Increasing the number of partitions by {} but {} assignments provided.", topic.count - current, assignments.len()));
                } else if let Some(bad) = assignments
                    .iter()
                    .flat_map(|a| a.broker_ids.iter())
                    .find(|b| b.0 != state.node_id)
                {
                    fail(
                        &mut result,
                        error::INVALID_REPLICA_ASSIGNMENT,
                        format!("Unknown broker {} in replica assignment.", bad.0),
                    );
                } else if assignments.iter().any(|a| a.broker_ids.len() != 1) {
                    fail(
                        &mut result,
                        error::INVALID_REPLICA_ASSIGNMENT,
                        "Each new partition needs exactly one replica on a single broker.".into(),
                    );
                } else if !request.validate_only {
                    if let Err(e) = controller.create_partitions(t.id, topic.count) {
                        fail(&mut result, e.code, e.message);
                    }
                }
            }
        }
        response.results.push(result);
    }
    ResponseKind::CreatePartitions(response)
}
