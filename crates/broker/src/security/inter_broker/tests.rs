//! A broker whose inter-broker listener is SASL_SSL with mTLS, and what
//! another broker's connection to it needs: the authority, its own
//! certificate, the password, and a certificate naming the host (unless
//! `ssl.endpoint.identification.algorithm` is empty).

use super::InterBrokerSecurity;
use crate::config::BrokerConfig;
use crate::replication::peer::Peer;
use crate::server::Broker;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::io;
use std::time::Duration;

const JAAS: &str = "listener.name.internal.scram-sha-512.sasl.jaas.config";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Pki {
    ca: String,
    chain: String,
    key: String,
}

/// A CA and a broker certificate for 127.0.0.1 only (not "localhost").
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let chain = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.pem(),
        chain: chain.pem(),
        key: key.serialize_pem(),
    }
}

fn settings(pki: &Pki, dir: &std::path::Path) -> Vec<(String, String)> {
    [
        ("listeners", "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
        ),
        ("inter.broker.listener.name", "INTERNAL"),
        ("http.listeners", "http://127.0.0.1:0"),
        ("ssl.keystore.certificate.chain", &pki.chain),
        ("ssl.keystore.key", &pki.key),
        ("ssl.truststore.certificates", &pki.ca),
        ("ssl.client.auth", "required"),
        ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
        (
            JAAS,
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"broker-secret\";",
        ),
        ("log.dirs", dir.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn with(mut settings: Vec<(String, String)>, changes: &[(&str, Option<&str>)]) -> BrokerConfig {
    for (name, value) in changes {
        settings.retain(|(k, _)| k != name);
        if let Some(value) = value {
            settings.push((name.to_string(), value.to_string()));
        }
    }
    BrokerConfig::from_settings(settings).unwrap()
}

async fn start(settings: &[(String, String)]) -> (Broker, u16) {
    let broker = Broker::start(BrokerConfig::from_settings(settings.to_vec()).unwrap())
        .await
        .unwrap();
    let user = "SCRAM-SHA-512=[name=broker,password=broker-secret]"
        .parse()
        .unwrap();
    broker.add_scram_if_absent(&[user]).await.unwrap();
    let port = broker
        .listener_addrs()
        .iter()
        .find(|(name, _)| name == "INTERNAL")
        .unwrap()
        .1
        .port();
    (broker, port)
}

/// Connects as a peer broker configured by `config` and asks for metadata.
async fn reach(config: &BrokerConfig, host: &str, port: u16) -> io::Result<()> {
    let security = InterBrokerSecurity::from_config(config, &config.listeners().unwrap())
        .map_err(io::Error::other)?;
    let mut peer = Peer::connect((host, port), &security, TIMEOUT, "test-peer".into()).await?;
    let answer = peer
        .call(
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(MetadataRequest::default()),
            TIMEOUT,
        )
        .await?;
    assert!(matches!(answer, ResponseKind::Metadata(_)));
    Ok(())
}

#[tokio::test]
async fn a_peer_reaches_a_sasl_ssl_listener_only_with_every_credential() {
    let certs = pki();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&certs, dir.path());
    let (broker, port) = start(&settings).await;

    let config = with(settings.clone(), &[]);
    reach(&config, "127.0.0.1", port)
        .await
        .expect("the right credentials log in");

    let wrong_password = with(
        settings.clone(),
        &[(
            JAAS,
            Some("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"guess\";"),
        )],
    );
    let err = reach(&wrong_password, "127.0.0.1", port).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");

    // The certificate names 127.0.0.1, not localhost.
    let err = reach(&config, "localhost", port).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let no_host_check = with(
        settings.clone(),
        &[("ssl.endpoint.identification.algorithm", Some(""))],
    );
    reach(&no_host_check, "localhost", port)
        .await
        .expect("without the host name check");

    let other = pki();
    let untrusted = with(
        settings.clone(),
        &[("ssl.truststore.certificates", Some(&other.ca))],
    );
    let err = reach(&untrusted, "127.0.0.1", port).await.unwrap_err();
    // Both authorities have the same (empty) name: the signature fails.
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    // ssl.client.auth=required: no certificate, no connection.
    let anonymous = with(
        settings.clone(),
        &[
            ("ssl.keystore.certificate.chain", None),
            ("ssl.keystore.key", None),
        ],
    );
    assert!(reach(&anonymous, "127.0.0.1", port).await.is_err());

    broker.shutdown().await.unwrap();
}

#[test]
fn settings_a_sasl_inter_broker_listener_needs_are_named() {
    let certs = pki();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&certs, dir.path());
    let refusal = |changes: &[(&str, Option<&str>)]| {
        let config = with(settings.clone(), changes);
        InterBrokerSecurity::from_config(&config, &config.listeners().unwrap())
            .err()
            .expect("refused")
    };
    let err = refusal(&[("sasl.mechanism.inter.broker.protocol", None)]);
    assert!(err.contains("GSSAPI"), "{err}");
    let err = refusal(&[("sasl.enabled.mechanisms", Some("PLAIN"))]);
    assert!(err.contains("not in sasl.enabled.mechanisms"), "{err}");
    let err = refusal(&[(JAAS, None)]);
    assert!(err.contains(JAAS), "{err}");
    let err = refusal(&[(
        JAAS,
        Some(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\";",
        ),
    )]);
    assert!(err.contains("no password"), "{err}");
    let err = refusal(&[(
        JAAS,
        Some("org.apache.kafka.common.security.plain.PlainLoginModule required username=\"b\" password=\"p\";"),
    )]);
    assert!(err.contains("ScramLoginModule"), "{err}");
}

/// The settings of a voter whose CONTROLLER listener is SSL.
fn controller_settings(certs: &Pki, dir: &std::path::Path) -> Vec<(String, String)> {
    let mut settings = settings(certs, dir);
    settings.retain(|(k, _)| k != "listeners" && k != "listener.security.protocol.map");
    for (k, v) in [
        (
            "listeners",
            "INTERNAL://127.0.0.1:0,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "INTERNAL:SASL_SSL,CONTROLLER:SSL",
        ),
        ("controller.listener.names", "CONTROLLER"),
    ] {
        settings.push((k.to_string(), v.to_string()));
    }
    settings
}

/// Opens a voter connection secured by `client` to one accepted with
/// `server`, and sends a byte through it.
async fn voter_link(client: &BrokerConfig, server: &BrokerConfig) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let security = |config: &BrokerConfig| {
        let tls =
            std::sync::Arc::new(crate::security::tls::TlsServer::from_config(config).unwrap());
        super::quorum_security(config, &config.listeners().unwrap(), Some(&tls)).unwrap()
    };
    let (outgoing, incoming) = (security(client), security(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut stream = incoming.accept(tcp).await?;
        let mut byte = [0; 1];
        stream.read_exact(&mut byte).await?;
        Ok::<_, io::Error>(byte[0])
    });
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let sent = async {
        let mut stream = outgoing.connect(tcp, "127.0.0.1".to_string()).await?;
        stream.write_all(&[7]).await?;
        stream.flush().await
    }
    .await;
    let received = accepted.await.unwrap();
    sent?;
    assert_eq!(received?, 7);
    Ok(())
}

#[tokio::test]
async fn voters_speak_tls_only_with_a_certificate_the_others_trust() {
    let certs = pki();
    let dir = tempfile::tempdir().unwrap();
    let settings = controller_settings(&certs, dir.path());
    let voter = with(settings.clone(), &[]);
    voter_link(&voter, &voter)
        .await
        .expect("two voters of one CA");

    let other = pki();
    let stranger = with(
        settings.clone(),
        &[
            ("ssl.keystore.certificate.chain", Some(&other.chain)),
            ("ssl.keystore.key", Some(&other.key)),
            ("ssl.truststore.certificates", Some(&other.ca)),
        ],
    );
    assert!(voter_link(&stranger, &voter).await.is_err());
    assert!(voter_link(&voter, &stranger).await.is_err());
}
