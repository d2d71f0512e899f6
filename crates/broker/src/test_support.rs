//! Helpers for handler tests: a broker state on a temp dir, and a way to
//! run one request through the dispatcher.

use crate::config::BrokerConfig;
use crate::handlers::{dispatch, Reply};
use crate::server::open_state;
use crate::state::BrokerState;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use sluice_protocol::envelope::Request;
use std::sync::Arc;

pub(crate) fn test_state() -> (tempfile::TempDir, Arc<BrokerState>) {
    let dir = tempfile::tempdir().unwrap();
    let state = open_test_state(dir.path());
    (dir, state)
}

/// A broker state on `dir`: a new one, or a restart of an earlier one.
pub(crate) fn open_test_state(dir: &std::path::Path) -> Arc<BrokerState> {
    let config = BrokerConfig::from_settings([
        ("listeners", "127.0.0.1:0"),
        ("advertised.listeners", "127.0.0.1:9092"),
        // No timer task runs in handler tests: joins must not wait for it.
        ("group.initial.rebalance.delay.ms", "0"),
    ])
    .unwrap();
    Arc::new(open_state(config, dir.to_path_buf()).unwrap())
}

pub(crate) fn request(api_key: ApiKey, version: i16, body: RequestKind) -> Request {
    Request {
        api_key,
        header: RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7),
        body,
    }
}

/// Runs a request to completion; `None` for requests without a response.
pub(crate) async fn call(
    state: &Arc<BrokerState>,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Option<ResponseKind> {
    match dispatch(state, request(api_key, version, body), "/127.0.0.1").await {
        Reply::Now(body) => Some(*body),
        Reply::Later(future) => Some(future.await),
        Reply::Nothing => None,
    }
}

/// Creates a topic with `partitions` partitions.
pub(crate) async fn create_topic(state: &Arc<BrokerState>, name: &str, partitions: i32) {
    create_topic_with_configs(state, name, partitions, &[]).await;
}

/// Creates a topic with `partitions` partitions and topic setting overrides.
pub(crate) async fn create_topic_with_configs(
    state: &Arc<BrokerState>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use kafka_protocol::messages::{
        create_topics_request::{CreatableTopic, CreatableTopicConfig},
        CreateTopicsRequest, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs);
    let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic]));
    let Some(ResponseKind::CreateTopics(r)) = call(state, ApiKey::CreateTopics, 7, body).await
    else {
        panic!("no CreateTopics response")
    };
    assert_eq!(r.topics[0].error_code, 0, "creating {name}");
}
