//! Audit: what the node records about itself, and where it goes.
//!
//! Every audit message has a [`Topic`] set by the node's code (never by a
//! caller), which decides the logger it is written to (`dku.apinode.audit.*`).
//! The whole process logs through log4rs, configured from log4j 1.x
//! properties: [`log4j`] translates them, [`appender`] and [`layout`] provide
//! log4j's file appenders and layouts, and [`writer`] puts a queue and one
//! writer thread between callers and the files, so that a request never
//! waits on disk. The dispatcher and network targets grow here too. This
//! crate has no HTTP and no model code.
//!
//! # Layout
//!
//! - [`topic`]: the audit topics and their loggers.
//! - [`log4j`]: properties → typed model → log4rs configuration.
//! - [`layout`]: `PatternLayout` and `JSONAuditLayout` encoders.
//! - [`appender`]: log4j's File, RollingFile and DailyRollingFile appenders.
//! - [`writer`]: the global asynchronous logger and its drain on stop.

pub mod appender;
pub mod layout;
pub mod log4j;
pub mod topic;
pub mod writer;

pub use topic::Topic;
