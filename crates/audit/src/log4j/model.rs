//! The typed model of a log4j 1.x configuration, read from merged properties:
//! the root logger, named loggers (dotted names), additivity, the global
//! threshold, and appenders with their layouts. Reading checks everything:
//! unknown keys, unknown classes, bad levels, sizes, booleans, patterns,
//! appenders referenced but never defined; every problem is collected with
//! its file, line and key. Pure: files are only named here, opened in `build`.

use std::collections::{BTreeMap, HashMap};

use log::LevelFilter;

use super::error::{Location, Log4jError};
use super::properties::Entry;
use crate::appender::daily::Period;
use crate::layout::{PatternLayout, java_date};

/// Values substituted into properties: `${DIP_HOME}` and
/// `${DKU_APINODE_DATA_DIR}` (the data directory), `${env:NAME}`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// The data directory.
    pub data_dir: String,
    /// The environment.
    pub env: HashMap<String, String>,
}

/// A logger's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggerSpec {
    /// Its own level; `None` inherits from the nearest configured ancestor.
    pub level: Option<LevelFilter>,
    /// Appender names.
    pub appenders: Vec<String>,
    /// Whether records also go to the ancestors' appenders.
    pub additive: bool,
    /// Where it was configured.
    pub at: Option<Location>,
}

/// The retention settings any rolling appender may add (docs/integrity.md
/// "Retention"): `MaxBackupAge` (`30d`, `12h`, `90m`, `45s`) and
/// `Compress=gzip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionSpec {
    /// Rolled files older than this are deleted.
    pub max_age: Option<std::time::Duration>,
    /// Rolled files are gzip-compressed.
    pub compress: bool,
}

/// Reads an age such as `30d`, `12h`, `90m` or `45s`.
///
/// # Errors
/// What is wrong with it.
pub fn age(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number.parse().map_err(|_| format!("bad age {text:?}: a whole number and d, h, m or s (30d)"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("bad age {text:?}: a whole number and d, h, m or s (30d)")),
    };
    if n == 0 {
        return Err(format!("bad age {text:?}: must be more than zero"));
    }
    Ok(std::time::Duration::from_secs(n * seconds))
}

/// What an appender writes to.
#[derive(Debug, Clone, PartialEq)]
pub enum AppenderKind {
    /// `ConsoleAppender`.
    Console {
        /// `Target=System.err`.
        stderr: bool,
    },
    /// `FileAppender`.
    File {
        /// The file.
        path: String,
        /// `Append` (default true).
        append: bool,
    },
    /// `RollingFileAppender`.
    Rolling {
        /// The file.
        path: String,
        /// `Append`.
        append: bool,
        /// `MaxFileSize` in bytes (default 10MB).
        max_size: u64,
        /// `MaxBackupIndex` (default 1).
        max_backups: u32,
        /// `MaxBackupAge` and `Compress`.
        retention: RetentionSpec,
    },
    /// `DailyRollingFileAppender`.
    Daily {
        /// The file.
        path: String,
        /// `Append`.
        append: bool,
        /// The DatePattern as a chrono format.
        suffix_format: String,
        /// The rolling period.
        period: Period,
        /// `MaxBackupAge` and `Compress`.
        retention: RetentionSpec,
    },
    /// `KafkaLog4jAppender`.
    Kafka {
        /// The Kafka topic.
        topic: String,
        /// librdkafka properties.
        properties: crate::kafka::config::Properties,
        /// Where undelivered records wait.
        spool_dir: String,
    },
}

/// A layout.
#[derive(Debug, Clone, PartialEq)]
pub enum LayoutSpec {
    /// `PatternLayout` (and `SimpleLayout`, which is `%p - %m%n`).
    Pattern(PatternLayout),
    /// `JSONAuditLayout` / `JsonLayout`.
    JsonAudit,
}

/// One appender.
#[derive(Debug, Clone, PartialEq)]
pub struct AppenderSpec {
    /// Its name.
    pub name: String,
    /// What it writes to.
    pub kind: AppenderKind,
    /// How records are rendered (default `%m%n`).
    pub layout: LayoutSpec,
    /// `Threshold`.
    pub threshold: Option<LevelFilter>,
    /// Where its class was set.
    pub at: Location,
}

