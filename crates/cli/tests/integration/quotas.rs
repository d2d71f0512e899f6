//! Client quotas (KIP-13, KIP-124, KIP-219, KIP-546, KIP-612): set through
//! AlterClientQuotas, read back through DescribeClientQuotas, and enforced
//! on librdkafka clients, whose throttled byte rates are measured. The
//! broker's quota window is 6 × 1 s, so a client's initial allowance (a
//! whole window of its rate) is used up in seconds; rates are measured
//! after that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_client::sluice_protocol::kafka_protocol::messages::MetadataRequest;
use sluice_client::{Admin, ClientConfig, Connection, ConnectionOptions, NewTopic, QuotaMatch};

use crate::common::{block_on, topic_name, InProcBroker};

/// The quota the byte-rate tests hold clients to.
const RATE: f64 = 256.0 * 1024.0;
const RECORD: usize = 1024;

fn quota_broker() -> InProcBroker {
    InProcBroker::start(&[
        ("quota.window.num", "6"),
        ("quota.window.size.seconds", "1"),
    ])
}

/// An admin client on a runtime of its own, which its connections need
/// for as long as it is used.
struct QuotaAdmin {
    rt: tokio::runtime::Runtime,
    admin: Admin,
}

fn admin(broker: &InProcBroker) -> QuotaAdmin {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = rt
        .block_on(Admin::connect(ClientConfig::new(&broker.bootstrap())))
        .unwrap();
    QuotaAdmin { rt, admin }
}

fn client_entity(client_id: &str) -> Vec<(String, Option<String>)> {
    vec![("client-id".to_string(), Some(client_id.to_string()))]
}

/// Counts the bytes of acknowledged records, with when each was counted.
struct Delivered {
    bytes: Arc<AtomicU64>,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let len = message.payload().map_or(0, <[u8]>::len);
            self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}

/// The rate of `counter` from `warm_up` to `warm_up + span` after `start`.
fn measure(counter: &AtomicU64, start: Instant, warm_up: Duration, span: Duration) -> f64 {
    std::thread::sleep((start + warm_up).saturating_duration_since(Instant::now()));
    let before = counter.load(Ordering::Relaxed);
    std::thread::sleep(span);
    let after = counter.load(Ordering::Relaxed);
    (after - before) as f64 / span.as_secs_f64()
}

fn assert_near(measured: f64, quota: f64, what: &str) {
    let ratio = measured / quota;
    eprintln!("{what}: {measured:.0} B/s, {ratio:.2}× the quota");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{what}: {measured:.0} B/s is {ratio:.2}× the quota of {quota:.0} B/s"
    );
}

#[test]
fn producer_byte_rate_holds_a_librdkafka_producer_to_its_quota() {
    let broker = quota_broker();
    let admin = admin(&broker);
    let topic = topic_name("quota-produce");
    admin
        .rt
        .block_on(
            admin
                .admin
                .create_topics(&[NewTopic::new(&topic, 1, 1)], false),
        )
        .unwrap();
    let ops = [("producer_byte_rate".to_string(), Some(RATE))];
    admin
        .rt
        .block_on(admin.admin.alter_client_quotas(
            &client_entity("throttled-producer"),
            &ops,
            false,
        ))
        .unwrap();

    let bytes = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Delivered> = RdConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "throttled-producer")
        .set("linger.ms", "5")
        .set("batch.size", "32768")
        .set("queue.buffering.max.kbytes", "512")
        .set("message.timeout.ms", "60000")
        .create_with_context(Delivered {
            bytes: Arc::clone(&bytes),
        })
        .unwrap();
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, topic) = (Arc::clone(&stop), topic.clone());
        std::thread::spawn(move || {
            let payload = vec![b'q'; RECORD];
            while !stop.load(Ordering::Relaxed) {
                let record = BaseRecord::<(), [u8]>::to(&topic).payload(&payload);
                if producer.send(record).is_err() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let measured = measure(
        &bytes,
        start,
        Duration::from_secs(3),
        Duration::from_secs(8),
    );
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    // The quota counts request bytes, a little more than the payloads.
    assert_near(measured, RATE, "acknowledged produce rate");
}

#[test]
fn consumer_byte_rate_holds_a_librdkafka_consumer_to_its_quota() {
    let broker = quota_broker();
    let admin = admin(&broker);
    let topic = topic_name("quota-fetch");
    admin
        .rt
        .block_on(
            admin
                .admin
                .create_topics(&[NewTopic::new(&topic, 1, 1)], false),
        )
        .unwrap();
    // Enough records for the whole measurement, written unthrottled.
    // Small batches: a fetch returns whole batches, and the rate is
    // measured in what they add up to.
    let producer: ThreadedProducer<Delivered> = RdConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .create_with_context(Delivered {
            bytes: Arc::default(),
        })
        .unwrap();
    let payload = vec![b'c'; RECORD];
    for _ in 0..(RATE as usize * 20 / RECORD) {
        while producer
            .send(BaseRecord::<(), [u8]>::to(&topic).payload(&payload))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let ops = [("consumer_byte_rate".to_string(), Some(RATE))];
    admin
        .rt
        .block_on(admin.admin.alter_client_quotas(
            &client_entity("throttled-consumer"),
            &ops,
            false,
        ))
        .unwrap();

    let consumer: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "throttled-consumer")
        .set("group.id", "quota-test")
        .set("max.partition.fetch.bytes", "32768")
        .set("fetch.max.bytes", "65536")
        .set("message.max.bytes", "65536")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (stop, bytes) = (Arc::clone(&stop), Arc::clone(&bytes));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let len = m.payload().map_or(0, <[u8]>::len);
                    bytes.fetch_add(len as u64, Ordering::Relaxed);
                }
            }
        })
    };
    let measured = measure(
        &bytes,
        start,
        Duration::from_secs(3),
        Duration::from_secs(8),
    );
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert_near(measured, RATE, "consumed rate");
}

