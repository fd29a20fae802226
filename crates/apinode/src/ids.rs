//! Identifier newtypes: services, generations, endpoints and requests. Each
//! one validates its characters when it is built, so a value that reaches a
//! file path, a log line or a URL has already been checked. This module owns
//! the character rules and nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a string is not a valid identifier.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct IdError {
    /// What was being parsed ("service id", "generation id", ...).
    pub kind: &'static str,
    /// The rejected input (cut to 80 characters).
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// Checks `value` against the common rule: 1..=max characters of
/// `[A-Za-z0-9_-]` plus `extra`, not starting with `.`.
fn check(kind: &'static str, value: &str, max: usize, extra: &[char]) -> Result<(), IdError> {
    let err = |rule| IdError { kind, value: value.chars().take(80).collect(), rule };
    if value.is_empty() {
        return Err(err("must not be empty"));
    }
    if value.len() > max {
        return Err(err("is too long"));
    }
    if value.starts_with('.') {
        return Err(err("must not start with '.'"));
    }
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(&c));
    if !ok {
        return Err(err("may only contain letters, digits, '_', '-' (and '.' for generations)"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`IdError`] when the value breaks the character rule.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value, $max, $extra)?;
                Ok(Self(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A service id: the folder name under `services/` and the first path
    /// segment of the user API.
    ServiceId, "service id", 64, &[]
);
id_type!(
    /// A generation id (`v1`, `2026-11-22.b`): the folder name under
    /// `generations/`. Dots are allowed, a leading dot is not.
    GenerationId, "generation id", 128, &['.']
);
id_type!(
    /// An endpoint id, unique within one generation.
    EndpointId, "endpoint id", 64, &[]
);

/// A request id: returned to the client and written in every query record so
/// that outcomes can be joined to predictions later. A client may supply its
/// own (`X-Request-Id`) when it is a reasonable token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts a client-supplied id: 1..=128 characters of `[A-Za-z0-9._:-]`.
    pub fn from_client(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        ok.then(|| Self(value.to_owned()))
    }

    /// A fresh random id (UUID v4, simple form).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id of item `index` of a `predict-multi` call: `<id>-<index>`.
    pub fn item(&self, index: usize) -> Self {
        Self(format!("{}-{index}", self.0))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_follow_the_character_rule() {
        assert!(ServiceId::new("churn_v2-prod").is_ok());
        for bad in ["", "a/b", "..", ".hidden", "a b", "é", &"x".repeat(65)] {
            assert!(ServiceId::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn generation_ids_allow_inner_dots_only() {
        assert!(GenerationId::new("2026.11.22").is_ok());
        assert!(GenerationId::new(".v1").is_err());
        assert!(GenerationId::new("../v1").is_err());
    }

    #[test]
    fn client_request_ids_must_be_reasonable_tokens() {
        assert!(RequestId::from_client("req-42:a.b_c").is_some());
        assert!(RequestId::from_client("").is_none());
        assert!(RequestId::from_client("has space").is_none());
        assert!(RequestId::from_client(&"x".repeat(129)).is_none());
        let id = RequestId::from_client("abc").expect("valid");
        assert_eq!(id.item(3).as_str(), "abc-3");
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
