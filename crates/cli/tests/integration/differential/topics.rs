//! Topic and cluster administration: ApiVersions, Metadata, CreateTopics,
//! DeleteTopics, CreatePartitions, DescribeCluster, DescribeLogDirs,
//! DescribeQuorum, ElectLeaders; and the helpers the other scenarios share.

use std::time::{Duration, Instant};

use sluice_protocol::kafka_protocol::messages::{
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_log_dirs_request::DescribableLogDirTopic,
    metadata_request::MetadataRequestTopic,
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeLogDirsRequest, MetadataRequest,
    MetadataResponse, RequestKind, ResponseKind, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use super::{error_name, Obs, Side};

pub(crate) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(s(name))
}

pub(crate) fn creatable(name: &str, partitions: i32, replication: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
}

pub(crate) fn with_config(topic: CreatableTopic, name: &str, value: &str) -> CreatableTopic {
    let mut topic = topic;
    topic.configs.push(
        CreatableTopicConfig::default()
            .with_name(s(name))
            .with_value(Some(s(value))),
    );
    topic
}

pub(crate) fn send_create_topics(
    side: &mut Side,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    match side.wire.send(RequestKind::CreateTopics(request)) {
        ResponseKind::CreateTopics(r) => r,
        other => panic!("{}: not a CreateTopics response: {other:?}", side.name),
    }
}

/// Creates `name` and waits until Metadata shows every partition with a
/// leader (Kafka's brokers learn of new topics a moment after the answer).
pub(crate) fn create_topic(side: &mut Side, name: &str, partitions: i32) {
    create_topic_with(side, creatable(name, partitions, 1));
}

pub(crate) fn create_topic_with(side: &mut Side, topic: CreatableTopic) {
    let name = topic.name.0.to_string();
    let partitions = topic.num_partitions;
    let r = send_create_topics(side, vec![topic], false);
    let code = r.topics[0].error_code;
    assert_eq!(
        code,
        0,
        "{}: create {name}: {}",
        side.name,
        error_name(code)
    );
    wait_for_partitions(side, &name, partitions);
    wait_for_leaders(side, &name, partitions);
}

/// Waits until every partition's leader answers ListOffsets: Kafka's
/// partitions take writes a moment after Metadata lists their leader.
fn wait_for_leaders(side: &mut Side, name: &str, partitions: i32) {
    use sluice_protocol::kafka_protocol::messages::list_offsets_request::{
        ListOffsetsPartition, ListOffsetsTopic,
    };
    use sluice_protocol::kafka_protocol::messages::ListOffsetsRequest;
    let count = if partitions < 0 { 1 } else { partitions };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    (0..count)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )]);
        let ready = match side.wire.send(RequestKind::ListOffsets(request)) {
            ResponseKind::ListOffsets(r) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .all(|p| p.error_code == 0),
            _ => false,
        };
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {name}'s leaders never answered",
            side.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn wait_for_partitions(side: &mut Side, name: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = fetch_metadata(side, Some(&[name]), false);
        let t = &m.topics[0];
        let ready = t.error_code == 0
            && t.partitions.len() == partitions as usize
            && t.partitions
                .iter()
                .all(|p| p.error_code == 0 && p.leader_id.0 >= 0);
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {name} never became ready: {t:?}",
            side.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn fetch_metadata(
    side: &mut Side,
    topics: Option<&[&str]>,
    auto_create: bool,
) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(auto_create);
    match side.wire.send(RequestKind::Metadata(request)) {
        ResponseKind::Metadata(r) => r,
        other => panic!("{}: not a Metadata response: {other:?}", side.name),
    }
}

/// The broker's node id, from Metadata.
pub(crate) fn node_id(side: &mut Side) -> i32 {
    fetch_metadata(side, Some(&[]), false).brokers[0].node_id.0
}

