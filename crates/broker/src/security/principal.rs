//! The principal of a TLS client: its certificate's subject as an RFC 2253
//! distinguished name (what Java's `X500Principal.getName()` gives Kafka),
//! mapped by `ssl.principal.mapping.rules` in Kafka's syntax:
//! `DEFAULT` (the whole name) or `RULE:pattern/replacement/[LU]`, the first
//! rule whose pattern matches the whole name winning.

use regex::Regex;
use x509_cert::der::Decode;

/// One `ssl.principal.mapping.rules` entry.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        /// In the regex crate's syntax (`${1}`), from Java's (`$1`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub(crate) struct PrincipalRules(Vec<Rule>);

impl PrincipalRules {
    /// Parses Kafka's rule list: rules separated by commas, where a
    /// pattern or replacement may hold commas and escaped slashes (`\/`).
    pub(crate) fn parse(value: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = value.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule '{rest}' has no '/' after its pattern"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule '{rest}' has no '/' after its replacement"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("invalid pattern '{pattern}': {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "'{rest}' is neither DEFAULT nor RULE:pattern/replacement/[LU]"
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected ',' before '{rest}'")),
            }
        }
        if rules.is_empty() {
            return Err("no rule given (DEFAULT keeps the whole name)".to_string());
        }
        Ok(PrincipalRules(rules))
    }

    /// The short name for `dn`, or `None` when no rule matches it (Kafka
    /// then refuses the connection).
    pub(crate) fn apply(&self, dn: &str) -> Option<String> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => pattern.is_match(dn).then(|| {
                let mapped = pattern.replace(dn, replacement.as_str()).into_owned();
                match case {
                    Case::Keep => mapped,
                    Case::Lower => mapped.to_lowercase(),
                    Case::Upper => mapped.to_uppercase(),
                }
            }),
        })
    }
}

/// Splits at the first unescaped `/`, unescaping `\/` in what comes before.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as the regex crate's `${1}` (which would
/// otherwise read `$1abc` as a group named `1abc`); `$` before anything
/// but a digit is a literal `$`.
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if next == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(next);
                    }
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    out.push(d);
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// The subject of a DER certificate as an RFC 2253 name, most specific
/// part first ("CN=client,OU=eng,O=Example,C=US").
pub(crate) fn subject_name(certificate_der: &[u8]) -> Result<String, String> {
    let certificate = x509_cert::Certificate::from_der(certificate_der)
        .map_err(|e| format!("the client certificate cannot be read: {e}"))?;
    Ok(certificate.tbs_certificate.subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .apply("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            rules
                .apply("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(
            rules.apply("OU=x,cn=Other.User").as_deref(),
            Some("other.user")
        );
        assert_eq!(rules.apply("O=nobody").as_deref(), Some("O=nobody"));
    }

    #[test]
    fn upper_case_escaped_slashes_and_no_match() {
        let rules = PrincipalRules::parse("RULE:^CN=(.*)\\/x$/$1abc/U").unwrap();
        assert_eq!(rules.apply("CN=a/x").as_deref(), Some("AABC"));
        assert_eq!(rules.apply("CN=a"), None);
        assert_eq!(
            PrincipalRules::parse("DEFAULT")
                .unwrap()
                .apply("CN=a")
                .as_deref(),
            Some("CN=a")
        );
    }

    proptest::proptest! {
        #[test]
        fn rule_parsing_and_mapping_never_panic(
            rules in "(DEFAULT|RULE:[ -~]{0,12}/[ -~$]{0,8}/[LU]?)(,(DEFAULT|RULE:[ -~]{0,8}/[ -~]{0,6}/))?",
            dn in "[ -~]{0,40}",
        ) {
            if let Ok(rules) = PrincipalRules::parse(&rules) {
                let _ = rules.apply(&dn);
            }
        }
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "",
            "RULE:x",
            "RULE:x/y",
            "RULE:(/y/",
            "DEFAULT RULE:a/b/",
            "NONSENSE",
        ] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_subject_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "US");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client, one");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_name(cert.der()).unwrap(),
            "CN=client\\, one,O=Example,C=US"
        );
        assert!(subject_name(b"not a certificate").is_err());
    }
}
