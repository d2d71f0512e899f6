//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on
//! topic and dynamic broker settings, validated by Kafka's types and ranges,
//! persisted as metadata records and applied to live partitions.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes, ApiSupport};
use crate::config::{self, ConfigType};
use crate::controller::{validate_topic_configs, ApiError, Controller};
use crate::state::BrokerState;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};
use sluice_metadata::{MetadataImage, MetadataRecord};
use sluice_protocol::error;
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::IncrementalAlterConfigs, 0, 1);

pub(crate) const SET: i8 = 0;
pub(crate) const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One change to a setting: (name, operation, value).
pub(crate) type ConfigOp = (String, i8, Option<String>);

pub(crate) fn handle(state: &BrokerState, request: IncrementalAlterConfigsRequest) -> ResponseKind {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let mut result = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let ops: Vec<ConfigOp> = resource
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let mut names = std::collections::HashSet::new();
        let outcome = if ops.iter().any(|(name, _, _)| !names.insert(name.as_str())) {
            Err(ApiError::new(
                error::INVALID_REQUEST,
                "Error due to duplicate config keys",
            ))
        } else {
            alter(
                state,
                resource.resource_type,
                &resource.resource_name,
                &|_| ops.clone(),
                request.validate_only,
            )
        };
        if let Err(e) = outcome {
            result.error_code = e.code;
            result.error_message = Some(str_bytes(e.message));
        }
        response.responses.push(result);
    }
    ResponseKind::IncrementalAlterConfigs(response)
}

/// The operations to apply, given the resource's current overrides.
pub(crate) type OpsFor<'a> = &'a dyn Fn(&BTreeMap<String, String>) -> Vec<ConfigOp>;

/// Applies the operations to a topic's or the broker's settings: decided,
/// validated and (unless `validate_only`) persisted in one controller step,
/// against the current metadata.
pub(crate) fn alter(
    state: &BrokerState,
    resource_type: i8,
    resource_name: &str,
    ops: OpsFor,
    validate_only: bool,
) -> Result<(), ApiError> {
    Controller::new(state).commit_with(|image| {
        let record = match resource_type {
            RESOURCE_TOPIC => alter_topic(state, image, resource_name, ops)?,
            RESOURCE_BROKER => alter_broker(state, image, resource_name, ops)?,
            other => {
                return Err(ApiError::new(
                    error::INVALID_REQUEST,
                    format!("Unsupported resource type {other}"),
                ))
            }
        };
        Ok((record.filter(|_| !validate_only).into_iter().collect(), ()))
    })
}

/// Applies the operations to `current`, returning the full new map.
fn apply_ops(
    ops: &[ConfigOp],
    current: &BTreeMap<String, String>,
    effective: impl Fn(&str) -> Option<(ConfigType, String)>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut next = current.clone();
    for (key, operation, value) in ops {
        let key = key.clone();
        let (ty, value_now) = effective(&key).ok_or_else(|| {
            ApiError::new(error::INVALID_CONFIG, format!("Unknown config name: {key}"))
        })?;
        let value = value.clone();
        match *operation {
            SET => {
                let v = value.ok_or_else(|| {
                    ApiError::new(
                        error::INVALID_REQUEST,
                        format!("Null value not supported for SET of {key}"),
                    )
                })?;
                next.insert(key, v);
            }
            DELETE => {
                next.remove(&key);
            }
            APPEND | SUBTRACT if ty != ConfigType::List => {
                return Err(ApiError::new(
                    error::INVALID_CONFIG,
                    format!("Config value append/subtract is not allowed for config key: {key}"),
                ));
            }
            APPEND | SUBTRACT => {
                let base = next.get(&key).cloned().unwrap_or(value_now);
                let mut items: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if *operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                next.insert(key, items.join(","));
            }
            other => {
                return Err(ApiError::new(
                    error::INVALID_REQUEST,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(next)
}

fn diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut changes = BTreeMap::new();
    for (k, v) in after {
        if before.get(k) != Some(v) {
            changes.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            changes.insert(k.clone(), None);
        }
    }
    changes
}

/// The record changing a topic's overrides, `None` when nothing changes.
fn alter_topic(
    state: &BrokerState,
    image: &MetadataImage,
    name: &str,
    ops: OpsFor,
) -> Result<Option<MetadataRecord>, ApiError> {
    let topic = image.topic(name).ok_or_else(|| {
        ApiError::new(
            error::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic '{name}' does not exist."),
        )
    })?;
    let next = apply_ops(&ops(&topic.configs), &topic.configs, |key| {
        let def = config::topic_def(key)?;
        let value =
            config::resolve_topic(def, &topic.configs, &state.config, state.dynamic(image)).value;
        Some((def.ty, value.unwrap_or_default()))
    })?;
    validate_topic_configs(&next)?;
    let changes = diff(&topic.configs, &next);
    Ok(
        (!changes.is_empty()).then_some(MetadataRecord::TopicConfigChanged {
            topic_id: topic.id,
            changes,
        }),
    )
}

/// The record changing dynamic broker settings, `None` when nothing changes.
fn alter_broker(
    state: &BrokerState,
    image: &MetadataImage,
    name: &str,
    ops: OpsFor,
) -> Result<Option<MetadataRecord>, ApiError> {
    if !name.is_empty() && name != state.node_id.to_string() {
        return Err(ApiError::new(
            error::INVALID_REQUEST,
            format!("Unknown broker id {name}; this node is {}", state.node_id),
        ));
    }
    // "" is the cluster-wide default (`--entity-default`); the node's id
    // is its own override, which wins over the default.
    let node = (!name.is_empty()).then_some(state.node_id);
    let current = match node {
        None => &image.broker_configs,
        Some(id) => config::Dynamic::of(image, id).node,
    };
    let next = apply_ops(&ops(current), current, |key| {
        let def = config::broker_def(key)?;
        let value = config::resolve_broker(key, &state.config, state.dynamic(image)).value;
        Some((def.ty, value.unwrap_or_default()))
    })?;
    for (key, value) in &next {
        let def = config::broker_def(key).expect("apply_ops checked the name");
        if !def.dynamic && current.get(key) != Some(value) {
            return Err(ApiError::new(
                error::INVALID_REQUEST,
                format!("Cannot update these configs dynamically: {key}"),
            ));
        }
        config::validate(key, def.ty, def.check, value)
            .map_err(|m| ApiError::new(error::INVALID_CONFIG, m))?;
    }
    let changes = diff(current, &next);
    Ok((!changes.is_empty()).then_some(MetadataRecord::BrokerConfigChanged { changes, node }))
}
