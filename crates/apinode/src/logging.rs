//! Starting the process's logging: `bin/log4j.properties` (the copy in the
//! data directory, or the built-in one when the data directory has none),
//! overridden key by key by `resources/logging/dku-log4j.properties`, is
//! translated to log4rs and installed behind the asynchronous writer. When
//! `resources/logging/dku-log4rs.yaml` exists, that log4rs file is used
//! instead of the properties. The node refuses to start on an invalid file,
//! with every problem named. A panic hook sends panics to the same log. This
//! module only starts logging; translation and writing live in `audit`.

use std::collections::HashMap;
use std::path::Path;

use audit::appender::AppenderRegistry;
use audit::log4j::{Log4jErrors, Source, Vars};
use audit::writer::{LogWriter, LoggingGuard};

/// The base configuration shipped with the node, used when the data
/// directory has no `bin/log4j.properties`.
pub const BUILT_IN_BASE: &str = include_str!("../../../bin/log4j.properties");

/// Where the base and override files are, relative to the data directory.
pub const BASE_FILE: &str = "bin/log4j.properties";
/// The administrator's overrides.
pub const OVERRIDES_FILE: &str = "resources/logging/dku-log4j.properties";
/// A log4rs YAML configuration that replaces the properties files.
pub const YAML_FILE: &str = "resources/logging/dku-log4rs.yaml";

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration is invalid or an appender cannot open its file.
    #[error("{0}")]
    Invalid(Log4jErrors),
    /// A logger is already installed, or the writer thread cannot start.
    #[error(transparent)]
    Install(#[from] audit::writer::InstallError),
}

/// Reads the configuration files of `data_dir`.
///
/// # Errors
/// [`LoggingError::Read`] for a file that exists but cannot be read.
pub fn sources(data_dir: &Path) -> Result<Vec<Source>, LoggingError> {
    let read = |relative: &str| -> Result<Option<Source>, LoggingError> {
        let path = data_dir.join(relative);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Source { label: relative.to_owned(), text })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LoggingError::Read { path: path.display().to_string(), source }),
        }
    };
    let base = read(BASE_FILE)?
        .unwrap_or_else(|| Source { label: format!("{BASE_FILE} (built in)"), text: BUILT_IN_BASE.to_owned() });
    Ok(std::iter::once(base).chain(read(OVERRIDES_FILE)?).collect())
}

/// Translates the configuration of `data_dir` (its appenders sharing
/// `registry`) and installs it as the process's logger; returns the handle
/// audit records are written with and the guard that drains it.
///
/// # Errors
/// [`LoggingError`] naming every problem.
pub fn init(
    data_dir: &Path,
    env: &HashMap<String, String>,
    registry: &AppenderRegistry,
) -> Result<(LogWriter, LoggingGuard), LoggingError> {
    let vars = Vars { data_dir: data_dir.display().to_string(), env: env.clone() };
    let yaml_path = data_dir.join(YAML_FILE);
    let loaded = match std::fs::read_to_string(&yaml_path) {
        Ok(text) => audit::log4j::yaml::load(YAML_FILE, &text, &vars, registry),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => audit::log4j::load(&sources(data_dir)?, &vars, registry),
        Err(source) => return Err(LoggingError::Read { path: yaml_path.display().to_string(), source }),
    }
    .map_err(LoggingError::Invalid)?;
    let (writer, guard) = audit::writer::install(loaded.config, registry)?;
    if yaml_path.exists() {
        log::info!("Logging configured from {YAML_FILE} (the log4j properties files are not used)");
    }
    for warning in loaded.warnings {
        log::warn!("Logging configuration: {warning}");
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("Panic: {info}");
        log::logger().flush();
        previous(info);
    }));
    Ok((writer, guard))
}
