//! SASL OAUTHBEARER on an in-process broker, spoken on raw sockets (this
//! crate's librdkafka is built without OpenSSL, which its OAUTHBEARER
//! needs; the Java client's and confluent-kafka's logins are in
//! interop/jvm SecurityTest and scripts/oauth_check.py): unsecured JWTs,
//! tokens signed with ES256 checked against a JWKS file, the RFC 7628
//! refusal (an error challenge, then SASL_AUTHENTICATION_FAILED), a
//! rotated key picked up on first use, and the token's subject as the
//! principal the authorizer checks.

use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sluice_protocol::error;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, DescribeAclsRequest, RequestKind, ResponseKind, SaslAuthenticateRequest,
    SaslAuthenticateResponse,
};

use crate::common::InProcBroker;
use crate::protocol::{connect, expect_closed};
use crate::sasl::{call, handshake};

fn oauth_broker(extra: &[(&str, &str)]) -> InProcBroker {
    let mut settings = vec![
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.enabled.mechanisms", "OAUTHBEARER"),
        ("connection.failed.authentication.delay.ms", "0"),
        ("connections.max.reauth.ms", "3600000"),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:alice"),
    ];
    settings.extend_from_slice(extra);
    InProcBroker::start(&settings)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn unsigned(subject: &str, expires_s: u64) -> String {
    let claims = serde_json::json!({"sub": subject, "exp": expires_s, "iat": now_s()});
    format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&claims.to_string()))
}

/// One SaslAuthenticate v2 carrying the client-first message for `token`.
fn login(s: &mut TcpStream, token: &str) -> SaslAuthenticateResponse {
    assert_eq!(
        handshake(s, "OAUTHBEARER"),
        (error::NONE, vec!["OAUTHBEARER".to_string()])
    );
    send_token(
        s,
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes(),
    )
}

fn send_token(s: &mut TcpStream, bytes: Vec<u8>) -> SaslAuthenticateResponse {
    let body = RequestKind::SaslAuthenticate(
        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
    );
    let ResponseKind::SaslAuthenticate(r) = call(s, ApiKey::SaslAuthenticate, 2, body) else {
        panic!("not a SaslAuthenticate response")
    };
    r
}

/// A refused token: the JSON error as the challenge, then, once the
/// client acknowledges it, the failure itself and a closed connection.
fn expect_refused(s: &mut TcpStream, response: SaslAuthenticateResponse, what: &str) {
    assert_eq!(response.error_code, error::NONE, "{what}");
    assert_eq!(
        &response.auth_bytes[..],
        br#"{"status":"invalid_token"}"#,
        "{what}"
    );
    let last = send_token(s, vec![1]);
    assert_eq!(last.error_code, error::SASL_AUTHENTICATION_FAILED, "{what}");
    assert_eq!(
        last.error_message.as_deref(),
        Some(r#"{"status":"invalid_token"}"#)
    );
    expect_closed(s, what);
}

/// DescribeAcls needs Describe on the cluster: what a super user has.
fn describe_acls_code(s: &mut TcpStream) -> i16 {
    let request = RequestKind::DescribeAcls(
        DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    );
    let ResponseKind::DescribeAcls(r) = call(s, ApiKey::DescribeAcls, 3, request) else {
        panic!("not a DescribeAcls response")
    };
    r.error_code
}

#[test]
fn unsecured_tokens_log_in_as_their_subject() {
    let broker = oauth_broker(&[]);
    let addr = broker.bootstrap();

    let mut alice = connect(&addr);
    let ok = login(&mut alice, &unsigned("alice", now_s() + 60));
    assert_eq!(ok.error_code, error::NONE, "{ok:?}");
    assert!(ok.auth_bytes.is_empty());
    assert!(
        (1..=60_000).contains(&ok.session_lifetime_ms),
        "the session ends with the token: {}",
        ok.session_lifetime_ms
    );
    assert_eq!(describe_acls_code(&mut alice), error::NONE);

    let mut bob = connect(&addr);
    assert_eq!(
        login(&mut bob, &unsigned("bob", now_s() + 60)).error_code,
        error::NONE
    );
    assert_eq!(
        describe_acls_code(&mut bob),
        error::CLUSTER_AUTHORIZATION_FAILED
    );

    let mut late = connect(&addr);
    let expired = login(&mut late, &unsigned("alice", now_s() - 1));
    expect_refused(&mut late, expired, "an expired token");

    let mut garbage = connect(&addr);
    handshake(&mut garbage, "OAUTHBEARER");
    let malformed = send_token(&mut garbage, b"n,,auth=Bearer x".to_vec());
    assert_eq!(malformed.error_code, error::SASL_AUTHENTICATION_FAILED);
    expect_closed(&mut garbage, "a malformed client-first message");
}

/// Signs tokens with one ES256 key, the way an identity provider would.
struct Issuer {
    key: EcdsaKeyPair,
    kid: &'static str,
}

impl Issuer {
    fn new(kid: &'static str) -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Issuer { key, kid }
    }

    fn jwk(&self) -> serde_json::Value {
        let point = self.key.public_key().as_ref();
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    fn token(&self, subject: &str, expires_s: u64) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let claims = serde_json::json!({
            "sub": subject, "iat": now_s(), "exp": expires_s, "iss": "https://idp.test", "aud": "sluice",
        });
        let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn write_jwks(path: &std::path::Path, issuers: &[&Issuer]) {
    let keys: Vec<_> = issuers.iter().map(|i| i.jwk()).collect();
    std::fs::write(path, serde_json::json!({ "keys": keys }).to_string()).unwrap();
}

#[test]
fn signed_tokens_are_checked_against_the_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new("key-1");
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[&issuer]);
    let url = format!("file://{}", jwks.display());
    let broker = oauth_broker(&[
        ("sasl.oauthbearer.jwks.endpoint.url", &url),
        ("sasl.oauthbearer.expected.audience", "sluice"),
        ("sasl.oauthbearer.expected.issuer", "https://idp.test"),
    ]);
    let addr = broker.bootstrap();
    let hour = now_s() + 3600;

    let mut alice = connect(&addr);
    assert_eq!(
        login(&mut alice, &issuer.token("alice", hour)).error_code,
        error::NONE
    );
    assert_eq!(describe_acls_code(&mut alice), error::NONE);

    let forger = Issuer::new("key-1");
    for (token, what) in [
        (forger.token("alice", hour), "signed by another key"),
        (
            issuer.token("alice", now_s() - 60),
            "expired past the clock skew",
        ),
        (unsigned("alice", hour), "unsigned"),
    ] {
        let mut s = connect(&addr);
        let response = login(&mut s, &token);
        expect_refused(&mut s, response, what);
    }

    // The provider rotates its key: the first token under the new key id
    // makes the broker fetch the key set again.
    let rotated = Issuer::new("key-2");
    write_jwks(&jwks, &[&issuer, &rotated]);
    let mut s = connect(&addr);
    assert_eq!(
        login(&mut s, &rotated.token("alice", hour)).error_code,
        error::NONE
    );
    assert_eq!(
        describe_acls_code(&mut alice),
        error::NONE,
        "the first session goes on"
    );
}
