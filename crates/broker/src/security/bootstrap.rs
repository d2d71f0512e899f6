//! `--add-scram` specs in the syntax of Kafka's `kafka-storage format
//! --add-scram`: `SCRAM-SHA-256=[name=admin,password=admin-secret]`, with
//! an optional `iterations=N` (default 4096) and values that may be quoted
//! (`password="a,b"`).

use sluice_metadata::ScramMechanism;
use std::fmt;

/// A user to create at start unless it has a credential already.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramBootstrap {
    pub(crate) mechanism: ScramMechanism,
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) iterations: u32,
}

impl fmt::Debug for ScramBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramBootstrap")
            .field("mechanism", &self.mechanism)
            .field("name", &self.name)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramBootstrap {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mechanism(&self) -> &'static str {
        self.mechanism.name()
    }
}

impl std::str::FromStr for ScramBootstrap {
    type Err = String;

    /// Errors never repeat the password.
    fn from_str(spec: &str) -> Result<Self, String> {
        let (mechanism, rest) = spec
            .split_once('=')
            .ok_or("expected MECHANISM=[name=...,password=...]")?;
        let mechanism = ScramMechanism::from_name(mechanism.trim()).ok_or_else(|| {
            format!("unknown SCRAM mechanism {mechanism:?} (SCRAM-SHA-256 or SCRAM-SHA-512)")
        })?;
        let body = rest
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or("expected [name=...,password=...] after the mechanism")?;
        let (mut name, mut password, mut iterations) = (None, None, None);
        for (key, value) in split_pairs(body)? {
            match key.as_str() {
                "name" => name = Some(value),
                "password" => password = Some(value),
                "iterations" => {
                    iterations = Some(
                        value
                            .parse::<u32>()
                            .map_err(|_| format!("iterations={value} is not a number"))?,
                    )
                }
                "salt" | "saltedpassword" => {
                    return Err(format!("{key}= is not supported; give password="))
                }
                other => {
                    return Err(format!(
                        "unknown key {other:?} (name, password, iterations)"
                    ))
                }
            }
        }
        let name = name.filter(|n| !n.is_empty()).ok_or("name= is missing")?;
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or("password= is missing")?;
        let iterations = iterations.unwrap_or(mechanism.min_iterations());
        if iterations < mechanism.min_iterations() || iterations > mechanism.max_iterations() {
            return Err(format!(
                "iterations must be {} to {} for {mechanism}",
                mechanism.min_iterations(),
                mechanism.max_iterations()
            ));
        }
        Ok(ScramBootstrap {
            mechanism,
            name,
            password,
            iterations,
        })
    }
}

/// `key=value` pairs separated by commas; a value in double quotes may
/// hold commas.
fn split_pairs(body: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or("expected key=value inside the brackets")?;
        let key = key.trim().to_string();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unterminated quote in {key}="))?;
            let after = &quoted[end + 1..];
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(format!("unexpected text after the quoted {key}= value"));
            }
            (quoted[..end].to_string(), after)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        pairs.push((key, value));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_storage_syntax() {
        let spec: ScramBootstrap = "SCRAM-SHA-256=[name=admin,password=admin-secret]"
            .parse()
            .unwrap();
        assert_eq!(spec.name, "admin");
        assert_eq!(spec.password, "admin-secret");
        assert_eq!(spec.iterations, 4096);
        let spec: ScramBootstrap = r#"SCRAM-SHA-512=[name=alice,password="a,b=c",iterations=8192]"#
            .parse()
            .unwrap();
        assert_eq!(spec.mechanism, ScramMechanism::Sha512);
        assert_eq!(spec.password, "a,b=c");
        assert_eq!(spec.iterations, 8192);
        assert!(!format!("{spec:?}").contains("a,b=c"));
    }

    #[test]
    fn refuses_bad_specs_without_echoing_the_password() {
        for bad in [
            "SCRAM-SHA-1=[name=a,password=hunter2]",
            "SCRAM-SHA-256=name=a,password=hunter2",
            "SCRAM-SHA-256=[password=hunter2]",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=hunter2,iterations=100]",
            "SCRAM-SHA-256=[name=a,password=hunter2,iterations=x]",
            "SCRAM-SHA-256=[name=a,password=\"hunter2]",
            "SCRAM-SHA-256=[name=a,password=hunter2,color=blue]",
            "",
        ] {
            let error = bad.parse::<ScramBootstrap>().unwrap_err();
            assert!(!error.contains("hunter2"), "{bad}: {error}");
        }
    }
}