/// A whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Log4jConfig {
    /// `log4j.rootLogger`.
    pub root: LoggerSpec,
    /// `log4j.logger.<dotted name>`, with additivity applied.
    pub loggers: BTreeMap<String, LoggerSpec>,
    /// `log4j.threshold`.
    pub threshold: Option<LevelFilter>,
    /// Every defined appender.
    pub appenders: BTreeMap<String, AppenderSpec>,
    /// Keys that are understood but do not apply (log4j warns and goes on):
    /// `MaxFileSize` left on an appender switched to daily rolling, a
    /// `ConversionPattern` left on a layout switched to JSON.
    pub warnings: Vec<Log4jError>,
}

const CONSOLE: &str = "org.apache.log4j.ConsoleAppender";
const FILE: &str = "org.apache.log4j.FileAppender";
const ROLLING: &str = "org.apache.log4j.RollingFileAppender";
const DAILY: &str = "org.apache.log4j.DailyRollingFileAppender";
const KAFKA: &str = "org.apache.kafka.log4jappender.KafkaLog4jAppender";

#[derive(Default)]
struct RawAppender<'a> {
    class: Option<&'a Entry>,
    props: Vec<(String, &'a Entry)>,
    layout_class: Option<&'a Entry>,
    layout_props: Vec<(String, &'a Entry)>,
}

/// Reads merged properties into a configuration.
///
/// # Errors
/// Every problem found.
pub fn read(entries: &BTreeMap<String, Entry>, vars: &Vars) -> Result<Log4jConfig, Vec<Log4jError>> {
    let mut errors = Vec::new();
    let mut values: BTreeMap<&str, (String, &Entry)> = BTreeMap::new();
    for (key, entry) in entries {
        match substitute(&entry.value, vars) {
            Ok(v) => {
                values.insert(key, (v, entry));
            }
            Err(m) => {
                // Keep the raw value so that one bad variable is one error.
                errors.push(Log4jError::new(entry.at.clone(), m));
                values.insert(key, (entry.value.clone(), entry));
            }
        }
    }
    let mut root = LoggerSpec { level: Some(LevelFilter::Debug), appenders: vec![], additive: true, at: None };
    let mut loggers: BTreeMap<String, LoggerSpec> = BTreeMap::new();
    let mut additivity: Vec<(String, bool)> = Vec::new();
    let mut threshold = None;
    let mut raw: BTreeMap<String, RawAppender<'_>> = BTreeMap::new();
    for (key, (value, entry)) in &values {
        let err = |m: String| Log4jError::new(entry.at.clone(), m);
        if let Some(rest) = key.strip_prefix("log4j.appender.") {
            let (name, prop) = rest.split_once('.').map_or((rest, None), |(n, p)| (n, Some(p)));
            let a = raw.entry(name.to_owned()).or_default();
            match prop {
                None => a.class = Some(entry),
                Some(p) if p.eq_ignore_ascii_case("layout") => a.layout_class = Some(entry),
                Some(p) => match p.split_once('.') {
                    Some((l, lp)) if l.eq_ignore_ascii_case("layout") => a.layout_props.push((lp.to_owned(), entry)),
                    _ => a.props.push((p.to_owned(), entry)),
                },
            }
        } else if let Some(name) = key.strip_prefix("log4j.logger.").or_else(|| key.strip_prefix("log4j.category.")) {
            match logger_value(value) {
                Ok((level, appenders)) => {
                    loggers.insert(
                        name.to_owned(),
                        LoggerSpec { level, appenders, additive: true, at: Some(entry.at.clone()) },
                    );
                }
                Err(m) => errors.push(err(m)),
            }
        } else if let Some(name) = key.strip_prefix("log4j.additivity.") {
            match boolean(value) {
                Ok(b) => additivity.push((name.to_owned(), b)),
                Err(m) => errors.push(err(m)),
            }
        } else if *key == "log4j.rootLogger" || *key == "log4j.rootCategory" {
            match logger_value(value) {
                Ok((level, appenders)) => {
                    root = LoggerSpec {
                        level: level.or(Some(LevelFilter::Debug)),
                        appenders,
                        additive: true,
                        at: Some(entry.at.clone()),
                    };
                }
                Err(m) => errors.push(err(m)),
            }
        } else if *key == "log4j.threshold" {
            match level(value) {
                Ok(l) => threshold = Some(l),
                Err(m) => errors.push(err(m)),
            }
        } else if *key == "log4j.debug" || *key == "log4j.reset" {
            if let Err(m) = boolean(value) {
                errors.push(err(m));
            }
        } else if key.starts_with("log4j.") {
            errors.push(err("unknown log4j key".into()));
        } else {
            errors.push(err("not a log4j key (keys start with log4j.)".into()));
        }
    }
    for (name, additive) in additivity {
        loggers
            .entry(name)
            .or_insert(LoggerSpec { level: None, appenders: vec![], additive: true, at: None })
            .additive = additive;
    }
    let mut appenders = BTreeMap::new();
    let mut warnings = Vec::new();
    for (name, a) in &raw {
        let values_of = |props: &Vec<(String, &Entry)>| -> Vec<(String, String, Location)> {
            props.iter().map(|(p, e)| (p.clone(), values[e.key.as_str()].0.clone(), e.at.clone())).collect()
        };
        let Some(class) = a.class else {
            let at = a.props.first().or(a.layout_props.first()).map(|(_, e)| *e).or(a.layout_class);
            if let Some(e) = at {
                errors.push(Log4jError::new(
                    e.at.clone(),
                    format!("appender {name} has properties but no class (log4j.appender.{name}=...)"),
                ));
            }
            continue;
        };
        let class_value = values[class.key.as_str()].0.trim().to_owned();
        let layout = a.layout_class.map(|e| (values[e.key.as_str()].0.trim().to_owned(), e.at.clone()));
        let (props, layout_props) = (values_of(&a.props), values_of(&a.layout_props));
        match appender(name, &class_value, &class.at, &props, layout, &layout_props, &mut warnings, &vars.data_dir) {
            Ok(spec) => {
                appenders.insert(name.clone(), spec);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    for (name, spec) in &loggers {
        let level = spec.level.unwrap_or(LevelFilter::Info);
        if !spec.additive && spec.appenders.is_empty() && level != LevelFilter::Off {
            let message = format!("logger {name} is not additive and has no appender: its records go nowhere");
            warnings.push(match &spec.at {
                Some(at) => Log4jError::new(at.clone(), message),
                None => Log4jError::global(message),
            });
        }
    }
    for (name, spec) in std::iter::once(("rootLogger", &root)).chain(loggers.iter().map(|(n, s)| (n.as_str(), s))) {
        for a in &spec.appenders {
            if raw.get(a).is_none_or(|r| r.class.is_none()) {
                let message = format!("appender {a} (used by {name}) is not defined: add log4j.appender.{a}=<class>");
                errors.push(match &spec.at {
                    Some(at) => Log4jError::new(at.clone(), message),
                    None => Log4jError::global(message),
                });
            }
        }
    }
    if errors.is_empty() { Ok(Log4jConfig { root, loggers, threshold, appenders, warnings }) } else { Err(errors) }
}

#[allow(clippy::too_many_arguments)]
fn appender(
    name: &str,
    class: &str,
    at: &Location,
    props: &[(String, String, Location)],
    layout_class: Option<(String, Location)>,
    layout_props: &[(String, String, Location)],
    warnings: &mut Vec<Log4jError>,
    data_dir: &str,
) -> Result<AppenderSpec, Vec<Log4jError>> {
    let mut errors = Vec::new();
    let allowed: &[&str] = match class {
        CONSOLE => &["target", "follow"],
        FILE => &["file", "append"],
        ROLLING => &["file", "append", "maxfilesize", "maxbackupindex", "maxbackupage", "compress"],
        DAILY => &["file", "append", "datepattern", "maxbackupage", "compress"],
        KAFKA => return kafka_appender(name, at, props, layout_class, layout_props, warnings, data_dir),
        other => {
            return Err(vec![Log4jError::new(
                at.clone(),
                format!(
                    "unknown appender class {other:?} (known: ConsoleAppender, FileAppender, RollingFileAppender, DailyRollingFileAppender)"
                ),
            )]);
        }
    };
    const COMMON: [&str; 5] = ["threshold", "encoding", "immediateflush", "bufferedio", "buffersize"];
    // Properties of log4j's other file appenders: understood, but ignored
    // with a warning where they do not apply (as log4j does).
    const FILE_FAMILY: [&str; 7] =
        ["file", "append", "maxfilesize", "maxbackupindex", "datepattern", "maxbackupage", "compress"];
    let mut get = HashMap::new();
    for (p, v, loc) in props {
        let lower = p.to_ascii_lowercase();
        if allowed.contains(&lower.as_str()) || COMMON.contains(&lower.as_str()) {
            get.insert(lower, (v.as_str(), loc));
        } else if FILE_FAMILY.contains(&lower.as_str()) {
            let short = class.rsplit('.').next().unwrap_or(class);
            warnings.push(Log4jError::new(loc.clone(), format!("ignored: {p} does not apply to {short}")));
        } else {
            errors.push(Log4jError::new(loc.clone(), format!("unknown property {p} of appender {name}")));
        }
    }
    let mut threshold = None;
    if let Some((v, loc)) = get.get("threshold") {
        check(&mut errors, level(v).map(|l| threshold = Some(l)), loc);
    }
    for key in ["immediateflush", "bufferedio"] {
        if let Some((v, loc)) = get.get(key) {
            check(&mut errors, boolean(v).map(drop), loc);
        }
    }
    let mut append = true;
    if let Some((v, loc)) = get.get("append") {
        check(&mut errors, boolean(v).map(|b| append = b), loc);
    }
    let path = get.get("file").map(|(v, _)| v.trim().to_owned());
    if class != CONSOLE && path.as_deref().is_none_or(str::is_empty) {
        errors.push(Log4jError::new(
            at.clone(),
            format!("appender {name} needs a File (log4j.appender.{name}.File=...)"),
        ));
    }
    let path = path.unwrap_or_default();
    let mut retention = RetentionSpec::default();
    if let Some((v, loc)) = get.get("maxbackupage") {
        check(&mut errors, age(v).map(|a| retention.max_age = Some(a)), loc);
    }
    if let Some((v, loc)) = get.get("compress") {
        let compress = match v.trim().to_ascii_lowercase().as_str() {
            "gzip" | "true" => Ok(true),
            "none" | "false" => Ok(false),
            other => Err(format!("bad Compress {other:?}: gzip or none")),
        };
        check(&mut errors, compress.map(|c| retention.compress = c), loc);
    }
    let kind = match class {
        CONSOLE => {
            let target = get.get("target").map_or("System.out", |(v, _)| v.trim());
            if !matches!(target, "System.out" | "System.err") {
                let loc = get.get("target").map_or(at, |(_, l)| l);
                errors.push(Log4jError::new(
                    loc.clone(),
                    format!("Target must be System.out or System.err, not {target:?}"),
                ));
            }
            AppenderKind::Console { stderr: target == "System.err" }
        }
        FILE => AppenderKind::File { path, append },
        ROLLING => {
            let mut max_size = 10 * 1024 * 1024;
            if let Some((v, loc)) = get.get("maxfilesize") {
                check(&mut errors, size(v).map(|s| max_size = s), loc);
            }
            let mut max_backups = 1;
            if let Some((v, loc)) = get.get("maxbackupindex") {
                check(
                    &mut errors,
                    v.trim()
                        .parse()
                        .map(|n| max_backups = n)
                        .map_err(|_| format!("bad MaxBackupIndex {v:?}: a whole number")),
                    loc,
                );
            }
            AppenderKind::Rolling { path, append, max_size, max_backups, retention }
        }
        _ => {
            let (pattern, loc) = get.get("datepattern").map_or(("'.'yyyy-MM-dd", at), |(v, l)| (v.trim(), l));
            match (java_date::to_chrono(pattern), Period::of(pattern)) {
                (Ok(suffix_format), Ok(period)) => {
                    AppenderKind::Daily { path, append, suffix_format, period, retention }
                }
                (Err(m), _) | (_, Err(m)) => {
                    errors.push(Log4jError::new(loc.clone(), format!("bad DatePattern: {m}")));
                    AppenderKind::File { path, append }
                }
            }
        }
    };
    let layout = match read_layout(name, layout_class, layout_props, warnings) {
        Ok(l) => l,
        Err(mut e) => {
            errors.append(&mut e);
            LayoutSpec::JsonAudit
        }
    };
    if errors.is_empty() {
        Ok(AppenderSpec { name: name.to_owned(), kind, layout, threshold, at: at.clone() })
    } else {
        Err(errors)
    }
}

/// `KafkaLog4jAppender`: `Topic`, Apache Kafka's appender properties mapped
/// to librdkafka's, `ProducerConfig.*` passed through; the producer itself
/// (which checks every librdkafka name and value) is created when the
/// configuration is built.
#[allow(clippy::too_many_arguments)]
fn kafka_appender(
    name: &str,
    at: &Location,
    props: &[(String, String, Location)],
    layout_class: Option<(String, Location)>,
    layout_props: &[(String, String, Location)],
    warnings: &mut Vec<Log4jError>,
    data_dir: &str,
) -> Result<AppenderSpec, Vec<Log4jError>> {
    let mut errors = Vec::new();
    let mut threshold = None;
    let mut topic = None;
    let mut kafka = Vec::new();
    let mut locations = HashMap::new();
    for (p, v, loc) in props {
        match p.to_ascii_lowercase().as_str() {
            "threshold" => check(&mut errors, level(v).map(|l| threshold = Some(l)), loc),
            "topic" => topic = Some(v.trim().to_owned()),
            "clientjaasconfpath" => {
                warnings.push(Log4jError::new(
                    loc.clone(),
                    "ignored: ClientJaasConfPath is not needed (use SaslJaasConfig)",
                ));
            }
            _ => {
                locations.insert(p.clone(), loc);
                kafka.push((p.clone(), v.clone()));
            }
        }
    }
    let properties = match crate::kafka::appender::librdkafka_properties(&kafka) {
        Ok(p) => p,
        Err(found) => {
            for (p, m) in found {
                errors.push(Log4jError::new(locations.get(&p).map_or(at, |l| *l).clone(), m));
            }
            Vec::new()
        }
    };
    if !kafka.iter().any(|(p, _)| p.eq_ignore_ascii_case("BrokerList")) {
        errors.push(Log4jError::new(at.clone(), format!("appender {name} needs a BrokerList (host:port,...)")));
    }
    let topic = match topic.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            errors.push(Log4jError::new(at.clone(), format!("appender {name} needs a Topic")));
            String::new()
        }
    };
    let layout = match read_layout(name, layout_class, layout_props, warnings) {
        Ok(l) => l,
        Err(mut e) => {
            errors.append(&mut e);
            LayoutSpec::JsonAudit
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let spool_dir = format!("{data_dir}/run/spool/kafka-appender-{name}");
    Ok(AppenderSpec {
        name: name.to_owned(),
        kind: AppenderKind::Kafka { topic, properties: crate::kafka::config::Properties(properties), spool_dir },
        layout,
        threshold,
        at: at.clone(),
    })
}

fn read_layout(
    name: &str,
    class: Option<(String, Location)>,
    props: &[(String, String, Location)],
    warnings: &mut Vec<Log4jError>,
) -> Result<LayoutSpec, Vec<Log4jError>> {
    let pattern_prop = props.iter().find(|(p, _, _)| p.eq_ignore_ascii_case("ConversionPattern"));
    let mut errors: Vec<Log4jError> = props
        .iter()
        .filter(|(p, _, _)| !p.eq_ignore_ascii_case("ConversionPattern"))
        .map(|(p, _, loc)| Log4jError::new(loc.clone(), format!("unknown property {p} of the layout of {name}")))
        .collect();
    let Some((class, at)) = class else {
        return match pattern_prop {
            // A pattern without a layout class: PatternLayout, as the seed snippet assumes.
            Some((_, v, loc)) => pattern(v, loc).map_err(|e| vec![e]),
            None => Ok(LayoutSpec::Pattern(PatternLayout::parse("%m%n").expect("a valid pattern"))),
        };
    };
    let short = class.rsplit('.').next().unwrap_or(&class);
    let layout = match short {
        "PatternLayout" | "EnhancedPatternLayout" => match pattern_prop {
            Some((_, v, loc)) => pattern(v, loc).map_err(|e| errors.push(e)).ok(),
            None => Some(LayoutSpec::Pattern(PatternLayout::parse("%m%n").expect("a valid pattern"))),
        },
        "SimpleLayout" => Some(LayoutSpec::Pattern(PatternLayout::parse("%p - %m%n").expect("a valid pattern"))),
        "JSONAuditLayout" | "JsonLayout" => {
            if let Some((_, _, loc)) = pattern_prop {
                warnings.push(Log4jError::new(loc.clone(), format!("ignored: {short} takes no ConversionPattern")));
            }
            Some(LayoutSpec::JsonAudit)
        }
        _ => {
            errors.push(Log4jError::new(
                at,
                format!("unknown layout class {class:?} (known: PatternLayout, SimpleLayout, com.dataiku.dip.logging.JSONAuditLayout, JsonLayout)"),
            ));
            None
        }
    };
    match layout {
        Some(l) if errors.is_empty() => Ok(l),
        _ => Err(errors),
    }
}

fn check(errors: &mut Vec<Log4jError>, result: Result<(), String>, at: &Location) {
    if let Err(m) = result {
        errors.push(Log4jError::new(at.clone(), m));
    }
}

fn pattern(value: &str, at: &Location) -> Result<LayoutSpec, Log4jError> {
    PatternLayout::parse(value)
        .map(LayoutSpec::Pattern)
        .map_err(|m| Log4jError::new(at.clone(), format!("bad ConversionPattern: {m}")))
}

/// `LEVEL, A1, A2` (the level may be empty or INHERITED).
fn logger_value(value: &str) -> Result<(Option<LevelFilter>, Vec<String>), String> {
    let mut parts = value.split(',').map(str::trim);
    let first = parts.next().unwrap_or("");
    let lvl = if first.is_empty() || first.eq_ignore_ascii_case("inherited") || first.eq_ignore_ascii_case("null") {
        None
    } else {
        Some(level(first)?)
    };
    Ok((lvl, parts.filter(|p| !p.is_empty()).map(str::to_owned).collect()))
}

/// A log4j level; FATAL is ERROR, ALL is TRACE.
pub fn level(value: &str) -> Result<LevelFilter, String> {
    Ok(match value.trim().to_ascii_uppercase().as_str() {
        "ALL" | "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARN" => LevelFilter::Warn,
        "ERROR" | "FATAL" => LevelFilter::Error,
        "OFF" => LevelFilter::Off,
        _ => {
            return Err(format!("bad level {value:?} (ALL, TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF)"));
        }
    })
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("bad boolean {value:?} (true or false)")),
    }
}

/// log4j's file sizes: a whole number with an optional KB, MB or GB suffix.
pub fn size(value: &str) -> Result<u64, String> {
    let v = value.trim().to_ascii_uppercase();
    let (digits, unit) = if let Some(d) = v.strip_suffix("GB") {
        (d, 1u64 << 30)
    } else if let Some(d) = v.strip_suffix("MB") {
        (d, 1 << 20)
    } else if let Some(d) = v.strip_suffix("KB") {
        (d, 1 << 10)
    } else {
        (v.as_str(), 1)
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("bad size {value:?} (a positive whole number, optionally with KB, MB or GB)"))
}

/// Expands `${DIP_HOME}`, `${DKU_APINODE_DATA_DIR}` and `${env:NAME}`.
///
/// # Errors
/// A message naming an unknown or unset variable.
pub fn substitute(value: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unclosed ${ in value")?;
        let name = &after[..end];
        match name {
            "DIP_HOME" | "DKU_APINODE_DATA_DIR" => out.push_str(&vars.data_dir),
            _ => match name.strip_prefix("env:") {
                Some(var) => out.push_str(vars.env.get(var).ok_or(format!("environment variable {var} is not set"))?),
                None => {
                    return Err(format!(
                        "unknown variable ${{{name}}} (known: DIP_HOME, DKU_APINODE_DATA_DIR, env:NAME)"
                    ));
                }
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
