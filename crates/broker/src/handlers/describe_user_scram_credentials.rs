//! DescribeUserScramCredentials (key 50, KIP-554): which SCRAM mechanisms
//! and iteration counts each user has, never salts or keys. No users (null
//! or empty) means every user.

use super::{str_bytes, ApiSupport};
use crate::state::BrokerState;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};
use sluice_metadata::{MetadataImage, ScramCredential, ScramMechanism};
use sluice_protocol::error;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const API: ApiSupport = ApiSupport::new(ApiKey::DescribeUserScramCredentials, 0, 0);

pub(crate) fn handle(
    state: &BrokerState,
    request: DescribeUserScramCredentialsRequest,
) -> ResponseKind {
    ResponseKind::DescribeUserScramCredentials(describe(&state.image(), request))
}

fn describe(
    image: &MetadataImage,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let found = |user: &str, credentials: &BTreeMap<ScramMechanism, ScramCredential>| {
        DescribeUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
            .with_credential_infos(
                credentials
                    .iter()
                    .map(|(mechanism, c)| {
                        CredentialInfo::default()
                            .with_mechanism(mechanism.type_id())
                            .with_iterations(c.iterations as i32)
                    })
                    .collect(),
            )
    };
    let results = match request.users.filter(|u| !u.is_empty()) {
        None => image.scram_users().map(|(u, c)| found(u, c)).collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            let duplicated: BTreeSet<String> = users
                .iter()
                .filter(|u| !seen.insert(u.name.to_string()))
                .map(|u| u.name.to_string())
                .collect();
            let mut answered = BTreeSet::new();
            users
                .into_iter()
                .filter(|u| answered.insert(u.name.to_string()))
                .map(|u| {
                    let name = u.name.to_string();
                    let credentials = image.scram_users().find(|(n, _)| *n == name);
                    let failed = |code, message: String| {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(str_bytes(name.clone()))
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes(message)))
                    };
                    if duplicated.contains(&name) {
                        failed(
                            error::DUPLICATE_RESOURCE,
                            format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}"),
                        )
                    } else if let Some((user, credentials)) = credentials {
                        found(user, credentials)
                    } else {
                        failed(
                            error::RESOURCE_NOT_FOUND,
                            format!("Attempt to describe a user credential that does not exist: {name}"),
                        )
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use sluice_metadata::MetadataRecord;

    fn user(name: &str) -> UserName {
        UserName::default().with_name(str_bytes(name))
    }

    #[test]
    fn describes_mechanisms_and_iterations_only() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::UserScramCredentialUpserted {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha512,
            credential: ScramCredential {
                salt: vec![1],
                stored_key: vec![2],
                server_key: vec![3],
                iterations: 8192,
            },
        });
        let all = describe(&image, DescribeUserScramCredentialsRequest::default());
        assert_eq!(all.results.len(), 1);
        assert_eq!(all.results[0].credential_infos[0].mechanism, 2);
        assert_eq!(all.results[0].credential_infos[0].iterations, 8192);
        let named = describe(
            &image,
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                user("alice"),
                user("bob"),
                user("carol"),
                user("carol"),
            ])),
        );
        let codes: Vec<_> = named
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                ("alice".to_string(), error::NONE),
                ("bob".to_string(), error::RESOURCE_NOT_FOUND),
                ("carol".to_string(), error::DUPLICATE_RESOURCE),
            ]
        );
    }
}
