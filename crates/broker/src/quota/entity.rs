//! What AlterClientQuotas and DescribeClientQuotas are given, checked as
//! Kafka's ClientQuotaControlManager and ClientQuotasImage check it: the
//! entity types (user, client-id, ip — ip alone), the keys each type takes
//! and their value types, and the describe filters.

use super::{
    CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
};
use sluice_metadata::quota::{CLIENT_ID, IP, USER};
use sluice_metadata::QuotaEntity;
use sluice_protocol::error;

/// How a quota value must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    /// A whole number (Kafka's LONG).
    Long,
    /// A whole number that fits in 32 bits (Kafka's INT).
    Int,
    Double,
}

/// The keys (user, client-id) entities take.
const CLIENT_KEYS: &[(&str, ValueType)] = &[
    (PRODUCER_BYTE_RATE, ValueType::Long),
    (CONSUMER_BYTE_RATE, ValueType::Long),
    (REQUEST_PERCENTAGE, ValueType::Double),
    (CONTROLLER_MUTATION_RATE, ValueType::Double),
];

/// The keys ip entities take.
const IP_KEYS: &[(&str, ValueType)] = &[(CONNECTION_CREATION_RATE, ValueType::Int)];

/// The entity of an AlterClientQuotas entry, or why it is refused.
pub(crate) fn parse_entity(
    components: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<QuotaEntity, String> {
    let components: Vec<_> = components.into_iter().collect();
    if components.is_empty() {
        return Err("Invalid empty client quota entity".to_string());
    }
    for (entity_type, name) in &components {
        if ![USER, CLIENT_ID, IP].contains(&entity_type.as_str()) {
            return Err(format!("Unhandled client quota entity type: {entity_type}"));
        }
        if name.as_deref() == Some("") {
            return Err(format!("Empty {entity_type} not supported"));
        }
        if entity_type == IP {
            if let Some(ip) = name {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("{ip} is not a valid IP or resolvable host."));
                }
            }
        }
    }
    let entity = QuotaEntity::new(components)
        .ok_or_else(|| "Invalid quota entity: an entity type appears more than once".to_string())?;
    if entity.get(IP).is_some() && entity.components().len() > 1 {
        // Kafka's message, word for word.
        return Err(
            "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"
                .to_string(),
        );
    }
    Ok(entity)
}

/// Checks that `entity` takes `key` and that `value` has the key's type.
/// Removals (`None`) are not checked: removing what is not set, even an
/// unknown key, succeeds and changes nothing, as in Kafka.
pub(crate) fn check_value(
    entity: &QuotaEntity,
    key: &str,
    value: Option<f64>,
) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    let keys = if entity.get(IP).is_some() {
        IP_KEYS
    } else {
        CLIENT_KEYS
    };
    let Some((_, ty)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(format!("Invalid configuration key {key}"));
    };
    if value.is_nan() || value <= 0.0 {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    let (max, type_name) = match ty {
        ValueType::Long => (i64::MAX as f64, "a LONG"),
        ValueType::Int => (f64::from(i32::MAX), "an INT"),
        ValueType::Double => (f64::MAX, "a DOUBLE"),
    };
    if value > max {
        return Err(format!(
            "Proposed value for {key} is too large for {type_name}."
        ));
    }
    if *ty != ValueType::Double && value.fract().abs() > 1e-6 {
        return Err(format!("{key} cannot be a fractional value."));
    }
    Ok(())
}

/// DescribeClientQuotas match types.
pub(crate) const MATCH_EXACT: i8 = 0;
pub(crate) const MATCH_DEFAULT: i8 = 1;
pub(crate) const MATCH_ANY: i8 = 2;

/// One component of a DescribeClientQuotas filter.
#[derive(Debug, Clone)]
pub(crate) struct FilterComponent {
    pub(crate) entity_type: String,
    pub(crate) match_type: i8,
    pub(crate) name: Option<String>,
}

/// A checked DescribeClientQuotas filter.
#[derive(Debug)]
pub(crate) struct QuotaFilter {
    components: Vec<FilterComponent>,
    strict: bool,
}

impl QuotaFilter {
    /// The filter, or the error code and message Kafka answers for it.
    pub(crate) fn new(
        components: Vec<FilterComponent>,
        strict: bool,
    ) -> Result<QuotaFilter, (i16, String)> {
        let invalid = |why: String| Err((error::INVALID_REQUEST, why));
        for (i, c) in components.iter().enumerate() {
            if c.entity_type.is_empty() {
                return invalid("Invalid empty entity type.".to_string());
            }
            if components[..i]
                .iter()
                .any(|o| o.entity_type == c.entity_type)
            {
                return invalid(format!(
                    "Entity type {} cannot appear more than once in the filter.",
                    c.entity_type
                ));
            }
            if ![USER, CLIENT_ID, IP].contains(&c.entity_type.as_str()) {
                return Err((
                    error::UNSUPPORTED_VERSION,
                    format!("Unsupported entity type {}", c.entity_type),
                ));
            }
            let problem = match (c.match_type, &c.name) {
                (MATCH_EXACT, None) => "MATCH_TYPE_EXACT, but set match string to null.",
                (MATCH_DEFAULT, Some(_)) => {
                    "MATCH_TYPE_DEFAULT, but also specified a match string."
                }
                (MATCH_ANY, Some(_)) => "MATCH_TYPE_SPECIFIED, but also specified a match string.",
                (MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY, _) => "",
                (other, _) => return invalid(format!("Unknown match type {other}")),
            };
            if !problem.is_empty() {
                return invalid(format!("Request specified {problem}"));
            }
        }
        let has_ip = components.iter().any(|c| c.entity_type == IP);
        if has_ip && components.len() > 1 {
            return invalid(
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
                    .to_string(),
            );
        }
        Ok(QuotaFilter { components, strict })
    }

