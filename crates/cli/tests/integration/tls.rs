//! TLS listeners with a rustls client on raw sockets: one broker serving
//! PLAINTEXT and SSL at once describes itself by the listener a client
//! connected to; client certificates are required, checked against the
//! trust store and refused from another CA; TLS garbage, a silent
//! handshake and TLS on the plaintext port close only their own
//! connection; bad key and trust store settings refuse to start with a
//! clear message. Real clients (confluent-kafka, kcat) over SSL and
//! SASL_SSL are in scripts/interop.sh: this crate's librdkafka has no
//! OpenSSL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice_broker::config::BrokerConfig;
use sluice_broker::Broker;
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, MetadataRequest, RequestHeader, RequestKind, ResponseKind,
};

use crate::common::{block_on, InProcBroker, PATIENCE};
use crate::protocol::{api_versions_request, connect, expect_closed, read_frame};

/// A CA and, signed by it, a broker certificate for 127.0.0.1 and a client
/// certificate, written as `sluice dev certs` writes them.
fn make_certs(dir: &Path) {
    let (ok, out) = crate::common::sluice(&[
        "dev".as_ref(),
        "certs".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
    ]);
    assert!(ok, "sluice dev certs: {out}");
}

fn tls_broker(certs: &Path, client_auth: &str) -> (InProcBroker, String, String) {
    let keystore = certs.join("broker.pem");
    let truststore = certs.join("ca.pem");
    let broker = InProcBroker::start(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.location", keystore.to_str().unwrap()),
        ("ssl.truststore.location", truststore.to_str().unwrap()),
        ("ssl.client.auth", client_auth),
        ("socket.request.read.timeout.ms", "1000"),
    ]);
    let addrs = broker.broker().listener_addrs().to_vec();
    assert_eq!(addrs[0].0, "PLAINTEXT");
    assert_eq!(addrs[1].0, "SSL");
    let (plain, ssl) = (addrs[0].1.to_string(), addrs[1].1.to_string());
    (broker, plain, ssl)
}

/// A rustls client trusting `ca_dir`'s CA, presenting `client_dir`'s
/// client certificate if given.
fn client_config(ca_dir: &Path, client_dir: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client_dir {
        None => builder.with_no_client_auth(),
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("client-cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(dir.join("client-key.pem")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: &str, config: Arc<rustls::ClientConfig>) -> TlsStream {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(connection, connect(addr))
}

fn tls_call(s: &mut TlsStream, request: &Bytes) -> std::io::Result<Bytes> {
    s.write_all(request)?;
    s.flush()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

fn metadata_request() -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(7);
    encode_request(
        &header,
        &RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
    )
    .unwrap()
}

fn advertised_ports(response: Bytes) -> Vec<i32> {
    match decode_response(ApiKey::Metadata, 12, response).unwrap().1 {
        ResponseKind::Metadata(m) => m.brokers.iter().map(|b| b.port).collect(),
        other => panic!("not a Metadata response: {other:?}"),
    }
}

fn port(addr: &str) -> i32 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn one_broker_serves_plaintext_and_mtls_and_describes_itself_per_listener() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (_broker, plain, ssl) = tls_broker(dir.path(), "required");

    let mut s = tls_connect(&ssl, client_config(dir.path(), Some(dir.path())));
    let versions = tls_call(&mut s, &api_versions_request(1)).expect("ApiVersions over TLS");
    assert!(!versions.is_empty());
    let ports = advertised_ports(tls_call(&mut s, &metadata_request()).unwrap());
    assert_eq!(ports, [port(&ssl)], "the SSL listener advertises itself");

    let mut p = connect(&plain);
    p.write_all(&metadata_request()).unwrap();
    let ports = advertised_ports(read_frame(&mut p).expect("Metadata over PLAINTEXT"));
    assert_eq!(
        ports,
        [port(&plain)],
        "the PLAINTEXT listener advertises itself"
    );
}

#[test]
fn refused_tls_connections_close_alone() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    make_certs(other.path());
    let (_broker, plain, ssl) = tls_broker(dir.path(), "required");
    // Open before the hostile ones, used after them.
    let mut bystander = tls_connect(&ssl, client_config(dir.path(), Some(dir.path())));
    tls_call(&mut bystander, &api_versions_request(1)).unwrap();

    // No client certificate, though one is required.
    let mut anonymous = tls_connect(&ssl, client_config(dir.path(), None));
    assert!(tls_call(&mut anonymous, &api_versions_request(2)).is_err());
    // A client certificate from another CA.
    let mut stranger = tls_connect(&ssl, client_config(dir.path(), Some(other.path())));
    assert!(tls_call(&mut stranger, &api_versions_request(3)).is_err());
    // A client that trusts another CA refuses the broker.
    let mut doubter = tls_connect(&ssl, client_config(other.path(), Some(dir.path())));
    assert!(tls_call(&mut doubter, &api_versions_request(4)).is_err());
    // Plaintext Kafka on the TLS port, TLS garbage, and a silent client.
    let mut plaintext = connect(&ssl);
    plaintext.write_all(&api_versions_request(5)).unwrap();
    expect_alert_then_close(&mut plaintext, "plaintext request on the SSL listener");
    let mut garbage = connect(&ssl);
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    expect_alert_then_close(&mut garbage, "a garbled TLS record");
    let mut silent = connect(&ssl);
    let started = Instant::now();
    expect_closed(
        &mut silent,
        "no handshake within socket.request.read.timeout.ms",
    );
    assert!(started.elapsed() < PATIENCE);
    // A TLS handshake on the plaintext port.
    let mut wrong_port = tls_connect(&plain, client_config(dir.path(), Some(dir.path())));
    assert!(tls_call(&mut wrong_port, &api_versions_request(6)).is_err());

    let ports = advertised_ports(tls_call(&mut bystander, &metadata_request()).unwrap());
    assert_eq!(ports, [port(&ssl)], "the earlier connection is unaffected");
}

