//! Who calls: reading a key from the `Authorization` header (HTTP Basic with
//! the key as user name and an empty password, or Bearer), the one
//! [`Principal`] every record names a caller by, and the two key stores
//! that turn a secret into a principal: [`user`] (a service's API keys) and
//! [`admin_keys`] (the node's admin keys). Keys are compared in constant
//! time. This module never logs or returns a secret; failures say why
//! without echoing what was sent. No HTTP here.
//!
//! - [`user`]: a service's user API keys.
//! - [`admin_keys`]: admin keys (`config/admin-keys.json`) and the local secret.
//! - [`hasher`]: peppered key hashes, key file locks.
//! - [`throttle`]: flood control of authentication failures.

pub mod admin_keys;
pub mod hasher;
pub mod throttle;
pub mod user;

use base64::Engine;

pub use hasher::KeyHasher;
pub use user::{UserAuth, UserKey};

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

/// `path` as records may show it: the secret of `DELETE /admin/api/keys/{secret}`
/// becomes the key's id (`<key:ID>`), or `<redacted>` when it matches no key.
pub fn redact_path<'a>(path: &'a str, keys: &admin_keys::AdminKeyStore) -> std::borrow::Cow<'a, str> {
    const KEYS: &str = "/admin/api/keys/";
    match path.strip_prefix(KEYS) {
        Some(rest) if !rest.is_empty() && !rest.contains('/') => {
            let shown =
                keys.find_by_secret(rest).map_or_else(|| "<redacted>".to_owned(), |k| format!("<key:{}>", k.id));
            std::borrow::Cow::Owned(format!("{KEYS}{shown}"))
        }
        _ => std::borrow::Cow::Borrowed(path),
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
