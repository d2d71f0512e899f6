//! The broker's HTTP listener (`http.listeners`) in a `sluice serve`
//! process: `/metrics` reflects a librdkafka workload, `/healthz` and
//! `/readyz` answer probes, other methods and paths are refused, and an
//! address in use stops the start with a message naming it. The metrics are
//! also parsed by the official Prometheus parser in scripts/metrics_check.py.
//! And the logs operators ship: `log.format=json` and the request log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rdkafka::producer::FutureRecord;

use crate::common::{block_on, free_port, read_log, serve_refusal_with, topic_name, BrokerProcess};
use crate::rdkafka_client::producer;

/// (status, headers, body) of one HTTP/1.1 request.
fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    http_with(port, method, path, None, "")
}

/// [`http`] with a body of `content_type`.
fn http_with(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let typed = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{typed}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_string(), body.to_string())
}

#[test]
fn serves_metrics_health_and_readiness_on_its_own_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listeners = format!("http.listeners=http://127.0.0.1:{port}");
    let broker = BrokerProcess::spawn(
        free_port(),
        &tmp.path().join("data"),
        &tmp.path().join("broker.log"),
        &[&listeners],
    );
    let topic = topic_name("metrics");
    let producer = producer(&broker.bootstrap(), &[("acks", "all")]);
    block_on(async {
        for i in 0..50 {
            let value = format!("value {i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(&topic).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .expect("record acknowledged");
        }
    });

    let (status, head, body) = http(port, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        body.contains(&format!(
            "sluice_topic_records_in_total{{topic=\"{topic}\"}} 50\n"
        )),
        "{body}"
    );
    assert!(
        body.contains(
            "sluice_requests_total{api=\"Produce\",listener=\"PLAINTEXT\",error=\"NONE\"}"
        ),
        "{body}"
    );
    assert!(
        body.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );

    assert_eq!(http(port, "GET", "/healthz").0, 200);
    let (status, _, ready) = http(port, "GET", "/readyz");
    assert_eq!(status, 200);
    assert!(ready.contains("\"ready\":true"), "{ready}");
    assert_eq!(http(port, "POST", "/metrics").0, 405, "only GET");
    assert_eq!(http(port, "GET", "/nope").0, 404);
    broker.terminate();
}

#[test]
fn an_http_address_in_use_refuses_to_start_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listeners = format!("http.listeners=http://127.0.0.1:{port}");
    let (started, said) = serve_refusal_with(&tmp.path().join("data"), &[&listeners]);
    assert!(!started, "{said}");
    assert!(said.contains(&format!("http://127.0.0.1:{port}")), "{said}");
    assert!(said.contains("http.listeners"), "{said}");

    let (started, said) = serve_refusal_with(
        &tmp.path().join("data"),
        &["http.listeners=https://127.0.0.1:1"],
    );
    assert!(!started, "{said}");
    assert!(said.contains("https is not supported"), "{said}");
}

/// `log.format=json` writes one JSON object per line; the request log
/// (`sluice::request` at debug) names each request's API, client and error.
#[test]
fn json_logs_and_the_request_log() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("broker.log");
    let broker = BrokerProcess::spawn_logging(
        free_port(),
        &tmp.path().join("data"),
        &log,
        &["log.format=json"],
        "info,sluice::request=debug",
    );
    let topic = topic_name("logged");
    let producer = producer(&broker.bootstrap(), &[("client.id", "logged-client")]);
    block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload("secret value"),
                Duration::from_secs(30),
            )
            .await
            .expect("record acknowledged");
    });
    broker.terminate();
    let text = read_log(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let produce = lines
        .iter()
        .find(|l| l["target"] == "sluice::request" && l["fields"]["api"] == "Produce")
        .unwrap_or_else(|| panic!("no request line for Produce:\n{text}"));
    assert_eq!(produce["level"], "DEBUG");
    assert_eq!(produce["fields"]["client_id"], "logged-client");
    assert_eq!(produce["fields"]["error"], "NONE");
    assert!(produce["fields"]["latency_us"].is_u64(), "{produce}");
    assert!(
        !text.contains("secret value"),
        "record contents are never logged"
    );
}

fn json(port: u16, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http(port, "GET", path);
    let value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (status, value)
}