/// The broker answers at most a TLS alert record (content type 21), then
/// closes.
fn expect_alert_then_close(s: &mut TcpStream, what: &str) {
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: expected the connection to close: {e}"),
    }
    assert!(
        answer.is_empty() || (answer[0] == 0x15 && answer.len() <= 7),
        "{what}: expected a TLS alert and the close, got {answer:?}"
    );
}

fn start_error(settings: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![
        ("listeners", "SSL://127.0.0.1:0"),
        ("log.dirs", dir.path().to_str().unwrap()),
        ("http.listeners", ""),
    ];
    all.extend_from_slice(settings);
    let config = BrokerConfig::from_settings(all.iter().copied()).expect("valid settings");
    match block_on(Broker::start(config)) {
        Ok(_) => panic!("the broker started with {settings:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_key_and_trust_store_settings_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let keystore = dir.path().join("broker.pem");
    let keystore = keystore.to_str().unwrap();
    assert!(start_error(&[]).contains("needs the broker's key and certificate"));
    assert!(
        start_error(&[("ssl.keystore.location", "/nonexistent/broker.pem")])
            .contains("/nonexistent/broker.pem")
    );
    let certificate_only = dir.path().join("broker-cert.pem");
    assert!(
        start_error(&[("ssl.keystore.location", certificate_only.to_str().unwrap())])
            .contains("no readable PEM private key")
    );
    let encrypted = dir.path().join("encrypted.pem");
    std::fs::write(
        &encrypted,
        format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n{}",
            std::fs::read_to_string(dir.path().join("broker-cert.pem")).unwrap()
        ),
    )
    .unwrap();
    assert!(
        start_error(&[("ssl.keystore.location", encrypted.to_str().unwrap())])
            .contains("encrypted")
    );
    assert!(start_error(&[
        ("ssl.keystore.location", keystore),
        ("ssl.client.auth", "required")
    ])
    .contains("a trust store is needed"));
    let rules = BrokerConfig::from_settings([("ssl.principal.mapping.rules", "RULE:broken")]);
    assert!(rules.unwrap_err().contains("has no '/' after its pattern"));
    // The key of another certificate does not fit.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let mismatched = dir.path().join("mismatched.pem");
    std::fs::write(
        &mismatched,
        std::fs::read_to_string(other.path().join("broker-key.pem")).unwrap()
            + &std::fs::read_to_string(dir.path().join("broker-cert.pem")).unwrap(),
    )
    .unwrap();
    assert!(
        start_error(&[("ssl.keystore.location", mismatched.to_str().unwrap())])
            .contains("does not fit")
    );
}

/// `sluice` against `bootstrap` with client properties: (success, output).
fn sluice_secured(bootstrap: &str, properties: &[String], args: &[&str]) -> (bool, String) {
    let mut all: Vec<std::ffi::OsString> = vec!["--bootstrap-server".into(), bootstrap.into()];
    for p in properties {
        all.push("-X".into());
        all.push(p.into());
    }
    all.extend(args.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = all.iter().map(|a| a.as_os_str()).collect();
    crate::common::sluice(&refs)
}

#[test]
fn the_cli_and_sluice_client_log_in_over_mtls_and_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let certs = dir.path().display().to_string();
    let keystore = format!("{certs}/broker.pem");
    let truststore = format!("{certs}/ca.pem");
    let broker = InProcBroker::start(&[
        ("listeners", "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.location", &truststore),
        ("ssl.client.auth", "requested"),
        ("connection.failed.authentication.delay.ms", "0"),
    ]);
    let users: Vec<sluice_broker::ScramBootstrap> =
        vec!["SCRAM-SHA-512=[name=admin,password=admin-secret]"
            .parse()
            .unwrap()];
    block_on(broker.broker().add_scram_if_absent(&users)).unwrap();
    let addrs = broker.broker().listener_addrs().to_vec();
    let (ssl, sasl_ssl) = (addrs[0].1.to_string(), addrs[1].1.to_string());

    let mtls: Vec<String> = vec![
        "security.protocol=SSL".into(),
        format!("ssl.ca.location={certs}/ca.pem"),
        format!("ssl.certificate.location={certs}/client-cert.pem"),
        format!("ssl.key.location={certs}/client-key.pem"),
    ];
    let (ok, out) = sluice_secured(
        &ssl,
        &mtls,
        &["topic", "create", "secured", "--partitions", "2"],
    );
    assert!(ok, "topic create over mTLS: {out}");
    let admin: Vec<String> = vec![
        "security.protocol=SASL_SSL".into(),
        "sasl.mechanism=SCRAM-SHA-512".into(),
        "sasl.username=admin".into(),
        "sasl.password=admin-secret".into(),
        format!("ssl.ca.location={certs}/ca.pem"),
    ];
    let (ok, out) = sluice_secured(&sasl_ssl, &admin, &["topic", "list"]);
    assert!(
        ok && out.contains("secured"),
        "topic list over SASL_SSL: {out}"
    );
    let mut wrong = admin.clone();
    wrong[3] = "sasl.password=wrong".into();
    let (ok, out) = sluice_secured(&sasl_ssl, &wrong, &["topic", "list"]);
    assert!(!ok && out.contains("SASL_AUTHENTICATION_FAILED"), "{out}");
    let mut untrusting = mtls.clone();
    untrusting[1] = format!("ssl.ca.location={certs}/client-cert.pem");
    let (ok, out) = sluice_secured(&ssl, &untrusting, &["topic", "list"]);
    assert!(!ok && out.contains("TLS handshake failed"), "{out}");
    let (ok, out) = sluice_secured(&ssl, &["security.protocol=SSL".into()], &["topic", "list"]);
    assert!(!ok && out.contains("ssl.ca.location"), "{out}");

    // The client crate, directly: each listener describes itself.
    let security = |props: &[String]| {
        sluice_client::Security::from_properties(props.iter().map(|p| p.split_once('=').unwrap()))
            .unwrap()
    };
    block_on(async {
        let mut config = sluice_client::ClientConfig::new(&sasl_ssl);
        config.security = security(&admin);
        let cluster = sluice_client::Cluster::connect(config).await.unwrap();
        let metadata = cluster.refresh_metadata(None).await.unwrap();
        assert_eq!(
            metadata.brokers.values().next().unwrap().port,
            i32::from(addrs[1].1.port())
        );
        let mut config = sluice_client::ClientConfig::new(&ssl);
        config.security = security(&mtls);
        let cluster = sluice_client::Cluster::connect(config).await.unwrap();
        let metadata = cluster.refresh_metadata(None).await.unwrap();
        assert_eq!(
            metadata.brokers.values().next().unwrap().port,
            i32::from(addrs[0].1.port())
        );
    });
}

/// A large Fetch response over TLS arrives whole to a slow reader: the TLS
/// write path under back-pressure (the socket full for most of a 12 MB
/// response), which must flush what the TLS session holds back.
#[test]
fn a_slow_reader_gets_a_whole_large_fetch_over_tls() {
    use sluice_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use sluice_protocol::kafka_protocol::messages::{FetchRequest, TopicName};
    use sluice_protocol::kafka_protocol::protocol::StrBytes;

    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (_broker, plain, ssl) = tls_broker(dir.path(), "none");
    let (ok, out) = sluice_secured(&plain, &[], &["topic", "create", "bulk"]);
    assert!(ok, "{out}");
    let (ok, out) = sluice_secured(
        &plain,
        &[],
        &[
            "perf",
            "produce",
            "--topic",
            "bulk",
            "--num-records",
            "12000",
            "--record-size",
            "1024",
            "--acks",
            "1",
        ],
    );
    assert!(ok, "{out}");
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("bulk")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 << 20)])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(12)
        .with_correlation_id(9);
    let request = encode_request(&header, &RequestKind::Fetch(fetch)).unwrap();
    let mut s = tls_connect(&ssl, client_config(dir.path(), None));
    s.write_all(&request).unwrap();
    s.flush().unwrap();
    // Let the socket fill, then read in small sips so it stays full while
    // the broker writes the rest.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let len = i32::from_be_bytes(len) as usize;
    assert!(
        len > 12_000 * 1024,
        "a response of {len} bytes holds every record"
    );
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let end = (got + 16 * 1024).min(len);
        let n = s
            .read(&mut body[got..end])
            .expect("the response's rest arrives");
        assert!(
            n > 0,
            "the connection closed {got} bytes into a {len}-byte response"
        );
        got += n;
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    match decode_response(ApiKey::Fetch, 12, Bytes::from(body))
        .unwrap()
        .1
    {
        ResponseKind::Fetch(r) => assert_eq!(r.responses[0].partitions[0].high_watermark, 12_000),
        other => panic!("not a Fetch response: {other:?}"),
    }
}
