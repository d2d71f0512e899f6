//! CreateTopics (key 19): partitions, replication factor (1 on a single
//! node), replica assignments, per-topic configs and `validate_only`.

use super::{str_bytes, ApiSupport};
use crate::controller::{Controller, NewTopic};
use crate::state::BrokerState;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use sluice_protocol::error;
use std::collections::{BTreeMap, HashSet};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::CreateTopics, 2, 7);

pub(crate) fn handle(
    state: &BrokerState,
    request: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    let controller = Controller::new(state);
    let mut response = CreateTopicsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    let mut answered_duplicates = HashSet::new();
    for topic in request.topics {
        let name = topic.name.to_string();
        // The crate defaults nullable fields to "", Kafka sends null.
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_message(None)
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if duplicates.contains(&name) {
            // One answer per duplicated name, as Kafka gives.
            if !answered_duplicates.insert(name.clone()) {
                continue;
            }
            result.configs = None;
            result.error_code = error::INVALID_REQUEST;
            result.error_message = Some(str_bytes(format!(
                "Create topics request from client contains multiple requests for topic {name}"
            )));
            response.topics.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &topic.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let assignment: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let outcome = controller.create_topic(
            &NewTopic {
                name: &name,
                partitions: topic.num_partitions,
                replication_factor: topic.replication_factor,
                assignment: &assignment,
                configs: &configs,
            },
            request.validate_only,
        );
        match outcome {
            Ok((plan, id)) => {
                result.topic_id = id;
                result.num_partitions = plan.partitions;
                result.replication_factor = plan.replication_factor;
                if version >= 5 {
                    let settings = state.topic_settings(&configs, &state.image());
                    result.configs = Some(
                        settings
                            .into_iter()
                            .map(|(key, (value, source))| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(key))
                                    .with_value(Some(str_bytes(value)))
                                    .with_config_source(source as i8)
                            })
                            .collect(),
                    );
                }
                if !request.validate_only {
                    tracing::info!(topic = %name, partitions = plan.partitions, "created topic");
                }
            }
            Err(e) => {
                result.configs = None;
                result.error_code = e.code;
                result.error_message = Some(str_bytes(e.message));
            }
        }
        response.topics.push(result);
    }
    ResponseKind::CreateTopics(response)
}
