//! DescribeAcls (key 29): the ACLs a filter matches, grouped by resource
//! pattern. Without an authorizer: SECURITY_DISABLED, as in Kafka; the
//! caller needs Describe on the cluster (checked in `authorize`).

use super::{str_bytes, ApiSupport};
use crate::security::acl_filter::AclFilter;
use crate::state::BrokerState;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse, ResponseKind};
use sluice_protocol::error;
use std::collections::BTreeMap;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeAcls, 1, 3);

pub(crate) fn handle(state: &BrokerState, request: DescribeAclsRequest) -> ResponseKind {
    let mut response = DescribeAclsResponse::default();
    if !state.authorizer.enabled() {
        response.error_code = error::SECURITY_DISABLED;
        response.error_message = Some(str_bytes("No Authorizer is configured."));
        return ResponseKind::DescribeAcls(response);
    }
    let filter = AclFilter {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.map(|n| n.to_string()),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.map(|p| p.to_string()),
        host: request.host_filter.map(|h| h.to_string()),
        operation: request.operation,
        permission: request.permission_type,
    };
    if let Some(why) = filter.invalid() {
        response.error_code = error::INVALID_REQUEST;
        response.error_message = Some(str_bytes(why));
        return ResponseKind::DescribeAcls(response);
    }
    let image = state.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in image.acls().values().filter(|a| filter.matches(a)) {
        by_resource
            .entry((
                acl.resource_type,
                acl.resource_name.clone(),
                acl.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal.clone()))
                    .with_host(str_bytes(acl.host.clone()))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission),
            );
    }
    response.resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    ResponseKind::DescribeAcls(response)
}
