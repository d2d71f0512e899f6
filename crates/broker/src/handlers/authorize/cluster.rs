//! Cluster APIs (Kafka's KafkaApis): DescribeQuorum, DescribeLogDirs,
//! DescribeUserScramCredentials, DescribeAcls and ListPartitionReassignments
//! need Describe on the cluster; ElectLeaders, AlterPartitionReassignments,
//! AlterUserScramCredentials, CreateAcls and DeleteAcls Alter; WriteTxnMarkers ClusterAction; DescribeClientQuotas
//! DescribeConfigs and AlterClientQuotas AlterConfigs on the cluster. Configs need
//! DescribeConfigs or AlterConfigs on their topic, or on the cluster for a
//! broker. Refusals answer CLUSTER_AUTHORIZATION_FAILED (topics
//! TOPIC_AUTHORIZATION_FAILED).

use super::{patch_if, refuse, take_refused, Access, Checked, Patch};
use crate::security::authorizer::Operation;
use kafka_protocol::messages::{
    alter_client_quotas_response, alter_configs_response, alter_user_scram_credentials_response,
    create_acls_response, delete_acls_response, describe_configs_response,
    incremental_alter_configs_response, write_txn_markers_response,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeConfigsRequest, DescribeLogDirsRequest, DescribeLogDirsResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, ElectLeadersRequest, ElectLeadersResponse,
    IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, ResponseKind, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error::{CLUSTER_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED};

const DENIED: i16 = CLUSTER_AUTHORIZATION_FAILED;
/// ConfigResource types.
const TOPIC_RESOURCE: i8 = 2;

/// May the caller `operation` the configs of this resource?
fn configs_allowed(access: &Access, operation: Operation, resource_type: i8, name: &str) -> bool {
    if resource_type == TOPIC_RESOURCE {
        access.topic(operation, name)
    } else {
        access.cluster(operation)
    }
}

fn config_denied(resource_type: i8) -> i16 {
    if resource_type == TOPIC_RESOURCE {
        TOPIC_AUTHORIZATION_FAILED
    } else {
        DENIED
    }
}

pub(super) fn describe_configs(
    access: &Access,
    request: &mut DescribeConfigsRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.resources, |r| {
        configs_allowed(
            access,
            Operation::DescribeConfigs,
            r.resource_type,
            &r.resource_name,
        )
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DescribeConfigs(r) = response {
            for res in refused {
                r.results.push(
                    describe_configs_response::DescribeConfigsResult::default()
                        .with_error_code(config_denied(res.resource_type))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name),
                );
            }
        }
    })
}

pub(super) fn alter_configs(access: &Access, request: &mut AlterConfigsRequest) -> Option<Patch> {
    let refused = take_refused(&mut request.resources, |r| {
        configs_allowed(
            access,
            Operation::AlterConfigs,
            r.resource_type,
            &r.resource_name,
        )
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::AlterConfigs(r) = response {
            for res in refused {
                r.responses.push(
                    alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_error_code(config_denied(res.resource_type))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name),
                );
            }
        }
    })
}

pub(super) fn incremental_alter_configs(
    access: &Access,
    request: &mut IncrementalAlterConfigsRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.resources, |r| {
        configs_allowed(
            access,
            Operation::AlterConfigs,
            r.resource_type,
            &r.resource_name,
        )
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::IncrementalAlterConfigs(r) = response {
            for res in refused {
                r.responses.push(
                    incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                        .with_error_code(config_denied(res.resource_type))
                        .with_resource_type(res.resource_type)
                        .with_resource_name(res.resource_name),
                );
            }
        }
    })
}

/// Refuses the whole request unless the caller may `operation` the cluster.
fn cluster_or(
    access: &Access,
    operation: Operation,
    refused: impl FnOnce() -> ResponseKind,
) -> Checked {
    if access.cluster(operation) {
        Ok(None)
    } else {
        refuse(refused())
    }
}

pub(super) fn describe_quorum(access: &Access, _: &mut DescribeQuorumRequest) -> Checked {
    cluster_or(access, Operation::Describe, || {
        ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(DENIED))
    })
}

pub(super) fn describe_log_dirs(access: &Access, _: &mut DescribeLogDirsRequest) -> Checked {
    cluster_or(access, Operation::Describe, || {
        ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(DENIED))
    })
}

