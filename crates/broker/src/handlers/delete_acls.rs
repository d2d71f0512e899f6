//! DeleteAcls (key 31): every ACL each filter matches is removed and listed
//! in that filter's result. Without an authorizer: SECURITY_DISABLED, as in
//! Kafka; the caller needs Alter on the cluster (checked in `authorize`).

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::security::acl_filter::AclFilter;
use crate::state::BrokerState;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{ApiKey, DeleteAclsRequest, DeleteAclsResponse, ResponseKind};
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DeleteAcls, 1, 3);

pub(crate) fn handle(state: &BrokerState, request: DeleteAclsRequest) -> ResponseKind {
    let failed = |code, message: &str| {
        request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message.to_string())))
            })
            .collect()
    };
    let results = if !state.authorizer.enabled() {
        failed(error::SECURITY_DISABLED, "No Authorizer is configured.")
    } else {
        let filters = request
            .filters
            .iter()
            .map(|f| AclFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_ref().map(|n| n.to_string()),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref().map(|p| p.to_string()),
                host: f.host_filter.as_ref().map(|h| h.to_string()),
                operation: f.operation,
                permission: f.permission_type,
            })
            .collect();
        match Controller::new(state).delete_acls(filters) {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(acls) => DeleteAclsFilterResult::default().with_matching_acls(
                        acls.into_iter()
                            .map(|acl| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(acl.resource_type)
                                    .with_resource_name(str_bytes(acl.resource_name))
                                    .with_pattern_type(acl.pattern_type)
                                    .with_principal(str_bytes(acl.principal))
                                    .with_host(str_bytes(acl.host))
                                    .with_operation(acl.operation)
                                    .with_permission_type(acl.permission)
                            })
                            .collect(),
                    ),
                    Err(e) => DeleteAclsFilterResult::default()
                        .with_error_code(e.code)
                        .with_error_message(Some(str_bytes(e.message))),
                })
                .collect(),
            Err(e) => failed(e.code, &e.message),
        }
    };
    ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
}
