//! The metadata log under damage, loss and torn writes, topic creation that
//! runs out of file descriptors, and more partitions than descriptors,
//! against `sluice serve` processes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use crate::common::{block_on, free_port, log_dump, serve_refusal, sluice, BrokerProcess};
use crate::rdkafka_client::{consumer, producer};

type CreateResult = Result<String, (String, RDKafkaErrorCode)>;

fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Vec<CreateResult> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    block_on(admin.create_topics(&new, &options)).expect("CreateTopics")
}

fn create_ok(bootstrap: &str, topics: &[(&str, i32)]) {
    for result in create_topics(bootstrap, topics) {
        result.expect("topic created");
    }
}

/// Produces `n` records (acks=all) round-robin over the partitions.
fn produce(bootstrap: &str, topic: &str, partitions: i32, n: i32) {
    let producer = producer(bootstrap, &[("acks", "all")]);
    block_on(async {
        for i in 0..n {
            let payload = format!("record {i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(&payload)
                        .partition(i % partitions),
                    Duration::from_secs(30),
                )
                .await
                .expect("record acknowledged");
        }
    });
}

/// The partition count of `topic`, or `None` when the broker does not know it.
fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let metadata = consumer(bootstrap)
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("Metadata");
    let t = &metadata.topics()[0];
    t.error().is_none().then(|| t.partitions().len())
}

/// Records in `topic` (sum of its high watermarks).
fn record_count(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let consumer = consumer(bootstrap);
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .expect("watermarks")
                .1
        })
        .sum()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn metadata_log(data: &Path) -> PathBuf {
    data.join("__cluster_metadata-0").join("metadata.log")
}

/// A stopped broker's data dir holding topics orders (2 partitions, 10
/// records) and audit (1 partition, 3 records).
fn stopped_broker_with_topics(data: &Path, log: &Path) {
    let broker = BrokerProcess::spawn(free_port(), data, log, &[]);
    create_ok(&broker.bootstrap(), &[("orders", 2), ("audit", 1)]);
    produce(&broker.bootstrap(), "orders", 2, 10);
    produce(&broker.bootstrap(), "audit", 1, 3);
    broker.terminate();
}

fn assert_topics_intact(data: &Path, log: &Path) {
    let broker = BrokerProcess::spawn(free_port(), data, log, &[]);
    let bootstrap = broker.bootstrap();
    assert_eq!(partition_count(&bootstrap, "orders"), Some(2));
    assert_eq!(partition_count(&bootstrap, "audit"), Some(1));
    assert_eq!(record_count(&bootstrap, "orders", 2), 10);
    assert_eq!(record_count(&bootstrap, "audit", 1), 3);
    broker.terminate();
}

#[test]
fn an_early_damaged_metadata_record_refuses_to_start_keeps_the_data_and_is_repaired() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    stopped_broker_with_topics(&data_dir, &log);
    let partitions_before = entries(&data_dir);
    let metadata = metadata_log(&data_dir);
    let mut bytes = std::fs::read(&metadata).unwrap();
    // Inside the first record (the cluster id).
    for byte in &mut bytes[20..24] {
        *byte ^= 0xa5;
    }
    std::fs::write(&metadata, &bytes).unwrap();

    let (started, said) = serve_refusal(&data_dir);
    assert!(!started, "{said}");
    assert!(said.contains(&metadata.display().to_string()), "{said}");
    assert!(said.contains("byte offset 0"), "{said}");
    let (started, said) = serve_refusal(&data_dir);
    assert!(!started, "refuses every time: {said}");
    assert_eq!(
        entries(&data_dir),
        partitions_before,
        "nothing moved or deleted"
    );
    assert_eq!(
        std::fs::read(&metadata).unwrap(),
        bytes,
        "the log is untouched"
    );

    let (clean, dump) = log_dump(&metadata);
    assert!(!clean, "a damaged metadata log fails the dump: {dump}");
    assert!(dump.contains("byte position 0"), "{dump}");
    assert!(
        dump.contains(r#""name":"orders""#),
        "every later record is shown: {dump}"
    );
    assert!(dump.contains(r#""name":"audit""#), "{dump}");

    // The snapshot written at the clean stop covers the damage.
    let (repaired, said) = sluice(&[
        OsStr::new("metadata"),
        OsStr::new("repair"),
        data_dir.as_os_str(),
    ]);
    assert!(repaired, "{said}");
    assert!(
        said.contains("Rebuilt the metadata log from the snapshot"),
        "{said}"
    );
    assert_topics_intact(&data_dir, &log);
}

#[test]
fn a_missing_metadata_log_refuses_to_start_and_is_restored_from_the_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    stopped_broker_with_topics(&data_dir, &log);
    let partitions_before = entries(&data_dir);
    std::fs::remove_file(metadata_log(&data_dir)).unwrap();

    let (started, said) = serve_refusal(&data_dir);
    assert!(!started, "{said}");
    assert!(said.contains("missing"), "{said}");
    assert!(said.contains("metadata.log"), "{said}");
    assert_eq!(entries(&data_dir), partitions_before);

    let (repaired, said) = sluice(&[
        OsStr::new("metadata"),
        OsStr::new("repair"),
        data_dir.as_os_str(),
    ]);
    assert!(repaired, "{said}");
    assert_topics_intact(&data_dir, &log);
}

#[test]
fn a_torn_final_metadata_record_is_truncated_and_its_topic_moved_aside() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    let broker = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    create_ok(&broker.bootstrap(), &[("orders", 2), ("audit", 1)]);
    produce(&broker.bootstrap(), "orders", 2, 10);
    produce(&broker.bootstrap(), "audit", 1, 3);
    create_ok(&broker.bootstrap(), &[("last", 1)]);
    broker.kill();
    let metadata = metadata_log(&data_dir);
    let len = std::fs::metadata(&metadata).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&metadata)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let broker = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    let bootstrap = broker.bootstrap();
    assert_eq!(record_count(&bootstrap, "orders", 2), 10);
    assert_eq!(record_count(&bootstrap, "audit", 1), 3);
    assert_eq!(
        partition_count(&bootstrap, "last"),
        None,
        "its record was torn"
    );
    broker.terminate();
    let names = entries(&data_dir);
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("last-0.") && n.ends_with("-orphaned")),
        "the directory of the forgotten topic is moved aside, not deleted: {names:?}"
    );
    assert!(!names.contains(&"last-0".to_string()), "{names:?}");
}

