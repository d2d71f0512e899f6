//! Authentication: the SASL mechanisms (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512, OAUTHBEARER) and the per-connection state a connection on a SASL
//! listener passes through before it may send anything but ApiVersions,
//! SaslHandshake and SaslAuthenticate. Credentials are the SCRAM records
//! of the metadata image, or JWTs for OAUTHBEARER ([`oauth`]); nothing
//! here stores or logs a password or a token.
//!
//! A listener says whether its connections must authenticate by the
//! [`ConnectionAuth`] it gives each one: [`ConnectionAuth::sasl`] for a
//! SASL_PLAINTEXT or SASL_SSL listener, [`ConnectionAuth::certificate`]
//! for SSL (the client certificate's subject, mapped by
//! `ssl.principal.mapping.rules`, is the principal), [`ConnectionAuth::none`]
//! for PLAINTEXT. TLS itself is in [`tls`].

pub(crate) mod acl_filter;
pub(crate) mod authorizer;
mod bootstrap;
pub(crate) mod failed_logins;
pub(crate) mod inter_broker;
mod jaas;
pub(crate) mod oauth;
pub(crate) mod plain;
pub(crate) mod principal;
pub(crate) mod scram;
mod session;
pub(crate) mod tls;

pub use bootstrap::ScramBootstrap;
pub(crate) use session::{AuthenticateOutcome, ConnectionAuth};

use crate::config::BrokerConfig;
use sluice_metadata::ScramMechanism;

/// A SASL mechanism Sluice serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            other => ScramMechanism::from_name(other).map(Mechanism::Scram),
        }
    }
}

/// Why an authentication failed. The client only ever hears Kafka's
/// generic message; `reason` is for the broker's log and never holds a
/// secret.
#[derive(Debug, Clone)]
pub(crate) struct AuthFailure {
    pub(crate) reason: &'static str,
    /// Wrong password or unknown user, as opposed to a malformed message.
    pub(crate) bad_credentials: bool,
}

impl AuthFailure {
    pub(crate) fn malformed(reason: &'static str) -> Self {
        AuthFailure {
            reason,
            bad_credentials: false,
        }
    }

    pub(crate) fn credentials(reason: &'static str) -> Self {
        AuthFailure {
            reason,
            bad_credentials: true,
        }
    }
}

/// The broker's SASL settings, read once at start.
#[derive(Debug, Clone)]
pub(crate) struct SaslConfig {
    /// `sasl.enabled.mechanisms`, in the configured order.
    pub(crate) enabled: Vec<Mechanism>,
    /// `connections.max.reauth.ms`: the session lifetime, 0 for none.
    pub(crate) max_reauth_ms: i64,
    /// Makes the salt shown for users without a credential, the same on
    /// every attempt while the broker runs.
    pub(crate) decoy_secret: Vec<u8>,
    /// `sasl.server.max.receive.size`: the largest frame before
    /// authentication.
    pub(crate) max_receive_size: usize,
    /// How each listener validates OAUTHBEARER tokens.
    pub(crate) oauth: oauth::OAuthValidators,
}

impl SaslConfig {
    /// `Err` names a setting that cannot be used (checked at start).
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<SaslConfig, String> {
        let enabled = config
            .get("sasl.enabled.mechanisms")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            // Validated against the known names when the config was built.
            .filter_map(Mechanism::from_name)
            .collect();
        Ok(SaslConfig {
            enabled,
            max_reauth_ms: config.get_i64("connections.max.reauth.ms").max(0),
            decoy_secret: scram::random_bytes(32),
            max_receive_size: config.get_i64("sasl.server.max.receive.size").max(1) as usize,
            oauth: oauth::OAuthValidators::from_config(config)?,
        })
    }

    pub(crate) fn enabled_names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|m| m.name()).collect()
    }
}
