//! AlterUserScramCredentials (key 51, KIP-554): deletions and upsertions of
//! SCRAM credentials. The client salts the password itself; the broker
//! keeps only the stored and server keys derived from it.

use super::{str_bytes, ApiSupport};
use crate::controller::{Controller, ScramAlteration};
use crate::state::BrokerState;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, ResponseKind,
};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::AlterUserScramCredentials, 0, 0);

pub(crate) fn handle(
    state: &BrokerState,
    request: AlterUserScramCredentialsRequest,
) -> ResponseKind {
    let mut users = Vec::new();
    let mut alterations = Vec::new();
    for d in request.deletions {
        users.push(d.name.to_string());
        alterations.push((
            d.name.to_string(),
            ScramAlteration::Delete {
                mechanism: d.mechanism,
            },
        ));
    }
    for u in request.upsertions {
        users.push(u.name.to_string());
        alterations.push((
            u.name.to_string(),
            ScramAlteration::Upsert {
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            },
        ));
    }
    let results = match Controller::new(state).alter_scram_credentials(alterations) {
        Ok(results) => results
            .into_iter()
            .map(|(user, outcome)| {
                let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code)
                        .with_error_message(Some(str_bytes(e.message))),
                }
            })
            .collect(),
        // The append failed: every user's change with it.
        Err(e) => {
            let mut seen = std::collections::BTreeSet::new();
            users
                .into_iter()
                .filter(|u| seen.insert(u.clone()))
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(user))
                        .with_error_code(e.code)
                        .with_error_message(Some(str_bytes(e.message.clone())))
                })
                .collect()
        }
    };
    ResponseKind::AlterUserScramCredentials(
        AlterUserScramCredentialsResponse::default().with_results(results),
    )
}
