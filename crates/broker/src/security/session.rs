//! One connection's authentication, as Kafka's SaslServerAuthenticator
//! drives it: SaslHandshake picks a mechanism, SaslAuthenticate carries
//! its tokens until the mechanism succeeds or fails. A failure answers
//! SASL_AUTHENTICATION_FAILED with Kafka's generic message and then closes
//! the connection; so does a request other than ApiVersions, SaslHandshake
//! and SaslAuthenticate before authentication, or after the session's
//! lifetime (`connections.max.reauth.ms`, KIP-368) without re-authenticating.

use super::oauth::ClientFirst;
use super::scram::ScramExchange;
use super::{plain, AuthFailure, Mechanism, SaslConfig};
use kafka_protocol::messages::ApiKey;
use sluice_metadata::MetadataImage;
use sluice_protocol::error::{self, ErrorCode};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The principal of a connection that needs no authentication.
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// The authentication state of one connection.
pub(crate) struct ConnectionAuth {
    /// Whether the listener requires SASL (SASL_PLAINTEXT, SASL_SSL).
    required: bool,
    /// The listener's name, which picks its OAUTHBEARER validator.
    listener: String,
    /// Who the TLS client certificate says the connection is (SSL
    /// listeners); a SASL login on SASL_SSL speaks for itself instead.
    certificate_principal: Option<String>,
    /// The last successful authentication.
    session: Option<Session>,
    exchange: Exchange,
    /// SaslHandshake v0 chose the mechanism: its tokens come as raw
    /// length-prefixed frames, not SaslAuthenticate requests.
    raw_tokens: bool,
    /// Set when the connection must close once its current reply is sent.
    close: Option<String>,
}

struct Session {
    principal: String,
    mechanism: Mechanism,
    expires: Option<Instant>,
}

/// Where the current SASL exchange is.
enum Exchange {
    /// No exchange: before SaslHandshake, or after one ended.
    Idle,
    /// SaslHandshake chose the mechanism; its first token is due.
    Chosen(Mechanism),
    /// SCRAM sent its server-first; the client-final is due.
    Scram(Mechanism, Box<ScramExchange>),
    /// OAUTHBEARER refused the token and sent this error as its challenge;
    /// the client's `0x01` acknowledgement is due.
    OAuthRefused(String),
}

/// The answer to SaslHandshake.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HandshakeOutcome {
    pub(crate) error_code: ErrorCode,
    pub(crate) mechanisms: Vec<&'static str>,
}

/// The answer to SaslAuthenticate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AuthenticateOutcome {
    pub(crate) error_code: ErrorCode,
    pub(crate) error_message: Option<String>,
    pub(crate) auth_bytes: Vec<u8>,
    pub(crate) session_lifetime_ms: i64,
}

impl AuthenticateOutcome {
    fn error(error_code: ErrorCode, message: impl Into<String>) -> Self {
        AuthenticateOutcome {
            error_code,
            error_message: Some(message.into()),
            auth_bytes: Vec::new(),
            session_lifetime_ms: 0,
        }
    }

    fn token(auth_bytes: Vec<u8>) -> Self {
        AuthenticateOutcome {
            error_code: error::NONE,
            error_message: None,
            auth_bytes,
            session_lifetime_ms: 0,
        }
    }
}

impl ConnectionAuth {
    /// A connection on a listener without authentication (PLAINTEXT).
    pub(crate) fn none() -> Self {
        Self::new(false, None)
    }

    /// A connection on the SASL_PLAINTEXT or SASL_SSL listener `listener`.
    pub(crate) fn sasl(listener: &str) -> Self {
        ConnectionAuth {
            listener: listener.to_string(),
            ..Self::new(true, None)
        }
    }

    /// A connection on an SSL listener whose client certificate maps to
    /// `principal` (`User:...`), or that sent none.
    pub(crate) fn certificate(principal: Option<String>) -> Self {
        Self::new(false, principal)
    }

    fn new(required: bool, certificate_principal: Option<String>) -> Self {
        ConnectionAuth {
            required,
            listener: String::new(),
            certificate_principal,
            session: None,
            exchange: Exchange::Idle,
            raw_tokens: false,
            close: None,
        }
    }

