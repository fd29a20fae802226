//! The runtime log: log4rs as the process's logger, writing `run/apimain.log`
//! in Dataiku's line format (`[date] [thread] [LEVEL] [logger] - message`),
//! plus a panic hook so that a panic lands in the same file. The audit
//! loggers (`dku.apinode.audit.*`) and the log4j properties translation are
//! not here yet; this module only starts the runtime log.

use std::path::Path;

use log::LevelFilter;
use log4rs::append::file::FileAppender;
use log4rs::config::{Appender, Config, Root};
use log4rs::encode::pattern::PatternEncoder;

/// Dataiku's runtime line format, in log4rs pattern syntax.
pub const RUNTIME_PATTERN: &str = "[{d(%Y/%m/%d-%H:%M:%S%.3f)}] [{T}] [{l}] [{t}] - {m}{n}";

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// log4rs refused the configuration or a logger was already installed.
    #[error("cannot configure logging: {0}")]
    Config(String),
}

/// Installs log4rs as the global logger, writing `<data_dir>/run/apimain.log`.
///
/// # Errors
/// [`LoggingError`] when the file cannot be opened or a logger exists.
pub fn init(data_dir: &Path) -> Result<log4rs::Handle, LoggingError> {
    let path = data_dir.join("run").join("apimain.log");
    let file = FileAppender::builder()
        .encoder(Box::new(PatternEncoder::new(RUNTIME_PATTERN)))
        .append(true)
        .build(&path)
        .map_err(|source| LoggingError::Open {
            path: path.display().to_string(),
            source,
        })?;
    let config = Config::builder()
        .appender(Appender::builder().build("MAIN", Box::new(file)))
        .build(Root::builder().appender("MAIN").build(LevelFilter::Info))
        .map_err(|e| LoggingError::Config(e.to_string()))?;
    let handle = log4rs::init_config(config).map_err(|e| LoggingError::Config(e.to_string()))?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("Panic: {info}");
        previous(info);
    }));
    Ok(handle)
}
