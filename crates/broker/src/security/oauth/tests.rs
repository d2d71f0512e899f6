use super::jwks::test_keys::{key_set, TestKey};
use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

const NOW_MS: i64 = 1_800_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;

fn unsigned(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn unsecured(options: UnsecuredOptions) -> Validator {
    Validator::Unsecured(options)
}

#[tokio::test]
async fn the_unsecured_validator_takes_the_subject_and_expiry() {
    let token = unsigned(json!({"sub": "alice", "exp": NOW_S + 60, "iat": NOW_S}));
    let valid = unsecured(UnsecuredOptions::default())
        .validate(&token, NOW_MS)
        .await
        .unwrap();
    assert_eq!(valid.principal, "alice");
    assert_eq!(valid.expires_ms, (NOW_S + 60) * 1000);
}

#[tokio::test]
async fn the_unsecured_validator_refuses_what_kafkas_does() {
    let validator = unsecured(UnsecuredOptions::default());
    let good_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"sub": "a", "exp": NOW_S + 60}).to_string());
    for (token, why) in [
        (unsigned(json!({"sub": "alice", "exp": NOW_S})), "expired"),
        (unsigned(json!({"sub": "alice"})), "no exp"),
        (unsigned(json!({"exp": NOW_S + 60})), "no sub"),
        (
            unsigned(json!({"sub": " ", "exp": NOW_S + 60})),
            "blank sub",
        ),
        (
            unsigned(json!({"sub": 7, "exp": NOW_S + 60})),
            "sub not a string",
        ),
        (
            unsigned(json!({"sub": "a", "exp": "soon"})),
            "exp not a number",
        ),
        (
            unsigned(json!({"sub": "a", "exp": NOW_S + 60, "iat": NOW_S + 10})),
            "iat in the future",
        ),
        (
            unsigned(json!({"sub": "a", "exp": NOW_S + 60, "iat": NOW_S + 60})),
            "exp not after iat",
        ),
        (
            format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#)),
            "alg not none",
        ),
        (format!("{good_header}.{claims}.c2ln"), "a signature"),
        (format!("{good_header}.{claims}"), "two parts"),
        (format!("{good_header}.!!.",), "bad base64"),
        (
            format!("{good_header}.{}.", URL_SAFE_NO_PAD.encode("[1]")),
            "claims not an object",
        ),
    ] {
        let refused = validator.validate(&token, NOW_MS).await;
        let rejection = refused.expect_err(why);
        assert_eq!(
            rejection.challenge(),
            r#"{"status":"invalid_token"}"#,
            "{why}"
        );
    }
}

#[tokio::test]
async fn unsecured_options_come_from_the_jaas_entry() {
    let options = UnsecuredOptions::from_jaas(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorPrincipalClaimName=\"user\" unsecuredValidatorRequiredScope=\"kafka admin\" unsecuredValidatorAllowableClockSkewMs=\"5000\";",
    )
    .unwrap();
    let validator = unsecured(options);
    let ok = unsigned(json!({"user": "bob", "exp": NOW_S - 2, "scope": ["kafka", "admin", "x"]}));
    assert_eq!(
        validator.validate(&ok, NOW_MS).await.unwrap().principal,
        "bob"
    );
    let short = unsigned(json!({"user": "bob", "exp": NOW_S + 60, "scope": "kafka"}));
    let rejection = validator.validate(&short, NOW_MS).await.unwrap_err();
    assert_eq!(
        rejection.challenge(),
        r#"{"status":"insufficient_scope", "scope":"[kafka, admin]"}"#
    );
    let bad_skew = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorAllowableClockSkewMs=\"-1\";";
    assert!(UnsecuredOptions::from_jaas(bad_skew).is_err());
}

fn checks() -> SignedChecks {
    SignedChecks {
        sub_claim: "sub".into(),
        scope_claim: "scope".into(),
        expected_audience: Vec::new(),
        expected_issuer: None,
        clock_skew_ms: 30_000,
    }
}

