//! CreateAcls (key 30): new ACLs, stored as metadata records. Without an
//! authorizer every creation is SECURITY_DISABLED, as in Kafka; the caller
//! needs Alter on the cluster (checked in `authorize`).

use super::{str_bytes, ApiSupport};
use crate::controller::Controller;
use crate::state::BrokerState;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, CreateAclsResponse, ResponseKind};
use sluice_metadata::AclEntry;
use sluice_protocol::error;

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::CreateAcls, 1, 3);

pub(crate) fn handle(state: &BrokerState, request: CreateAclsRequest) -> ResponseKind {
    let failed = |code, message: String| {
        request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message.clone())))
            })
            .collect()
    };
    let results = if !state.authorizer.enabled() {
        failed(
            error::SECURITY_DISABLED,
            "No Authorizer is configured.".to_string(),
        )
    } else {
        let acls = request
            .creations
            .iter()
            .map(|c| AclEntry {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            })
            .collect();
        match Controller::new(state).create_acls(acls) {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(()) => AclCreationResult::default(),
                    Err(e) => AclCreationResult::default()
                        .with_error_code(e.code)
                        .with_error_message(Some(str_bytes(e.message))),
                })
                .collect(),
            Err(e) => failed(e.code, e.message),
        }
    };
    ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
}
