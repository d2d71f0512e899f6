//! A JWT in JWS compact serialization (RFC 7515, 7519): three base64url
//! parts, a JSON header and claim set, and the signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The largest token considered; real ones are a few kilobytes.
const MAX_TOKEN_LEN: usize = 64 * 1024;

pub(crate) struct Jwt {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Claims,
    pub(crate) signature: Vec<u8>,
    /// `header.payload`, what the signature covers.
    pub(crate) signing_input: String,
}

impl Jwt {
    pub(crate) fn parse(token: &str) -> Result<Jwt, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("token longer than 64 KiB".into());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a JWS compact serialization has 3 dot-separated base64url parts".into());
        };
        let header = json_object(header, "header")?;
        let claims = Claims(json_object(payload, "claims")?);
        let signature = decode(signature).ok_or("malformed base64url signature")?;
        Ok(Jwt {
            header,
            claims,
            signature,
            signing_input: token
                .rsplit_once('.')
                .map_or("", |(input, _)| input)
                .to_string(),
        })
    }

    pub(crate) fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    pub(crate) fn key_id(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
}

/// base64url, padded or not (RFC 7515 omits the padding).
pub(crate) fn decode(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

fn json_object(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = decode(part).ok_or_else(|| format!("malformed base64url {what}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("the JWT {what} is not a JSON object")),
    }
}

/// The claim set, read the way Kafka's validators read it.
pub(crate) struct Claims(pub(crate) Map<String, Value>);

impl Claims {
    /// A string claim; `Err` when it is there with another type.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("The '{name}' claim was not of type String")),
        }
    }

    /// A NumericDate claim (seconds, maybe fractional) in milliseconds.
    pub(crate) fn time_ms(&self, name: &str) -> Result<Option<i64>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                    Ok(Some((seconds * 1000.0).round().min(i64::MAX as f64) as i64))
                }
                _ => Err(format!("The '{name}' claim is not a valid NumericDate")),
            },
            Some(_) => Err(format!("The '{name}' claim was not of type Number")),
        }
    }

    /// The scope: a list of strings, or one string that Kafka takes as a
    /// single scope value (it does not split it at spaces).
    pub(crate) fn scope(&self, name: &str) -> Result<Vec<String>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(match s.trim() {
                "" => Vec::new(),
                one => vec![one.to_string()],
            }),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("The '{name}' claim is not a list of strings")),
            Some(_) => Err(format!("The '{name}' claim was not of type String or List")),
        }
    }

    /// `aud`: one string or a list of them.
    pub(crate) fn audience(&self) -> Result<Option<Vec<String>>, String> {
        match self.0.get("aud") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| "The 'aud' claim is not a list of strings".to_string()),
            Some(_) => Err("The 'aud' claim was not of type String or List".into()),
        }
    }
}
