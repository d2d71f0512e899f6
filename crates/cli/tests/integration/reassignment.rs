//! Partition reassignment (AlterPartitionReassignments and
//! ListPartitionReassignments, KIP-455) on three `sluice serve` processes:
//! a partition moves off the broker holding it, its records copied by the
//! new replicas, the old copy deleted; a reassignment that cannot finish
//! (its new replica is down) is listed and cancelled; bad requests get
//! Kafka's error codes. Records are written and read with librdkafka.

use crate::cluster::{wait_until, Cluster};
use crate::common::{block_on, PATIENCE};
use crate::protocol::{call, connect};
use crate::replication::partition_state;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use sluice_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestKind,
    ResponseKind, TopicName,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOPIC: &str = "moving";
const RECORDS: usize = 200;

fn alter(
    bootstrap: &str,
    topic: &str,
    target: Option<&[i32]>,
) -> AlterPartitionReassignmentsResponse {
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(
                    target.map(|t| t.iter().copied().map(BrokerId).collect()),
                )]),
    ]);
    let mut s = connect(bootstrap);
    match call(
        &mut s,
        ApiKey::AlterPartitionReassignments,
        1,
        RequestKind::AlterPartitionReassignments(request),
    ) {
        ResponseKind::AlterPartitionReassignments(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The one partition's answer: its error code.
fn alter_code(bootstrap: &str, topic: &str, target: Option<&[i32]>) -> i16 {
    let r = alter(bootstrap, topic, target);
    assert_eq!(r.error_code, 0, "{r:?}");
    r.responses[0].partitions[0].error_code
}

/// (replicas, adding, removing) of the reassignments in progress.
fn listed(bootstrap: &str) -> Vec<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    let mut s = connect(bootstrap);
    let r: ListPartitionReassignmentsResponse = match call(
        &mut s,
        ApiKey::ListPartitionReassignments,
        0,
        RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
    ) {
        ResponseKind::ListPartitionReassignments(r) => r,
        other => panic!("{other:?}"),
    };
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect()
}

fn read_back(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reassignment-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while values.len() < RECORDS && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

#[test]
fn a_partition_moves_to_other_brokers_with_its_records_and_a_stuck_move_is_cancelled() {
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let bootstrap = (1..=3)
        .map(|id| cluster.bootstrap(id))
        .collect::<Vec<_>>()
        .join(",");
    wait_until("every node lists three brokers", &logs, || {
        (crate::cluster::metadata(&cluster.bootstrap(1), "none")
            .0
            .len()
            == 3)
            .then_some(())
    });

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = block_on(admin.create_topics(
        [&NewTopic::new(
            TOPIC,
            1,
            TopicReplication::Variable(&[&[1]]),
        )],
        &AdminOptions::new().operation_timeout(Some(PATIENCE)),
    ))
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(TOPIC.to_string())]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("record-{i}")).collect();
    let deliveries: Vec<_> = expected
        .iter()
        .map(|v| {
            producer
                .send_result(FutureRecord::<(), _>::to(TOPIC).partition(0).payload(v))
                .expect("enqueue")
        })
        .collect();
    for delivery in deliveries {
        block_on(delivery)
            .expect("not cancelled")
            .expect("acknowledged");
    }

    // Bad requests first: Kafka's codes, nothing changes.
    assert_eq!(
        alter_code(&cluster.bootstrap(2), TOPIC, None),
        85,
        "NO_REASSIGNMENT_IN_PROGRESS"
    );
    assert_eq!(alter_code(&cluster.bootstrap(2), TOPIC, Some(&[2, 2])), 39);
    assert_eq!(alter_code(&cluster.bootstrap(2), TOPIC, Some(&[9])), 39);
    assert_eq!(
        alter_code(&cluster.bootstrap(2), "no-such-topic", Some(&[2])),
        3
    );

    // Off broker 1, onto 2 and 3: they copy the records, then 1 lets go.
    let sluice = |bootstrap: &str, args: &[&str]| {
        let out = std::process::Command::new(crate::common::sluice_binary())
            .args(["--bootstrap-server", bootstrap, "topic", "reassign", TOPIC])
            .args(args)
            .output()
            .expect("run sluice");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = sluice(
        &cluster.bootstrap(3),
        &["--partition", "0", "--replicas", "2,3", "--wait", "30"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Reassignment of moving partitions 0 to brokers 2,3 complete."),
        "{out}"
    );
    let state = wait_until("the move completes", &logs, || {
        let state = partition_state(&cluster.bootstrap(1), TOPIC)?;
        (listed(&cluster.bootstrap(1)).is_empty() && state.1 == vec![2, 3]).then_some(state)
    });
    assert_eq!(state.2, vec![2, 3], "both new replicas in sync");
    assert!(
        state.0 == 2 || state.0 == 3,
        "led by a new replica: {state:?}"
    );
    assert_eq!(read_back(&cluster.bootstrap(2)), expected);
    let old_copy = cluster.data_dir(1).join(format!("{TOPIC}-0"));
    wait_until("broker 1 deletes its copy", &logs, || {
        (!old_copy.exists()).then_some(())
    });

    // A move onto a broker that is down stays in progress until cancelled.
    cluster.kill(1);
    // REQUEST_TIMED_OUT (retriable) while the quorum elects a new
    // controller, if broker 1 was it.
    let code = wait_until("the quorum takes the move", &logs, || {
        let r = alter(&cluster.bootstrap(2), TOPIC, Some(&[1, 2, 3]));
        (r.error_code != 7).then(|| r.responses[0].partitions[0].error_code)
    });
    assert_eq!(code, 0);
    let ongoing = listed(&cluster.bootstrap(2));
    assert_eq!(ongoing, vec![(vec![1, 2, 3], vec![1], vec![])]);
    let (ok, out) = sluice(&cluster.bootstrap(2), &["--verify"]);
    assert!(
        ok && out.contains("moving") && out.contains("1,2,3"),
        "{out}"
    );
    let (ok, out) = sluice(&cluster.bootstrap(3), &["--cancel"]);
    assert!(ok, "{out}");
    assert!(out.contains("back to their replicas cancelled"), "{out}");
    let (ok, out) = sluice(&cluster.bootstrap(3), &["--cancel"]);
    assert!(!ok && out.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{out}");
    assert!(listed(&cluster.bootstrap(2)).is_empty());
    let state = partition_state(&cluster.bootstrap(2), TOPIC).expect("metadata");
    assert_eq!((state.1, state.2), (vec![2, 3], vec![2, 3]));
    assert_eq!(read_back(&cluster.bootstrap(3)), expected);
}
