//! SASL PLAIN (RFC 4616) checked against the stored SCRAM credentials: the
//! password is salted with the stored salt and iterations and the derived
//! StoredKey compared in constant time, so PLAIN and SCRAM share one set
//! of users and no password is ever stored.

use super::scram::{self, ct_eq};
use super::AuthFailure;
use sluice_metadata::{MetadataImage, ScramMechanism};

/// `[authzid] NUL authcid NUL passwd`.
#[derive(PartialEq, Eq)]
pub(crate) struct PlainMessage<'a> {
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
}

impl std::fmt::Debug for PlainMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub(crate) fn parse(message: &[u8]) -> Result<PlainMessage<'_>, AuthFailure> {
    let text = std::str::from_utf8(message)
        .map_err(|_| AuthFailure::malformed("PLAIN message is not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::malformed(
            "PLAIN message is not authzid NUL authcid NUL passwd",
        ));
    };
    if username.is_empty() || password.is_empty() {
        return Err(AuthFailure::malformed(
            "PLAIN user name or password is empty",
        ));
    }
    if !authzid.is_empty() && authzid != username {
        return Err(AuthFailure::malformed(
            "PLAIN authzid differs from the user name",
        ));
    }
    Ok(PlainMessage { username, password })
}

/// Checks a PLAIN message against `image`; returns the user name. Slow on
/// purpose (PBKDF2): run it off the reactor.
pub(crate) fn verify(
    image: &MetadataImage,
    message: &[u8],
    decoy_secret: &[u8],
) -> Result<String, AuthFailure> {
    let plain = parse(message)?;
    // The strongest stored mechanism; one is enough to check the password.
    let stored = [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| image.scram_credential(plain.username, m).map(|c| (m, c)));
    let Some((mechanism, credential)) = stored else {
        // As much work as a real check, so timing does not tell.
        let decoy = scram::decoy_credential(ScramMechanism::Sha512, decoy_secret, plain.username);
        let _ = scram::salted_password(
            ScramMechanism::Sha512,
            plain.password.as_bytes(),
            &decoy.salt,
            decoy.iterations,
        );
        return Err(AuthFailure::credentials("no credential for this user"));
    };
    let salted = scram::salted_password(
        mechanism,
        plain.password.as_bytes(),
        &credential.salt,
        credential.iterations,
    );
    let derived = scram::credential_from_salted(mechanism, &credential.salt, &salted, 0);
    if ct_eq(&derived.stored_key, &credential.stored_key) {
        Ok(plain.username.to_string())
    } else {
        Err(AuthFailure::credentials("wrong password"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_metadata::MetadataRecord;

    fn image_with(user: &str, password: &str, mechanism: ScramMechanism) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::UserScramCredentialUpserted {
            name: user.into(),
            mechanism,
            credential: scram::credential_from_password(mechanism, password, 4096),
        });
        image
    }

    #[test]
    fn parses_rfc_4616_messages() {
        let m = parse(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!((m.username, m.password), ("tim", "tanstaaftanstaaf"));
        assert!(
            parse(b"Ursel\0Kurt\0xipj3plmq").is_err(),
            "authzid of another user"
        );
        assert!(parse(b"Kurt\0Kurt\0xipj3plmq").is_ok());
        for bad in [
            &b""[..],
            b"\0\0",
            b"\0user\0",
            b"\0\0pw",
            b"a\0b",
            b"\0u\0p\0x",
            b"\0u\xff\0p",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            !format!("{m:?}").contains("tanstaaf"),
            "Debug hides the password"
        );
    }

    #[test]
    fn checks_the_password_against_either_scram_credential() {
        for mechanism in ScramMechanism::ALL {
            let image = image_with("alice", "alice-secret", mechanism);
            assert_eq!(
                verify(&image, b"\0alice\0alice-secret", b"k").unwrap(),
                "alice"
            );
            let wrong = verify(&image, b"\0alice\0alice-secreT", b"k").unwrap_err();
            assert!(wrong.bad_credentials);
            let unknown = verify(&image, b"\0bob\0alice-secret", b"k").unwrap_err();
            assert!(unknown.bad_credentials);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse(&bytes);
        }
    }
}
