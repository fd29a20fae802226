//! The alternative for people who know log4rs: a log4rs YAML file
//! (`resources/logging/dku-log4rs.yaml`). It is read with log4rs's own
//! `RawConfig` and deserializers, plus this crate's log4j appenders and
//! layouts as extra kinds (`log4j_file`, `log4j_rolling_file`,
//! `log4j_daily_rolling_file`, `log4j_pattern`, `json_audit`, and `kafka`
//! for the Kafka appender), so that YAML
//! users get the same file names, rolling, reopening and record times.
//! Logger names may be written dotted, as in log4j: they are turned into
//! log4rs's `::` paths so that inheritance works. `${DIP_HOME}` and
//! `${env:NAME}` are expanded first. Every problem is reported at once.

use std::path::Path;

use log4rs::append::Append;
use log4rs::config::{Config, Deserialize, Deserializers, RawConfig};
use log4rs::encode::{Encode, EncoderConfig};

use super::error::{Location, Log4jError, Log4jErrors};
use super::model::{Vars, size, substitute};
use super::{Loaded, build::log4rs_name};
use crate::appender::daily::Period;
use crate::appender::retention::Policy;
use crate::appender::{AppenderRegistry, DailyRollingFileAppender, FileAppender, RollingFileAppender};
use crate::layout::{JsonAuditLayout, PatternLayout, java_date};

/// Reads a log4rs YAML configuration; `label` names the file in errors,
/// and the appenders share `registry`.
///
/// # Errors
/// Every problem: YAML syntax, unknown kinds, bad fields, files that cannot
/// be opened, and log4rs's own checks.
pub fn load(label: &str, text: &str, vars: &Vars, registry: &AppenderRegistry) -> Result<Loaded, Log4jErrors> {
    let at = |line: usize| Location { file: label.into(), line, key: String::new() };
    let text = substitute(text, vars).map_err(|m| Log4jErrors(vec![Log4jError::new(at(1), m)]))?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        Log4jErrors(vec![Log4jError::new(at(line), format!("not valid YAML: {e}"))])
    })?;
    let root_level = value.get("root").and_then(|r| r.get("level")).cloned();
    if let Some(loggers) = value.get_mut("loggers").and_then(serde_yaml::Value::as_mapping_mut) {
        inherit_levels(loggers, root_level);
        let renamed: serde_yaml::Mapping = std::mem::take(loggers)
            .into_iter()
            .map(|(k, v)| (k.as_str().map_or(k.clone(), |name| log4rs_name(name).into()), v))
            .collect();
        *loggers = renamed;
    }
    let raw: RawConfig = serde_yaml::from_value(value)
        .map_err(|e| Log4jErrors(vec![Log4jError::new(at(1), format!("not a log4rs configuration: {e}"))]))?;
    let (appenders, errors) = raw.appenders_lossy(&deserializers(&vars.data_dir, registry));
    if !errors.is_empty() {
        let errors = format!("{errors:?}");
        return Err(Log4jErrors(vec![Log4jError::new(at(1), format!("bad appender: {errors}"))]));
    }
    let config = Config::builder()
        .appenders(appenders)
        .loggers(raw.loggers())
        .build(raw.root())
        .map_err(|e| Log4jErrors(e.errors().iter().map(|e| Log4jError::new(at(1), e.to_string())).collect()))?;
    Ok(Loaded { config, warnings: Vec::new() })
}

