//! Every advertised version of every API must encode a response for
//! realistic requests (kafka-protocol refuses to encode a field the version
//! lacks), and the response must decode again as a client would read it.

use super::APIS;
use crate::test_support::{call, test_state};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::build_uncompressed_batch;
use sluice_protocol::envelope::{decode_response, encode_response};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn request_for(
    api: ApiKey,
    version: i16,
    topic_id: uuid::Uuid,
    partitions_now: i32,
) -> RequestKind {
    match api {
        ApiKey::ApiVersions => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(s("test"))
                .with_client_software_version(s("1.0")),
        ),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("t1"))),
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("bad name"))),
            ])))
        }
        ApiKey::Produce => {
            let batch =
                build_uncompressed_batch(crate::state::now_ms(), &[(Some(b"k"), Some(b"v"))]);
            RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(name("t1")).with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch)),
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"garbage that is no batch at all........................................."))),
                    produce_request::PartitionProduceData::default().with_index(99).with_records(Some(Bytes::new())),
                ]),
            ]))
        }
        ApiKey::Fetch => {
            let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(1 << 40)
                    .with_partition_max_bytes(1 << 20),
                fetch_request::FetchPartition::default()
                    .with_partition(99)
                    .with_partition_max_bytes(1 << 20),
            ]);
            if version >= 13 {
                topic.topic_id = topic_id;
            } else {
                topic.topic = name("t1");
            }
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(if version >= 7 { 0 } else { -1 })
                    .with_isolation_level(1)
                    .with_topics(vec![topic]),
            )
        }
        ApiKey::ListOffsets => {
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(
                        [-1i64, -2, -3, 0, i64::MAX]
                            .into_iter()
                            .map(|ts| {
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(0)
                                    .with_timestamp(ts)
                            })
                            .chain([list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(99)
                                .with_timestamp(-1)])
                            .collect(),
                    ),
            ]))
        }
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(name("t1"))
                    .with_partitions(
                        [(0, 0, 0), (0, -1, 5), (99, 0, 0)]
                            .into_iter()
                            .map(|(partition, current, epoch)| {
                                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                    .with_partition(partition)
                                    .with_current_leader_epoch(current)
                                    .with_leader_epoch(epoch)
                            })
                            .collect(),
                    )],
                ),
        ),
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name(&format!("ct-{version}")))
                    .with_num_partitions(2)
                    .with_replication_factor(1)
                    .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1000")))]),
                create_topics_request::CreatableTopic::default()
                    .with_name(name("bad name"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
                create_topics_request::CreatableTopic::default()
                    .with_name(name("rf3"))
                    .with_num_partitions(1)
                    .with_replication_factor(3),
            ]))
        }
        ApiKey::DeleteTopics => {
            let topic = format!("ct-{}", version + 1);
            if version >= 6 {
                RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                        delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(name(&topic))),
                        delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(name("nope"))),
                    ]))
            } else {
                RequestKind::DeleteTopics(
                    DeleteTopicsRequest::default()
                        .with_topic_names(vec![name(&topic), name("nope")]),
                )
            }
        }
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("t1"))
                    .with_count(partitions_now + 1),
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("t1"))
                    .with_count(1),
            ]))
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default()
                .with_include_synonyms(version >= 1)
                .with_include_documentation(version >= 3)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t1")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("nope")),
                ]),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t1"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("60000"))),
                    ]),
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t1"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("segment.bytes"))
                            .with_config_operation(0)
                            .with_value(Some(s("1"))),
                    ]),
            ]),
        ),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => {
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(name("__cluster_metadata"))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0),
                    ]),
            ]))
        }
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(
            ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(name("t1"))
                    .with_partitions(vec![0]),
            ])),
        ),
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsRequest::default().with_topics(vec![
                alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_replicas(Some(vec![BrokerId(1)])),
                    ]),
            ]),
        ),
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(
                        [(0, 0), (0, i64::MAX), (99, 0)]
                            .into_iter()
                            .map(|(partition, offset)| {
                                delete_records_request::DeleteRecordsPartition::default()
                                    .with_partition_index(partition)
                                    .with_offset(offset)
                            })
                            .collect(),
                    )]),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_coordinator_keys(if version >= 4 {
                    vec![s("g"), s("h")]
                } else {
                    vec![]
                }),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            // A group per version: a second member would wait for a rebalance.
            JoinGroupRequest::default()
                .with_group_id(GroupId(s(&format!("g-{version}"))))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(1)
                .with_member_id(s("nobody")),
        ),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s("nobody"))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s("nobody"))
        }),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&format!("oc-{version}"))))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(name("t1"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1)
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                ]),
        ),
        ApiKey::OffsetFetch => {
            if version >= 8 {
                RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("oc-2")))
                            .with_topics(None),
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("none")))
                            .with_topics(Some(vec![
                                offset_fetch_request::OffsetFetchRequestTopics::default()
                                    .with_name(name("t1"))
                                    .with_partition_indexes(vec![0]),
                            ])),
                    ]))
            } else {
                RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(s("oc-2")))
                        .with_topics(if version >= 2 {
                            None
                        } else {
                            Some(vec![
                                offset_fetch_request::OffsetFetchRequestTopic::default()
                                    .with_name(name("t1"))
                                    .with_partition_indexes(vec![0]),
                            ])
                        }),
                )
            }
        }
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![
                GroupId(s("g")),
                GroupId(s("oc-2")),
                GroupId(s("none")),
            ]))
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DeleteGroups => {
            RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(s(&format!("oc-{}", version + 3))),
                GroupId(s("none")),
            ]))
        }
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("oc-9")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name("t1"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        ),
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                // Odd versions register transactional id "tx", which the
                // transaction APIs below then describe.
                .with_transactional_id((version % 2 == 1).then(|| TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000),
        ),
        ApiKey::AddPartitionsToTxn => {
            let topics = vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(vec![0]),
            ];
            let mut request = AddPartitionsToTxnRequest::default();
            if version >= 4 {
                request.transactions = vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(TransactionalId(s("tx")))
                        .with_producer_id(ProducerId(1))
                        .with_verify_only(true)
                        .with_topics(topics),
                ];
            } else {
                request.v3_and_below_transactional_id = TransactionalId(s("tx"));
                request.v3_and_below_producer_id = ProducerId(1);
                request.v3_and_below_topics = topics;
            }
            RequestKind::AddPartitionsToTxn(request)
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g"))),
        ),
        ApiKey::EndTxn => RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_committed(true),
        ),
        ApiKey::WriteTxnMarkers => {
            RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(1))
                    .with_transaction_result(false)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(name("t1"))
                            .with_partition_indexes(vec![0]),
                    ]),
            ]))
        }
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(name("t1"))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1),
                        ]),
                ]),
        ),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("tx")), TransactionalId(s("none"))]),
        ),
        ApiKey::ListTransactions => RequestKind::ListTransactions(
            ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]),
        ),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(
            AlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t1"))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1000")))])]),
        ),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(
            // A group per version; v0 lets the broker pick the member id.
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(&format!("cg-{version}"))))
                .with_member_id(if version >= 1 { s("m-1") } else { s("") })
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![name("t1")]))
                .with_topic_partitions(Some(vec![])),
        ),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![
                GroupId(s("cg-1")),
                GroupId(s("g-1")),
                GroupId(s("none")),
            ]),
        ),
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(name("t1"))
                    .with_partition_indexes(vec![0, 99]),
            ]))
        }
        // On a connection without SASL both answer ILLEGAL_SASL_STATE;
        // the SASL exchange itself is tested in security::session.
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
        ),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=a,r=b")),
        ),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default().with_name(s("admin")),
                describe_user_scram_credentials_request::UserName::default().with_name(s("nobody")),
            ])),
        ),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![
                    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(s("admin"))
                        .with_mechanism(1)
                        .with_iterations(4096)
                        .with_salt(Bytes::from_static(b"salt"))
                        .with_salted_password(Bytes::from_static(&[7; 32])),
                ])
                .with_deletions(vec![
                    alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(s("nobody"))
                        .with_mechanism(2),
                ]),
        ),
        // Without an authorizer (as here) all three answer SECURITY_DISABLED.
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(
            vec![create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)],
        )),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(
            vec![delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)],
        )),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(
            DescribeClientQuotasRequest::default().with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(s("user"))
                    .with_match_type(2),
            ]),
        ),
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default().with_entries(vec![
                alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s("user"))
                        .with_entity_name(Some(s("alice")))])
                    .with_ops(vec![alter_client_quotas_request::OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_value(1024.0)]),
            ]))
        }
        other => panic!("no sample request for {other:?}"),
    }
}

#[tokio::test]
async fn every_advertised_version_encodes_and_decodes() {
    let (_dir, state) = test_state();
    let RequestKind::CreateTopics(mut create) =
        request_for(ApiKey::CreateTopics, 7, uuid::Uuid::nil(), 0)
    else {
        unreachable!()
    };
    create.topics[0].name = name("t1");
    call(
        &state,
        ApiKey::CreateTopics,
        7,
        RequestKind::CreateTopics(create),
    )
    .await;
    for api in APIS {
        // Versions below `min_implemented` close the connection by design.
        for version in api.min_implemented..=api.max {
            let image = state.image();
            let topic = image.topic("t1").expect("t1 exists");
            let body = request_for(api.key, version, topic.id, topic.partitions.len() as i32);
            let Some(response) = call(&state, api.key, version, body).await else {
                continue;
            };
            let bytes = encode_response(api.key, version, 7, &response)
                .unwrap_or_else(|e| panic!("{:?} v{version}: {e:#}", api.key));
            let (correlation, _) = decode_response(api.key, version, bytes.slice(4..))
                .unwrap_or_else(|e| panic!("{:?} v{version} does not decode: {e:#}", api.key));
            assert_eq!(correlation, 7);
        }
    }
}