pub(super) fn elect_leaders(access: &Access, _: &mut ElectLeadersRequest) -> Checked {
    cluster_or(access, Operation::Alter, || {
        ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(DENIED))
    })
}

pub(super) fn alter_reassignments(
    access: &Access,
    _: &mut AlterPartitionReassignmentsRequest,
) -> Checked {
    cluster_or(access, Operation::Alter, || {
        ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(DENIED),
        )
    })
}

pub(super) fn list_reassignments(
    access: &Access,
    _: &mut ListPartitionReassignmentsRequest,
) -> Checked {
    cluster_or(access, Operation::Describe, || {
        ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(DENIED),
        )
    })
}

pub(super) fn describe_scram(
    access: &Access,
    _: &mut DescribeUserScramCredentialsRequest,
) -> Checked {
    cluster_or(access, Operation::Describe, || {
        ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_error_code(DENIED),
        )
    })
}

pub(super) fn alter_scram(
    access: &Access,
    request: &mut AlterUserScramCredentialsRequest,
) -> Checked {
    cluster_or(access, Operation::Alter, || {
        let mut users: Vec<StrBytes> = request
            .deletions
            .iter()
            .map(|d| d.name.clone())
            .chain(request.upsertions.iter().map(|u| u.name.clone()))
            .collect();
        users.dedup();
        ResponseKind::AlterUserScramCredentials(AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|user| {
                    alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                        .with_user(user)
                        .with_error_code(DENIED)
                })
                .collect(),
        ))
    })
}

pub(super) fn describe_acls(access: &Access, _: &mut DescribeAclsRequest) -> Checked {
    cluster_or(access, Operation::Describe, || {
        ResponseKind::DescribeAcls(DescribeAclsResponse::default().with_error_code(DENIED))
    })
}

pub(super) fn create_acls(access: &Access, request: &mut CreateAclsRequest) -> Checked {
    cluster_or(access, Operation::Alter, || {
        ResponseKind::CreateAcls(
            CreateAclsResponse::default().with_results(
                request
                    .creations
                    .iter()
                    .map(|_| {
                        create_acls_response::AclCreationResult::default().with_error_code(DENIED)
                    })
                    .collect(),
            ),
        )
    })
}

pub(super) fn delete_acls(access: &Access, request: &mut DeleteAclsRequest) -> Checked {
    cluster_or(access, Operation::Alter, || {
        ResponseKind::DeleteAcls(
            DeleteAclsResponse::default().with_filter_results(
                request
                    .filters
                    .iter()
                    .map(|_| {
                        delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(DENIED)
                    })
                    .collect(),
            ),
        )
    })
}

pub(super) fn describe_client_quotas(
    access: &Access,
    _: &mut DescribeClientQuotasRequest,
) -> Checked {
    cluster_or(access, Operation::DescribeConfigs, || {
        ResponseKind::DescribeClientQuotas(
            DescribeClientQuotasResponse::default()
                .with_error_code(DENIED)
                .with_entries(None),
        )
    })
}

pub(super) fn alter_client_quotas(
    access: &Access,
    request: &mut AlterClientQuotasRequest,
) -> Checked {
    cluster_or(access, Operation::AlterConfigs, || {
        ResponseKind::AlterClientQuotas(
            AlterClientQuotasResponse::default().with_entries(
                request
                    .entries
                    .iter()
                    .map(|e| {
                        alter_client_quotas_response::EntryData::default()
                            .with_error_code(DENIED)
                            .with_entity(
                                e.entity
                                    .iter()
                                    .map(|c| {
                                        alter_client_quotas_response::EntityData::default()
                                            .with_entity_type(c.entity_type.clone())
                                            .with_entity_name(c.entity_name.clone())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    })
}

pub(super) fn write_txn_markers(access: &Access, request: &mut WriteTxnMarkersRequest) -> Checked {
    cluster_or(access, Operation::ClusterAction, || {
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(
            request
                .markers
                .iter()
                .map(|m| {
                    write_txn_markers_response::WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(
                            m.topics
                                .iter()
                                .map(|t| {
                                    write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                        .with_name(t.name.clone())
                                        .with_partitions(
                                            t.partition_indexes
                                                .iter()
                                                .map(|p| {
                                                    write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                                        .with_partition_index(*p)
                                                        .with_error_code(DENIED)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect(),
        ))
    })
}