/// Gives a logger without `level` the level of its nearest configured dotted
/// ancestor, or the root's, as log4j does (log4rs requires one per logger).
fn inherit_levels(loggers: &mut serde_yaml::Mapping, root_level: Option<serde_yaml::Value>) {
    let levels: std::collections::HashMap<String, serde_yaml::Value> =
        loggers.iter().filter_map(|(k, v)| Some((k.as_str()?.replace("::", "."), v.get("level")?.clone()))).collect();
    for (name, logger) in loggers.iter_mut() {
        let (Some(name), Some(map)) = (name.as_str(), logger.as_mapping_mut()) else { continue };
        if map.contains_key("level") {
            continue;
        }
        let dotted = name.replace("::", ".");
        let mut current = dotted.rfind('.').map(|i| &dotted[..i]);
        let mut level = None;
        while let Some(n) = current {
            if let Some(l) = levels.get(n) {
                level = Some(l.clone());
                break;
            }
            current = n.rfind('.').map(|i| &n[..i]);
        }
        if let Some(l) = level.or_else(|| root_level.clone()) {
            map.insert("level".into(), l);
        }
    }
}

/// log4rs's deserializers plus this crate's kinds, whose appenders share
/// `registry`.
pub fn deserializers(data_dir: &str, registry: &AppenderRegistry) -> Deserializers {
    let mut d = Deserializers::new();
    d.insert("kafka", KafkaKind { data_dir: data_dir.to_owned(), registry: registry.clone() });
    d.insert("log4j_file", FileKind(registry.clone()));
    d.insert("log4j_rolling_file", RollingKind(registry.clone()));
    d.insert("log4j_daily_rolling_file", DailyKind(registry.clone()));
    d.insert("log4j_pattern", PatternKind);
    d.insert("json_audit", JsonKind);
    d
}

fn encoder(config: Option<EncoderConfig>, d: &Deserializers) -> anyhow::Result<Box<dyn Encode>> {
    match config {
        Some(e) => d.deserialize(&e.kind, e.config),
        None => Ok(Box::new(PatternLayout::parse("%m%n").map_err(anyhow::Error::msg)?)),
    }
}

/// `kind: log4j_file`
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKindConfig {
    path: String,
    #[serde(default)]
    append: Option<bool>,
    #[serde(default)]
    encoder: Option<EncoderConfig>,
}

struct FileKind(AppenderRegistry);

impl Deserialize for FileKind {
    type Trait = dyn Append;
    type Config = FileKindConfig;
    fn deserialize(&self, c: FileKindConfig, d: &Deserializers) -> anyhow::Result<Box<dyn Append>> {
        let append = c.append.unwrap_or(true);
        Ok(Box::new(FileAppender::new(
            &tree_name(&c.path),
            Path::new(&c.path),
            append,
            encoder(c.encoder, d)?,
            &self.0,
        )?))
    }
}

/// `kind: log4j_rolling_file`
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingKindConfig {
    path: String,
    #[serde(default)]
    append: Option<bool>,
    #[serde(default)]
    max_file_size: Option<String>,
    #[serde(default)]
    max_backup_index: Option<u32>,
    #[serde(default)]
    max_backup_age: Option<String>,
    #[serde(default)]
    compress: Option<String>,
    #[serde(default)]
    encoder: Option<EncoderConfig>,
}

struct RollingKind(AppenderRegistry);

impl Deserialize for RollingKind {
    type Trait = dyn Append;
    type Config = RollingKindConfig;
    fn deserialize(&self, c: RollingKindConfig, d: &Deserializers) -> anyhow::Result<Box<dyn Append>> {
        let max_size = size(c.max_file_size.as_deref().unwrap_or("10MB")).map_err(anyhow::Error::msg)?;
        let append = c.append.unwrap_or(true);
        let (max_age, compress) = retention(c.max_backup_age.as_deref(), c.compress.as_deref())?;
        let policy = Policy { max_backups: Some(c.max_backup_index.unwrap_or(1)), max_age, compress };
        let encoder = encoder(c.encoder, d)?;
        Ok(Box::new(RollingFileAppender::new(
            &tree_name(&c.path),
            Path::new(&c.path),
            append,
            max_size,
            policy,
            encoder,
            &self.0,
        )?))
    }
}

