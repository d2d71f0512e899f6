//! SASL on a SASL_PLAINTEXT listener: librdkafka (the `rdkafka` crate)
//! logging in with PLAIN, wrong passwords and unknown users refused without
//! hurting other connections, and the protocol rules on raw sockets
//! (nothing but ApiVersions and SASL before authentication). SCRAM with
//! real clients is in scripts/interop.sh (confluent-kafka, kcat): this
//! crate's librdkafka is built without OpenSSL, which its SCRAM needs.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_broker::ScramBootstrap;
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::error;
use sluice_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, MetadataRequest, RequestHeader, RequestKind,
    ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::{block_on, topic_name, InProcBroker, PATIENCE};
use crate::protocol::{api_versions_request, connect, expect_closed, read_frame};

fn sasl_broker() -> InProcBroker {
    let broker = InProcBroker::start(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("connection.failed.authentication.delay.ms", "0"),
    ]);
    let users: Vec<ScramBootstrap> = [
        "SCRAM-SHA-256=[name=admin,password=admin-secret]",
        "SCRAM-SHA-512=[name=alice,password=alice-secret,iterations=8192]",
    ]
    .iter()
    .map(|spec| spec.parse().unwrap())
    .collect();
    let created = block_on(broker.broker().add_scram_if_absent(&users)).unwrap();
    assert_eq!(created.len(), 2, "{created:?}");
    // A second bootstrap finds them and changes nothing.
    assert!(block_on(broker.broker().add_scram_if_absent(&users))
        .unwrap()
        .is_empty());
    broker
}

fn client_config(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "30000");
    config
}

fn produce_one(producer: &FutureProducer, topic: &str, value: &str) {
    block_on(producer.send(
        FutureRecord::<str, str>::to(topic).payload(value),
        Duration::from_secs(30),
    ))
    .unwrap_or_else(|(e, _)| panic!("produce over SASL_PLAINTEXT: {e}"));
}

#[test]
fn librdkafka_logs_in_with_plain_and_bad_logins_fail_alone() {
    let broker = sasl_broker();
    let bootstrap = broker.bootstrap();
    let topic = topic_name("sasl-plain");
    let good: FutureProducer = client_config(&bootstrap, "alice", "alice-secret")
        .create()
        .unwrap();
    produce_one(&good, &topic, "first");
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        let bad: BaseConsumer = client_config(&bootstrap, user, password)
            .set("group.id", "sasl-bad")
            .create()
            .unwrap();
        let refused = bad.fetch_metadata(None, Duration::from_secs(5));
        assert!(refused.is_err(), "{user}/{password} was let in");
    }
    // The good connection is unaffected, and so are new good ones.
    produce_one(&good, &topic, "second");
    let admin: BaseConsumer = client_config(&bootstrap, "admin", "admin-secret")
        .set("group.id", "sasl-good")
        .create()
        .unwrap();
    let metadata = admin
        .fetch_metadata(Some(&topic), PATIENCE)
        .expect("metadata after a PLAIN login");
    assert_eq!(metadata.topics()[0].name(), topic);
}

fn header(api: ApiKey, version: i16) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("sasl-test")))
}

fn send(s: &mut TcpStream, api: ApiKey, version: i16, body: RequestKind) {
    s.write_all(&encode_request(&header(api, version), &body).unwrap())
        .unwrap();
}

pub(crate) fn call(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> ResponseKind {
    send(s, api, version, body);
    let frame = read_frame(s).expect("a response");
    decode_response(api, version, frame).expect("decodable").1
}

pub(crate) fn handshake(s: &mut TcpStream, mechanism: &'static str) -> (i16, Vec<String>) {
    let body = RequestKind::SaslHandshake(
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
    );
    let ResponseKind::SaslHandshake(r) = call(s, ApiKey::SaslHandshake, 1, body) else {
        panic!("not a SaslHandshake response")
    };
    (
        r.error_code,
        r.mechanisms.iter().map(|m| m.to_string()).collect(),
    )
}

fn authenticate(s: &mut TcpStream, token: &'static [u8]) -> (i16, Option<String>) {
    let body = RequestKind::SaslAuthenticate(
        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(token)),
    );
    let ResponseKind::SaslAuthenticate(r) = call(s, ApiKey::SaslAuthenticate, 2, body) else {
        panic!("not a SaslAuthenticate response")
    };
    (r.error_code, r.error_message.map(|m| m.to_string()))
}

fn metadata() -> RequestKind {
    RequestKind::Metadata(MetadataRequest::default().with_topics(Some(Vec::new())))
}

