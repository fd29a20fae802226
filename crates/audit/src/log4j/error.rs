//! Errors of the log4j translation: each one names the file, the line and
//! the key it is about, so that an administrator can go straight to it. A
//! list of them is reported at once; nothing here decides what is an error.

use std::fmt;
use std::sync::Arc;

/// Where a key was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as shown to people (`bin/log4j.properties`).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// The key (empty while it is not known yet).
    pub key: String,
}

/// One problem in a logging configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log4jError {
    /// Where (absent for problems of the configuration as a whole).
    pub at: Option<Location>,
    /// What.
    pub message: String,
}

impl Log4jError {
    /// A problem at a location.
    pub fn new(at: Location, message: impl Into<String>) -> Self {
        Self { at: Some(at), message: message.into() }
    }

    /// A problem of the whole configuration.
    pub fn global(message: impl Into<String>) -> Self {
        Self { at: None, message: message.into() }
    }
}

impl fmt::Display for Log4jError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) if at.key.is_empty() => write!(f, "{}:{}: {}", at.file, at.line, self.message),
            Some(at) => write!(f, "{}:{}: {}: {}", at.file, at.line, at.key, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Log4jErrors(pub Vec<Log4jError>);

impl fmt::Display for Log4jErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the logging configuration:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