/// `kind: log4j_daily_rolling_file`
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyKindConfig {
    path: String,
    #[serde(default)]
    append: Option<bool>,
    #[serde(default)]
    date_pattern: Option<String>,
    #[serde(default)]
    max_backup_age: Option<String>,
    #[serde(default)]
    compress: Option<String>,
    #[serde(default)]
    encoder: Option<EncoderConfig>,
}

struct DailyKind(AppenderRegistry);

impl Deserialize for DailyKind {
    type Trait = dyn Append;
    type Config = DailyKindConfig;
    fn deserialize(&self, c: DailyKindConfig, d: &Deserializers) -> anyhow::Result<Box<dyn Append>> {
        let pattern = c.date_pattern.as_deref().unwrap_or("'.'yyyy-MM-dd");
        let suffix = java_date::to_chrono(pattern).map_err(anyhow::Error::msg)?;
        let period = Period::of(pattern).map_err(anyhow::Error::msg)?;
        let append = c.append.unwrap_or(true);
        let (max_age, compress) = retention(c.max_backup_age.as_deref(), c.compress.as_deref())?;
        let policy = Policy { max_backups: None, max_age, compress };
        let encoder = encoder(c.encoder, d)?;
        let path = Path::new(&c.path);
        Ok(Box::new(DailyRollingFileAppender::new(
            &tree_name(&c.path),
            path,
            append,
            (suffix, period),
            policy,
            encoder,
            &self.0,
        )?))
    }
}

/// `max_backup_age` and `compress` of a rolling kind.
/// The tree name of a file appender configured in YAML (which gives
/// appenders no name of their own here): its file's name.
fn tree_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn retention(age: Option<&str>, compress: Option<&str>) -> anyhow::Result<(Option<std::time::Duration>, bool)> {
    let age = age.map(super::model::age).transpose().map_err(anyhow::Error::msg)?;
    let compress = match compress {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => anyhow::bail!("bad compress {other:?}: gzip or none"),
    };
    Ok((age, compress))
}

/// `kind: kafka`: the Kafka appender, with librdkafka properties.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaKindConfig {
    /// Names the spool folder (`run/spool/kafka-appender-<name>`).
    name: String,
    topic: String,
    /// librdkafka properties; `bootstrap.servers` is required.
    properties: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    encoder: Option<EncoderConfig>,
}

struct KafkaKind {
    data_dir: String,
    registry: AppenderRegistry,
}

impl Deserialize for KafkaKind {
    type Trait = dyn Append;
    type Config = KafkaKindConfig;
    fn deserialize(&self, c: KafkaKindConfig, d: &Deserializers) -> anyhow::Result<Box<dyn Append>> {
        let properties: Vec<(String, String)> = c.properties.into_iter().collect();
        let spool = Path::new(&self.data_dir).join("run/spool").join(format!("kafka-appender-{}", c.name));
        let encoder = encoder(c.encoder, d)?;
        let appender =
            crate::kafka::appender::KafkaAppender::new(&c.name, &c.topic, &properties, encoder, &spool, &self.registry)
                .map_err(anyhow::Error::msg)?;
        Ok(Box::new(appender))
    }
}

/// `kind: log4j_pattern` (a log4j ConversionPattern).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternKindConfig {
    pattern: String,
}

struct PatternKind;

impl Deserialize for PatternKind {
    type Trait = dyn Encode;
    type Config = PatternKindConfig;
    fn deserialize(&self, c: PatternKindConfig, _: &Deserializers) -> anyhow::Result<Box<dyn Encode>> {
        Ok(Box::new(PatternLayout::parse(&c.pattern).map_err(anyhow::Error::msg)?))
    }
}

/// `kind: json_audit`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonKindConfig {}

struct JsonKind;

impl Deserialize for JsonKind {
    type Trait = dyn Encode;
    type Config = JsonKindConfig;
    fn deserialize(&self, _: JsonKindConfig, _: &Deserializers) -> anyhow::Result<Box<dyn Encode>> {
        Ok(Box::new(JsonAuditLayout))
    }
}