    /// Who the connection speaks for, as Kafka names principals.
    pub(crate) fn principal(&self) -> &str {
        match (&self.session, &self.certificate_principal) {
            (Some(session), _) => &session.principal,
            (None, Some(certificate)) => certificate,
            (None, None) => ANONYMOUS,
        }
    }

    /// Whether the connection may send a request of `api_key` now; `Err`
    /// says why the connection closes instead.
    pub(crate) fn admit(&self, api_key: ApiKey, now: Instant) -> Result<(), String> {
        if !self.required
            || matches!(
                api_key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
        {
            return Ok(());
        }
        match &self.session {
            None => Err(format!(
                "{api_key:?} request before SASL authentication (only ApiVersions, SaslHandshake and SaslAuthenticate are allowed)"
            )),
            Some(s) if s.expires.is_some_and(|at| now >= at) => Err(format!(
                "{api_key:?} request after the SASL session expired (connections.max.reauth.ms) without re-authentication"
            )),
            Some(_) => Ok(()),
        }
    }

    /// Whether frames may be as large as `socket.request.max.bytes`; before
    /// authentication they are bounded by `sasl.server.max.receive.size`.
    pub(crate) fn authenticated(&self) -> bool {
        !self.required || self.session.is_some()
    }

    /// Why the connection must close after the reply just produced, once.
    pub(crate) fn take_close(&mut self) -> Option<String> {
        self.close.take()
    }

    fn close_after_reply(&mut self, reason: impl Into<String>) {
        self.close = Some(reason.into());
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0)
    /// rather than a Kafka request.
    pub(crate) fn expects_raw_token(&self) -> bool {
        self.raw_tokens && !matches!(self.exchange, Exchange::Idle)
    }

    /// SaslHandshake; `raw_tokens` for v0, whose tokens then follow as
    /// raw frames (pre-1.0 clients).
    pub(crate) fn handshake(
        &mut self,
        sasl: &SaslConfig,
        mechanism: &str,
        raw_tokens: bool,
    ) -> HandshakeOutcome {
        if !self.required {
            // Kafka's answer on a listener without SASL.
            return HandshakeOutcome {
                error_code: error::ILLEGAL_SASL_STATE,
                mechanisms: Vec::new(),
            };
        }
        let mechanisms = sasl.enabled_names();
        if !matches!(self.exchange, Exchange::Idle) {
            self.close_after_reply("SaslHandshake in the middle of a SASL exchange");
            return HandshakeOutcome {
                error_code: error::ILLEGAL_SASL_STATE,
                mechanisms,
            };
        }
        if raw_tokens && self.session.is_some() {
            // KIP-368: re-authentication speaks SaslAuthenticate.
            self.close_after_reply("SaslHandshake v0 to re-authenticate (v1 is required)");
            return HandshakeOutcome {
                error_code: error::ILLEGAL_SASL_STATE,
                mechanisms,
            };
        }
        match Mechanism::from_name(mechanism).filter(|m| sasl.enabled.contains(m)) {
            Some(chosen) => {
                self.exchange = Exchange::Chosen(chosen);
                self.raw_tokens = raw_tokens;
                HandshakeOutcome {
                    error_code: error::NONE,
                    mechanisms,
                }
            }
            None => {
                self.close_after_reply(format!(
                    "client asked for SASL mechanism {:?}, which is not enabled (sasl.enabled.mechanisms)",
                    mechanism.chars().take(64).collect::<String>()
                ));
                HandshakeOutcome {
                    error_code: error::UNSUPPORTED_SASL_MECHANISM,
                    mechanisms,
                }
            }
        }
    }

    /// Runs one SaslAuthenticate token through the chosen mechanism.
    /// `peer` is the client address, for the log.
    pub(crate) async fn authenticate(
        &mut self,
        sasl: &SaslConfig,
        image: Arc<MetadataImage>,
        token: Vec<u8>,
        peer: &str,
    ) -> AuthenticateOutcome {
        if !self.required {
            return AuthenticateOutcome::error(
                error::ILLEGAL_SASL_STATE,
                "SaslAuthenticate request received after successful authentication",
            );
        }
        match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => {
                self.close_after_reply("SaslAuthenticate before SaslHandshake");
                AuthenticateOutcome::error(
                    error::ILLEGAL_SASL_STATE,
                    "Unexpected SaslAuthenticate request: no SaslHandshake chose a mechanism",
                )
            }
            Exchange::Chosen(Mechanism::Plain) => {
                let secret = sasl.decoy_secret.clone();
                let checked =
                    tokio::task::spawn_blocking(move || plain::verify(&image, &token, &secret))
                        .await
                        .unwrap_or_else(|_| {
                            Err(AuthFailure::malformed("the PLAIN check panicked"))
                        });
                match checked {
                    Ok(user) => self.succeed(sasl, Mechanism::Plain, &user, Vec::new(), None, peer),
                    Err(failure) => self.fail(Mechanism::Plain, failure, peer),
                }
            }
            Exchange::Chosen(mechanism @ Mechanism::Scram(scram)) => {
                let started = ScramExchange::start(
                    scram,
                    &token,
                    |user| image.scram_credential(user, scram).cloned(),
                    &sasl.decoy_secret,
                );
                match started {
                    Ok((exchange, server_first)) => {
                        self.exchange = Exchange::Scram(mechanism, Box::new(exchange));
                        AuthenticateOutcome::token(server_first)
                    }
                    Err(failure) => self.fail(mechanism, failure, peer),
                }
            }
            Exchange::Scram(mechanism, exchange) => {
                let user = exchange.username().to_string();
                match exchange.finish(&token) {
                    Ok(server_final) => {
                        self.succeed(sasl, mechanism, &user, server_final, None, peer)
                    }
                    Err(failure) => self.fail(mechanism, failure, peer),
                }
            }
            Exchange::Chosen(Mechanism::OAuthBearer) => self.oauth_token(sasl, &token, peer).await,
            Exchange::OAuthRefused(challenge) => {
                if token != [1] {
                    return self.fail(
                        Mechanism::OAuthBearer,
                        AuthFailure::malformed(
                            "OAUTHBEARER client did not acknowledge the refusal of its token",
                        ),
                        peer,
                    );
                }
                // Kafka answers the acknowledgement with the error itself.
                self.close_after_reply("failed SASL authentication");
                AuthenticateOutcome::error(error::SASL_AUTHENTICATION_FAILED, challenge)
            }
        }
    }

