//! Our own client (`sluice-client`) against an in-process broker.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::{
    Acks, Admin, AlterConfigOp, ClientConfig, CompressionType, ConfigResource, ConfigSource,
    Consumer, ConsumerConfig, ConsumerRecord, Error, NewTopic, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, StartOffset,
};
use sluice_protocol::error;

use crate::common::{start_broker, PATIENCE};

/// Runs the `sluice` binary against `bootstrap` with `stdin` as input;
/// returns whether it succeeded, its stdout and its stderr.
async fn sluice_cli(bootstrap: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_BOOTSTRAP_SERVER", bootstrap)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run sluice");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("sluice finishes")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "got only {} of {n}", out.len());
        out.extend(
            consumer
                .poll(Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    assert_eq!(out.len(), n, "more records than produced");
    out
}

fn kafka_code(e: &Error) -> Option<i16> {
    match e {
        Error::Kafka(k) => Some(k.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_describe_alter_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]).await;
    let client = ClientConfig::new(&broker.local_addr().to_string());
    let admin = Admin::connect(client).await.expect("admin connects");

    admin
        .create_topics(
            &[NewTopic::new("native", 4, 1).with_config("retention.ms", "7200000")],
            false,
        )
        .await
        .expect("create");
    let err = admin
        .create_topics(&[NewTopic::new("native", 4, 1)], false)
        .await
        .expect_err("duplicate create");
    assert_eq!(kafka_code(&err), Some(error::TOPIC_ALREADY_EXISTS), "{err}");

    let md = admin
        .describe_topic("native")
        .await
        .expect("describe topic");
    assert_eq!(md.partitions.len(), 4);
    assert!(md.topic_id != [0; 16], "topic id is set");

    let topic = ConfigResource::Topic("native".into());
    let configs = admin
        .describe_configs(&topic)
        .await
        .expect("describe configs");
    let get = |configs: &[sluice_client::ConfigEntry], name: &str| {
        configs
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not described"))
    };
    let retention = get(&configs, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("7200000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let cleanup = get(&configs, "cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_eq!(cleanup.source, ConfigSource::Default);

    // IncrementalAlterConfigs: set one, delete another override.
    admin
        .incremental_alter_configs(
            &topic,
            &[
                AlterConfigOp::Set("segment.bytes".into(), "1048576".into()),
                AlterConfigOp::Delete("retention.ms".into()),
            ],
            false,
        )
        .await
        .expect("alter");
    let configs = admin.describe_configs(&topic).await.unwrap();
    let segment = get(&configs, "segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("1048576"));
    assert_eq!(segment.source, ConfigSource::DynamicTopic);
    let retention = get(&configs, "retention.ms");
    assert_eq!(retention.source, ConfigSource::Default);
    assert_eq!(retention.value.as_deref(), Some("604800000"));

    // An invalid value is refused and changes nothing.
    let err = admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set(
                "segment.bytes".into(),
                "not-a-number".into(),
            )],
            false,
        )
        .await
        .expect_err("invalid value");
    assert_eq!(kafka_code(&err), Some(error::INVALID_CONFIG), "{err}");

    admin
        .create_partitions("native", 6, false)
        .await
        .expect("grow");
    let md = admin.describe_topic("native").await.unwrap();
    assert_eq!(md.partitions.len(), 6);

    let cluster = admin.describe_cluster().await.expect("describe cluster");
    assert_eq!(cluster.brokers.len(), 1);
    let dirs = admin.describe_log_dirs(None).await.expect("log dirs");
    assert!(
        dirs.iter()
            .flat_map(|d| &d.partitions)
            .any(|p| p.topic == "native"),
        "{dirs:?}"
    );

    admin
        .delete_topics(&["native".to_string()])
        .await
        .expect("delete");
    let topics = admin.list_topics().await.expect("list");
    assert!(
        topics.iter().all(|t| t.name != "native"),
        "still listed: {:?}",
        topics.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    drop(admin);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]).await;
    let client = ClientConfig::new(&broker.local_addr().to_string());
    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("native-rt", 3, 1)], false)
        .await
        .unwrap();
    assert_eq!(
        admin
            .describe_topic("native-rt")
            .await
            .unwrap()
            .partitions
            .len(),
        3
    );

    for (i, compression) in [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        // Share the admin's cluster, whose metadata already knows the topic
        // (see `producer_keeps_send_order_while_metadata_is_pending`).
        let producer = Producer::new(
            admin.cluster().clone(),
            ProducerConfig {
                acks: Acks::All,
                compression,
                ..ProducerConfig::default()
            },
        )
        .expect("producer");
        let pending: Vec<_> = (0..30)
            .map(|j| {
                producer.send(
                    ProducerRecord::new("native-rt", format!("{compression:?}-{j}"))
                        .with_key(format!("key-{j}"))
                        .with_header("codec", compression.name())
                        .with_partition((i % 3) as i32),
                )
            })
            .collect();
        for (j, p) in pending.into_iter().enumerate() {
            let md = p.await.expect("delivered");
            assert_eq!(md.partition, (i % 3) as i32);
            assert_eq!(
                md.offset,
                (i / 3 * 30 + j) as i64,
                "{compression:?} record {j}"
            );
        }
        producer.close().await;
    }

    let latest = admin
        .list_offsets(&[
            ("native-rt".into(), 0, OffsetSpec::Latest),
            ("native-rt".into(), 1, OffsetSpec::Latest),
            ("native-rt".into(), 2, OffsetSpec::Latest),
        ])
        .await
        .expect("list offsets");
    assert_eq!(
        latest.iter().map(|l| l.offset).collect::<Vec<_>>(),
        vec![60, 60, 30]
    );

    let mut consumer = Consumer::connect(client.clone(), ConsumerConfig::default())
        .await
        .unwrap();
    consumer
        .assign(vec![
            ("native-rt".into(), 0, StartOffset::Earliest),
            ("native-rt".into(), 1, StartOffset::Earliest),
            ("native-rt".into(), 2, StartOffset::Earliest),
        ])
        .await
        .unwrap();
    let records = poll_n(&mut consumer, 150).await;
    for p in 0..3 {
        let in_p: Vec<&ConsumerRecord> = records.iter().filter(|r| r.partition == p).collect();
        let offsets: Vec<i64> = in_p.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..in_p.len() as i64).collect::<Vec<_>>());
    }
    let r = records
        .iter()
        .find(|r| r.partition == 1 && r.offset == 35)
        .unwrap();
    // Partition 1 got Gzip (i=1) then Zstd (i=4) records.
    assert_eq!(r.value.as_deref(), Some(&b"Zstd-5"[..]));
    assert_eq!(r.key.as_deref(), Some(&b"key-5"[..]));
    assert_eq!(
        r.headers,
        vec![("codec".to_string(), Some(Bytes::from_static(b"zstd")))]
    );

    // Seek to a fresh position and read just the tail.
    consumer
        .seek("native-rt", 2, StartOffset::Offset(25))
        .await
        .unwrap();
    consumer
        .seek("native-rt", 0, StartOffset::Latest)
        .await
        .unwrap();
    consumer
        .seek("native-rt", 1, StartOffset::Latest)
        .await
        .unwrap();
    let tail = poll_n(&mut consumer, 5).await;
    assert!(tail.iter().all(|r| r.partition == 2));
    assert_eq!(
        tail.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![25, 26, 27, 28, 29]
    );

    drop(consumer);
    drop(admin);
    broker.shutdown().await.unwrap();
}

