//! A service's user API keys ([`UserAuth`]): each key's public id and label
//! and the SHA-256 of its secret. Keys are random secrets, so a plain
//! SHA-256 is the right hash (a slow password hash buys nothing against 128
//! random bits). A presented secret is compared with every key in constant
//! time. Reading keys from `service.json` belongs to the registry.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthFailure, Principal, secret_from_header};

/// A user API key of a service.
#[derive(Debug, Clone)]
pub struct UserKey {
    /// Public id, safe to log.
    pub id: String,
    /// Human label, safe to log.
    pub label: Option<String>,
    digest: [u8; 32],
}

impl UserKey {
    /// A key from its id, label and the lowercase hex SHA-256 of its secret.
    ///
    /// # Errors
    /// When `sha256` is not 64 hex digits.
    pub fn new(id: &str, label: Option<&str>, sha256: &str) -> Result<UserKey, hex::FromHexError> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(sha256, &mut digest)?;
        Ok(UserKey { id: id.to_owned(), label: label.map(str::to_owned), digest })
    }
}

impl From<&UserKey> for Principal {
    fn from(k: &UserKey) -> Self {
        Principal { key_id: k.id.clone(), label: k.label.clone() }
    }
}

/// How a service authenticates its callers.
#[derive(Debug, Clone, Default)]
pub enum UserAuth {
    /// No key needed.
    #[default]
    Public,
    /// One of these keys is needed.
    ApiKeys(Vec<UserKey>),
}

/// The SHA-256 of a secret, as stored (lowercase hex).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl UserAuth {
    /// Checks a request's `Authorization` header value.
    ///
    /// # Errors
    /// [`AuthFailure`] saying why the call is refused.
    pub fn check(&self, header: Option<&[u8]>) -> Result<Option<&UserKey>, AuthFailure> {
        let UserAuth::ApiKeys(keys) = self else {
            return Ok(None);
        };
        let secret = secret_from_header(header.ok_or(AuthFailure::MissingKey)?)?;
        let digest = Sha256::digest(secret.as_bytes());
        // Compare with every key, without stopping early.
        let mut found = None;
        for k in keys {
            if bool::from(k.digest.ct_eq(digest.as_slice())) {
                found = Some(k);
            }
        }
        found.map(Some).ok_or(AuthFailure::UnknownKey)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn service_with_key(secret: &str) -> UserAuth {
        UserAuth::ApiKeys(vec![UserKey::new("k1", Some("partner-a"), &hash_secret(secret)).expect("a valid hash")])
    }

    #[test]
    fn accepts_basic_and_bearer() {
        let auth = service_with_key("s3cret");
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("s3cret:"));
        assert_eq!(auth.check(Some(basic.as_bytes())).expect("ok").map(|k| k.id.as_str()), Some("k1"));
        assert!(auth.check(Some(b"Bearer s3cret")).expect("ok").is_some());
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_keys() {
        let auth = service_with_key("s3cret");
        assert_eq!(auth.check(None).unwrap_err(), AuthFailure::MissingKey);
        assert_eq!(auth.check(Some(b"Token abc")).unwrap_err(), AuthFailure::Malformed);
        assert_eq!(auth.check(Some(b"Basic %%%")).unwrap_err(), AuthFailure::Malformed);
        assert_eq!(auth.check(Some(b"Bearer wrong")).unwrap_err(), AuthFailure::UnknownKey);
        assert!(UserAuth::Public.check(None).expect("public").is_none());
    }
}
