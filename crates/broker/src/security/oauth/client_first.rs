//! The OAUTHBEARER client's first message (RFC 7628 section 3.1):
//! `n,[a=authzid],` `0x01` `auth=Bearer <token>` `0x01`
//! `[key=value 0x01]*` `0x01`, checked as strictly as Kafka's
//! OAuthBearerClientInitialResponse.

use crate::security::AuthFailure;

/// Kafka's separator of the message's key/value pairs.
const SEPARATOR: char = '\u{1}';

#[derive(PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// The authorization id, unescaped; empty when not given.
    pub(crate) authzid: String,
    pub(crate) token: String,
}

impl std::fmt::Debug for ClientFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFirst")
            .field("authzid", &self.authzid)
            .finish_non_exhaustive()
    }
}

impl ClientFirst {
    pub(crate) fn parse(message: &[u8]) -> Result<ClientFirst, AuthFailure> {
        let invalid = || AuthFailure::malformed("invalid OAUTHBEARER client first message");
        let text = std::str::from_utf8(message).map_err(|_| invalid())?;
        let rest = text.strip_prefix("n,").ok_or_else(invalid)?;
        let (authzid, rest) = rest.split_once(',').ok_or_else(invalid)?;
        let authzid = match authzid {
            "" => String::new(),
            a => {
                unescape_saslname(a.strip_prefix("a=").ok_or_else(invalid)?).ok_or_else(invalid)?
            }
        };
        let pairs = rest
            .strip_prefix(SEPARATOR)
            .and_then(|r| r.strip_suffix(SEPARATOR))
            .and_then(|r| r.strip_suffix(SEPARATOR))
            .ok_or_else(invalid)?;
        let mut token = None;
        for pair in pairs.split(SEPARATOR) {
            let (key, value) = pair.split_once('=').ok_or_else(invalid)?;
            if key == "auth" {
                if token.is_some() {
                    return Err(invalid());
                }
                token = Some(bearer_token(value).ok_or_else(invalid)?);
            } else if !valid_extension(key, value) {
                return Err(AuthFailure::malformed("invalid OAUTHBEARER extension"));
            }
        }
        Ok(ClientFirst {
            authzid,
            token: token.ok_or_else(invalid)?.to_string(),
        })
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive); a token is
/// RFC 6750's b64token as Kafka restricts it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    let token_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.chars().all(token_chars))
        .then_some(token)
}

/// Extensions (KIP-342) are accepted and not used, as by both of Kafka's
/// validators; only their shape is checked.
fn valid_extension(key: &str, value: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphabetic())
        && !value.is_empty()
        && value.chars().all(|c| matches!(c, '\u{1}'..='\u{7f}'))
}

/// RFC 5801 saslname: `=2C` is a comma, `=3D` an equals sign, and neither
/// may appear bare.
fn unescape_saslname(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(',') {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_token_authzid_and_extensions() {
        let first = ClientFirst::parse(b"n,,\x01auth=Bearer a.b.\x01\x01").unwrap();
        assert_eq!(first.token, "a.b.");
        assert_eq!(first.authzid, "");
        let first =
            ClientFirst::parse(b"n,a=al=2Cice,\x01auth=bearer  x-y_z\x01traceId=42\x01\x01")
                .unwrap();
        assert_eq!(first.token, "x-y_z");
        assert_eq!(first.authzid, "al,ice");
    }

    #[test]
    fn refuses_malformed_messages() {
        for bad in [
            &b""[..],
            b"n,,auth=Bearer x\x01\x01",
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer x+y\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01\x01",
            b"n,,\x01ext=1\x01\x01",
            b"n,,\x01auth=Bearer x\x01auth=Bearer y\x01\x01",
            b"n,,\x01auth=Bearer x\x01bad-key=1\x01\x01",
            b"n,a=x=2,\x01auth=Bearer x\x01\x01",
            b"n,b=x,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer \xff\x01\x01",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
    }
}
