//! Client quota changes (AlterClientQuotas), as Kafka's
//! ClientQuotaControlManager makes them: each entry's entity and every op
//! are checked first, and an entry is applied whole or not at all. Removing
//! a quota that is not set writes nothing.

use super::{ApiError, Controller};
use crate::quota::entity::{check_value, parse_entity};
use sluice_metadata::{MetadataRecord, QuotaValue};
use sluice_protocol::error;

/// One AlterClientQuotas entry: the entity's components and its ops
/// (`None` removes the key).
pub(crate) struct QuotaAlteration {
    pub(crate) components: Vec<(String, Option<String>)>,
    pub(crate) ops: Vec<(String, Option<f64>)>,
}

impl Controller<'_> {
    /// Applies (or with `validate_only` only checks) each entry; one
    /// outcome per entry, in order.
    pub(crate) fn alter_client_quotas(
        &self,
        entries: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        self.commit_with(|image| {
            let mut records = Vec::new();
            let mut outcomes = Vec::new();
            for entry in &entries {
                let invalid = |why: String| ApiError::new(error::INVALID_REQUEST, why);
                let entity = match parse_entity(entry.components.iter().cloned()) {
                    Ok(entity) => entity,
                    Err(why) => {
                        outcomes.push(Err(invalid(why)));
                        continue;
                    }
                };
                let mut keys: Vec<&str> = Vec::new();
                let mut checked = Ok(());
                for (key, value) in &entry.ops {
                    if keys.contains(&key.as_str()) {
                        checked = Err(invalid(format!(
                            "Duplicate quota key {key} not updating quota for entity"
                        )));
                        break;
                    }
                    keys.push(key);
                    if let Err(why) = check_value(&entity, key, *value) {
                        checked = Err(invalid(why));
                        break;
                    }
                }
                if let Err(e) = checked {
                    outcomes.push(Err(e));
                    continue;
                }
                if !validate_only {
                    let current = image.client_quotas().get(&entity);
                    for (key, value) in &entry.ops {
                        let set = current.and_then(|c| c.get(key)).map(|v| v.0);
                        if set != *value {
                            records.push(MetadataRecord::ClientQuotaChanged {
                                entity: entity.clone(),
                                key: key.clone(),
                                value: value.map(QuotaValue),
                            });
                        }
                    }
                }
                outcomes.push(Ok(()));
            }
            Ok((records, outcomes))
        })
    }
}
