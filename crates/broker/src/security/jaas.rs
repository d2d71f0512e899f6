//! The options of a JAAS login module entry, as Kafka's `sasl.jaas.config`
//! writes them: `<LoginModule class> <flag> key="value" key=value ... ;`.

use std::collections::HashMap;

pub(crate) const OAUTH_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
pub(crate) const PLAIN_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.plain.PlainLoginModule";
pub(crate) const SCRAM_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.scram.ScramLoginModule";

/// The options of the one entry in `jaas`, which must be for `expected`
/// (one of the login module classes above).
pub(crate) fn login_module_options(
    jaas: &str,
    expected: &str,
) -> Result<HashMap<String, String>, String> {
    let entry = jaas.trim();
    let entry = entry
        .strip_suffix(';')
        .ok_or("a JAAS entry ends with ';'")?
        .trim();
    let (module, rest) = entry.split_once(char::is_whitespace).unwrap_or((entry, ""));
    if module != expected {
        return Err(format!(
            "the login module must be {expected}, not {module:?}"
        ));
    }
    let rest = rest.trim_start();
    let (flag, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !["required", "requisite", "sufficient", "optional"]
        .contains(&flag.to_ascii_lowercase().as_str())
    {
        return Err(format!("unknown JAAS control flag {flag:?}"));
    }
    let mut options = HashMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(options);
        }
        let (key, after) = rest.split_once('=').ok_or("JAAS options are key=value")?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("bad JAAS option name {key:?}"));
        }
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').ok_or("unterminated quoted JAAS value")?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        options.insert(key.to_string(), value.to_string());
        rest = remaining;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_and_bare_options() {
        let options = login_module_options(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope=\"a b\" unsecuredValidatorAllowableClockSkewMs=3000 ;",
            OAUTH_LOGIN_MODULE,
        )
        .unwrap();
        assert_eq!(options["unsecuredValidatorRequiredScope"], "a b");
        assert_eq!(options["unsecuredValidatorAllowableClockSkewMs"], "3000");
    }

    #[test]
    fn refuses_other_modules_and_broken_entries() {
        for bad in [
            "org.apache.kafka.common.security.plain.PlainLoginModule required;",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule maybe;",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required a=\"x;",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required novalue;",
        ] {
            assert!(
                login_module_options(bad, OAUTH_LOGIN_MODULE).is_err(),
                "{bad}"
            );
        }
    }
}