pub(crate) fn api_versions(side: &mut Side, obs: &mut Obs) {
    let r = side.wire.api_versions();
    obs.error("error", r.error_code);
    for k in &r.api_keys {
        let name = ApiKey::try_from(k.api_key)
            .map(|key| format!("{key:?}"))
            .unwrap_or_else(|_| k.api_key.to_string());
        obs.put(
            format!("api/{name}"),
            format!("{}..{}", k.min_version, k.max_version),
        );
    }
    for f in &r.supported_features {
        obs.put(
            format!("supported_feature/{}", f.name),
            format!("{}..{}", f.min_version, f.max_version),
        );
    }
    for f in &r.finalized_features {
        obs.put(
            format!("finalized_feature/{}", f.name),
            format!("{}..{}", f.min_version_level, f.max_version_level),
        );
    }
    obs.put(
        "finalized_features_epoch_set",
        r.finalized_features_epoch >= 0,
    );
    // An ApiVersions version the broker does not know: answered at v0 with
    // UNSUPPORTED_VERSION and the broker's own ranges (KIP-511).
    let r = side.connection().api_versions_at_unknown_version(127);
    obs.error("unknown_version/error", r.error_code);
    obs.put(
        "unknown_version/lists_api_versions",
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16),
    );
}

pub(crate) fn metadata(side: &mut Side, obs: &mut Obs) {
    let name = "diff-metadata";
    create_topic(side, name, 3);
    let own_id = node_id(side);
    let m = fetch_metadata(
        side,
        Some(&[name, "diff-metadata-missing", "bad name!"]),
        false,
    );
    obs.put("brokers", m.brokers.len());
    obs.put(
        "cluster_id_set",
        m.cluster_id.as_ref().is_some_and(|c| !c.is_empty()),
    );
    obs.put("controller_is_the_broker", m.controller_id.0 == own_id);
    obs.put(
        "cluster_authorized_operations",
        m.cluster_authorized_operations,
    );
    for t in &m.topics {
        let key = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        obs.error(format!("{key}/error"), t.error_code);
        obs.put(format!("{key}/is_internal"), t.is_internal);
        obs.put(format!("{key}/topic_id_set"), !t.topic_id.is_nil());
        obs.put(format!("{key}/partitions"), t.partitions.len());
        obs.put(
            format!("{key}/topic_authorized_operations"),
            t.topic_authorized_operations,
        );
        for p in &t.partitions {
            let pk = format!("{key}/{}", p.partition_index);
            obs.error(format!("{pk}/error"), p.error_code);
            obs.put(
                format!("{pk}/leader_is_the_broker"),
                p.leader_id.0 == own_id,
            );
            obs.put(format!("{pk}/leader_epoch"), p.leader_epoch);
            obs.put(format!("{pk}/replicas"), p.replica_nodes.len());
            obs.put(format!("{pk}/isr"), p.isr_nodes.len());
            obs.put(format!("{pk}/offline"), p.offline_replicas.len());
        }
    }
    // KIP-430 authorized operations asked for: without an authorizer,
    // every operation of each topic (v8+) and of the cluster (v8-10 only).
    let request = MetadataRequest::default()
        .with_topics(Some(
            [name, "diff-metadata-missing", "bad name!"]
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_include_topic_authorized_operations(true);
    for version in [10, 12] {
        // The cluster's flag is not in v11+.
        let request = request
            .clone()
            .with_include_cluster_authorized_operations(version <= 10);
        let ResponseKind::Metadata(r) = side.wire.send_at(version, RequestKind::Metadata(request))
        else {
            panic!("not a Metadata response")
        };
        obs.put(
            format!("operations_v{version}/cluster"),
            r.cluster_authorized_operations,
        );
        for t in &r.topics {
            let key = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            obs.put(
                format!("operations_v{version}/{key}"),
                t.topic_authorized_operations,
            );
        }
    }
    // All topics: the one just created is listed.
    let all = fetch_metadata(side, None, false);
    obs.put(
        "all/lists_created",
        all.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name)),
    );
    // A topic id that does not exist (v10+ lookups by id).
    let mut by_id = MetadataRequest::default();
    by_id.topics = Some(vec![
        MetadataRequestTopic::default().with_topic_id(uuid_of(7))
    ]);
    if let ResponseKind::Metadata(r) = side.wire.send(RequestKind::Metadata(by_id)) {
        obs.error(
            "unknown_id/error",
            r.topics.first().map_or(0, |t| t.error_code),
        );
    }
}

