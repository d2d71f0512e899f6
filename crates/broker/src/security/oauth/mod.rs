//! SASL OAUTHBEARER (RFC 7628, KIP-255, KIP-768): the client sends a JWT
//! in its first message and the broker validates it, either as Kafka's
//! unsecured validator does (an unsigned `alg: none` token, for
//! development) or as its OAuthBearerValidatorCallbackHandler does (a
//! signed token checked against the provider's JWKS). The principal is
//! the token's subject claim and the session lasts no longer than the
//! token (KIP-368, when `connections.max.reauth.ms` is set).
//!
//! A token that fails validation is answered as RFC 7628 says: a JSON
//! error as the server's challenge, then, once the client acknowledges
//! it with a lone `0x01`, SASL_AUTHENTICATION_FAILED with that JSON as
//! the message, as Kafka's OAuthBearerSaslServer does.

mod client_first;
mod jwks;
mod token;

pub(crate) use client_first::ClientFirst;
pub(crate) use jwks::JwksKeys;

use crate::config::{BrokerConfig, OAUTH_UNSECURED_VALIDATOR};
use std::collections::HashMap;
use std::sync::Arc;
use token::{Claims, Jwt};

/// A validated token: who it speaks for and until when.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValidToken {
    pub(crate) principal: String,
    /// `exp`, in milliseconds since the epoch.
    pub(crate) expires_ms: i64,
}

/// Why a token was refused: `reason` goes to the broker's log, the
/// challenge to the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    pub(crate) reason: String,
    /// The required scope, when that is what the token lacked.
    pub(crate) scope: Option<String>,
}

impl Rejection {
    fn invalid(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            scope: None,
        }
    }

    /// The RFC 7628 error the server sends as its challenge, in Kafka's
    /// exact form.
    pub(crate) fn challenge(&self) -> String {
        match &self.scope {
            None => r#"{"status":"invalid_token"}"#.to_string(),
            Some(scope) => {
                format!(r#"{{"status":"insufficient_scope", "scope":"{scope}"}}"#)
            }
        }
    }
}

/// The options of Kafka's OAuthBearerUnsecuredValidatorCallbackHandler,
/// from the listener's `oauthbearer.sasl.jaas.config`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnsecuredOptions {
    principal_claim: String,
    scope_claim: String,
    required_scope: Vec<String>,
    clock_skew_ms: i64,
}

impl Default for UnsecuredOptions {
    fn default() -> Self {
        UnsecuredOptions {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        }
    }
}

impl UnsecuredOptions {
    fn from_jaas(jaas: &str) -> Result<Self, String> {
        let options = super::jaas::login_module_options(jaas, super::jaas::OAUTH_LOGIN_MODULE)?;
        let option = |key: &str| options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let defaults = UnsecuredOptions::default();
        let clock_skew_ms = match option("unsecuredValidatorAllowableClockSkewMs") {
            None => 0,
            Some(v) => v
                .parse::<i32>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| {
                    format!("unsecuredValidatorAllowableClockSkewMs must be a non-negative integer, not {v:?}")
                })?
                .into(),
        };
        Ok(UnsecuredOptions {
            principal_claim: option("unsecuredValidatorPrincipalClaimName")
                .map_or(defaults.principal_claim, str::to_string),
            scope_claim: option("unsecuredValidatorScopeClaimName")
                .map_or(defaults.scope_claim, str::to_string),
            required_scope: option("unsecuredValidatorRequiredScope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            clock_skew_ms,
        })
    }
}

/// The checks of Kafka's BrokerJwtValidator (jose4j underneath).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignedChecks {
    sub_claim: String,
    scope_claim: String,
    expected_audience: Vec<String>,
    expected_issuer: Option<String>,
    clock_skew_ms: i64,
}

/// How one listener validates OAUTHBEARER tokens.
#[derive(Clone)]
pub(crate) enum Validator {
    Unsecured(UnsecuredOptions),
    Signed(SignedChecks, Arc<JwksKeys>),
}

impl Validator {
    /// Validates `token` at `now_ms` (milliseconds since the epoch).
    pub(crate) async fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, Rejection> {
        match self {
            Validator::Unsecured(options) => validate_unsecured(options, token, now_ms),
            Validator::Signed(checks, keys) => {
                let jwt = Jwt::parse(token).map_err(Rejection::invalid)?;
                keys.verify(&jwt).await.map_err(Rejection::invalid)?;
                validate_signed(checks, &jwt.claims, now_ms)
            }
        }
    }
}