#[test]
fn only_apiversions_and_sasl_before_authentication() {
    let broker = sasl_broker();
    let addr = broker.bootstrap();

    // ApiVersions is answered; Metadata before logging in closes.
    let mut s = connect(&addr);
    s.write_all(&api_versions_request(1)).unwrap();
    assert!(read_frame(&mut s).is_some());
    send(&mut s, ApiKey::Metadata, 12, metadata());
    expect_closed(&mut s, "Metadata before authentication");

    // An unknown mechanism: the enabled list, then the connection closes.
    let mut s = connect(&addr);
    let (code, mechanisms) = handshake(&mut s, "GSSAPI");
    assert_eq!(code, error::UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(mechanisms, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    expect_closed(&mut s, "after UNSUPPORTED_SASL_MECHANISM");

    // SaslAuthenticate without a handshake.
    let mut s = connect(&addr);
    assert_eq!(
        authenticate(&mut s, b"\0admin\0admin-secret").0,
        error::ILLEGAL_SASL_STATE
    );
    expect_closed(&mut s, "after ILLEGAL_SASL_STATE");

    // A wrong password: Kafka's generic message, then close.
    let mut s = connect(&addr);
    assert_eq!(handshake(&mut s, "PLAIN").0, error::NONE);
    let (code, message) = authenticate(&mut s, b"\0admin\0admin-secreT");
    assert_eq!(code, error::SASL_AUTHENTICATION_FAILED);
    assert_eq!(
        message.as_deref(),
        Some("Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN")
    );
    expect_closed(&mut s, "after SASL_AUTHENTICATION_FAILED");

    // A malformed SCRAM client-first fails the same way.
    let mut s = connect(&addr);
    assert_eq!(handshake(&mut s, "SCRAM-SHA-256").0, error::NONE);
    assert_eq!(
        authenticate(&mut s, b"p=tls-unique,,n=admin,r=abc").0,
        error::SASL_AUTHENTICATION_FAILED
    );
    expect_closed(&mut s, "after a channel-binding client-first");

    // Logged in, everything is served; the credentials are described
    // without salts or keys.
    let mut s = connect(&addr);
    assert_eq!(handshake(&mut s, "PLAIN").0, error::NONE);
    assert_eq!(
        authenticate(&mut s, b"\0admin\0admin-secret").0,
        error::NONE
    );
    let ResponseKind::Metadata(m) = call(&mut s, ApiKey::Metadata, 12, metadata()) else {
        panic!("not a Metadata response")
    };
    assert_eq!(m.brokers.len(), 1);
    let describe = RequestKind::DescribeUserScramCredentials(
        DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            UserName::default().with_name(StrBytes::from_static_str("alice")),
            UserName::default().with_name(StrBytes::from_static_str("nobody")),
        ])),
    );
    let ResponseKind::DescribeUserScramCredentials(d) =
        call(&mut s, ApiKey::DescribeUserScramCredentials, 0, describe)
    else {
        panic!("not a DescribeUserScramCredentials response")
    };
    assert_eq!(d.results[0].error_code, error::NONE);
    assert_eq!(d.results[0].credential_infos[0].mechanism, 2);
    assert_eq!(d.results[0].credential_infos[0].iterations, 8192);
    assert_eq!(d.results[1].error_code, error::RESOURCE_NOT_FOUND);
}

/// Runs `sluice` against `bootstrap` with `stdin`: (success, stdout + stderr).
fn sluice_with_stdin(bootstrap: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_BOOTSTRAP_SERVER", bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn sluice_user_manages_credentials_that_survive_a_restart_onto_sasl() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The CLI cannot log in yet, so users are managed over PLAINTEXT.
    let broker = rt.block_on(crate::common::start_broker(dir.path(), &[]));
    let bootstrap = broker.local_addr().to_string();
    let cli = |args: &[&str], stdin: &str| sluice_with_stdin(&bootstrap, args, stdin);
    let (ok, said) = cli(
        &[
            "user",
            "add",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "8192",
        ],
        "alice-secret\n",
    );
    assert!(ok, "{said}");
    let (ok, said) = cli(&["user", "add", "bob"], "bob-secret\n");
    assert!(
        ok && said.contains("SCRAM-SHA-256 and SCRAM-SHA-512"),
        "{said}"
    );
    let (ok, said) = cli(&["user", "add", "carol", "--iterations", "100"], "pw\n");
    assert!(!ok && said.contains("Too few iterations"), "{said}");
    let (ok, said) = cli(&["user", "add", "dave"], "");
    assert!(!ok && said.contains("no password"), "{said}");
    let (ok, said) = cli(&["--output", "json", "user", "list"], "");
    assert!(ok, "{said}");
    let listed: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([
            {"user": "alice", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
            {"user": "bob", "credentials": [
                {"mechanism": "SCRAM-SHA-256", "iterations": 4096},
                {"mechanism": "SCRAM-SHA-512", "iterations": 4096},
            ]},
        ])
    );
    let (ok, said) = cli(&["user", "remove", "bob"], "");
    assert!(ok, "{said}");
    let (ok, said) = cli(&["user", "list", "bob"], "");
    assert!(!ok && said.contains("RESOURCE_NOT_FOUND"), "{said}");
    assert!(!said.contains("secret"));
    rt.block_on(broker.shutdown()).unwrap();

    // The same data directory behind a SASL_PLAINTEXT listener: the
    // credential the CLI salted lets alice in with PLAIN.
    let broker = rt.block_on(crate::common::start_broker(
        dir.path(),
        &[
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
            ("connection.failed.authentication.delay.ms", "0"),
        ],
    ));
    let bootstrap = broker.local_addr().to_string();
    let alice: BaseConsumer = client_config(&bootstrap, "alice", "alice-secret")
        .set("group.id", "sasl-cli")
        .create()
        .unwrap();
    assert!(alice.fetch_metadata(None, PATIENCE).is_ok());
    let bob: BaseConsumer = client_config(&bootstrap, "bob", "bob-secret")
        .set("group.id", "sasl-cli")
        .create()
        .unwrap();
    assert!(
        bob.fetch_metadata(None, Duration::from_secs(5)).is_err(),
        "a removed user got in"
    );
    drop((alice, bob));
    rt.block_on(broker.shutdown()).unwrap();
}