#[cfg(test)]
mod tests {
    use log::Log;

    use super::*;

    const YAML: &str = r#"
appenders:
  main:
    kind: log4j_file
    path: "${DIP_HOME}/run/apimain.log"
    encoder:
      kind: log4j_pattern
      pattern: "[%-5p] [%c] - %m%n"
  queries:
    kind: log4j_rolling_file
    path: "${DIP_HOME}/run/audit/queries.log"
    max_file_size: 10MB
    max_backup_index: 3
    encoder:
      kind: json_audit
root:
  level: info
  appenders: [main]
loggers:
  dku.apinode.audit:
    level: info
  dku.apinode.audit.queries:
    appenders: [queries]
    additive: false
"#;

    #[test]
    fn dotted_loggers_custom_kinds_and_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vars = Vars { data_dir: dir.path().display().to_string(), env: Default::default() };
        let registry = AppenderRegistry::new();
        let loaded = load("resources/logging/dku-log4rs.yaml", YAML, &vars, &registry).expect("valid YAML");
        let (logger, guard) = crate::writer::start(loaded.config, &registry).expect("writer");
        for (target, message) in
            [("dku::apinode::audit::queries", r#"{"requestId": "y1"}"#), ("dku::apinode::audit::admin", "admin change")]
        {
            let args = format_args!("{message}");
            logger.log(&log::Record::builder().target(target).level(log::Level::Info).args(args).build());
        }
        guard.shutdown();
        let queries = std::fs::read_to_string(dir.path().join("run/audit/queries.log")).expect("queries");
        let v: serde_json::Value = serde_json::from_str(queries.trim()).expect("JSON layout");
        assert_eq!(v["message"]["requestId"], "y1");
        let main = std::fs::read_to_string(dir.path().join("run/apimain.log")).expect("main");
        assert_eq!(main, "[INFO ] [dku.apinode.audit.admin] - admin change\n");
    }

    #[test]
    fn problems_name_the_file() {
        let vars = Vars::default();
        let r = AppenderRegistry::new();
        let e = load("x.yaml", "appenders: [", &vars, &r).unwrap_err().to_string();
        assert!(e.contains("x.yaml:") && e.contains("not valid YAML"), "{e}");
        let e = load("x.yaml", "appenders:\n  a:\n    kind: nope\nroot:\n  level: info\n  appenders: [a]\n", &vars, &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad appender") && e.contains("nope"), "{e}");
        let e = load("x.yaml", "root:\n  level: info\n  appenders: [missing]\n", &vars, &r).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn the_kafka_kind_starts_an_appender_and_refuses_bad_properties() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vars = Vars { data_dir: dir.path().display().to_string(), env: Default::default() };
        let yaml = |props: &str| {
            format!(
                "appenders:\n  k:\n    kind: kafka\n    name: q\n    topic: queries\n    properties:\n{props}    encoder:\n      kind: log4j_pattern\n      pattern: \"%m%n\"\nroot:\n  level: info\n  appenders: [k]\n"
            )
        };
        let good = yaml("      bootstrap.servers: \"127.0.0.1:9\"\n      message.timeout.ms: \"1000\"\n");
        let registry = AppenderRegistry::new();
        assert!(load("k.yaml", &good, &vars, &registry).is_ok());
        assert!(dir.path().join("run/spool/kafka-appender-q").is_dir(), "its spool folder");
        let bad = yaml("      bootstrap.servers: \"127.0.0.1:9\"\n      no.such.property: \"1\"\n");
        let e = load("k.yaml", &bad, &vars, &registry).unwrap_err().to_string();
        assert!(e.contains("no.such.property"), "{e}");
        assert_eq!(registry.delivery_snapshots().len(), 1, "the good appender is registered");
        registry.shutdown_deliveries(std::time::Instant::now());
    }
}
