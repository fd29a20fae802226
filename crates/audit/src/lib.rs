//! Audit: what the node records about itself, and where it goes.
//!
//! Every audit message has a [`Topic`] set by the node's code (never by a
//! caller), which decides the log4rs logger it is written to on the node
//! (`dku.apinode.audit.*`). The dispatcher, its targets, the log4j
//! properties translation and the appenders grow here as their issues land;
//! this crate has no HTTP and no model code, so it stays small to compile.
//!
//! # Layout
//!
//! - [`topic`]: the audit topics and their loggers.

pub mod topic;

pub use topic::Topic;
