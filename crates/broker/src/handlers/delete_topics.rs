//! DeleteTopics (key 20): by name, or by topic id from v6.

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use sluice_metadata::Uuid;
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DeleteTopics, 1, 6);

pub(crate) fn handle(
    state: &BrokerState,
    request: DeleteTopicsRequest,
    version: i16,
) -> ResponseKind {
    // Before v6 topics come as names only.
    let wanted: Vec<(Option<String>, Uuid)> = if version < 6 {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    };
    let controller = Controller::new(state);
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        match controller.delete_topic(name.as_deref(), id) {
            Ok((name, id)) => {
                tracing::info!(topic = %name, "deleted topic");
                result.name = Some(TopicName(str_bytes(name)));
                result.topic_id = id;
            }
            // Kafka answers an unknown topic with the code alone.
            Err(e)
                if matches!(
                    e.code,
                    error::UNKNOWN_TOPIC_OR_PARTITION | error::UNKNOWN_TOPIC_ID
                ) =>
            {
                result.error_code = e.code;
            }
            Err(e) => {
                result.error_code = e.code;
                result.error_message = Some(str_bytes(e.message));
            }
        }
        response.responses.push(result);
    }
    ResponseKind::DeleteTopics(response)
}
