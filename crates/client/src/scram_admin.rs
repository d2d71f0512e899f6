//! SCRAM user administration (KIP-554): list users' credentials
//! (DescribeUserScramCredentials) and set or delete them
//! (AlterUserScramCredentials), like `kafka-configs.sh --entity-type users`.
//! The password is salted here, so it never leaves this process: the
//! broker receives the salt, the iteration count and the salted password.

use rand::RngCore;
use sluice_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use sluice_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use sluice_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};

use crate::admin::{s, Admin};
use crate::error::{Error, Result};

/// A SCRAM mechanism, with Kafka's type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (type 1).
    Sha256,
    /// SCRAM-SHA-512 (type 2).
    Sha512,
}

impl ScramMechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// By SASL mechanism name.
    pub fn from_name(name: &str) -> Option<Self> {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    fn from_type_id(id: i8) -> Option<Self> {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .find(|m| m.type_id() == id)
    }

    /// The hash SCRAM computes with.
    pub(crate) fn hash(self) -> sluice_protocol::scram::ScramHash {
        match self {
            ScramMechanism::Sha256 => sluice_protocol::scram::ScramHash::Sha256,
            ScramMechanism::Sha512 => sluice_protocol::scram::ScramHash::Sha512,
        }
    }
}

/// One user's SCRAM credentials: (mechanism, iterations) pairs. The
/// mechanism is `None` for a type this client does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredentials {
    /// The user name.
    pub user: String,
    /// The mechanisms and iteration counts the user has credentials for.
    pub credentials: Vec<(Option<ScramMechanism>, i32)>,
}

/// A change to one user's credential.
#[derive(Clone, PartialEq, Eq)]
pub enum ScramAlteration {
    /// Sets the credential for `mechanism` from `password`.
    Upsert {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
        /// PBKDF2 iterations (Kafka accepts 4096 to 16384).
        iterations: u32,
        /// The password, salted before it is sent.
        password: String,
    },
    /// Removes the credential for `mechanism`.
    Delete {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
    },
}

impl std::fmt::Debug for ScramAlteration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramAlteration::Upsert {
                user,
                mechanism,
                iterations,
                ..
            } => f
                .debug_struct("Upsert")
                .field("user", user)
                .field("mechanism", mechanism)
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            ScramAlteration::Delete { user, mechanism } => f
                .debug_struct("Delete")
                .field("user", user)
                .field("mechanism", mechanism)
                .finish(),
        }
    }
}

impl Admin {
    /// The SCRAM credentials of `users`, or of every user when empty.
    /// Fails with the first per-user error (RESOURCE_NOT_FOUND for a user
    /// without credentials).
    pub async fn describe_user_scram_credentials(
        &self,
        users: &[String],
    ) -> Result<Vec<UserScramCredentials>> {
        let conn = self.cluster().any_connection().await?;
        let req = DescribeUserScramCredentialsRequest::default().with_users(
            (!users.is_empty()).then(|| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(s(u.clone())))
                    .collect()
            }),
        );
        let resp = conn.call(req).await?;
        Error::check(
            resp.error_code,
            resp.error_message.map(|m| m.to_string()),
            "users",
        )?;
        let mut out = Vec::with_capacity(resp.results.len());
        for r in resp.results {
            let user = r.user.to_string();
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("user '{user}'"),
            )?;
            out.push(UserScramCredentials {
                user,
                credentials: r
                    .credential_infos
                    .iter()
                    .map(|c| (ScramMechanism::from_type_id(c.mechanism), c.iterations))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Applies `alterations`; the broker applies each user's together.
    /// Fails with the first per-user error.
    pub async fn alter_user_scram_credentials(
        &self,
        alterations: &[ScramAlteration],
    ) -> Result<()> {
        let mut req = AlterUserScramCredentialsRequest::default();
        for alteration in alterations {
            match alteration {
                ScramAlteration::Upsert {
                    user,
                    mechanism,
                    iterations,
                    password,
                } => {
                    let mut salt = vec![0u8; 32];
                    rand::rng().fill_bytes(&mut salt);
                    let salted = mechanism
                        .hash()
                        .salted_password(password, &salt, *iterations);
                    req.upsertions.push(
                        ScramCredentialUpsertion::default()
                            .with_name(s(user.clone()))
                            .with_mechanism(mechanism.type_id())
                            .with_iterations(i32::try_from(*iterations).unwrap_or(i32::MAX))
                            .with_salt(salt.into())
                            .with_salted_password(salted.into()),
                    );
                }
                ScramAlteration::Delete { user, mechanism } => req.deletions.push(
                    ScramCredentialDeletion::default()
                        .with_name(s(user.clone()))
                        .with_mechanism(mechanism.type_id()),
                ),
            }
        }
        let conn = self.cluster().controller_connection().await?;
        let resp = conn.call(req).await?;
        for r in resp.results {
            Error::check(
                r.error_code,
                r.error_message.map(|m| m.to_string()),
                format!("user '{}'", r.user),
            )?;
        }
        Ok(())
    }
}