fn file_keys(dir: &std::path::Path, keys: &[&TestKey]) -> (std::path::PathBuf, Arc<JwksKeys>) {
    let path = dir.join("jwks.json");
    std::fs::write(&path, key_set(keys)).unwrap();
    let config = crate::config::BrokerConfig::default();
    let url = format!("file://{}", path.display());
    (
        path,
        Arc::new(JwksKeys::from_config(&url, &config).unwrap()),
    )
}

#[tokio::test]
async fn signed_tokens_are_checked_against_the_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new("k1");
    let (_, keys) = file_keys(dir.path(), &[&key]);
    assert_eq!(keys.load().await.unwrap(), 1);
    let validator = Validator::Signed(checks(), Arc::clone(&keys));
    let claims = json!({"sub": "carol", "exp": NOW_S + 300, "iat": NOW_S});
    let valid = validator
        .validate(&key.sign(&claims), NOW_MS)
        .await
        .unwrap();
    assert_eq!(valid.principal, "carol");

    let stranger = TestKey::new("k1");
    assert!(
        validator
            .validate(&stranger.sign(&claims), NOW_MS)
            .await
            .is_err(),
        "another key, same kid"
    );
    let mut tampered = key.sign(&claims);
    let forged = unsigned(json!({"sub": "root", "exp": NOW_S + 300, "iat": NOW_S}));
    let forged_claims = forged.split('.').nth(1).unwrap();
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert!(
        validator.validate(&tampered, NOW_MS).await.is_err(),
        "claims swapped"
    );
    assert!(
        validator.validate(&forged, NOW_MS).await.is_err(),
        "alg none"
    );
    for (claims, why) in [
        (
            json!({"sub": "c", "exp": NOW_S - 31, "iat": NOW_S - 100}),
            "expired past the skew",
        ),
        (json!({"sub": "c", "exp": NOW_S + 300}), "no iat"),
        (
            json!({"sub": "c", "exp": NOW_S + 300, "iat": NOW_S, "nbf": NOW_S + 60}),
            "not yet valid",
        ),
        (
            json!({"sub": "c", "exp": NOW_S + 300, "iat": NOW_S, "aud": "kafka"}),
            "an audience nobody expects",
        ),
        (json!({"exp": NOW_S + 300, "iat": NOW_S}), "no subject"),
    ] {
        assert!(
            validator
                .validate(&key.sign(&claims), NOW_MS)
                .await
                .is_err(),
            "{why}"
        );
    }
    let within_skew = json!({"sub": "c", "exp": NOW_S - 10, "iat": NOW_S - 100});
    assert!(validator
        .validate(&key.sign(&within_skew), NOW_MS)
        .await
        .is_ok());
}

#[tokio::test]
async fn audience_and_issuer_are_matched_when_expected() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new("k1");
    let (_, keys) = file_keys(dir.path(), &[&key]);
    keys.load().await.unwrap();
    let checks = SignedChecks {
        expected_audience: vec!["kafka".into(), "other".into()],
        expected_issuer: Some("https://idp.example".into()),
        ..checks()
    };
    let validator = Validator::Signed(checks, keys);
    let base = |aud: serde_json::Value, iss: &str| json!({"sub": "c", "exp": NOW_S + 300, "iat": NOW_S, "aud": aud, "iss": iss});
    let ok = base(json!(["x", "kafka"]), "https://idp.example");
    assert!(validator.validate(&key.sign(&ok), NOW_MS).await.is_ok());
    let wrong_aud = base(json!("x"), "https://idp.example");
    assert!(validator
        .validate(&key.sign(&wrong_aud), NOW_MS)
        .await
        .is_err());
    let wrong_iss = base(json!("kafka"), "https://evil.example");
    assert!(validator
        .validate(&key.sign(&wrong_iss), NOW_MS)
        .await
        .is_err());
    let no_aud =
        json!({"sub": "c", "exp": NOW_S + 300, "iat": NOW_S, "iss": "https://idp.example"});
    assert!(validator
        .validate(&key.sign(&no_aud), NOW_MS)
        .await
        .is_err());
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let old = TestKey::new("old");
    let (path, keys) = file_keys(dir.path(), &[&old]);
    keys.load().await.unwrap();
    let validator = Validator::Signed(checks(), keys);
    let new = TestKey::new("new");
    std::fs::write(&path, key_set(&[&old, &new])).unwrap();
    let claims = json!({"sub": "dave", "exp": NOW_S + 300, "iat": NOW_S});
    assert!(validator.validate(&new.sign(&claims), NOW_MS).await.is_ok());
    // Another unknown key id within the on-demand interval fetches nothing.
    let newer = TestKey::new("newer");
    std::fs::write(&path, key_set(&[&old, &new, &newer])).unwrap();
    assert!(validator
        .validate(&newer.sign(&claims), NOW_MS)
        .await
        .is_err());
}

