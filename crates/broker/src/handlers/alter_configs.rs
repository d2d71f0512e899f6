//! AlterConfigs (key 33): the legacy, non-incremental form. The request
//! gives the complete set of dynamic settings of a resource: every given
//! setting is set, every override not given is removed (back to its
//! default), all validated as IncrementalAlterConfigs does.

use super::incremental_alter_configs::{alter, ConfigOp, DELETE, SET};
use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey, ResponseKind};
use sluice_protocol::error;
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AlterConfigs, 0, 2);

/// The operations that turn the `current` overrides into exactly the given set.
fn replace_all(
    resource: &AlterConfigsResource,
    current: &BTreeMap<String, String>,
) -> Vec<ConfigOp> {
    let given = |key: &str| resource.configs.iter().any(|c| c.name.as_str() == key);
    current
        .keys()
        .filter(|key| !given(key))
        .map(|key| (key.clone(), DELETE, None))
        .chain(resource.configs.iter().map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string());
            // A null value removes the override, as in Kafka.
            let operation = if value.is_some() { SET } else { DELETE };
            (c.name.to_string(), operation, value)
        }))
        .collect()
}

pub(crate) fn handle(state: &BrokerState, request: AlterConfigsRequest) -> ResponseKind {
    let mut response = AlterConfigsResponse::default();
    for resource in &request.resources {
        let mut result = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone())
            .with_error_code(error::NONE);
        if let Err(e) = alter(
            state,
            resource.resource_type,
            &resource.resource_name,
            &|current| replace_all(resource, current),
            request.validate_only,
        ) {
            result.error_code = e.code;
            result.error_message = Some(str_bytes(e.message));
        }
        response.responses.push(result);
    }
    ResponseKind::AlterConfigs(response)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{call, create_topic, test_state};
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use sluice_protocol::error;

    async fn alter_topic(
        state: &std::sync::Arc<crate::state::BrokerState>,
        configs: &[(&str, &str)],
    ) -> (i16, Option<String>) {
        let resource = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let body = RequestKind::AlterConfigs(
            AlterConfigsRequest::default().with_resources(vec![resource]),
        );
        let Some(ResponseKind::AlterConfigs(r)) = call(state, ApiKey::AlterConfigs, 1, body).await
        else {
            panic!("no AlterConfigs response")
        };
        (
            r.responses[0].error_code,
            r.responses[0].error_message.as_ref().map(|m| m.to_string()),
        )
    }

    #[tokio::test]
    async fn alter_configs_replaces_the_whole_set_and_validates() {
        let (_dir, state) = test_state();
        create_topic(&state, "t", 1).await;
        let configs =
            |state: &crate::state::BrokerState| state.image().topic("t").unwrap().configs.clone();
        assert_eq!(
            alter_topic(
                &state,
                &[("retention.ms", "1000"), ("segment.bytes", "1048576")]
            )
            .await
            .0,
            error::NONE
        );
        assert_eq!(configs(&state).len(), 2);
        // Not given: back to the default.
        assert_eq!(
            alter_topic(&state, &[("retention.ms", "2000")]).await.0,
            error::NONE
        );
        assert_eq!(
            configs(&state).into_iter().collect::<Vec<_>>(),
            [("retention.ms".to_string(), "2000".to_string())]
        );
        let (code, message) = alter_topic(&state, &[("retention.ms", "soon")]).await;
        assert_eq!(code, error::INVALID_CONFIG);
        assert!(
            message.unwrap().contains("retention.ms"),
            "the message names the key"
        );
        assert_eq!(
            alter_topic(&state, &[("no.such.setting", "1")]).await.0,
            error::INVALID_CONFIG
        );
        assert_eq!(
            configs(&state).len(),
            1,
            "a refused request changes nothing"
        );
    }
}