    /// The OAUTHBEARER client-first message: the token is validated, and
    /// either the session starts or the refusal is sent as a challenge.
    async fn oauth_token(
        &mut self,
        sasl: &SaslConfig,
        message: &[u8],
        peer: &str,
    ) -> AuthenticateOutcome {
        let mechanism = Mechanism::OAuthBearer;
        let first = match ClientFirst::parse(message) {
            Ok(first) => first,
            Err(failure) => return self.fail(mechanism, failure, peer),
        };
        let validator = sasl.oauth.for_listener(&self.listener);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match validator.validate(&first.token, now_ms).await {
            Ok(valid) if !first.authzid.is_empty() && first.authzid != valid.principal => {
                tracing::warn!(client = peer, "OAUTHBEARER authorization id differs from the token's principal; closing the connection");
                self.close_after_reply("failed SASL authentication");
                AuthenticateOutcome::error(
                    error::SASL_AUTHENTICATION_FAILED,
                    format!(
                        "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
                        first.authzid, valid.principal
                    ),
                )
            }
            Ok(valid) => {
                let lifetime_ms = valid.expires_ms.saturating_sub(now_ms).max(1);
                self.succeed(
                    sasl,
                    mechanism,
                    &valid.principal,
                    Vec::new(),
                    Some(lifetime_ms),
                    peer,
                )
            }
            Err(rejection) => {
                tracing::warn!(client = peer, mechanism = mechanism.name(), reason = %rejection.reason, "OAUTHBEARER token refused");
                let challenge = rejection.challenge();
                self.exchange = Exchange::OAuthRefused(challenge.clone());
                AuthenticateOutcome::token(challenge.into_bytes())
            }
        }
    }

