//! What the audit trail keeps of the personal data a caller sends
//! (docs/privacy.md): a service's `auditPolicy` ([`policy`]), applied to
//! query and failure records before they reach any appender, target, spool
//! or ring ([`apply`]), with the node's HMAC keys for fields kept as
//! joinable tokens ([`hmac_keys`]). It records nothing itself.
//!
//! # Layout
//!
//! - [`policy`]: the policy, validated; sampling by request id.
//! - [`apply`]: the policy applied to features, context, explanations, bodies.
//! - [`hmac_keys`]: `config/audit-hmac-keys.json`, tokens, rotation, look-ups.

pub mod apply;
pub mod hmac_keys;
pub mod policy;

pub use hmac_keys::HmacKeys;
pub use policy::AuditPolicy;