/// `/api/v1` (the console's JSON, docs/openapi.yaml): cluster, topics,
/// records by offset with text and binary contents, a group's lag; bad
/// parameters are 4xx with a message.
#[test]
fn the_json_api_serves_topics_records_and_groups() {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::TopicPartitionList;

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listeners = format!("http.listeners=http://127.0.0.1:{port}");
    let broker = BrokerProcess::spawn(
        free_port(),
        &tmp.path().join("data"),
        &tmp.path().join("broker.log"),
        &[&listeners],
    );
    let topic = topic_name("api");
    let producer = producer(&broker.bootstrap(), &[("acks", "all"), ("linger.ms", "0")]);
    block_on(async {
        for i in 0..5 {
            let key = format!("k{i}");
            let value: Vec<u8> = if i == 2 {
                vec![0xff, 0xfe, 0x00, 0x01]
            } else {
                format!("<b>value {i}</b>").into_bytes()
            };
            let headers = OwnedHeaders::new().insert(Header {
                key: "source",
                value: Some("test"),
            });
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&key)
                        .payload(&value)
                        .headers(headers),
                    Duration::from_secs(30),
                )
                .await
                .expect("record acknowledged");
        }
    });
    let group = format!("{topic}-group");
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, rdkafka::Offset::Offset(3))
        .unwrap();
    consumer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");

    let (status, cluster) = json(port, "/api/v1/cluster");
    assert_eq!(status, 200);
    assert_eq!(cluster["brokers"][0]["id"], 1);
    assert_eq!(cluster["offline_partitions"], 0);

    let (_, topics) = json(port, "/api/v1/topics");
    let listed = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic.as_str())
        .expect("the topic is listed");
    assert_eq!(listed["records"], 5);

    let (status, described) = json(port, &format!("/api/v1/topics/{topic}"));
    assert_eq!(status, 200);
    assert_eq!(described["partitions"][0]["high_watermark"], 5);
    assert!(described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "cleanup.policy" && c["value"] == "delete"));

    let path = format!("/api/v1/topics/{topic}/partitions/0/records");
    let (status, page) = json(port, &format!("{path}?offset=1&limit=2"));
    assert_eq!(status, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["offset"], 1);
    assert_eq!(records[0]["key"]["text"], "k1");
    assert_eq!(records[0]["value"]["text"], "<b>value 1</b>");
    assert_eq!(records[0]["headers"][0]["key"], "source");
    assert_eq!(
        records[1]["value"]["base64"], "//4AAQ==",
        "binary values are base64"
    );
    assert_eq!(page["next_offset"], 3);
    let (_, rest) = json(port, &format!("{path}?offset=3"));
    assert_eq!(rest["records"].as_array().unwrap().len(), 2);
    assert_eq!(rest["next_offset"], 5);

    for (query, expected) in [
        ("?limit=0", 400),
        ("?limit=501", 400),
        ("?offset=abc", 400),
        ("?offset=99", 416),
        ("?offset=-1", 416),
    ] {
        let (status, body) = json(port, &format!("{path}{query}"));
        assert_eq!(status, expected, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    assert_eq!(
        json(
            port,
            &format!("/api/v1/topics/{topic}/partitions/x/records")
        )
        .0,
        400
    );
    assert_eq!(
        json(
            port,
            &format!("/api/v1/topics/{topic}/partitions/7/records")
        )
        .0,
        404
    );
    assert_eq!(json(port, "/api/v1/topics/no-such-topic").0, 404);

    let (status, described) = json(port, &format!("/api/v1/groups/{group}"));
    assert_eq!(status, 200, "{described}");
    assert_eq!(described["offsets"][0]["committed_offset"], 3);
    assert_eq!(described["offsets"][0]["lag"], 2);
    let (_, groups) = json(port, "/api/v1/groups");
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group_id"] == group.as_str()));
    assert_eq!(json(port, "/api/v1/groups/no-such-group").0, 404);
    broker.terminate();
}

/// The console's changes through `/api/v1`: create, refuse a duplicate and
/// bad input, reset a group's offsets (dry run first), delete; a POST that
/// is not JSON (what a cross-site form could send) is refused.
#[test]
fn the_json_api_creates_resets_and_deletes() {
    use rdkafka::consumer::Consumer;
    use rdkafka::TopicPartitionList;

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listeners = format!("http.listeners=http://127.0.0.1:{port}");
    let broker = BrokerProcess::spawn(
        free_port(),
        &tmp.path().join("data"),
        &tmp.path().join("broker.log"),
        &[&listeners],
    );
    let topic = topic_name("actions");
    let post = |path: &str, body: &str| {
        let (status, _, text) = http_with(port, "POST", path, Some("application/json"), body);
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let create = format!(
        r#"{{"name": "{topic}", "partitions": 2, "configs": {{"retention.ms": "60000"}}}}"#
    );
    let (status, created) = post("/api/v1/topics", &create);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["partitions"], 2);
    let (status, again) = post("/api/v1/topics", &create);
    assert_eq!(
        (status, again["kafka_error"].as_str()),
        (409, Some("TOPIC_ALREADY_EXISTS"))
    );
    let (status, bad) = post("/api/v1/topics", r#"{"name": "bad name!"}"#);
    assert_eq!(
        (status, bad["kafka_error"].as_str()),
        (400, Some("INVALID_TOPIC_EXCEPTION"))
    );
    let (status, bad) = post(
        "/api/v1/topics",
        r#"{"name": "x", "configs": {"retention.ms": "soon"}}"#,
    );
    assert_eq!(
        (status, bad["kafka_error"].as_str()),
        (400, Some("INVALID_CONFIG"))
    );
    assert_eq!(post("/api/v1/topics", "{not json").0, 400);
    assert_eq!(post("/api/v1/topics", r#"{"partitions": 1}"#).0, 400);
    let form = http_with(
        port,
        "POST",
        "/api/v1/topics",
        Some("application/x-www-form-urlencoded"),
        "name=evil",
    );
    assert_eq!(form.0, 415, "a form post is refused: {}", form.2);
    assert_eq!(http(port, "GET", "/api/v1/topics/evil").0, 404);

    let producer = producer(&broker.bootstrap(), &[("acks", "all")]);
    block_on(async {
        for i in 0..4 {
            producer
                .send(
                    FutureRecord::<(), _>::to(&topic)
                        .partition(0)
                        .payload(&format!("v{i}")),
                    Duration::from_secs(30),
                )
                .await
                .expect("record acknowledged");
        }
    });
    let group = format!("{topic}-group");
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, rdkafka::Offset::Offset(4))
        .unwrap();
    consumer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    drop(consumer);

    let reset = format!("/api/v1/groups/{group}/offsets/reset");
    let (status, preview) = post(
        &reset,
        &format!(r#"{{"topic": "{topic}", "to": "earliest", "dry_run": true}}"#),
    );
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["offsets"][0]["current"], 4);
    assert_eq!(preview["offsets"][0]["target"], 0);
    let (_, unchanged) = json(port, &format!("/api/v1/groups/{group}"));
    assert_eq!(
        unchanged["offsets"][0]["committed_offset"], 4,
        "a dry run changes nothing"
    );
    let (status, done) = post(
        &reset,
        &format!(r#"{{"topic": "{topic}", "to": "offset", "offset": 1, "partition": 0}}"#),
    );
    assert_eq!(status, 200, "{done}");
    let (_, moved) = json(port, &format!("/api/v1/groups/{group}"));
    assert_eq!(moved["offsets"][0]["committed_offset"], 1);
    assert_eq!(moved["offsets"][0]["lag"], 3);
    assert_eq!(
        post(
            &reset,
            &format!(r#"{{"topic": "{topic}", "to": "offset", "offset": 99}}"#)
        )
        .0,
        416
    );
    assert_eq!(
        post(
            &reset,
            &format!(r#"{{"topic": "{topic}", "to": "sideways"}}"#)
        )
        .0,
        400
    );
    assert_eq!(
        post(&reset, r#"{"topic": "no-such-topic", "to": "earliest"}"#).0,
        404
    );

    let (status, _, _) = http(port, "DELETE", &format!("/api/v1/topics/{topic}"));
    assert_eq!(status, 200);
    assert_eq!(http(port, "GET", &format!("/api/v1/topics/{topic}")).0, 404);
    assert_eq!(
        http(port, "DELETE", &format!("/api/v1/topics/{topic}")).0,
        404
    );
    broker.terminate();
}

/// A flood of HTTP requests from one address is answered 429, and HTTP
/// clients holding every allowed connection make further HTTP clients
/// wait, while Kafka clients are served throughout.
#[test]
fn http_clients_are_bounded_and_cannot_starve_kafka() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listeners = format!("http.listeners=http://127.0.0.1:{port}");
    let broker = BrokerProcess::spawn(
        free_port(),
        &tmp.path().join("data"),
        &tmp.path().join("broker.log"),
        &[
            &listeners,
            "http.max.requests.per.second=5",
            "http.max.connections=2",
        ],
    );
    let statuses: Vec<u16> = (0..20).map(|_| http(port, "GET", "/healthz").0).collect();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(limited >= 10, "a flood is limited: {statuses:?}");
    let (_, head, _) = http_with(port, "GET", "/healthz", None, "");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );

    // Two idle connections hold both slots: a third client waits.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        waiting,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    assert!(
        waiting.read_to_string(&mut answer).is_err() && answer.is_empty(),
        "no answer while both slots are held: {answer}"
    );

    // Kafka is served meanwhile.
    let producer = producer(&broker.bootstrap(), &[("acks", "all")]);
    let topic = topic_name("http-bounded");
    block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload("still served"),
                Duration::from_secs(30),
            )
            .await
            .expect("Kafka clients are served while HTTP is saturated");
    });

    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting
        .read_to_string(&mut answer)
        .expect("answered once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    broker.terminate();
}