#[test]
fn request_percentage_throttles_a_busy_client_and_no_other() {
    let broker = quota_broker();
    let admin = admin(&broker);
    // A thousandth of a percent of one thread: a few requests exceed it.
    let ops = [("request_percentage".to_string(), Some(0.001))];
    admin
        .rt
        .block_on(
            admin
                .admin
                .alter_client_quotas(&client_entity("busy"), &ops, false),
        )
        .unwrap();
    let throttles = |client_id: &str| {
        let options = ConnectionOptions {
            client_id: client_id.to_string(),
            ..ConnectionOptions::default()
        };
        block_on(async {
            let conn = Connection::connect(&broker.bootstrap(), &options)
                .await
                .unwrap();
            // Until the first throttle: how many requests it takes depends
            // on how fast the broker answers them.
            let mut throttles = Vec::new();
            for _ in 0..200 {
                let response = conn.call(MetadataRequest::default()).await.unwrap();
                throttles.push(response.throttle_time_ms);
                if response.throttle_time_ms > 0 {
                    break;
                }
            }
            throttles
        })
    };
    let busy = throttles("busy");
    assert!(
        busy.iter().any(|t| *t > 0),
        "busy client not throttled: {busy:?}"
    );
    let idle = throttles("someone-else");
    assert!(
        idle.iter().all(|t| *t == 0),
        "other client throttled: {idle:?}"
    );
}

#[test]
fn connection_creation_rate_refuses_an_address_past_its_quota() {
    let broker = quota_broker();
    let admin = admin(&broker);
    // 2 per second with a 6 s window: the first 12 get through at once.
    let ip = vec![("ip".to_string(), Some("127.0.0.1".to_string()))];
    let ops = [("connection_creation_rate".to_string(), Some(2.0))];
    admin
        .rt
        .block_on(admin.admin.alter_client_quotas(&ip, &ops, false))
        .unwrap();
    drop(admin);
    let outcomes: Vec<bool> = block_on(async {
        let options = ConnectionOptions {
            request_timeout: Duration::from_secs(20),
            ..ConnectionOptions::default()
        };
        let mut outcomes = Vec::new();
        for _ in 0..16 {
            // Connecting sends ApiVersions: a refused connection is closed
            // unanswered once its throttle is over.
            outcomes.push(
                Connection::connect(&broker.bootstrap(), &options)
                    .await
                    .is_ok(),
            );
        }
        outcomes
    });
    // The admin client connected before the quota existed. A refused
    // connection is held up to a second, so later ones may pass again.
    assert!(outcomes[..12].iter().all(|ok| *ok), "{outcomes:?}");
    assert!(
        !outcomes[12],
        "the thirteenth connection was served: {outcomes:?}"
    );
}