pub(crate) fn uuid_of(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0051_11c3 << 64 | n)
}

fn record_create(obs: &mut Obs, case: &str, r: &CreateTopicsResponse) {
    for (i, t) in r.topics.iter().enumerate() {
        let key = format!("{case}/{i}");
        obs.error(format!("{key}/error"), t.error_code);
        if t.error_code == 0 {
            obs.put(
                format!("{key}/message_on_success"),
                t.error_message.is_some(),
            );
            obs.put(format!("{key}/num_partitions"), t.num_partitions);
            obs.put(format!("{key}/replication_factor"), t.replication_factor);
            obs.error(
                format!("{key}/topic_config_error"),
                t.topic_config_error_code,
            );
            for c in t.configs.iter().flatten() {
                obs.put(
                    format!("{key}/config/{}", c.name),
                    format!(
                        "value={} read_only={} source={} sensitive={}",
                        c.value.as_deref().unwrap_or("null"),
                        c.read_only,
                        c.config_source,
                        c.is_sensitive
                    ),
                );
            }
        }
    }
}

pub(crate) fn create_topics(side: &mut Side, obs: &mut Obs) {
    let node = node_id(side);
    let ok = send_create_topics(side, vec![creatable("diff-create", 2, 1)], false);
    record_create(obs, "ok", &ok);
    wait_for_partitions(side, "diff-create", 2);
    let again = send_create_topics(side, vec![creatable("diff-create", 2, 1)], false);
    record_create(obs, "exists", &again);
    let dup = send_create_topics(
        side,
        vec![creatable("diff-dup", 1, 1), creatable("diff-dup", 1, 1)],
        false,
    );
    record_create(obs, "duplicate_in_request", &dup);
    let long = "a".repeat(250);
    for (case, name) in [
        ("name_empty", ""),
        ("name_dot", "."),
        ("name_dotdot", ".."),
        ("name_slash", "a/b"),
        ("name_space", "bad name"),
        ("name_too_long", long.as_str()),
    ] {
        let r = send_create_topics(side, vec![creatable(name, 1, 1)], false);
        record_create(obs, case, &r);
    }
    create_topic(side, "diff.collide", 1);
    let r = send_create_topics(side, vec![creatable("diff_collide", 1, 1)], false);
    record_create(obs, "name_collision", &r);
    for (case, partitions, replication) in [
        ("partitions_zero", 0, 1),
        ("partitions_minus_two", -2, 1),
        ("replication_zero", 1, 0),
        ("replication_three", 1, 3),
        ("defaults", -1, -1),
    ] {
        let name = format!("diff-{case}");
        let r = send_create_topics(side, vec![creatable(&name, partitions, replication)], false);
        record_create(obs, case, &r);
    }
    for (case, config, value) in [
        ("config_unknown", "no.such.config", "1"),
        ("config_bad_policy", "cleanup.policy", "bogus"),
        ("config_not_a_number", "retention.ms", "abc"),
        ("config_min_isr_zero", "min.insync.replicas", "0"),
        ("config_bad_compression", "compression.type", "brotli"),
        ("config_ok", "retention.ms", "12345"),
    ] {
        let name = format!("diff-{}", case.replace('_', "-"));
        let r = send_create_topics(
            side,
            vec![with_config(creatable(&name, 1, 1), config, value)],
            false,
        );
        record_create(obs, case, &r);
    }
    let mut null_value = creatable("diff-config-null", 1, 1);
    null_value
        .configs
        .push(CreatableTopicConfig::default().with_name(s("retention.ms")));
    let r = send_create_topics(side, vec![null_value], false);
    record_create(obs, "config_null_value", &r);
    let r = send_create_topics(side, vec![creatable("diff-validate", 4, 1)], true);
    record_create(obs, "validate_only", &r);
    let m = fetch_metadata(side, Some(&["diff-validate"]), false);
    obs.error("validate_only/afterwards", m.topics[0].error_code);
    let assign = |broker: i32| {
        let mut t = creatable("diff-assigned", -1, -1);
        t.assignments.push(
            CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(broker)]),
        );
        t
    };
    let r = send_create_topics(side, vec![assign(node + 100)], false);
    record_create(obs, "assignment_unknown_broker", &r);
    let r = send_create_topics(side, vec![assign(node)], false);
    record_create(obs, "assignment_ok", &r);
    let mut both = assign(node);
    both.name = topic_name("diff-assigned-and-counted");
    both.num_partitions = 1;
    let r = send_create_topics(side, vec![both], false);
    record_create(obs, "assignment_and_count", &r);
}