    /// Starts (or renews) the session. It lasts `connections.max.reauth.ms`
    /// when that is set, and never past the credential's own lifetime
    /// (`credential_lifetime_ms`, an OAUTHBEARER token's), as in Kafka.
    fn succeed(
        &mut self,
        sasl: &SaslConfig,
        mechanism: Mechanism,
        user: &str,
        auth_bytes: Vec<u8>,
        credential_lifetime_ms: Option<i64>,
        peer: &str,
    ) -> AuthenticateOutcome {
        let principal = format!("User:{user}");
        if let Some(previous) = &self.session {
            // KIP-368: re-authentication keeps the principal and mechanism.
            if previous.principal != principal || previous.mechanism != mechanism {
                let message = format!(
                    "Cannot change principals or SASL mechanism during re-authentication from {} ({}) to {principal} ({})",
                    previous.principal,
                    previous.mechanism.name(),
                    mechanism.name()
                );
                tracing::warn!(client = peer, %message, "failed re-authentication; closing the connection");
                self.close_after_reply("re-authentication changed the principal or mechanism");
                return AuthenticateOutcome::error(error::SASL_AUTHENTICATION_FAILED, message);
            }
        }
        let lifetime = match credential_lifetime_ms {
            Some(credential) if sasl.max_reauth_ms > 0 => sasl.max_reauth_ms.min(credential),
            _ => sasl.max_reauth_ms,
        };
        let expires =
            (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime as u64));
        tracing::debug!(client = peer, %principal, mechanism = mechanism.name(), "authenticated");
        self.session = Some(Session {
            principal,
            mechanism,
            expires,
        });
        AuthenticateOutcome {
            session_lifetime_ms: lifetime,
            ..AuthenticateOutcome::token(auth_bytes)
        }
    }

    /// Refuses a login from an address past its failed-login limit, with
    /// the same answer a wrong password gets (the limit is logged once by
    /// the caller, not per attempt).
    pub(crate) fn refuse_locked_out(&mut self) -> AuthenticateOutcome {
        let mechanism = match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Chosen(m) | Exchange::Scram(m, _) => m,
            Exchange::OAuthRefused(_) => Mechanism::OAuthBearer,
            Exchange::Idle => Mechanism::Plain,
        };
        self.close_after_reply("too many failed SASL logins from this address");
        AuthenticateOutcome::error(
            error::SASL_AUTHENTICATION_FAILED,
            generic_failure(mechanism),
        )
    }

    fn fail(
        &mut self,
        mechanism: Mechanism,
        failure: AuthFailure,
        peer: &str,
    ) -> AuthenticateOutcome {
        // The user name is not logged: people type passwords into it.
        tracing::warn!(
            client = peer,
            mechanism = mechanism.name(),
            reason = failure.reason,
            invalid_credentials = failure.bad_credentials,
            "failed authentication; closing the connection"
        );
        self.close_after_reply("failed SASL authentication");
        AuthenticateOutcome::error(
            error::SASL_AUTHENTICATION_FAILED,
            generic_failure(mechanism),
        )
    }
}