#[tokio::test]
async fn keys_come_over_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = TestKey::new("http");
    let body = key_set(&[&key]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 4096];
        let n = socket.read(&mut request).await.unwrap();
        let request = String::from_utf8_lossy(&request[..n]).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        request
    });
    let url = format!("http://127.0.0.1:{port}/certs?x=1");
    let keys = JwksKeys::from_config(&url, &crate::config::BrokerConfig::default()).unwrap();
    assert_eq!(keys.load().await.unwrap(), 1);
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /certs?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    let validator = Validator::Signed(checks(), Arc::new(keys));
    let claims = json!({"sub": "erin", "exp": NOW_S + 300, "iat": NOW_S});
    assert!(validator.validate(&key.sign(&claims), NOW_MS).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_or_broken_key_set_is_a_clear_error() {
    let config = crate::config::BrokerConfig::from_settings([(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        "50",
    )])
    .unwrap();
    let unreachable = JwksKeys::from_config("http://127.0.0.1:1/jwks", &config).unwrap();
    let e = unreachable.load().await.unwrap_err();
    assert!(
        e.contains("cannot fetch the JWKS from http://127.0.0.1:1/jwks"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, "{\"no\": 1}").unwrap();
    let broken = JwksKeys::from_config(&format!("file:{}", path.display()), &config).unwrap();
    let e = broken.load().await.unwrap_err();
    assert!(e.contains("no \"keys\" array"), "{e}");
    for bad in ["ftp://x/y", "file:relative", "not a url"] {
        assert!(JwksKeys::from_config(bad, &config).is_err(), "{bad}");
    }
}

#[test]
fn listeners_pick_their_validator() {
    let config = crate::config::BrokerConfig::from_settings([
        ("listener.name.dev.oauthbearer.sasl.jaas.config", "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope=\"k\";"),
    ])
    .unwrap();
    let validators = OAuthValidators::from_config(&config).unwrap();
    assert!(
        matches!(validators.for_listener("DEV"), Validator::Unsecured(o) if o.required_scope == ["k"])
    );
    assert!(
        matches!(validators.for_listener("OTHER"), Validator::Unsecured(o) if o.required_scope.is_empty())
    );
    assert!(validators.accepts_unsigned());

    let signed_without_keys = crate::config::BrokerConfig::from_settings([(
        "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    )])
    .unwrap();
    let e = OAuthValidators::from_config(&signed_without_keys).unwrap_err();
    assert!(e.contains("sasl.oauthbearer.jwks.endpoint.url"), "{e}");

    let with_keys = crate::config::BrokerConfig::from_settings([
        (
            "sasl.oauthbearer.jwks.endpoint.url",
            "file:///nonexistent/jwks.json",
        ),
        (
            "listener.name.dev.oauthbearer.sasl.server.callback.handler.class",
            crate::config::OAUTH_UNSECURED_VALIDATOR,
        ),
    ])
    .unwrap();
    let validators = OAuthValidators::from_config(&with_keys).unwrap();
    assert!(matches!(
        validators.for_listener("dev"),
        Validator::Unsecured(_)
    ));
    assert!(matches!(
        validators.for_listener("SASL_SSL"),
        Validator::Signed(..)
    ));
    assert!(
        crate::config::BrokerConfig::from_settings([("oauthbearer.sasl.jaas.config", "x")])
            .is_err(),
        "only with a listener prefix"
    );
}
