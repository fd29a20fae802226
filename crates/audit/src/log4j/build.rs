//! Turning a checked log4j model into a log4rs configuration: opening the
//! appenders' files (the only I/O of the translation), applying thresholds
//! as filters, and mapping dotted logger names to log4rs's `::` paths with
//! each logger's effective level resolved as log4j inherits it. Only the
//! appenders some logger uses are opened, as log4j does.

use std::collections::BTreeSet;

use log::LevelFilter;
use log4rs::append::Append;
use log4rs::append::console::{ConsoleAppender, Target};
use log4rs::config::{Appender, Config, Logger, Root};
use log4rs::encode::Encode;
use log4rs::filter::threshold::ThresholdFilter;

use super::error::Log4jError;
use super::model::{AppenderKind, AppenderSpec, LayoutSpec, Log4jConfig};
use crate::appender::retention::Policy;
use crate::appender::{AppenderRegistry, DailyRollingFileAppender, FileAppender, RollingFileAppender};
use crate::layout::JsonAuditLayout;

/// A log4j logger name as a log4rs target path.
pub fn log4rs_name(dotted: &str) -> String {
    dotted.replace('.', "::")
}

/// Builds the log4rs configuration, opening the files of used appenders
/// (each given `registry`).
///
/// # Errors
/// Every appender that could not be opened, and log4rs's own complaints.
pub fn build(model: &Log4jConfig, registry: &AppenderRegistry) -> Result<Config, Vec<Log4jError>> {
    let used: BTreeSet<&String> =
        model.root.appenders.iter().chain(model.loggers.values().flat_map(|l| &l.appenders)).collect();
    let mut errors = Vec::new();
    let mut builder = Config::builder();
    for name in used {
        let Some(spec) = model.appenders.get(name) else {
            continue;
        };
        match open(spec, registry) {
            Ok(append) => {
                let threshold = match (spec.threshold, model.threshold) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let mut appender = Appender::builder();
                if let Some(level) = threshold {
                    appender = appender.filter(Box::new(ThresholdFilter::new(level)));
                }
                builder = builder.appender(appender.build(name.clone(), append));
            }
            Err(e) => {
                let what = if matches!(spec.kind, AppenderKind::Kafka { .. }) { "start" } else { "open its file" };
                errors.push(Log4jError::new(spec.at.clone(), format!("appender {name} cannot {what}: {e}")))
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for (name, spec) in &model.loggers {
        let level = effective_level(model, name);
        builder = builder.logger(
            Logger::builder().appenders(spec.appenders.clone()).additive(spec.additive).build(log4rs_name(name), level),
        );
    }
    let root =
        Root::builder().appenders(model.root.appenders.clone()).build(model.root.level.unwrap_or(LevelFilter::Debug));
    builder.build(root).map_err(|e| e.errors().iter().map(|e| Log4jError::global(e.to_string())).collect())
}

/// A logger's level, or its nearest configured ancestor's, or the root's.
pub fn effective_level(model: &Log4jConfig, name: &str) -> LevelFilter {
    let mut current = Some(name);
    while let Some(n) = current {
        if let Some(level) = model.loggers.get(n).and_then(|l| l.level) {
            return level;
        }
        current = n.rfind('.').map(|i| &n[..i]);
    }
    model.root.level.unwrap_or(LevelFilter::Debug)
}

fn open(spec: &AppenderSpec, registry: &AppenderRegistry) -> std::io::Result<Box<dyn Append>> {
    let encoder: Box<dyn Encode> = match &spec.layout {
        LayoutSpec::Pattern(p) => Box::new(p.clone()),
        LayoutSpec::JsonAudit => Box::new(JsonAuditLayout),
    };
    let path = |p: &str| std::path::PathBuf::from(p);
    Ok(match &spec.kind {
        AppenderKind::Console { stderr } => {
            let target = if *stderr { Target::Stderr } else { Target::Stdout };
            Box::new(ConsoleAppender::builder().target(target).encoder(encoder).build())
        }
        AppenderKind::File { path: p, append } => {
            Box::new(FileAppender::new(&spec.name, &path(p), *append, encoder, registry)?)
        }
        AppenderKind::Rolling { path: p, append, max_size, max_backups, retention } => {
            let policy =
                Policy { max_backups: Some(*max_backups), max_age: retention.max_age, compress: retention.compress };
            Box::new(RollingFileAppender::new(&spec.name, &path(p), *append, *max_size, policy, encoder, registry)?)
        }
        AppenderKind::Daily { path: p, append, suffix_format, period, retention } => {
            let policy = Policy { max_backups: None, max_age: retention.max_age, compress: retention.compress };
            Box::new(DailyRollingFileAppender::new(
                &spec.name,
                &path(p),
                *append,
                (suffix_format.clone(), *period),
                policy,
                encoder,
                registry,
            )?)
        }
        AppenderKind::Kafka { topic, properties, spool_dir } => Box::new(
            crate::kafka::appender::KafkaAppender::new(
                &spec.name,
                topic,
                &properties.0,
                encoder,
                &path(spool_dir),
                registry,
            )
            .map_err(std::io::Error::other)?,
        ),
    })
}