/// Kafka's one message for every failed login.
fn generic_failure(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram;
    use sluice_metadata::{MetadataRecord, ScramMechanism};

    fn sasl_config(enabled: &[Mechanism], reauth_ms: i64) -> SaslConfig {
        SaslConfig {
            enabled: enabled.to_vec(),
            max_reauth_ms: reauth_ms,
            decoy_secret: b"secret".to_vec(),
            max_receive_size: 524288,
            oauth: crate::security::oauth::OAuthValidators::from_config(
                &crate::config::BrokerConfig::default(),
            )
            .unwrap(),
        }
    }

    fn image() -> Arc<MetadataImage> {
        let mut image = MetadataImage::default();
        for (user, password) in [("alice", "alice-secret"), ("bob", "bob-secret")] {
            image.apply(&MetadataRecord::UserScramCredentialUpserted {
                name: user.into(),
                mechanism: ScramMechanism::Sha256,
                credential: scram::credential_from_password(ScramMechanism::Sha256, password, 4096),
            });
        }
        Arc::new(image)
    }

    const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
    ];

    #[tokio::test]
    async fn plain_login_opens_the_connection_to_every_api() {
        let sasl = sasl_config(&ALL, 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        let now = Instant::now();
        assert!(auth.admit(ApiKey::ApiVersions, now).is_ok());
        let refused = auth.admit(ApiKey::Metadata, now).unwrap_err();
        assert!(refused.contains("before SASL authentication"), "{refused}");
        let handshake = auth.handshake(&sasl, "PLAIN", false);
        assert_eq!(handshake.error_code, error::NONE);
        assert_eq!(
            handshake.mechanisms,
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        let outcome = auth
            .authenticate(
                &sasl,
                image(),
                b"\0alice\0alice-secret".to_vec(),
                "/127.0.0.1",
            )
            .await;
        assert_eq!(outcome.error_code, error::NONE, "{outcome:?}");
        assert_eq!(auth.take_close(), None);
        assert_eq!(auth.principal(), "User:alice");
        assert!(auth.admit(ApiKey::Metadata, now).is_ok());
    }

    #[tokio::test]
    async fn a_wrong_password_fails_generically_and_closes() {
        let sasl = sasl_config(&ALL, 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "PLAIN", false);
        let outcome = auth
            .authenticate(
                &sasl,
                image(),
                b"\0alice\0bob-secret".to_vec(),
                "/127.0.0.1",
            )
            .await;
        assert_eq!(outcome.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert_eq!(
            outcome.error_message.as_deref(),
            Some("Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN")
        );
        assert!(auth.take_close().is_some());
        assert_eq!(auth.principal(), ANONYMOUS);
        assert!(auth.admit(ApiKey::Produce, Instant::now()).is_err());
    }

    #[tokio::test]
    async fn out_of_order_and_unknown_mechanisms_are_refused() {
        let sasl = sasl_config(&[Mechanism::Scram(ScramMechanism::Sha512)], 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        let early = auth
            .authenticate(&sasl, image(), b"n,,n=alice,r=x".to_vec(), "/127.0.0.1")
            .await;
        assert_eq!(early.error_code, error::ILLEGAL_SASL_STATE);
        assert!(auth.take_close().is_some());
        let unsupported = auth.handshake(&sasl, "PLAIN", false);
        assert_eq!(unsupported.error_code, error::UNSUPPORTED_SASL_MECHANISM);
        assert_eq!(unsupported.mechanisms, ["SCRAM-SHA-512"]);
        assert!(auth.take_close().is_some());
        let gssapi = auth.handshake(&sasl, "GSSAPI", false);
        assert_eq!(gssapi.error_code, error::UNSUPPORTED_SASL_MECHANISM);
    }

    #[tokio::test]
    async fn without_sasl_the_sasl_apis_answer_illegal_state() {
        let sasl = sasl_config(&ALL, 0);
        let mut auth = ConnectionAuth::none();
        assert!(auth.admit(ApiKey::Produce, Instant::now()).is_ok());
        assert_eq!(
            auth.handshake(&sasl, "PLAIN", false).error_code,
            error::ILLEGAL_SASL_STATE
        );
        let outcome = auth
            .authenticate(&sasl, image(), Vec::new(), "/127.0.0.1")
            .await;
        assert_eq!(outcome.error_code, error::ILLEGAL_SASL_STATE);
        assert_eq!(auth.take_close(), None, "the connection stays open");
        assert_eq!(auth.principal(), ANONYMOUS);
    }

    #[tokio::test]
    async fn sessions_expire_and_reauthentication_keeps_the_principal() {
        let sasl = sasl_config(&ALL, 60_000);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "PLAIN", false);
        let outcome = auth
            .authenticate(
                &sasl,
                image(),
                b"\0alice\0alice-secret".to_vec(),
                "/127.0.0.1",
            )
            .await;
        assert_eq!(outcome.session_lifetime_ms, 60_000);
        let later = Instant::now() + Duration::from_secs(61);
        let expired = auth.admit(ApiKey::Fetch, later).unwrap_err();
        assert!(expired.contains("connections.max.reauth.ms"), "{expired}");
        // Re-authenticating as the same user renews the session...
        auth.handshake(&sasl, "PLAIN", false);
        let again = auth
            .authenticate(
                &sasl,
                image(),
                b"\0alice\0alice-secret".to_vec(),
                "/127.0.0.1",
            )
            .await;
        assert_eq!(again.error_code, error::NONE);
        assert!(auth.admit(ApiKey::Fetch, Instant::now()).is_ok());
        // ...as someone else fails.
        auth.handshake(&sasl, "PLAIN", false);
        let other = auth
            .authenticate(&sasl, image(), b"\0bob\0bob-secret".to_vec(), "/127.0.0.1")
            .await;
        assert_eq!(other.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert!(auth.take_close().is_some());
    }

    #[tokio::test]
    async fn scram_takes_two_tokens() {
        let sasl = sasl_config(&ALL, 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "SCRAM-SHA-256", false);
        let first = auth
            .authenticate(&sasl, image(), b"n,,n=alice,r=abc".to_vec(), "/127.0.0.1")
            .await;
        assert_eq!(first.error_code, error::NONE);
        assert!(first.auth_bytes.starts_with(b"r=abc"));
        assert!(auth.admit(ApiKey::Metadata, Instant::now()).is_err());
        // A bad client-final ends the exchange.
        let last = auth
            .authenticate(
                &sasl,
                image(),
                b"c=biws,r=abc,p=AAAA".to_vec(),
                "/127.0.0.1",
            )
            .await;
        assert_eq!(last.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert!(auth.take_close().is_some());
    }

    fn oauth_message(claims: serde_json::Value) -> Vec<u8> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    fn epoch_s() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[tokio::test]
    async fn oauthbearer_sessions_end_with_the_token() {
        let sasl = sasl_config(&[Mechanism::OAuthBearer], 3_600_000);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        assert_eq!(
            auth.handshake(&sasl, "OAUTHBEARER", false).error_code,
            error::NONE
        );
        let message = oauth_message(serde_json::json!({"sub": "olga", "exp": epoch_s() + 10}));
        let outcome = auth
            .authenticate(&sasl, image(), message, "/127.0.0.1")
            .await;
        assert_eq!(outcome.error_code, error::NONE, "{outcome:?}");
        assert!(outcome.auth_bytes.is_empty());
        assert!(
            (1..=10_000).contains(&outcome.session_lifetime_ms),
            "the token's 10 s, not connections.max.reauth.ms: {}",
            outcome.session_lifetime_ms
        );
        assert_eq!(auth.principal(), "User:olga");
        assert!(auth.admit(ApiKey::Produce, Instant::now()).is_ok());
    }

    #[tokio::test]
    async fn a_refused_token_is_a_challenge_then_a_failure() {
        let sasl = sasl_config(&[Mechanism::OAuthBearer], 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "OAUTHBEARER", false);
        let expired = oauth_message(serde_json::json!({"sub": "olga", "exp": epoch_s() - 10}));
        let challenge = auth
            .authenticate(&sasl, image(), expired, "/127.0.0.1")
            .await;
        assert_eq!(challenge.error_code, error::NONE);
        assert_eq!(challenge.auth_bytes, br#"{"status":"invalid_token"}"#);
        assert_eq!(auth.take_close(), None);
        let last = auth
            .authenticate(&sasl, image(), vec![1], "/127.0.0.1")
            .await;
        assert_eq!(last.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert_eq!(
            last.error_message.as_deref(),
            Some(r#"{"status":"invalid_token"}"#)
        );
        assert!(auth.take_close().is_some());
        assert_eq!(auth.principal(), ANONYMOUS);

        // Anything but the acknowledgement after a refusal fails at once.
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "OAUTHBEARER", false);
        let expired = oauth_message(serde_json::json!({"sub": "olga", "exp": epoch_s() - 10}));
        auth.authenticate(&sasl, image(), expired, "/127.0.0.1")
            .await;
        let good = oauth_message(serde_json::json!({"sub": "olga", "exp": epoch_s() + 60}));
        let retried = auth.authenticate(&sasl, image(), good, "/127.0.0.1").await;
        assert_eq!(retried.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert!(auth.take_close().is_some());

        // A malformed first message fails with the generic message.
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "OAUTHBEARER", false);
        let garbage = auth
            .authenticate(&sasl, image(), b"n,,".to_vec(), "/127.0.0.1")
            .await;
        assert_eq!(garbage.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert_eq!(
            garbage.error_message.as_deref(),
            Some("Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER")
        );
    }

    #[tokio::test]
    async fn an_authorization_id_must_be_the_tokens_principal() {
        let sasl = sasl_config(&[Mechanism::OAuthBearer], 0);
        let mut auth = ConnectionAuth::sasl("SASL_PLAINTEXT");
        auth.handshake(&sasl, "OAUTHBEARER", false);
        let mut message = oauth_message(serde_json::json!({"sub": "olga", "exp": epoch_s() + 60}));
        message.splice(0..3, b"n,a=admin,".iter().copied());
        let outcome = auth
            .authenticate(&sasl, image(), message, "/127.0.0.1")
            .await;
        assert_eq!(outcome.error_code, error::SASL_AUTHENTICATION_FAILED);
        assert!(outcome
            .error_message
            .unwrap()
            .contains("(admin) that is different from the token's principal name (olga)"));
    }
}
