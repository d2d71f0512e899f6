//! SCRAM credential changes (AlterUserScramCredentials, `--add-scram`), as
//! Kafka's ScramControlManager validates them: each user's alterations
//! succeed or fail together, decided against the latest image and appended
//! as one batch with every other user's in the request.

use super::{ApiError, Controller};
use crate::security::scram;
use sluice_metadata::{MetadataImage, MetadataRecord, ScramMechanism};
use sluice_protocol::error::{self, ErrorCode};
use std::collections::BTreeMap;

/// One alteration of one user's credential.
#[derive(Clone)]
pub(crate) enum ScramAlteration {
    Delete {
        mechanism: i8,
    },
    Upsert {
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

impl ScramAlteration {
    fn mechanism(&self) -> i8 {
        match self {
            ScramAlteration::Delete { mechanism } | ScramAlteration::Upsert { mechanism, .. } => {
                *mechanism
            }
        }
    }
}

/// The outcome for one user, in the order users first appear.
pub(crate) type UserResults = Vec<(String, Result<(), ApiError>)>;

impl Controller<'_> {
    /// Applies `alterations` (user, alteration) and answers per user.
    pub(crate) fn alter_scram_credentials(
        &self,
        alterations: Vec<(String, ScramAlteration)>,
    ) -> Result<UserResults, ApiError> {
        // Decided again (hence the copy) if the metadata moved on meanwhile.
        self.commit_with(|image| Ok(decide(image, alterations.clone())))
    }

    /// Creates `user`'s credential from a password unless one exists for
    /// `mechanism` (`sluice serve --add-scram`). Returns whether it did.
    pub(crate) fn add_scram_if_absent(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<bool, ApiError> {
        let invalid = |m: String| ApiError::new(error::UNACCEPTABLE_CREDENTIAL, m);
        if user.is_empty() {
            return Err(invalid("Username must not be empty".into()));
        }
        if password.is_empty() {
            return Err(invalid("Password must not be empty".into()));
        }
        check_iterations(mechanism, i64::from(iterations)).map_err(|(_, m)| invalid(m))?;
        self.commit_with(|image| {
            if image.scram_credential(user, mechanism).is_some() {
                return Ok((Vec::new(), false));
            }
            let credential = scram::credential_from_password(mechanism, password, iterations);
            Ok((
                vec![MetadataRecord::UserScramCredentialUpserted {
                    name: user.to_string(),
                    mechanism,
                    credential,
                }],
                true,
            ))
        })
    }
}

fn check_iterations(mechanism: ScramMechanism, iterations: i64) -> Result<(), (ErrorCode, String)> {
    if iterations < i64::from(mechanism.min_iterations()) {
        return Err((
            error::UNACCEPTABLE_CREDENTIAL,
            format!(
                "Too few iterations: at least {} for {mechanism}",
                mechanism.min_iterations()
            ),
        ));
    }
    if iterations > i64::from(mechanism.max_iterations()) {
        return Err((
            error::UNACCEPTABLE_CREDENTIAL,
            format!(
                "Too many iterations: at most {} for {mechanism}",
                mechanism.max_iterations()
            ),
        ));
    }
    Ok(())
}

fn decide(
    image: &MetadataImage,
    alterations: Vec<(String, ScramAlteration)>,
) -> (Vec<MetadataRecord>, UserResults) {
    let mut by_user: Vec<(String, Vec<ScramAlteration>)> = Vec::new();
    for (user, alteration) in alterations {
        match by_user.iter_mut().find(|(u, _)| *u == user) {
            Some((_, list)) => list.push(alteration),
            None => by_user.push((user, vec![alteration])),
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(by_user.len());
    for (user, list) in by_user {
        match decide_user(image, &user, list) {
            Ok(mut user_records) => {
                records.append(&mut user_records);
                results.push((user, Ok(())));
            }
            Err((code, message)) => results.push((user, Err(ApiError::new(code, message)))),
        }
    }
    (records, results)
}

fn decide_user(
    image: &MetadataImage,
    user: &str,
    alterations: Vec<ScramAlteration>,
) -> Result<Vec<MetadataRecord>, (ErrorCode, String)> {
    if user.is_empty() {
        return Err((
            error::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty".into(),
        ));
    }
    let mut seen = BTreeMap::new();
    for alteration in &alterations {
        if seen.insert(alteration.mechanism(), ()).is_some() {
            return Err((
                error::DUPLICATE_RESOURCE,
                "A user credential cannot be altered twice in the same request".into(),
            ));
        }
    }
    let mut records = Vec::with_capacity(alterations.len());
    for alteration in alterations {
        let mechanism = ScramMechanism::from_type_id(alteration.mechanism()).ok_or((
            error::UNSUPPORTED_SASL_MECHANISM,
            "Unknown SCRAM mechanism".to_string(),
        ))?;
        match alteration {
            ScramAlteration::Delete { .. } => {
                if image.scram_credential(user, mechanism).is_none() {
                    return Err((
                        error::RESOURCE_NOT_FOUND,
                        "Attempt to delete a user credential that does not exist".into(),
                    ));
                }
                records.push(MetadataRecord::UserScramCredentialDeleted {
                    name: user.to_string(),
                    mechanism,
                });
            }
            ScramAlteration::Upsert {
                iterations,
                salt,
                salted_password,
                ..
            } => {
                check_iterations(mechanism, i64::from(iterations))?;
                if salted_password.is_empty() {
                    return Err((
                        error::UNACCEPTABLE_CREDENTIAL,
                        "Salted password must not be empty".into(),
                    ));
                }
                if salt.is_empty() {
                    return Err((
                        error::UNACCEPTABLE_CREDENTIAL,
                        "Salt must not be empty".into(),
                    ));
                }
                let iterations = iterations as u32;
                records.push(MetadataRecord::UserScramCredentialUpserted {
                    name: user.to_string(),
                    mechanism,
                    credential: scram::credential_from_salted(
                        mechanism,
                        &salt,
                        &salted_password,
                        iterations,
                    ),
                });
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(mechanism: i8, iterations: i32) -> ScramAlteration {
        ScramAlteration::Upsert {
            mechanism,
            iterations,
            salt: vec![1; 16],
            salted_password: vec![2; 32],
        }
    }

    fn codes(results: &UserResults) -> Vec<(&str, ErrorCode)> {
        results
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().err().map_or(error::NONE, |e| e.code)))
            .collect()
    }

    #[test]
    fn each_user_succeeds_or_fails_as_a_whole() {
        let image = MetadataImage::default();
        let (records, results) = decide(
            &image,
            vec![
                ("alice".into(), upsert(1, 4096)),
                ("alice".into(), upsert(2, 8192)),
                ("bob".into(), upsert(1, 4096)),
                ("bob".into(), upsert(1, 8192)),
                ("carol".into(), upsert(1, 4095)),
                ("dave".into(), upsert(2, 16385)),
                ("erin".into(), upsert(3, 4096)),
                ("frank".into(), ScramAlteration::Delete { mechanism: 1 }),
                ("".into(), upsert(1, 4096)),
                (
                    "gina".into(),
                    ScramAlteration::Upsert {
                        mechanism: 1,
                        iterations: 4096,
                        salt: vec![1],
                        salted_password: Vec::new(),
                    },
                ),
            ],
        );
        assert_eq!(
            codes(&results),
            [
                ("alice", error::NONE),
                ("bob", error::DUPLICATE_RESOURCE),
                ("carol", error::UNACCEPTABLE_CREDENTIAL),
                ("dave", error::UNACCEPTABLE_CREDENTIAL),
                ("erin", error::UNSUPPORTED_SASL_MECHANISM),
                ("frank", error::RESOURCE_NOT_FOUND),
                ("", error::UNACCEPTABLE_CREDENTIAL),
                ("gina", error::UNACCEPTABLE_CREDENTIAL),
            ]
        );
        assert_eq!(records.len(), 2, "only alice's two credentials");
        let mut image = image;
        for record in &records {
            image.apply(record);
        }
        let credential = image
            .scram_credential("alice", ScramMechanism::Sha512)
            .unwrap();
        assert_eq!(credential.iterations, 8192);
        assert_eq!(
            credential.stored_key,
            scram::credential_from_salted(ScramMechanism::Sha512, &[1; 16], &[2; 32], 8192)
                .stored_key
        );
        let (records, results) = decide(
            &image,
            vec![("alice".into(), ScramAlteration::Delete { mechanism: 2 })],
        );
        assert_eq!(codes(&results), [("alice", error::NONE)]);
        assert_eq!(records.len(), 1);
    }
}
