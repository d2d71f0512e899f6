//! AlterClientQuotas (key 49): set or remove client quotas of users, client
//! ids and IP addresses, stored as metadata records. Each entry succeeds or
//! fails on its own; the caller needs AlterConfigs on the cluster (checked
//! in `authorize`).

use super::{str_bytes, ApiSupport};
use crate::controller::{Controller, QuotaAlteration};
use crate::state::BrokerState;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, ResponseKind,
};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AlterClientQuotas, 0, 1);

pub(crate) fn handle(state: &BrokerState, request: AlterClientQuotasRequest) -> ResponseKind {
    let echoed: Vec<Vec<EntityData>> = request
        .entries
        .iter()
        .map(|e| {
            e.entity
                .iter()
                .map(|c| {
                    EntityData::default()
                        .with_entity_type(c.entity_type.clone())
                        .with_entity_name(c.entity_name.clone())
                })
                .collect()
        })
        .collect();
    let alterations = request
        .entries
        .into_iter()
        .map(|e| QuotaAlteration {
            components: e
                .entity
                .into_iter()
                .map(|c| {
                    (
                        c.entity_type.to_string(),
                        c.entity_name.map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .into_iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect(),
        })
        .collect();
    let outcomes =
        match Controller::new(state).alter_client_quotas(alterations, request.validate_only) {
            Ok(outcomes) => outcomes,
            Err(e) => echoed.iter().map(|_| Err(e.clone())).collect(),
        };
    let entries = echoed
        .into_iter()
        .zip(outcomes)
        .map(|(entity, outcome)| {
            let entry = EntryData::default().with_entity(entity);
            match outcome {
                Ok(()) => entry,
                Err(e) => entry
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
}
