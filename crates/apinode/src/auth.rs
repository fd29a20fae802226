//! User API authentication: reading a key from the `Authorization` header
//! (HTTP Basic with the key as user name and an empty password, or Bearer)
//! and checking it against a service's hashed keys in constant time. Keys are
//! random secrets, so a plain SHA-256 is the right hash (a slow password hash
//! buys nothing against 128 random bits). This module never logs or returns
//! a secret; failures say why without echoing what was sent.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::registry::files::{AuthFile, AuthMethod};

/// A user API key of a service.
#[derive(Debug, Clone)]
pub struct UserKey {
    /// Public id, safe to log.
    pub id: String,
    /// Human label, safe to log.
    pub label: Option<String>,
    digest: [u8; 32],
}

/// Who called, as audit records name them: the id and label of the key
/// (a user API key of a service, or an admin key), never its secret. The
/// one "who" of the node: prediction calls, admin calls and audit records
/// all use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's public id.
    pub key_id: String,
    /// The key's label.
    pub label: Option<String>,
}

impl Principal {
    /// The name audit messages give the caller (`authUser`): the key's
    /// label, else its id.
    pub fn user(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.key_id)
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

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header.
    #[error("this service requires an API key (HTTP Basic user name, or Bearer)")]
    MissingKey,
    /// A header that is neither Basic nor Bearer, or not decodable.
    #[error("the Authorization header is malformed")]
    Malformed,
    /// A well-formed key that is not one of the service's.
    #[error("the API key is not valid for this service")]
    UnknownKey,
}

impl AuthFailure {
    /// A stable reason code for audit records.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingKey => "MISSING_KEY",
            Self::Malformed => "MALFORMED_HEADER",
            Self::UnknownKey => "UNKNOWN_KEY",
        }
    }
}

/// The SHA-256 of a secret, as stored (lowercase hex).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl UserAuth {
    /// Builds the auth of a service from its file; problems go to `problems`
    /// as (field path, message).
    pub fn from_file(file: &AuthFile, problems: &mut Vec<(String, String)>) -> UserAuth {
        if file.method == AuthMethod::Public {
            if !file.keys.is_empty() {
                problems.push(("auth.keys".into(), "keys are only used with method API_KEYS".into()));
            }
            return UserAuth::Public;
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for (i, k) in file.keys.iter().enumerate() {
            let mut digest = [0u8; 32];
            match hex::decode_to_slice(&k.sha256, &mut digest) {
                Ok(()) => keys.push(UserKey { id: k.id.clone(), label: k.label.clone(), digest }),
                Err(_) => problems.push((format!("auth.keys[{i}].sha256"), "must be 64 hex digits".into())),
            }
        }
        UserAuth::ApiKeys(keys)
    }

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

/// Reads the key from `Basic base64(key:)` or `Bearer key`.
pub fn secret_from_header(value: &[u8]) -> Result<String, AuthFailure> {
    let text = std::str::from_utf8(value).map_err(|_| AuthFailure::Malformed)?;
    let (scheme, rest) = text.trim().split_once(' ').ok_or(AuthFailure::Malformed)?;
    let rest = rest.trim();
    let secret = if scheme.eq_ignore_ascii_case("basic") {
        let bytes = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| AuthFailure::Malformed)?;
        let pair = String::from_utf8(bytes).map_err(|_| AuthFailure::Malformed)?;
        pair.split_once(':').map_or(pair.clone(), |(user, _)| user.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_owned()
    } else {
        return Err(AuthFailure::Malformed);
    };
    if secret.is_empty() {
        return Err(AuthFailure::MissingKey);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::files::UserKeyFile;

    fn service_with_key(secret: &str) -> UserAuth {
        let file = AuthFile {
            method: AuthMethod::ApiKeys,
            keys: vec![UserKeyFile { id: "k1".into(), label: Some("partner-a".into()), sha256: hash_secret(secret) }],
        };
        let mut problems = Vec::new();
        let auth = UserAuth::from_file(&file, &mut problems);
        assert!(problems.is_empty());
        auth
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
