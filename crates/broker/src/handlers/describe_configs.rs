//! DescribeConfigs (key 32): every topic or broker setting with its value,
//! source, synonyms, type and documentation, defaults included.

use super::{str_bytes, ApiSupport};
use crate::config::{self, ConfigSource, ConfigType};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind,
};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeConfigs, 1, 4);

pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

struct Entry {
    name: &'static str,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<(String, String, ConfigSource)>,
    ty: ConfigType,
    doc: &'static str,
}

pub(crate) fn handle(
    state: &BrokerState,
    request: DescribeConfigsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => topic_entries(state, &resource.resource_name),
            RESOURCE_BROKER => broker_entries(state, &resource.resource_name),
            other => Err((
                error::INVALID_REQUEST,
                format!("Unsupported resource type {other}"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys = resource.configuration_keys.as_ref();
                result.configs = entries
                    .into_iter()
                    .filter(|e| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == e.name)))
                    .map(|e| {
                        to_result(
                            e,
                            request.include_synonyms,
                            request.include_documentation,
                            version,
                        )
                    })
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(str_bytes(message));
            }
        }
        response.results.push(result);
    }
    ResponseKind::DescribeConfigs(response)
}

fn to_result(
    e: Entry,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    // Kafka never returns a secret: its value is null, marked sensitive.
    let sensitive = e.ty == ConfigType::Password;
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(e.name))
        .with_value(e.value.filter(|_| !sensitive).map(str_bytes))
        .with_is_sensitive(sensitive)
        .with_read_only(e.read_only)
        .with_config_source(e.source as i8)
        .with_config_type(e.ty as i8);
    if synonyms {
        r.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value((!sensitive).then(|| str_bytes(value)))
                    .with_source(source as i8)
            })
            .collect();
    }
    if documentation && version >= 3 {
        r.documentation = Some(str_bytes(e.doc));
    }
    r
}

fn topic_entries(state: &BrokerState, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    let image = state.image();
    let topic = image.topic(name).ok_or_else(|| {
        (
            error::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic '{name}' does not exist."),
        )
    })?;
    Ok(config::TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let resolved =
                config::resolve_topic(def, &topic.configs, &state.config, state.dynamic(&image));
            Entry {
                name: def.name,
                value: resolved.value,
                source: resolved.source,
                read_only: false,
                synonyms: config::described_topic_synonyms(
                    def,
                    &topic.configs,
                    &state.config,
                    state.dynamic(&image),
                ),
                ty: def.ty,
                doc: def.doc,
            }
        })
        .collect())
}

fn broker_entries(state: &BrokerState, name: &str) -> Result<Vec<Entry>, (i16, String)> {
    if name != state.node_id.to_string() && !name.is_empty() {
        return Err((
            error::INVALID_REQUEST,
            format!("Unknown broker id {name}; this node is {}", state.node_id),
        ));
    }
    let image = state.image();
    let dynamic = state.dynamic(&image);
    // The resource "" is the cluster-wide default: Kafka lists only the
    // dynamic defaults set there.
    let defaults_only = name.is_empty();
    Ok(config::BROKER_CONFIGS
        .iter()
        .filter(|def| !defaults_only || image.broker_configs.contains_key(def.name))
        .map(|def| {
            let resolved = if defaults_only {
                config::Resolved {
                    value: image.broker_configs.get(def.name).cloned(),
                    source: ConfigSource::DynamicDefaultBroker,
                }
            } else {
                config::resolve_broker(def.name, &state.config, dynamic)
            };
            let mut synonyms: Vec<(String, String, ConfigSource)> = dynamic
                .all(def.name)
                .into_iter()
                .filter(|(_, source)| {
                    !defaults_only || *source == ConfigSource::DynamicDefaultBroker
                })
                .map(|(v, source)| (def.name.to_string(), v.clone(), source))
                .collect();
            if let Some(v) = state.config.explicit(def.name).filter(|_| !defaults_only) {
                synonyms.push((
                    def.name.to_string(),
                    v.to_string(),
                    ConfigSource::StaticBroker,
                ));
            }
            if let Some(v) = def.default.filter(|_| !defaults_only) {
                synonyms.push((def.name.to_string(), v.to_string(), ConfigSource::Default));
            }
            Entry {
                name: def.name,
                value: resolved.value,
                source: resolved.source,
                read_only: !def.dynamic,
                synonyms,
                ty: def.ty,
                doc: def.doc,
            }
        })
        .collect())
}