fn validate_unsecured(
    options: &UnsecuredOptions,
    token: &str,
    now_ms: i64,
) -> Result<ValidToken, Rejection> {
    let jwt = Jwt::parse(token).map_err(Rejection::invalid)?;
    if jwt.algorithm() != Some("none") {
        return Err(Rejection::invalid(
            "Unsecured JWS must have 'none' for an algorithm",
        ));
    }
    if !jwt.signature.is_empty() {
        return Err(Rejection::invalid(
            "Unsecured JWS must not contain a digital signature",
        ));
    }
    let claims = &jwt.claims;
    let scope = claims
        .scope(&options.scope_claim)
        .map_err(Rejection::invalid)?;
    let expires_ms = claims
        .time_ms("exp")
        .map_err(Rejection::invalid)?
        .ok_or_else(|| Rejection::invalid("No expiration time in JWT"))?;
    let principal = claims
        .string(&options.principal_claim)
        .map_err(Rejection::invalid)?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            Rejection::invalid(format!(
                "No principal name in JWT claim: {}",
                options.principal_claim
            ))
        })?;
    let issued_ms = claims.time_ms("iat").map_err(Rejection::invalid)?;
    if issued_ms.is_some_and(|iat| iat > now_ms.saturating_add(options.clock_skew_ms)) {
        return Err(Rejection::invalid(
            "The Issued At value was after the indicated time plus allowable clock skew",
        ));
    }
    if now_ms.saturating_sub(options.clock_skew_ms) >= expires_ms {
        return Err(Rejection::invalid(
            "The indicated time minus allowable clock skew was on or after the Expiration Time value",
        ));
    }
    if issued_ms.is_some_and(|iat| expires_ms <= iat) {
        return Err(Rejection::invalid(
            "The Expiration Time time was not after the Issued At time",
        ));
    }
    if let Some(missing) = options.required_scope.iter().find(|s| !scope.contains(*s)) {
        return Err(Rejection {
            reason: format!("The provided scope was missing a required scope ({missing})"),
            scope: Some(format!("[{}]", options.required_scope.join(", "))),
        });
    }
    Ok(ValidToken {
        principal,
        expires_ms,
    })
}

fn validate_signed(
    checks: &SignedChecks,
    claims: &Claims,
    now_ms: i64,
) -> Result<ValidToken, Rejection> {
    let skew = checks.clock_skew_ms;
    let expires_ms = claims
        .time_ms("exp")
        .map_err(Rejection::invalid)?
        .ok_or_else(|| Rejection::invalid("No Expiration Time (exp) claim present"))?;
    if now_ms.saturating_sub(skew) >= expires_ms {
        return Err(Rejection::invalid(
            "The JWT is no longer valid: now is on or after its exp",
        ));
    }
    if claims.time_ms("iat").map_err(Rejection::invalid)?.is_none() {
        return Err(Rejection::invalid("No Issued At (iat) claim present"));
    }
    if let Some(not_before) = claims.time_ms("nbf").map_err(Rejection::invalid)? {
        if now_ms.saturating_add(skew) < not_before {
            return Err(Rejection::invalid("The JWT is not yet valid (nbf)"));
        }
    }
    let audience = claims.audience().map_err(Rejection::invalid)?;
    if let Some(audience) = audience {
        // jose4j's rule: a token naming an audience is refused unless one
        // of its audiences is expected.
        if !audience
            .iter()
            .any(|a| checks.expected_audience.contains(a))
        {
            return Err(Rejection::invalid(format!(
                "Audience (aud) claim {audience:?} doesn't contain an acceptable identifier (sasl.oauthbearer.expected.audience)"
            )));
        }
    } else if !checks.expected_audience.is_empty() {
        return Err(Rejection::invalid("No Audience (aud) claim present"));
    }
    if let Some(expected) = &checks.expected_issuer {
        let issuer = claims.string("iss").map_err(Rejection::invalid)?;
        if issuer.as_deref() != Some(expected.as_str()) {
            return Err(Rejection::invalid(
                "Issuer (iss) claim is not the expected one (sasl.oauthbearer.expected.issuer)",
            ));
        }
    }
    let scope = claims
        .scope(&checks.scope_claim)
        .map_err(Rejection::invalid)?;
    if scope.iter().any(|s| s.trim().is_empty()) {
        return Err(Rejection::invalid(format!(
            "{} value must be non-empty",
            checks.scope_claim
        )));
    }
    let principal = claims
        .string(&checks.sub_claim)
        .map_err(Rejection::invalid)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Rejection::invalid(format!(
                "{} value must be non-null and non-empty",
                checks.sub_claim
            ))
        })?;
    Ok(ValidToken {
        principal,
        expires_ms,
    })
}

