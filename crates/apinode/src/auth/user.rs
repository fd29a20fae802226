//! A service's user API keys ([`UserAuth`]): each key's public id and label
//! and the hash of its secret (docs/security.md "Secrets": HMAC-SHA256 with
//! the node's pepper, or the plain SHA-256 of earlier versions). Keys are
//! random secrets, so a fast keyed hash is the right one (a slow password
//! hash buys nothing against 128 random bits). A presented secret is
//! compared with every key in constant time. Reading and writing keys in
//! `service.json` belongs to the registry and the admin API.

use super::hasher::{KeyHasher, Presented, StoredHash};
use super::{AuthFailure, Principal, secret_from_header};

/// A user API key of a service.
#[derive(Debug, Clone)]
pub struct UserKey {
    /// Public id, safe to log.
    pub id: String,
    /// Human label, safe to log.
    pub label: Option<String>,
    hash: StoredHash,
}

impl UserKey {
    /// A key from its id, label and stored hash.
    pub fn new(id: &str, label: Option<&str>, hash: StoredHash) -> UserKey {
        UserKey { id: id.to_owned(), label: label.map(str::to_owned), hash }
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

impl UserAuth {
    /// Whether a caller must present a key.
    pub fn requires_key(&self) -> bool {
        matches!(self, UserAuth::ApiKeys(_))
    }

    /// Checks a request's `Authorization` header value.
    ///
    /// # Errors
    /// [`AuthFailure`] saying why the call is refused.
    pub fn check(&self, header: Option<&[u8]>, hasher: &KeyHasher) -> Result<Option<&UserKey>, AuthFailure> {
        let UserAuth::ApiKeys(keys) = self else {
            return Ok(None);
        };
        let secret = secret_from_header(header.ok_or(AuthFailure::MissingKey)?)?;
        let presented = Presented::new(&secret, hasher);
        // Compare with every key, without stopping early.
        let mut found = None;
        for k in keys {
            if k.hash.matches(&presented) {
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

    fn hasher() -> KeyHasher {
        KeyHasher::fixed([3; 32])
    }

    fn service_with_key(secret: &str) -> UserAuth {
        UserAuth::ApiKeys(vec![UserKey::new("k1", Some("partner-a"), StoredHash::Hmac(hasher().hmac(secret)))])
    }

    #[test]
    fn accepts_basic_and_bearer() {
        let auth = service_with_key("s3cret");
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("s3cret:"));
        assert_eq!(auth.check(Some(basic.as_bytes()), &hasher()).expect("ok").map(|k| k.id.as_str()), Some("k1"));
        assert!(auth.check(Some(b"Bearer s3cret"), &hasher()).expect("ok").is_some());
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_keys() {
        let auth = service_with_key("s3cret");
        let h = hasher();
        assert_eq!(auth.check(None, &h).unwrap_err(), AuthFailure::MissingKey);
        assert_eq!(auth.check(Some(b"Token abc"), &h).unwrap_err(), AuthFailure::Malformed);
        assert_eq!(auth.check(Some(b"Basic %%%"), &h).unwrap_err(), AuthFailure::Malformed);
        assert_eq!(auth.check(Some(b"Bearer wrong"), &h).unwrap_err(), AuthFailure::UnknownKey);
        assert_eq!(
            auth.check(Some(b"Bearer s3cret"), &KeyHasher::fixed([4; 32])).unwrap_err(),
            AuthFailure::UnknownKey,
            "another node's pepper"
        );
        assert!(UserAuth::Public.check(None, &h).expect("public").is_none());
    }
}
