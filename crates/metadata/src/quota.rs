//! Client quotas as the metadata keeps them (Kafka's ClientQuotaRecord): an
//! entity — a user, a client id, both, or an IP address, each named or the
//! default — and its quota values by key (`producer_byte_rate`, ...). What
//! the values mean is the broker's quota manager's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's entity types, in the order an entity lists them.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Who a quota applies to: `(entity type, name)` pairs sorted by type, a
/// `None` name meaning the type's default (Kafka's `<default>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaEntity(Vec<(String, Option<String>)>);

impl QuotaEntity {
    /// The entity of these components; the order they come in does not
    /// matter. `None` when an entity type appears twice.
    pub fn new(components: impl IntoIterator<Item = (String, Option<String>)>) -> Option<Self> {
        let mut components: Vec<_> = components.into_iter().collect();
        components.sort();
        let repeated = components.windows(2).any(|w| w[0].0 == w[1].0);
        (!repeated).then_some(QuotaEntity(components))
    }

    pub fn components(&self) -> &[(String, Option<String>)] {
        &self.0
    }

    /// The name of `entity_type` in this entity: `Some(None)` for its
    /// default, `None` when the entity has no such component.
    pub fn get(&self, entity_type: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(t, _)| t == entity_type)
            .map(|(_, name)| name.as_deref())
    }
}

/// A quota's value. Kafka's are doubles; this one compares by bits so the
/// records and the image stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Every entity's quota values. Serialized as a list of `[entity, values]`
/// pairs, since JSON map keys must be strings.
pub(crate) mod serde_quotas {
    use super::{QuotaEntity, QuotaValue};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Quotas = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

    pub(crate) fn serialize<S: Serializer>(quotas: &Quotas, s: S) -> Result<S::Ok, S::Error> {
        quotas.iter().collect::<Vec<_>>().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Quotas, D::Error> {
        let pairs = Vec::<(QuotaEntity, BTreeMap<String, QuotaValue>)>::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

/// Quota values by key.
pub type QuotaValues = BTreeMap<String, QuotaValue>;

#[cfg(test)]
mod tests {
    use super::*;

    fn named(t: &str, n: &str) -> (String, Option<String>) {
        (t.to_string(), Some(n.to_string()))
    }

    #[test]
    fn an_entity_is_the_same_in_any_order_and_refuses_a_repeated_type() {
        let a = QuotaEntity::new([named(USER, "alice"), named(CLIENT_ID, "app")]).unwrap();
        let b = QuotaEntity::new([named(CLIENT_ID, "app"), named(USER, "alice")]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.get(USER), Some(Some("alice")));
        assert_eq!(a.get(IP), None);
        assert!(QuotaEntity::new([named(USER, "a"), named(USER, "b")]).is_none());
        let default_user = QuotaEntity::new([(USER.to_string(), None)]).unwrap();
        assert_eq!(default_user.get(USER), Some(None));
        let json = serde_json::to_string(&default_user).unwrap();
        assert_eq!(json, r#"[["user",null]]"#);
        assert_eq!(
            serde_json::from_str::<QuotaEntity>(&json).unwrap(),
            default_user
        );
    }
}