/// The OAUTHBEARER validators of the broker's SASL listeners.
#[derive(Clone)]
pub(crate) struct OAuthValidators {
    /// Keyed by lower-case listener name; listeners without their own
    /// settings use `default`.
    per_listener: HashMap<String, Validator>,
    default: Validator,
    /// The key set, when some listener checks signatures.
    keys: Option<Arc<JwksKeys>>,
}

impl std::fmt::Debug for OAuthValidators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthValidators")
            .field("listeners", &self.per_listener.keys().collect::<Vec<_>>())
            .field("signed", &self.keys.is_some())
            .finish()
    }
}

const SIGNED_VALIDATORS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

impl OAuthValidators {
    /// Reads the validators' settings; the key set is not fetched yet
    /// (see [`OAuthValidators::keys`]).
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<OAuthValidators, String> {
        let jwks_url = config.get("sasl.oauthbearer.jwks.endpoint.url");
        let keys = jwks_url
            .map(|url| JwksKeys::from_config(url, config).map(Arc::new))
            .transpose()?;
        let checks = SignedChecks {
            sub_claim: config
                .get("sasl.oauthbearer.sub.claim.name")
                .unwrap_or("sub")
                .trim()
                .to_string(),
            scope_claim: config
                .get("sasl.oauthbearer.scope.claim.name")
                .unwrap_or("scope")
                .trim()
                .to_string(),
            expected_audience: config
                .get("sasl.oauthbearer.expected.audience")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            expected_issuer: config
                .get("sasl.oauthbearer.expected.issuer")
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_string),
            clock_skew_ms: config.get_i64("sasl.oauthbearer.clock.skew.seconds").max(0) * 1000,
        };
        let signed = |listener: &str| {
            match &keys {
            Some(keys) => Ok(Validator::Signed(checks.clone(), Arc::clone(keys))),
            None => Err(format!(
                "listener {listener}: the OAUTHBEARER validator checks tokens against sasl.oauthbearer.jwks.endpoint.url, which is not set"
            )),
        }
        };
        let mut handlers: HashMap<String, &str> = HashMap::new();
        let mut jaas: HashMap<String, &str> = HashMap::new();
        for (listener, setting, value) in config.listener_settings() {
            let listener = listener.to_ascii_lowercase();
            match setting {
                "oauthbearer.sasl.server.callback.handler.class" => {
                    handlers.insert(listener, value.trim());
                }
                "oauthbearer.sasl.jaas.config" => {
                    jaas.insert(listener, value);
                }
                _ => {}
            }
        }
        let mut per_listener = HashMap::new();
        let named: std::collections::BTreeSet<&String> =
            handlers.keys().chain(jaas.keys()).collect();
        for listener in named {
            let validator = match handlers.get(listener) {
                Some(class) if SIGNED_VALIDATORS.contains(class) => signed(listener)?,
                Some(class) if *class == OAUTH_UNSECURED_VALIDATOR || keys.is_none() => {
                    unsecured(listener, jaas.get(listener).copied())?
                }
                None if keys.is_none() => unsecured(listener, jaas.get(listener).copied())?,
                _ => signed(listener)?,
            };
            per_listener.insert(listener.clone(), validator);
        }
        let default = match &keys {
            Some(keys) => Validator::Signed(checks, Arc::clone(keys)),
            None => Validator::Unsecured(UnsecuredOptions::default()),
        };
        Ok(OAuthValidators {
            per_listener,
            default,
            keys,
        })
    }

    /// The validator of `listener`.
    pub(crate) fn for_listener(&self, listener: &str) -> &Validator {
        self.per_listener
            .get(&listener.to_ascii_lowercase())
            .unwrap_or(&self.default)
    }

    /// The key set to fetch before serving and to refresh, if any
    /// listener checks signatures.
    pub(crate) fn keys(&self) -> Option<&Arc<JwksKeys>> {
        self.keys.as_ref()
    }

    /// Whether some listener accepts unsigned tokens (worth a warning).
    pub(crate) fn accepts_unsigned(&self) -> bool {
        self.per_listener
            .values()
            .chain([&self.default])
            .any(|v| matches!(v, Validator::Unsecured(_)))
    }
}

fn unsecured(listener: &str, jaas: Option<&str>) -> Result<Validator, String> {
    jaas.map_or(Ok(UnsecuredOptions::default()), UnsecuredOptions::from_jaas)
        .map(Validator::Unsecured)
        .map_err(|e| format!("listener.name.{listener}.oauthbearer.sasl.jaas.config: {e}"))
}

#[cfg(test)]
mod tests;