#[test]
fn an_address_past_its_failed_login_limit_is_refused_even_the_right_password() {
    let broker = InProcBroker::start(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("connection.failed.authentication.delay.ms", "0"),
        ("sasl.failed.authentications.per.ip.per.minute", "3"),
    ]);
    let users: Vec<ScramBootstrap> = vec!["SCRAM-SHA-256=[name=admin,password=admin-secret]"
        .parse()
        .unwrap()];
    block_on(broker.broker().add_scram_if_absent(&users)).unwrap();
    let addr = broker.bootstrap();
    let login = |token: &'static [u8]| {
        let mut s = connect(&addr);
        assert_eq!(handshake(&mut s, "PLAIN").0, error::NONE);
        authenticate(&mut s, token).0
    };
    assert_eq!(login(b"\0admin\0admin-secret"), error::NONE);
    for _ in 0..3 {
        assert_eq!(login(b"\0admin\0guess"), error::SASL_AUTHENTICATION_FAILED);
    }
    // The limit is reached: not even the right password is checked.
    assert_eq!(
        login(b"\0admin\0admin-secret"),
        error::SASL_AUTHENTICATION_FAILED
    );
}

/// Writes one raw length-prefixed frame (a SASL token after SaslHandshake v0).
fn send_raw(s: &mut TcpStream, token: &[u8]) {
    let mut frame = (token.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    s.write_all(&frame).unwrap();
}

#[test]
fn handshake_v0_takes_raw_tokens() {
    let broker = sasl_broker();
    let addr = broker.bootstrap();
    let handshake_v0 = |s: &mut TcpStream, mechanism: &'static str| {
        let body = RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        );
        let ResponseKind::SaslHandshake(r) = call(s, ApiKey::SaslHandshake, 0, body) else {
            panic!("not a SaslHandshake response")
        };
        r.error_code
    };

    // PLAIN: one raw token, an empty raw answer, then requests are served.
    let mut s = connect(&addr);
    assert_eq!(handshake_v0(&mut s, "PLAIN"), error::NONE);
    send_raw(&mut s, b"\0admin\0admin-secret");
    let answer = read_frame(&mut s).expect("a raw answer");
    assert!(answer.is_empty(), "{answer:?}");
    let ResponseKind::Metadata(m) = call(&mut s, ApiKey::Metadata, 12, metadata()) else {
        panic!("not a Metadata response")
    };
    assert_eq!(m.brokers.len(), 1);

    // SCRAM: the server-first comes back raw; a bad proof closes.
    let mut s = connect(&addr);
    assert_eq!(handshake_v0(&mut s, "SCRAM-SHA-256"), error::NONE);
    send_raw(&mut s, b"n,,n=admin,r=clientnonce");
    let server_first = read_frame(&mut s).expect("the server-first message");
    assert!(
        server_first.starts_with(b"r=clientnonce"),
        "{server_first:?}"
    );
    send_raw(&mut s, b"c=biws,r=clientnonce,p=AAAA");
    expect_closed(&mut s, "a wrong SCRAM proof in raw mode");

    // A wrong PLAIN password: no answer, the connection closes.
    let mut s = connect(&addr);
    assert_eq!(handshake_v0(&mut s, "PLAIN"), error::NONE);
    send_raw(&mut s, b"\0admin\0wrong");
    expect_closed(&mut s, "a wrong password in raw mode");
}
