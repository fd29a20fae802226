//! log4j 1.x properties → log4rs. Three stages, each tested on its own:
//! [`properties`] reads the text (with line numbers) and merges the base file
//! with its overrides key by key; [`model`] checks every key and builds a
//! typed configuration, reporting all problems at once with file, line and
//! key; [`build`] opens the appenders and produces a `log4rs::Config` whose
//! logger names keep log4j's dotted inheritance (as `::` paths). [`yaml`]
//! reads a log4rs YAML file instead, for people who know log4rs.

pub mod build;
pub mod error;
pub mod model;
pub mod properties;
pub mod yaml;

pub use error::{Location, Log4jError, Log4jErrors};
pub use model::{Log4jConfig, Vars};

/// One properties file: a label for messages (its path) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// How errors name the file (`bin/log4j.properties`).
    pub label: String,
    /// Its content.
    pub text: String,
}

/// Parses, merges (later sources override earlier ones key by key) and
/// checks the sources.
///
/// # Errors
/// Every problem of every source.
pub fn translate(sources: &[Source], vars: &Vars) -> Result<Log4jConfig, Log4jErrors> {
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for s in sources {
        match properties::parse(&s.label, &s.text) {
            Ok(entries) => layers.push(entries),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let merged = properties::merge(layers);
    match model::read(&merged, vars) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(sorted(errors, sources)),
        Err(mut e) => {
            errors.append(&mut e);
            Err(sorted(errors, sources))
        }
    }
}

/// Orders errors as a reader meets them: by source, then line.
fn sorted(mut errors: Vec<Log4jError>, sources: &[Source]) -> Log4jErrors {
    let rank = |e: &Log4jError| match &e.at {
        Some(at) => (sources.iter().position(|s| *s.label == *at.file).unwrap_or(usize::MAX), at.line),
        None => (usize::MAX, 0),
    };
    errors.sort_by_key(rank);
    Log4jErrors(errors)
}

/// A built configuration and the warnings of its translation.
#[derive(Debug)]
pub struct Loaded {
    /// The log4rs configuration, files open.
    pub config: log4rs::Config,
    /// Keys that were understood but ignored.
    pub warnings: Vec<Log4jError>,
}

/// Translates and builds in one step; the appenders share `registry`.
///
/// # Errors
/// Every problem found, in translation or while opening files.
pub fn load(
    sources: &[Source],
    vars: &Vars,
    registry: &crate::appender::AppenderRegistry,
) -> Result<Loaded, Log4jErrors> {
    let model = translate(sources, vars)?;
    let config = build::build(&model, registry).map_err(Log4jErrors)?;
    Ok(Loaded { config, warnings: model.warnings })
}

#[cfg(test)]
mod tests;