#[test]
fn a_topic_that_runs_out_of_descriptors_is_not_created_at_all() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    let port = free_port();
    let broker = BrokerProcess::spawn_with_fd_limit(port, &data_dir, &log, 64);
    let bootstrap = broker.bootstrap();
    create_ok(&bootstrap, &[("kept", 1)]);
    produce(&bootstrap, "kept", 1, 5);

    let results = create_topics(&bootstrap, &[("huge", 200)]);
    assert!(
        matches!(
            &results[..],
            [Err((_, RDKafkaErrorCode::KafkaStorageError))]
        ),
        "{results:?}"
    );
    assert_eq!(
        partition_count(&bootstrap, "huge"),
        None,
        "no half-created topic"
    );
    let strays: Vec<String> = entries(&data_dir)
        .into_iter()
        .filter(|n| n.starts_with("huge"))
        .collect();
    assert!(strays.is_empty(), "no stray directories: {strays:?}");

    produce(&bootstrap, "kept", 1, 5);
    assert_eq!(record_count(&bootstrap, "kept", 1), 10);
    broker.terminate();

    let broker = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    assert_eq!(record_count(&broker.bootstrap(), "kept", 1), 10);
    assert_eq!(partition_count(&broker.bootstrap(), "huge"), None);
    broker.terminate();
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the broker's descriptors")
        .count()
}

/// Segment files are opened on use and the least recently used are closed
/// beyond `log.max.open.segment.files`, so a topic with more partitions
/// than the descriptor limit allows is created, written, read and reopened,
/// and the broker's descriptors stay bounded.
#[test]
fn more_partitions_than_descriptors_work_with_a_bounded_file_cache() {
    const PARTITIONS: i32 = 400;
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    let settings = ["log.max.open.segment.files=40"];
    let spawn =
        || BrokerProcess::spawn_with_ulimit("-n 256", free_port(), &data_dir, &log, &settings);
    let broker = spawn();
    let bootstrap = broker.bootstrap();
    create_ok(&bootstrap, &[("wide", PARTITIONS)]);
    produce(&bootstrap, "wide", PARTITIONS, 2 * PARTITIONS);
    assert_eq!(
        record_count(&bootstrap, "wide", PARTITIONS),
        2 * i64::from(PARTITIONS)
    );
    let held = open_descriptors(broker.pid());
    assert!(held < 200, "descriptors stay bounded: {held}");
    broker.terminate();

    let broker = spawn();
    let bootstrap = broker.bootstrap();
    assert_eq!(
        partition_count(&bootstrap, "wide"),
        Some(PARTITIONS as usize)
    );
    produce(&bootstrap, "wide", PARTITIONS, PARTITIONS);
    assert_eq!(
        record_count(&bootstrap, "wide", PARTITIONS),
        3 * i64::from(PARTITIONS)
    );
    let held = open_descriptors(broker.pid());
    assert!(
        held < 200,
        "descriptors stay bounded after a restart: {held}"
    );
    broker.terminate();
}

#[test]
fn a_repair_under_a_running_broker_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("broker.log");
    let data_dir = data.path().join("data");
    let broker = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    create_ok(&broker.bootstrap(), &[("kept", 1)]);
    let before = std::fs::read(metadata_log(&data_dir)).unwrap();
    let (repaired, said) = sluice(&[
        OsStr::new("metadata"),
        OsStr::new("repair"),
        data_dir.as_os_str(),
    ]);
    assert!(!repaired, "{said}");
    assert!(said.contains("stop the broker"), "{said}");
    assert!(said.contains("locked by another process"), "{said}");
    assert_eq!(std::fs::read(metadata_log(&data_dir)).unwrap(), before);
    assert_eq!(partition_count(&broker.bootstrap(), "kept"), Some(1));
    broker.terminate();
}