pub(crate) fn delete_topics(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-delete", 1);
    let delete = |side: &mut Side, states: Vec<DeleteTopicState>| {
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        request.topic_names = states.iter().filter_map(|t| t.name.clone()).collect();
        request.topics = states;
        match side.wire.send(RequestKind::DeleteTopics(request)) {
            ResponseKind::DeleteTopics(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let by_name = |n: &str| DeleteTopicState::default().with_name(Some(topic_name(n)));
    for (case, states) in [
        ("existing", vec![by_name("diff-delete")]),
        ("missing", vec![by_name("diff-delete-missing")]),
        ("again", vec![by_name("diff-delete")]),
    ] {
        let r = delete(side, states);
        for (i, t) in r.responses.iter().enumerate() {
            obs.error(format!("{case}/{i}/error"), t.error_code);
        }
    }
    let r = delete(
        side,
        vec![DeleteTopicState::default()
            .with_name(None)
            .with_topic_id(uuid_of(9))],
    );
    for (i, t) in r.responses.iter().enumerate() {
        obs.error(format!("unknown_id/{i}/error"), t.error_code);
    }
    let m = fetch_metadata(side, Some(&["diff-delete"]), false);
    obs.error("afterwards/metadata", m.topics[0].error_code);
}

pub(crate) fn create_partitions(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-grow", 1);
    let grow = |side: &mut Side, topics: Vec<(&str, i32)>, validate_only: bool| {
        let request = CreatePartitionsRequest::default()
            .with_topics(
                topics
                    .into_iter()
                    .map(|(n, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(n))
                            .with_count(count)
                            .with_assignments(None)
                    })
                    .collect(),
            )
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        match side.wire.send(RequestKind::CreatePartitions(request)) {
            ResponseKind::CreatePartitions(r) => r,
            other => panic!("{other:?}"),
        }
    };
    for (case, topics, validate_only) in [
        ("validate_only", vec![("diff-grow", 5)], true),
        ("grow", vec![("diff-grow", 3)], false),
        ("same", vec![("diff-grow", 3)], false),
        ("shrink", vec![("diff-grow", 2)], false),
        ("missing", vec![("diff-grow-missing", 2)], false),
        ("duplicate", vec![("diff-grow", 6), ("diff-grow", 6)], false),
    ] {
        let r = grow(side, topics, validate_only);
        for (i, t) in r.results.iter().enumerate() {
            obs.error(format!("{case}/{i}/error"), t.error_code);
            if t.error_code == 0 {
                obs.put(
                    format!("{case}/{i}/message_on_success"),
                    t.error_message.is_some(),
                );
            }
        }
    }
    // Kafka's brokers learn of new partitions a moment after the answer.
    let mut partitions = 0;
    for _ in 0..100 {
        partitions = fetch_metadata(side, Some(&["diff-grow"]), false).topics[0]
            .partitions
            .len();
        if partitions == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    obs.put("afterwards/partitions", partitions);
}

pub(crate) fn describe_cluster(side: &mut Side, obs: &mut Obs) {
    let own_id = node_id(side);
    let r = match side.wire.send(RequestKind::DescribeCluster(
        DescribeClusterRequest::default(),
    )) {
        ResponseKind::DescribeCluster(r) => r,
        other => panic!("{other:?}"),
    };
    obs.error("error", r.error_code);
    obs.put("endpoint_type", r.endpoint_type);
    obs.put("brokers", r.brokers.len());
    obs.put("controller_is_the_broker", r.controller_id.0 == own_id);
    obs.put("cluster_id_set", !r.cluster_id.is_empty());
    obs.put(
        "cluster_authorized_operations",
        r.cluster_authorized_operations,
    );
    for b in &r.brokers {
        obs.put("broker/is_fenced", b.is_fenced);
        obs.put("broker/has_rack", b.rack.is_some());
    }
    let request =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    if let ResponseKind::DescribeCluster(r) = side.wire.send(RequestKind::DescribeCluster(request))
    {
        obs.put(
            "cluster_authorized_operations/included",
            r.cluster_authorized_operations,
        );
    }
    // Asking for controllers (endpoint type 2) from a broker listener.
    if side.wire.version_of(ApiKey::DescribeCluster).unwrap_or(0) >= 1 {
        let request = DescribeClusterRequest::default().with_endpoint_type(2);
        if let ResponseKind::DescribeCluster(r) =
            side.wire.send(RequestKind::DescribeCluster(request))
        {
            obs.error("controllers_endpoint/error", r.error_code);
        }
    }
}

pub(crate) fn describe_log_dirs(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-logdirs", 2);
    let describe =
        |side: &mut Side, topics: Option<Vec<DescribableLogDirTopic>>| match side.wire.send(
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(topics)),
        ) {
            ResponseKind::DescribeLogDirs(r) => r,
            other => panic!("{other:?}"),
        };
    let one = DescribableLogDirTopic::default()
        .with_topic(topic_name("diff-logdirs"))
        .with_partitions(vec![0, 1, 7]);
    let missing = DescribableLogDirTopic::default()
        .with_topic(topic_name("diff-logdirs-missing"))
        .with_partitions(vec![0]);
    // Kafka's log manager shows a new topic's logs a moment after Metadata.
    let mut r = describe(side, Some(vec![one.clone(), missing.clone()]));
    for _ in 0..100 {
        if r.results
            .iter()
            .any(|d| d.topics.iter().any(|t| t.partitions.len() == 2))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        r = describe(side, Some(vec![one.clone(), missing.clone()]));
    }
    obs.error("error", r.error_code);
    obs.put("dirs", r.results.len());
    for d in &r.results {
        obs.error("dir/error", d.error_code);
        obs.put("dir/sizes_known", d.total_bytes > 0 && d.usable_bytes > 0);
        for t in &d.topics {
            let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            parts.sort();
            obs.put(format!("dir/{}/partitions", t.name.0), format!("{parts:?}"));
            for p in &t.partitions {
                obs.put(
                    format!("dir/{}/{}/offset_lag", t.name.0, p.partition_index),
                    p.offset_lag,
                );
                obs.put(
                    format!("dir/{}/{}/is_future", t.name.0, p.partition_index),
                    p.is_future_key,
                );
            }
        }
    }
    let all = describe(side, None);
    let listed = all
        .results
        .iter()
        .flat_map(|d| d.topics.iter())
        .any(|t| t.name.0.as_str() == "diff-logdirs");
    obs.put("all/lists_topic", listed);
}

pub(crate) fn describe_quorum(side: &mut Side, obs: &mut Obs) {
    use sluice_protocol::kafka_protocol::messages::describe_quorum_request::{
        PartitionData, TopicData,
    };
    use sluice_protocol::kafka_protocol::messages::DescribeQuorumRequest;
    let own_id = node_id(side);
    for (case, topic) in [
        ("metadata", "__cluster_metadata"),
        ("other_topic", "diff-quorum"),
    ] {
        let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(topic))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let r = match side.wire.send(RequestKind::DescribeQuorum(request)) {
            ResponseKind::DescribeQuorum(r) => r,
            other => panic!("{other:?}"),
        };
        obs.error(format!("{case}/error"), r.error_code);
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            obs.error(format!("{case}/partition_error"), p.error_code);
            if p.error_code != 0 {
                continue;
            }
            obs.put(
                format!("{case}/leader_is_the_broker"),
                p.leader_id.0 == own_id,
            );
            obs.put(format!("{case}/leader_epoch_set"), p.leader_epoch > 0);
            obs.put(format!("{case}/high_watermark_set"), p.high_watermark > 0);
            obs.put(format!("{case}/voters"), p.current_voters.len());
            obs.put(format!("{case}/observers"), p.observers.len());
            for v in &p.current_voters {
                obs.put(
                    format!("{case}/voter_is_the_broker"),
                    v.replica_id.0 == own_id,
                );
                obs.put(
                    format!("{case}/voter_caught_up"),
                    v.log_end_offset == p.high_watermark,
                );
            }
        }
        obs.put(format!("{case}/nodes"), r.nodes.len());
    }
}