    /// Whether the filter selects `entity`: it has every component's type
    /// with a matching name, and when strict no other types (so an empty
    /// strict filter selects nothing, an empty lax one everything).
    pub(crate) fn matches(&self, entity: &QuotaEntity) -> bool {
        let each = self
            .components
            .iter()
            .all(|c| match entity.get(&c.entity_type) {
                None => false,
                Some(name) => match c.match_type {
                    MATCH_EXACT => name == c.name.as_deref(),
                    MATCH_DEFAULT => name.is_none(),
                    _ => true,
                },
            });
        each && (!self.strict || entity.components().len() == self.components.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(t: &str, n: Option<&str>) -> (String, Option<String>) {
        (t.to_string(), n.map(str::to_string))
    }

    #[test]
    fn entities_are_checked_as_kafka_checks_them() {
        assert!(parse_entity([comp(USER, Some("alice")), comp(CLIENT_ID, None)]).is_ok());
        assert!(parse_entity([comp(IP, Some("10.0.0.1"))]).is_ok());
        assert!(parse_entity([comp(IP, None)]).is_ok());
        let refused = |c: Vec<(String, Option<String>)>| parse_entity(c).unwrap_err();
        assert!(refused(vec![]).contains("empty"));
        assert!(refused(vec![comp("group", Some("g"))]).contains("entity type: group"));
        assert!(refused(vec![comp(IP, Some("not an ip"))]).contains("not a valid IP"));
        assert!(refused(vec![comp(IP, None), comp(USER, None)]).contains("combination"));
        assert!(
            refused(vec![comp(USER, Some("a")), comp(USER, Some("b"))]).contains("more than once")
        );
    }

    #[test]
    fn values_must_have_their_keys_type() {
        let user = parse_entity([comp(USER, Some("alice"))]).unwrap();
        let ip = parse_entity([comp(IP, None)]).unwrap();
        assert!(check_value(&user, PRODUCER_BYTE_RATE, Some(1024.0)).is_ok());
        assert!(check_value(&user, PRODUCER_BYTE_RATE, Some(10.5))
            .unwrap_err()
            .contains("fractional"));
        assert!(check_value(&ip, CONNECTION_CREATION_RATE, Some(3e9))
            .unwrap_err()
            .contains("an INT"));
        assert!(check_value(&user, REQUEST_PERCENTAGE, Some(12.5)).is_ok());
        assert!(check_value(&user, CONNECTION_CREATION_RATE, Some(1.0)).is_err());
        assert!(check_value(&ip, CONNECTION_CREATION_RATE, Some(10.0)).is_ok());
        assert!(check_value(&ip, PRODUCER_BYTE_RATE, Some(10.0)).is_err());
        assert!(check_value(&user, "bogus", Some(1.0))
            .unwrap_err()
            .contains("bogus"));
        assert!(check_value(&user, "bogus", None).is_ok());
        assert!(check_value(&user, CONSUMER_BYTE_RATE, Some(0.0))
            .unwrap_err()
            .contains("greater than 0"));
        assert!(check_value(&user, CONSUMER_BYTE_RATE, None).is_ok());
    }

    #[test]
    fn filters_match_exact_default_and_any_strictly_or_not() {
        let alice_app =
            parse_entity([comp(USER, Some("alice")), comp(CLIENT_ID, Some("app"))]).unwrap();
        let alice = parse_entity([comp(USER, Some("alice"))]).unwrap();
        let default_user = parse_entity([comp(USER, None)]).unwrap();
        let ip = parse_entity([comp(IP, Some("10.0.0.1"))]).unwrap();
        let filter = |cs: Vec<FilterComponent>, strict| QuotaFilter::new(cs, strict).unwrap();
        let user = |m, n: Option<&str>| FilterComponent {
            entity_type: USER.to_string(),
            match_type: m,
            name: n.map(str::to_string),
        };
        let exact_alice = filter(vec![user(MATCH_EXACT, Some("alice"))], false);
        assert!(exact_alice.matches(&alice) && exact_alice.matches(&alice_app));
        assert!(!exact_alice.matches(&default_user));
        let strict_alice = filter(vec![user(MATCH_EXACT, Some("alice"))], true);
        assert!(strict_alice.matches(&alice) && !strict_alice.matches(&alice_app));
        let defaults = filter(vec![user(MATCH_DEFAULT, None)], false);
        assert!(defaults.matches(&default_user) && !defaults.matches(&alice));
        let any = filter(vec![user(MATCH_ANY, None)], false);
        assert!(any.matches(&alice) && any.matches(&default_user) && !any.matches(&ip));
        let everything = filter(vec![], false);
        assert!(everything.matches(&alice_app) && everything.matches(&ip));
        assert!(!filter(vec![], true).matches(&alice));
        assert!(QuotaFilter::new(vec![user(MATCH_EXACT, None)], false).is_err());
        assert!(QuotaFilter::new(vec![user(MATCH_DEFAULT, Some("a"))], false).is_err());
        let unknown = FilterComponent {
            entity_type: "group".to_string(),
            match_type: MATCH_ANY,
            name: None,
        };
        assert_eq!(
            QuotaFilter::new(vec![unknown], false).unwrap_err().0,
            error::UNSUPPORTED_VERSION
        );
        assert!(
            QuotaFilter::new(vec![user(MATCH_ANY, None), user(MATCH_ANY, None)], false).is_err()
        );
    }
}