#[test]
fn quotas_are_described_by_filter_and_bad_ones_refused() {
    let broker = quota_broker();
    let admin = admin(&broker);
    let user = |n: Option<&str>| ("user".to_string(), n.map(str::to_string));
    let client = |n: Option<&str>| ("client-id".to_string(), n.map(str::to_string));
    let set = |entity: Vec<(String, Option<String>)>, key: &str, value: Option<f64>| {
        admin.rt.block_on(admin.admin.alter_client_quotas(
            &entity,
            &[(key.to_string(), value)],
            false,
        ))
    };
    set(
        vec![user(Some("alice"))],
        "producer_byte_rate",
        Some(1024.0),
    )
    .unwrap();
    set(
        vec![user(Some("alice")), client(Some("app"))],
        "consumer_byte_rate",
        Some(2048.0),
    )
    .unwrap();
    set(vec![user(None)], "request_percentage", Some(50.0)).unwrap();
    // validate_only changes nothing.
    admin
        .rt
        .block_on(admin.admin.alter_client_quotas(
            &vec![user(Some("bob"))],
            &[("producer_byte_rate".to_string(), Some(1.0))],
            true,
        ))
        .unwrap();

    let describe = |filter: Vec<(&str, QuotaMatch)>, strict| {
        let filter: Vec<_> = filter
            .into_iter()
            .map(|(t, m)| (t.to_string(), m))
            .collect();
        let mut found = admin
            .rt
            .block_on(admin.admin.describe_client_quotas(&filter, strict))
            .unwrap();
        found.sort_by(|a, b| a.entity.cmp(&b.entity));
        found
    };
    assert_eq!(describe(vec![], false).len(), 3);
    let alice = describe(vec![("user", QuotaMatch::Exact("alice".into()))], false);
    assert_eq!(alice.len(), 2);
    let only_alice = describe(vec![("user", QuotaMatch::Exact("alice".into()))], true);
    assert_eq!(only_alice.len(), 1);
    assert_eq!(
        only_alice[0].values,
        vec![("producer_byte_rate".to_string(), 1024.0)]
    );
    let defaults = describe(vec![("user", QuotaMatch::Default)], false);
    assert_eq!(defaults[0].entity, vec![user(None)]);
    assert!(describe(vec![("user", QuotaMatch::Exact("bob".into()))], false).is_empty());

    // Removing one key keeps the others; removing the last drops the entity.
    set(vec![user(Some("alice"))], "producer_byte_rate", None).unwrap();
    assert_eq!(describe(vec![], false).len(), 2);

    for (entity, key, value) in [
        (vec![user(Some("alice"))], "producer_byte_rate", Some(10.5)),
        (
            vec![user(Some("alice"))],
            "connection_creation_rate",
            Some(1.0),
        ),
        (vec![user(Some("alice"))], "no_such_quota", Some(1.0)),
        (
            vec![("ip".to_string(), Some("not-an-ip".to_string()))],
            "connection_creation_rate",
            Some(1.0),
        ),
        (
            vec![("ip".to_string(), None), user(None)],
            "connection_creation_rate",
            Some(1.0),
        ),
        (
            vec![("group".to_string(), Some("g".to_string()))],
            "producer_byte_rate",
            Some(1.0),
        ),
    ] {
        let err = set(entity.clone(), key, value).unwrap_err().to_string();
        assert!(
            err.contains("INVALID_REQUEST"),
            "{entity:?} {key}={value:?}: {err}"
        );
    }
    let filter = vec![
        ("user".to_string(), QuotaMatch::Any),
        ("ip".to_string(), QuotaMatch::Any),
    ];
    let err = admin
        .rt
        .block_on(admin.admin.describe_client_quotas(&filter, false))
        .unwrap_err();
    assert!(err.to_string().contains("INVALID_REQUEST"), "{err}");
}

#[test]
fn controller_mutation_rate_refuses_topics_once_the_client_is_in_debt() {
    let broker = quota_broker();
    let admin = admin(&broker);
    // One partition per second, a 6 s window: 6 partitions of allowance.
    let ops = [("controller_mutation_rate".to_string(), Some(1.0))];
    admin
        .rt
        .block_on(
            admin
                .admin
                .alter_client_quotas(&client_entity("mutator"), &ops, false),
        )
        .unwrap();
    // Two clients with the same id: a throttled connection reads nothing
    // until its throttle is over (KIP-219), so the refusal shows on the other.
    let mutator = || {
        let mut config = ClientConfig::new(&broker.bootstrap());
        config.client_id = "mutator".to_string();
        admin.rt.block_on(Admin::connect(config)).unwrap()
    };
    let (first, second) = (mutator(), mutator());
    let create = |who: &Admin, name: &str, partitions| {
        admin
            .rt
            .block_on(who.create_topics(&[NewTopic::new(name, partitions, 1)], false))
    };
    // A topic that already exists fails and is not counted.
    let existing = topic_name("quota-mutation-existing");
    admin
        .rt
        .block_on(
            admin
                .admin
                .create_topics(&[NewTopic::new(&existing, 1, 1)], false),
        )
        .unwrap();
    assert!(create(&first, &existing, 6).is_err());
    // The topic that goes into debt is allowed (Kafka's strict mode)...
    create(&first, &topic_name("quota-mutation-a"), 10).unwrap();
    // ...the next is refused until the debt is paid.
    let err = create(&second, &topic_name("quota-mutation-b"), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("THROTTLING_QUOTA_EXCEEDED"), "{err}");
    // Another client id is not held back.
    admin
        .rt
        .block_on(admin.admin.create_topics(
            &[NewTopic::new(topic_name("quota-mutation-c"), 1, 1)],
            false,
        ))
        .unwrap();
}
