//! Layouts: how a record becomes bytes. `PatternLayout` renders log4j
//! conversion patterns; `JsonAuditLayout` writes one JSON object per line.
//! Both implement log4rs's `Encode` and read the record's time and thread
//! from the writer's [`RecordContext`](crate::record_context::RecordContext), so a
//! record shows when and where it was logged, not when the writer thread got
//! to it. No file handling here.

pub mod java_date;
pub mod json;
pub mod pattern;

pub use json::JsonAuditLayout;
pub use pattern::PatternLayout;

/// The log4j name of a level.
pub fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARN",
        log::Level::Info => "INFO",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

/// A log4rs target (`dku::apinode::audit::queries`) as a log4j logger name
/// (`dku.apinode.audit.queries`).
pub fn dotted(target: &str) -> std::borrow::Cow<'_, str> {
    if target.contains("::") { target.replace("::", ".").into() } else { target.into() }
}
