//! ACLs with the StandardAuthorizer's semantics, on a SASL_PLAINTEXT broker
//! with `authorizer.class.name` set: librdkafka (the `rdkafka` crate, PLAIN)
//! as the restricted user, our admin client as the super user. The matrix
//! follows Kafka's documentation (docs/security.html, "Authorization and
//! ACLs"): literal and prefixed ACLs, DENY over ALLOW, Describe implied by
//! Read and Write, `User:*`, unauthorized topics hidden from Metadata, group
//! Read for consumers, Cluster Describe/Alter for the ACL APIs themselves.

use std::time::Duration;

use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_broker::ScramBootstrap;
use sluice_client::{AclBinding, Admin, ClientConfig, NewTopic, Security};

use crate::common::{block_on, InProcBroker, PATIENCE};

const AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn secured_broker() -> InProcBroker {
    let broker = InProcBroker::start(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("authorizer.class.name", AUTHORIZER),
        ("super.users", "User:admin"),
        ("connection.failed.authentication.delay.ms", "0"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]);
    let users: Vec<ScramBootstrap> = [
        "SCRAM-SHA-256=[name=admin,password=admin-secret]",
        "SCRAM-SHA-256=[name=alice,password=alice-secret]",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    block_on(broker.broker().add_scram_if_absent(&users)).unwrap();
    broker
}

fn login(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new(bootstrap);
    config.security = Security::from_properties([
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", user),
        ("sasl.password", password),
    ])
    .unwrap();
    config
}

fn rd(bootstrap: &str) -> RdConfig {
    let mut config = RdConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("message.timeout.ms", "10000");
    config
}

fn acl(
    resource_type: &str,
    name: &str,
    pattern: &str,
    principal: &str,
    operation: &str,
    permission: &str,
) -> AclBinding {
    AclBinding {
        resource_type: resource_type.into(),
        resource_name: Some(name.into()),
        pattern_type: pattern.into(),
        principal: Some(principal.into()),
        host: Some("*".into()),
        operation: operation.into(),
        permission: permission.into(),
    }
}

fn any_filter(principal: &str) -> AclBinding {
    AclBinding {
        resource_type: "any".into(),
        resource_name: None,
        pattern_type: "any".into(),
        principal: Some(principal.into()),
        host: None,
        operation: "any".into(),
        permission: "any".into(),
    }
}

/// The produce outcome for alice: Ok or the librdkafka error code.
fn alice_produces(producer: &FutureProducer, topic: &str) -> Result<(), RDKafkaErrorCode> {
    match block_on(producer.send(
        FutureRecord::<str, str>::to(topic).payload("v"),
        Duration::from_secs(15),
    )) {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((other, _)) => panic!("produce to {topic}: {other}"),
    }
}

#[test]
fn the_standard_authorizer_matrix_with_librdkafka() {
    let broker = secured_broker();
    let bootstrap = broker.bootstrap();
    block_on(async {
        let admin = Admin::connect(login(&bootstrap, "admin", "admin-secret"))
            .await
            .unwrap();
        let topics: Vec<NewTopic> = [
            "orders",
            "payments-eu",
            "payments-secret",
            "secret",
            "public",
        ]
        .iter()
        .map(|t| NewTopic::new(*t, 1, 1))
        .collect();
        admin.create_topics(&topics, false).await.unwrap();
        admin
            .create_acls(&[
                acl("topic", "orders", "literal", "User:alice", "read", "allow"),
                acl("topic", "orders", "literal", "User:alice", "write", "allow"),
                acl(
                    "topic",
                    "payments-",
                    "prefixed",
                    "User:alice",
                    "write",
                    "allow",
                ),
                acl(
                    "topic",
                    "payments-secret",
                    "literal",
                    "User:alice",
                    "all",
                    "deny",
                ),
                acl("topic", "public", "literal", "User:*", "describe", "allow"),
                acl("group", "g1", "literal", "User:alice", "read", "allow"),
            ])
            .await
            .unwrap();
        // The same ACL again changes nothing.
        admin
            .create_acls(&[acl("group", "g1", "literal", "User:alice", "read", "allow")])
            .await
            .unwrap();
        assert_eq!(
            admin
                .describe_acls(&any_filter("User:alice"))
                .await
                .unwrap()
                .len(),
            5
        );
        let invalid = admin
            .create_acls(&[acl(
                "cluster",
                "not-kafka-cluster",
                "literal",
                "User:alice",
                "alter",
                "allow",
            )])
            .await
            .unwrap_err();
        assert!(invalid.to_string().contains("INVALID_REQUEST"), "{invalid}");
    });

    let producer: FutureProducer = rd(&bootstrap).create().unwrap();
    assert_eq!(alice_produces(&producer, "orders"), Ok(()));
    assert_eq!(
        alice_produces(&producer, "payments-eu"),
        Ok(()),
        "a prefixed ALLOW"
    );
    assert_eq!(
        alice_produces(&producer, "payments-secret"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "DENY overrides the prefixed ALLOW"
    );
    assert_eq!(
        alice_produces(&producer, "secret"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed),
        "no ACL: denied (allow.everyone.if.no.acl.found=false)"
    );

    // Metadata shows only what alice may describe.
    let consumer: BaseConsumer = rd(&bootstrap)
        .set("group.id", "g1")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let metadata = consumer.fetch_metadata(None, PATIENCE).unwrap();
    let mut visible: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    visible.sort_unstable();
    assert_eq!(visible, ["orders", "payments-eu", "public"]);

    // A consumer in group g1 reads orders; in g2 it is refused.
    consumer.subscribe(&["orders"]).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let record = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no record for group g1"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            break m.expect("g1 may read orders").payload().map(<[u8]>::to_vec);
        }
    };
    assert_eq!(record.as_deref(), Some(&b"v"[..]));
    let other: BaseConsumer = rd(&bootstrap).set("group.id", "g2").create().unwrap();
    other.subscribe(&["orders"]).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "g2 was never refused");
        match other.poll(Duration::from_millis(200)) {
            Some(Err(KafkaError::Global(RDKafkaErrorCode::GroupAuthorizationFailed)))
            | Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::GroupAuthorizationFailed,
            ))) => break,
            Some(Ok(_)) => panic!("g2 read a record"),
            _ => {}
        }
    }

    block_on(async {
        // The ACL APIs need Describe / Alter on the cluster.
        let alice = Admin::connect(login(&bootstrap, "alice", "alice-secret"))
            .await
            .unwrap();
        let refused = alice
            .describe_acls(&any_filter("User:alice"))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
            "{refused}"
        );
        let refused = alice
            .create_acls(&[acl(
                "topic",
                "secret",
                "literal",
                "User:alice",
                "read",
                "allow",
            )])
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
            "{refused}"
        );
        let created = alice
            .create_topics(&[NewTopic::new("mine", 1, 1)], false)
            .await
            .unwrap_err();
        assert!(
            created.to_string().contains("TOPIC_AUTHORIZATION_FAILED"),
            "{created}"
        );
        // Removing alice's Write on orders takes effect at once.
        let admin = Admin::connect(login(&bootstrap, "admin", "admin-secret"))
            .await
            .unwrap();
        let mut write = acl("topic", "orders", "literal", "User:alice", "write", "allow");
        write.pattern_type = "any".into();
        let removed = admin.delete_acls(&[write]).await.unwrap();
        assert_eq!(removed.len(), 1);
    });
    assert_eq!(
        alice_produces(&producer, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

#[test]
fn acl_apis_without_an_authorizer_answer_security_disabled() {
    let broker = InProcBroker::start(&[]);
    block_on(async {
        let admin = Admin::connect(ClientConfig::new(&broker.bootstrap()))
            .await
            .unwrap();
        let err = admin
            .describe_acls(&any_filter("User:alice"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("SECURITY_DISABLED"), "{err}");
        let err = admin
            .create_acls(&[acl("topic", "t", "literal", "User:alice", "read", "allow")])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("SECURITY_DISABLED"), "{err}");
    });
}
