//! Configs: DescribeConfigs of topics and of the broker (values, sources,
//! types, documentation, synonyms), AlterConfigs and IncrementalAlterConfigs,
//! and dynamic broker settings at the cluster-wide and per-broker levels.

use std::time::Duration;

use sluice_protocol::kafka_protocol::messages::{
    alter_configs_request,
    describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    AlterConfigsRequest, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, RequestKind, ResponseKind,
};

use super::topics::{creatable, create_topic, create_topic_with, node_id, s, with_config};
use super::{Obs, Side};

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

fn describe_configs(
    side: &mut Side,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResponse {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|n| s(n)).collect()),
            )])
        .with_include_synonyms(true)
        .with_include_documentation(true);
    match side.wire.send(RequestKind::DescribeConfigs(request)) {
        ResponseKind::DescribeConfigs(r) => r,
        other => panic!("{other:?}"),
    }
}

/// How much of each config to record: a topic's configs are compared whole;
/// a broker's values, sources and synonyms depend on how each broker was
/// installed and started, so only their kind is compared.
#[derive(Clone, Copy, PartialEq)]
enum Detail {
    Whole,
    Kind,
}

fn record_configs(obs: &mut Obs, prefix: &str, r: &DescribeConfigsResponse, detail: Detail) {
    for (i, result) in r.results.iter().enumerate() {
        obs.error(format!("{prefix}/{i}/error"), result.error_code);
        for c in &result.configs {
            let key = format!("{prefix}/{}", c.name);
            obs.put(format!("listed/{key}"), true);
            if detail == Detail::Kind {
                obs.put(
                    format!("{key}/kind"),
                    format!(
                        "read_only={} sensitive={} type={}",
                        c.read_only, c.is_sensitive, c.config_type
                    ),
                );
                continue;
            }
            obs.put(format!("{key}/value"), c.value.as_deref().unwrap_or("null"));
            obs.put(
                format!("{key}/attributes"),
                format!(
                    "read_only={} source={} sensitive={} type={} documented={}",
                    c.read_only,
                    c.config_source,
                    c.is_sensitive,
                    c.config_type,
                    c.documentation.as_ref().is_some_and(|d| !d.is_empty())
                ),
            );
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|s| format!("{}:{}", s.name, s.source))
                .collect();
            obs.put(format!("{key}/synonyms"), synonyms.join(","));
        }
    }
}

pub(crate) fn describe_topic_configs(side: &mut Side, obs: &mut Obs) {
    create_topic_with(
        side,
        with_config(creatable("diff-configs", 1, 1), "retention.ms", "12345"),
    );
    let r = describe_configs(side, TOPIC_RESOURCE, "diff-configs", None);
    record_configs(obs, "all", &r, Detail::Whole);
    let r = describe_configs(
        side,
        TOPIC_RESOURCE,
        "diff-configs",
        Some(&["retention.ms", "no.such.config"]),
    );
    record_configs(obs, "keys", &r, Detail::Whole);
    let r = describe_configs(side, TOPIC_RESOURCE, "diff-configs-missing", None);
    record_configs(obs, "missing", &r, Detail::Whole);
    let r = describe_configs(side, 99, "x", None);
    record_configs(obs, "bad_resource_type", &r, Detail::Whole);
}

pub(crate) fn describe_broker_configs(side: &mut Side, obs: &mut Obs) {
    let node = node_id(side).to_string();
    let r = describe_configs(side, BROKER_RESOURCE, &node, None);
    // Values differ by installation (paths, ports): compare attributes only.
    record_configs(obs, "all", &r, Detail::Kind);
    let r = describe_configs(side, BROKER_RESOURCE, "4242", None);
    record_configs(obs, "other_broker", &r, Detail::Kind);
    let r = describe_configs(side, BROKER_RESOURCE, "not-a-number", None);
    record_configs(obs, "bad_name", &r, Detail::Kind);
}

/// (name, operation, value) of one IncrementalAlterConfigs change.
type ConfigOp<'a> = (&'a str, i8, Option<&'a str>);

