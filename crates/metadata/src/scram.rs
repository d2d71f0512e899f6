//! SCRAM credentials as the metadata holds them (KIP-554): per user and
//! mechanism the salt, the iteration count and the two keys RFC 5802
//! derives from the salted password. The password itself is never stored,
//! nor is the salted password: StoredKey lets the broker check a client's
//! proof, ServerKey lets it prove itself, and neither lets anyone log in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The SCRAM mechanisms Kafka knows, with the type ids of its
/// DescribeUserScramCredentials / AlterUserScramCredentials APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` type id (0 is UNKNOWN).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// The fewest iterations Kafka accepts (RFC 7677 recommends 4096).
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// The most iterations Kafka accepts.
    pub fn max_iterations(self) -> u32 {
        16384
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One user's credential for one mechanism. Its `Debug` leaves the salt
/// and keys out, so a logged record does not carry them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "hex")]
    pub salt: Vec<u8>,
    #[serde(with = "hex")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Bytes as lowercase hex strings in the JSON of the log and snapshot.
mod hex {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom("not a hex digit"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_as_hex_and_debug_hides_the_keys() {
        let credential = ScramCredential {
            salt: vec![0, 1, 0xab],
            stored_key: vec![0xff; 4],
            server_key: vec![0x10],
            iterations: 4096,
        };
        let json = serde_json::to_string(&credential).unwrap();
        assert_eq!(
            json,
            r#"{"salt":"0001ab","stored_key":"ffffffff","server_key":"10","iterations":4096}"#
        );
        assert_eq!(
            serde_json::from_str::<ScramCredential>(&json).unwrap(),
            credential
        );
        assert!(serde_json::from_str::<ScramCredential>(
            r#"{"salt":"0g","stored_key":"","server_key":"","iterations":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ScramCredential>(
            r#"{"salt":"abc","stored_key":"","server_key":"","iterations":1}"#
        )
        .is_err());
        assert_eq!(
            format!("{credential:?}"),
            "ScramCredential { iterations: 4096, .. }"
        );
        assert_eq!(
            ScramMechanism::from_type_id(2),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-256"),
            Some(ScramMechanism::Sha256)
        );
        assert_eq!(ScramMechanism::from_type_id(0), None);
    }
}
