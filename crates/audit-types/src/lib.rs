//! The vocabulary of apinode's audit trail that the node and its event
//! server share: the closed set of [`Topic`]s, [`RoutingKey`]s and
//! [`EventId`]s, the rule for names that become folder names
//! ([`is_safe_segment`]), and the ALL / SELECTED [`Filter`] of topics and
//! routing keys. It exists so that the event server does not depend on the
//! whole `audit` crate (and so on librdkafka): it holds no I/O, no message
//! bodies and no delivery. It also holds the transparency-log code
//! ([`tlog`]) both sides need: the node builds and signs checkpoints, the
//! event server witnesses them, the CLI verifies.
//!
//! # Layout
//!
//! - [`topic`]: the audit topics, their wire names and log4j loggers.
//! - [`ids`]: routing keys, event ids, safe folder names.
//! - [`filter`]: topic and routing-key filters.
//! - [`tlog`]: RFC 6962 Merkle trees and proofs, C2SP signed checkpoints.

pub mod filter;
pub mod ids;
pub mod tlog;
pub mod topic;

pub use filter::Filter;
pub use ids::{EventId, InvalidRoutingKey, RoutingKey, is_safe_segment};
pub use topic::{Topic, UnknownTopic};
