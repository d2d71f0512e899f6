//! Two group consumers share a topic, one leaves, and a restarted consumer
//! resumes after the committed offsets. Runs a broker in-process.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, ClientConfig, GroupConsumer, GroupConsumerConfig, NewTopic, OffsetReset, Producer,
    ProducerConfig, ProducerRecord,
};

fn config(group: &str) -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(group);
    c.heartbeat_interval = Duration::from_millis(100);
    c.session_timeout = Duration::from_secs(10);
    c.rebalance_timeout = Duration::from_secs(10);
    c.enable_auto_commit = false;
    c.consumer.auto_offset_reset = OffsetReset::Earliest;
    c.consumer.max_wait = Duration::from_millis(100);
    c
}

async fn produce(client: &ClientConfig, from: u32, to: u32) {
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let pending: Vec<_> = (from..to)
        .map(|i| {
            producer
                .send(ProducerRecord::new("orders", format!("v{i}")).with_partition((i % 4) as i32))
        })
        .collect();
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_rebalance_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sluice_broker::Broker::start(
        sluice_broker::BrokerConfig::from_settings([
            ("listeners", "127.0.0.1:0"),
            ("log.dirs", dir.path().to_str().unwrap()),
            ("group.initial.rebalance.delay.ms", "0"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let client = ClientConfig::new(&broker.local_addr().to_string());
    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("orders", 4, 1)], false)
        .await
        .unwrap();
    produce(&client, 0, 40).await;

    let mut a = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    let mut b = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    a.subscribe(&["orders"]);
    b.subscribe(&["orders"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (ra, rb) = tokio::join!(
            a.poll(Duration::from_millis(200)),
            b.poll(Duration::from_millis(200))
        );
        ra.unwrap();
        rb.unwrap();
        if a.assignment().len() == 2 && b.assignment().len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 2/2 split: {:?} {:?}",
            a.assignment(),
            b.assignment()
        );
    }
    let all: BTreeSet<_> = a.assignment().into_iter().chain(b.assignment()).collect();
    assert_eq!(all.len(), 4);

    a.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = BTreeSet::new();
    while b.assignment().len() != 4 || seen.len() < 40 {
        for r in b.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert(r.value.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "b has {:?}, saw {}",
            b.assignment(),
            seen.len()
        );
    }
    assert_eq!(seen.len(), 40);
    b.commit_sync().await.unwrap();
    b.close().await.unwrap();

    produce(&client, 40, 48).await;
    let mut c = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    c.subscribe(&["orders"]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < 8 {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        assert!(Instant::now() < deadline, "resumed consumer got {got:?}");
    }
    got.sort();
    let want: Vec<String> = {
        let mut w: Vec<String> = (40..48).map(|i| format!("v{i}")).collect();
        w.sort();
        w
    };
    assert_eq!(got, want);
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}