/// ElectLeaders on one broker: preferred and unclean elections of
/// partitions that need none, unknown topics and partitions, all
/// partitions (only those that needed an election are answered).
pub(crate) fn elect_leaders(side: &mut Side, obs: &mut Obs) {
    use sluice_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use sluice_protocol::kafka_protocol::messages::ElectLeadersRequest;
    create_topic(side, "diff-elect", 2);
    let asked = |topic: &str, partitions: Vec<i32>| {
        TopicPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)
    };
    for (case, election_type, partitions) in [
        (
            "preferred",
            0i8,
            Some(vec![
                asked("diff-elect", vec![0, 1, 9]),
                asked("diff-elect-missing", vec![0]),
            ]),
        ),
        ("unclean", 1, Some(vec![asked("diff-elect", vec![0])])),
        ("all_preferred", 0, None),
        ("all_unclean", 1, None),
    ] {
        let request = ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_topic_partitions(partitions)
            .with_timeout_ms(10_000);
        let r = match side.wire.send(RequestKind::ElectLeaders(request)) {
            ResponseKind::ElectLeaders(r) => r,
            other => panic!("{other:?}"),
        };
        obs.error(format!("{case}/error"), r.error_code);
        obs.put(format!("{case}/topics"), r.replica_election_results.len());
        for t in &r.replica_election_results {
            for p in &t.partition_result {
                obs.error(
                    format!("{case}/{}-{}", t.topic.as_str(), p.partition_id),
                    p.error_code,
                );
            }
        }
    }
}

