//! Three `sluice serve` processes that speak to each other over a SASL_SSL
//! INTERNAL listener with mTLS and SCRAM-SHA-512 and an SSL (mTLS)
//! CONTROLLER listener (the certificates of `sluice dev certs`), while
//! librdkafka uses their PLAINTEXT listener: the quorum forms over TLS,
//! followers replicate through it (acks=all with min.insync.replicas=3
//! succeeds only if both followers fetch), and transaction markers reach
//! the leaders that the coordinator is not (read_committed sees the
//! committed transaction).

use crate::cluster::{metadata, wait_until, Cluster};
use crate::common::{block_on, read_log, PATIENCE};
use crate::transactions::{read_all, send, transactional_producer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::path::{Path, PathBuf};

const PARTITIONS: i32 = 3;

#[test]
fn the_quorum_replication_and_transaction_markers_run_over_tls_and_sasl() {
    let certs = tempfile::tempdir().expect("a temp dir");
    let (ok, out) = crate::common::sluice(&[
        "dev".as_ref(),
        "certs".as_ref(),
        "--dir".as_ref(),
        certs.path().as_os_str(),
    ]);
    assert!(ok, "sluice dev certs: {out}");
    let file = |name: &str| certs.path().join(name).display().to_string();
    let extra = vec![
        format!("ssl.keystore.location={}", file("broker.pem")),
        format!("ssl.truststore.location={}", file("ca.pem")),
        "ssl.client.auth=required".to_string(),
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".to_string(),
        "listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"broker-secret\";".to_string(),
    ];
    let args = vec![
        "--add-scram".to_string(),
        "SCRAM-SHA-512=[name=broker,password=broker-secret]".to_string(),
    ];
    let mut cluster = Cluster::with_internal_listener(3, ("SASL_SSL", "SSL"), &extra, &args);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    let bootstrap = (1..=3)
        .map(|id| cluster.bootstrap(id))
        .collect::<Vec<_>>()
        .join(",");

    let topic = "secured";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let created = block_on(
        admin.create_topics(
            [
                &NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3))
                    .set("min.insync.replicas", "3"),
            ],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        ),
    )
    .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    wait_until("every partition has a leader", &logs, || {
        let (_, leaders) = metadata(&cluster.bootstrap(1), topic);
        (leaders.len() == PARTITIONS as usize && !leaders.contains(&-1)).then_some(())
    });

    // Acknowledged only once both followers have fetched the records.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = (0..30)
        .map(|i| {
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(i % PARTITIONS)
                        .payload(&format!("acked-{i}")),
                )
                .expect("enqueue")
        })
        .collect();
    for delivery in deliveries {
        let outcome = block_on(delivery).expect("not cancelled");
        assert!(
            outcome.is_ok(),
            "acks=all with min.insync.replicas=3: {outcome:?}; logs:\n{}",
            logs.iter()
                .map(|l| read_log(l))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }

    // Markers for partitions led by brokers other than the coordinator.
    let transactional = transactional_producer(&bootstrap, "secured-tx");
    transactional
        .init_transactions(PATIENCE)
        .expect("init_transactions");
    transactional.begin_transaction().expect("begin");
    for p in 0..PARTITIONS {
        send(&transactional, topic, Some(p), "tx", &format!("tx-{p}"));
    }
    transactional.commit_transaction(PATIENCE).expect("commit");
    let committed = read_all(&bootstrap, topic, PARTITIONS, "read_committed");
    assert_eq!(committed.len(), 30 + PARTITIONS as usize, "{committed:?}");

    // (A login may be refused once, before the credential has reached
    // the leader's image; a certificate is never refused.)
    for log in &logs {
        let text = read_log(log);
        assert!(!text.contains("invalid peer certificate"), "{text}");
    }
}