/// Records sent while the producer is still fetching a topic's metadata must
/// keep their order: Kafka's producer blocks `send()` until the metadata is
/// there. Here the first record waits for metadata (the topic does not exist
/// yet and the retry backoff is long); meanwhile the topic appears and the
/// shared metadata cache learns it, and later records are sent.
/// Five produce requests in flight per broker, each with a batch for every
/// partition: the requests must reach the broker in the order their
/// sequence numbers were assigned, or the broker refuses the overtaking
/// batches (OUT_OF_ORDER_SEQUENCE_NUMBER) and, once a predecessor has been
/// written, the client cannot retry them. A task per request used to race
/// to the socket, and `sluice perf produce` of 1 KiB records lost thousands
/// of records this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_idempotent_batches_reach_the_broker_in_sequence_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]).await;
    let bootstrap = broker.local_addr().to_string();
    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &["topic", "create", "pipelined", "--partitions", "6"],
        "",
    )
    .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &[
            "perf",
            "produce",
            "--topic",
            "pipelined",
            "--num-records",
            "50000",
            "--record-size",
            "1024",
            "--acks",
            "all",
            "--output",
            "json",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["errors"], 0, "{out}");
    assert_eq!(report["records"], 50_000, "{out}");
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    let ends = admin
        .list_offsets(
            &(0..6)
                .map(|p| ("pipelined".to_string(), p, OffsetSpec::Latest))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let total: i64 = ends.iter().map(|o| o.offset).sum();
    assert_eq!(total, 50_000, "every record written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_keeps_send_order_while_metadata_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[("auto.create.topics.enable", "false")]).await;
    let mut client = ClientConfig::new(&broker.local_addr().to_string());
    client.allow_auto_topic_creation = false;
    let cluster = sluice_client::Cluster::connect(client.clone())
        .await
        .unwrap();
    let producer = Producer::new(
        cluster.clone(),
        ProducerConfig {
            acks: Acks::All,
            retry_backoff: Duration::from_secs(3),
            max_block: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let first = producer.send(ProducerRecord::new("late", "record 0").with_partition(0));

    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("late", 1, 1)], false)
        .await
        .unwrap();
    cluster
        .refresh_metadata(Some(&["late".to_string()]))
        .await
        .unwrap();
    let rest: Vec<_> = (1..10)
        .map(|i| {
            producer.send(ProducerRecord::new("late", format!("record {i}")).with_partition(0))
        })
        .collect();

    let mut offsets = vec![first.await.expect("record 0 delivered").offset];
    for r in rest {
        offsets.push(r.await.expect("delivered").offset);
    }
    producer.close().await;

    let mut consumer = Consumer::connect(client, ConsumerConfig::default())
        .await
        .unwrap();
    consumer
        .assign(vec![("late".into(), 0, StartOffset::Earliest)])
        .await
        .unwrap();
    let values: Vec<String> = poll_n(&mut consumer, 10)
        .await
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("record {i}")).collect();
    assert_eq!(
        values, want,
        "log order differs from send order (acked offsets {offsets:?})"
    );
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    drop(consumer);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_transactional_produce_read_committed_consume_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]).await;
    let bootstrap = broker.local_addr().to_string();
    Admin::connect(ClientConfig::new(&bootstrap))
        .await
        .unwrap()
        .create_topics(&[NewTopic::new("cli-txn", 2, 1)], false)
        .await
        .unwrap();

    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &["produce", "cli-txn", "--transactional-id", "cli-tx"],
        "one\ntwo\nthree\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("committed as transaction 'cli-tx'"), "{out}");

    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &[
            "consume",
            "cli-txn",
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--limit",
            "3",
            "--timeout-ms",
            "10000",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["one", "three", "two"]);

    let (ok, out, err) = sluice_cli(&bootstrap, &["transactions", "list"], "").await;
    assert!(ok, "{err}");
    assert!(
        out.contains("cli-tx") && out.contains("CompleteCommit"),
        "{out}"
    );
    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &["--output", "json", "transactions", "describe", "cli-tx"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(described[0]["transactional_id"], "cli-tx");
    assert_eq!(described[0]["state"], "CompleteCommit");

    // An input error aborts the transaction and fails the command.
    let (ok, _, err) = sluice_cli(
        &bootstrap,
        &[
            "produce",
            "cli-txn",
            "--transactional-id",
            "cli-tx",
            "--key-separator",
            ":",
        ],
        "k:four\nno separator\n",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("transaction aborted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_delete_records_and_topic_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]).await;
    let bootstrap = broker.local_addr().to_string();
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    admin
        .create_topics(
            &[
                NewTopic::new("trim", 1, 1),
                NewTopic::new("keyed", 1, 1).with_config("cleanup.policy", "compact"),
            ],
            false,
        )
        .await
        .unwrap();
    let lines: String = (0..10).map(|i| format!("record-{i}\n")).collect();
    let (ok, _, err) = sluice_cli(&bootstrap, &["produce", "trim"], &lines).await;
    assert!(ok, "{err}");

    let delete = |topic: &'static str, before: &'static str| {
        let bootstrap = bootstrap.clone();
        async move {
            sluice_cli(
                &bootstrap,
                &[
                    "topic",
                    "delete-records",
                    topic,
                    "--partition",
                    "0",
                    "--before-offset",
                    before,
                ],
                "",
            )
            .await
        }
    };
    let (ok, out, err) = delete("trim", "4").await;
    assert!(ok, "{err}");
    assert!(out.contains("low watermark is now 4"), "{out}");
    let earliest = admin
        .list_offsets(&[("trim".into(), 0, OffsetSpec::Earliest)])
        .await
        .unwrap();
    assert_eq!(earliest[0].offset, 4);

    let (ok, _, err) = delete("trim", "11").await;
    assert!(!ok);
    assert!(
        err.contains("OFFSET_OUT_OF_RANGE") && err.contains("high watermark (10)"),
        "{err}"
    );
    let (ok, _, err) = delete("keyed", "0").await;
    assert!(!ok);
    assert!(
        err.contains("POLICY_VIOLATION") && err.contains("cleanup.policy"),
        "{err}"
    );

    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &[
            "--output",
            "json",
            "topic",
            "delete-records",
            "trim",
            "--partition",
            "0",
            "--before-offset",
            "-1",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let deleted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deleted["low_watermark"], 10);

    // With `delete` in its policy the compacted topic takes DeleteRecords.
    let (ok, _, err) = sluice_cli(
        &bootstrap,
        &[
            "topic",
            "alter-config",
            "keyed",
            "--set",
            "cleanup.policy=compact,delete",
            "--set",
            "compression.type=zstd",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = sluice_cli(
        &bootstrap,
        &[
            "--output",
            "json",
            "topic",
            "describe",
            "keyed",
            "--configs",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    let config = |name: &str| {
        described["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| (c["value"].clone(), c["source"].clone()))
            .unwrap()
    };
    let (value, source) = config("cleanup.policy");
    assert_eq!(value, "compact,delete");
    assert_eq!(source, config("compression.type").1);
    assert_eq!(config("compression.type").0, "zstd");
    let (ok, out, err) = delete("keyed", "-1").await;
    assert!(ok, "{err}");
    assert!(out.contains("low watermark is now 0"), "{out}");
}