/// AlterPartitionReassignments and ListPartitionReassignments on one
/// broker: a no-op move, bad target lists, cancelling what is not in
/// progress, unknown partitions and topics; then what is listed.
pub(crate) fn reassignments(side: &mut Side, obs: &mut Obs) {
    use sluice_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use sluice_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use sluice_protocol::kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    };
    create_topic(side, "diff-reassign", 2);
    let node = node_id(side);
    let move_to = |index: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic_name("diff-reassign"))
                .with_partitions(vec![
                    move_to(0, Some(vec![node])),
                    move_to(1, None),
                    move_to(9, Some(vec![node])),
                ]),
            ReassignableTopic::default()
                .with_name(topic_name("diff-reassign"))
                .with_partitions(vec![
                    move_to(0, Some(vec![node, node])),
                    move_to(0, Some(vec![4242])),
                    move_to(0, Some(vec![])),
                ]),
            ReassignableTopic::default()
                .with_name(topic_name("diff-reassign-missing"))
                .with_partitions(vec![move_to(0, Some(vec![node]))]),
        ]);
    let r = match side
        .wire
        .send(RequestKind::AlterPartitionReassignments(request))
    {
        ResponseKind::AlterPartitionReassignments(r) => r,
        other => panic!("{other:?}"),
    };
    obs.error("alter/error", r.error_code);
    for (i, t) in r.responses.iter().enumerate() {
        for (j, p) in t.partitions.iter().enumerate() {
            obs.error(
                format!("alter/{i}/{j}/{}-{}", t.name.as_str(), p.partition_index),
                p.error_code,
            );
        }
    }
    for (case, topics) in [
        ("list_all", None),
        (
            "list_named",
            Some(vec![ListPartitionReassignmentsTopics::default()
                .with_name(topic_name("diff-reassign"))
                .with_partition_indexes(vec![0, 1, 9])]),
        ),
    ] {
        let request = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(topics);
        let r = match side
            .wire
            .send(RequestKind::ListPartitionReassignments(request))
        {
            ResponseKind::ListPartitionReassignments(r) => r,
            other => panic!("{other:?}"),
        };
        obs.error(format!("{case}/error"), r.error_code);
        obs.put(format!("{case}/topics"), r.topics.len());
    }
}