pub(crate) fn alter_configs(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-alter", 1);
    let incremental =
        |side: &mut Side, topic: &str, ops: &[(&str, i8, Option<&str>)], validate_only: bool| {
            let resource = AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(s(topic))
                .with_configs(
                    ops.iter()
                        .map(|(n, op, v)| {
                            AlterableConfig::default()
                                .with_name(s(n))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                );
            let request = IncrementalAlterConfigsRequest::default()
                .with_resources(vec![resource])
                .with_validate_only(validate_only);
            match side
                .wire
                .send(RequestKind::IncrementalAlterConfigs(request))
            {
                ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
                other => panic!("{other:?}"),
            }
        };
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;
    let cases: &[(&str, &str, &[ConfigOp], bool)] = &[
        (
            "set",
            "diff-alter",
            &[("retention.ms", SET, Some("5000"))],
            false,
        ),
        (
            "validate_only",
            "diff-alter",
            &[("retention.bytes", SET, Some("5000"))],
            true,
        ),
        (
            "unknown_name",
            "diff-alter",
            &[("no.such.config", SET, Some("1"))],
            false,
        ),
        (
            "bad_value",
            "diff-alter",
            &[("retention.ms", SET, Some("soon"))],
            false,
        ),
        (
            "append_list",
            "diff-alter",
            &[("cleanup.policy", APPEND, Some("compact"))],
            false,
        ),
        (
            "append_scalar",
            "diff-alter",
            &[("retention.ms", APPEND, Some("1"))],
            false,
        ),
        (
            "subtract_list",
            "diff-alter",
            &[("cleanup.policy", SUBTRACT, Some("compact"))],
            false,
        ),
        (
            "bad_operation",
            "diff-alter",
            &[("retention.ms", 9, Some("1"))],
            false,
        ),
        (
            "duplicate_key",
            "diff-alter",
            &[
                ("retention.ms", SET, Some("1")),
                ("retention.ms", SET, Some("2")),
            ],
            false,
        ),
        (
            "missing_topic",
            "diff-alter-missing",
            &[("retention.ms", SET, Some("1"))],
            false,
        ),
    ];
    for (case, topic, ops, validate_only) in cases {
        let code = incremental(side, topic, ops, *validate_only);
        obs.error(format!("incremental/{case}"), code);
    }
    let r = describe_configs(
        side,
        TOPIC_RESOURCE,
        "diff-alter",
        Some(&["retention.ms", "retention.bytes", "cleanup.policy"]),
    );
    record_configs(obs, "after_set", &r, Detail::Whole);
    let code = incremental(side, "diff-alter", &[("retention.ms", DELETE, None)], false);
    obs.error("incremental/delete", code);
    let r = describe_configs(side, TOPIC_RESOURCE, "diff-alter", Some(&["retention.ms"]));
    record_configs(obs, "after_delete", &r, Detail::Whole);

    // The legacy AlterConfigs replaces the whole set.
    let legacy = |side: &mut Side, topic: &str, configs: &[(&str, &str)]| {
        let resource = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(n, v)| {
                        alter_configs_request::AlterableConfig::default()
                            .with_name(s(n))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        match side.wire.send(RequestKind::AlterConfigs(
            AlterConfigsRequest::default().with_resources(vec![resource]),
        )) {
            ResponseKind::AlterConfigs(r) => r.responses[0].error_code,
            other => panic!("{other:?}"),
        }
    };
    obs.error(
        "legacy/set",
        legacy(side, "diff-alter", &[("segment.ms", "600000")]),
    );
    obs.error(
        "legacy/bad_value",
        legacy(side, "diff-alter", &[("segment.ms", "x")]),
    );
    obs.error(
        "legacy/missing_topic",
        legacy(side, "diff-alter-missing", &[("segment.ms", "600000")]),
    );
    let r = describe_configs(
        side,
        TOPIC_RESOURCE,
        "diff-alter",
        Some(&["segment.ms", "cleanup.policy"]),
    );
    record_configs(obs, "after_legacy", &r, Detail::Whole);
}

/// Dynamic broker settings at the two levels Kafka has: the cluster-wide
/// default (resource "", `--entity-default`) and one broker's own
/// (resource "<id>"), which wins. Run last: it changes broker defaults.
pub(crate) fn broker_dynamic_configs(side: &mut Side, obs: &mut Obs) {
    let node = node_id(side).to_string();
    let set = |side: &mut Side, resource: &str, op: i8, value: Option<&str>| {
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(BROKER_RESOURCE)
                .with_resource_name(s(resource))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("log.segment.bytes"))
                    .with_config_operation(op)
                    .with_value(value.map(s))]),
        ]);
        match side
            .wire
            .send(RequestKind::IncrementalAlterConfigs(request))
        {
            ResponseKind::IncrementalAlterConfigs(r) => r.responses[0].error_code,
            other => panic!("{other:?}"),
        }
    };
    let key = Some(&["log.segment.bytes"][..]);
    obs.error("set_default", set(side, "", 0, Some("536870912")));
    // Kafka applies dynamic broker configs a moment after the answer.
    std::thread::sleep(Duration::from_millis(500));
    let r = describe_configs(side, BROKER_RESOURCE, "", key);
    record_configs(obs, "default_resource", &r, Detail::Whole);
    let r = describe_configs(side, BROKER_RESOURCE, &node, key);
    record_configs(obs, "broker_after_default", &r, Detail::Whole);
    obs.error("set_broker", set(side, &node, 0, Some("268435456")));
    std::thread::sleep(Duration::from_millis(500));
    let r = describe_configs(side, BROKER_RESOURCE, &node, key);
    record_configs(obs, "broker_after_both", &r, Detail::Whole);
    obs.error("delete_broker", set(side, &node, 1, None));
    obs.error("delete_default", set(side, "", 1, None));
    std::thread::sleep(Duration::from_millis(500));
    let r = describe_configs(side, BROKER_RESOURCE, &node, key);
    record_configs(obs, "broker_after_delete", &r, Detail::Whole);
}

/// The ACL APIs on a broker without an authorizer (both sides run none):
/// every one answers SECURITY_DISABLED, per creation and per filter.
pub(crate) fn acls_without_an_authorizer(side: &mut Side, obs: &mut Obs) {
    use sluice_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
    use sluice_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use sluice_protocol::kafka_protocol::messages::{
        CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    };
    let describe = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    if let ResponseKind::DescribeAcls(r) = side.wire.send(RequestKind::DescribeAcls(describe)) {
        obs.error("describe/error", r.error_code);
        obs.put("describe/resources", r.resources.len());
    }
    let create = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(s("diff-acl"))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(3)
        .with_permission_type(3)]);
    if let ResponseKind::CreateAcls(r) = side.wire.send(RequestKind::CreateAcls(create)) {
        for (i, result) in r.results.iter().enumerate() {
            obs.error(format!("create/{i}/error"), result.error_code);
        }
    }
    let delete = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)]);
    if let ResponseKind::DeleteAcls(r) = side.wire.send(RequestKind::DeleteAcls(delete)) {
        for (i, result) in r.filter_results.iter().enumerate() {
            obs.error(format!("delete/{i}/error"), result.error_code);
            obs.put(format!("delete/{i}/matching"), result.matching_acls.len());
        }
    }
}
