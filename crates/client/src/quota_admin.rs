//! Client quota administration (KIP-546): describe quotas by entity filter
//! (DescribeClientQuotas) and set or remove them (AlterClientQuotas), as
//! `kafka-configs.sh --entity-type users|clients|ips` does.

use sluice_protocol::kafka_protocol::messages::alter_client_quotas_request::{
    EntityData, EntryData, OpData,
};
use sluice_protocol::kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use sluice_protocol::kafka_protocol::messages::{
    AlterClientQuotasRequest, DescribeClientQuotasRequest,
};

use crate::admin::{s, Admin};
use crate::error::{Error, Result};

/// Who a quota is for: `(entity type, name)` pairs, `user`, `client-id` or
/// `ip`, a `None` name meaning the type's default.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// How a filter component matches an entity's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// Exactly this name.
    Exact(String),
    /// The type's default.
    Default,
    /// Any name, or the default.
    Any,
}

/// One entity's quotas, as DescribeClientQuotas answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientQuotas {
    /// The entity.
    pub entity: QuotaEntity,
    /// `(key, value)` pairs: producer_byte_rate, consumer_byte_rate, ...
    pub values: Vec<(String, f64)>,
}

impl Admin {
    /// The quotas of every entity that has each of `filter`'s types with a
    /// matching name; with `strict`, no other types either. An empty,
    /// non-strict filter lists every entity.
    pub async fn describe_client_quotas(
        &self,
        filter: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<ClientQuotas>> {
        let conn = self.cluster().any_connection().await?;
        let components = filter
            .iter()
            .map(|(entity_type, matching)| {
                let (match_type, name) = match matching {
                    QuotaMatch::Exact(name) => (0, Some(s(name.clone()))),
                    QuotaMatch::Default => (1, None),
                    QuotaMatch::Any => (2, None),
                };
                ComponentData::default()
                    .with_entity_type(s(entity_type.clone()))
                    .with_match_type(match_type)
                    .with_match(name)
            })
            .collect();
        let req = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let resp = conn.call(req).await?;
        Error::check(
            resp.error_code,
            resp.error_message.map(|m| m.to_string()),
            "client quotas",
        )?;
        Ok(resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| ClientQuotas {
                entity: e
                    .entity
                    .into_iter()
                    .map(|c| {
                        (
                            c.entity_type.to_string(),
                            c.entity_name.map(|n| n.to_string()),
                        )
                    })
                    .collect(),
                values: e
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect(),
            })
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) quotas of `entity`; with
    /// `validate_only` the broker only checks them.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.cluster().any_connection().await?;
        let entry = EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, name)| {
                        EntityData::default()
                            .with_entity_type(s(t.clone()))
                            .with_entity_name(name.clone().map(s))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(key, value)| {
                        OpData::default()
                            .with_key(s(key.clone()))
                            .with_value(value.unwrap_or(0.0))
                            .with_remove(value.is_none())
                    })
                    .collect(),
            );
        let req = AlterClientQuotasRequest::default()
            .with_entries(vec![entry])
            .with_validate_only(validate_only);
        let resp = conn.call(req).await?;
        for e in resp.entries {
            Error::check(
                e.error_code,
                e.error_message.map(|m| m.to_string()),
                "client quotas",
            )?;
        }
        Ok(())
    }
}
