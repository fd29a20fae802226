//! Golden tests of the translation (the shipped base file, the seed snippet,
//! inheritance, additivity, thresholds) and every kind of bad input, then
//! records written through a real writer into real files.

use std::collections::HashMap;
use std::path::Path;

use log::{Level, LevelFilter, Log};

use super::build::effective_level;
use super::model::{AppenderKind, LayoutSpec};
use super::*;
use crate::writer;

const BASE: &str = include_str!("../../../../bin/log4j.properties");
const SEED: &str = r#"log4j.appender.QUERIES_AUDIT_FILE.layout.ConversionPattern={"timestamp" : "%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "logger": "%c", "severity" : "%p", "message" : %m}%n
log4j.logger.dku.audit= INFO, AUDITFILE
log4j.logger.dku.audit.generic= INFO, QUERIES_AUDIT_FILE
"#;

fn vars(dir: &str) -> Vars {
    Vars { data_dir: dir.into(), env: HashMap::from([("LOGS".to_owned(), "/var/log/x".to_owned())]) }
}

fn sources(extra: &str) -> Vec<Source> {
    vec![
        Source { label: "bin/log4j.properties".into(), text: BASE.into() },
        Source { label: "resources/logging/dku-log4j.properties".into(), text: extra.into() },
    ]
}

fn errors_of(extra: &str) -> Vec<String> {
    translate(&sources(extra), &vars("/data")).unwrap_err().0.iter().map(ToString::to_string).collect()
}

#[test]
fn the_base_file_translates_with_dataiku_defaults() {
    let model = translate(&sources(""), &vars("/data")).expect("the base file is valid");
    assert_eq!(model.root.appenders, ["MAIN"]);
    assert_eq!(model.root.level, Some(LevelFilter::Info));
    let q = &model.loggers["dku.apinode.audit.queries"];
    assert_eq!((q.appenders.as_slice(), q.additive), (&["QUERIES_AUDIT_FILE".to_owned()][..], false));
    assert_eq!(effective_level(&model, "dku.apinode.audit.allcalls"), LevelFilter::Off);
    assert_eq!(effective_level(&model, "dku.apinode.audit.admin"), LevelFilter::Info);
    assert!(model.loggers["dku.apinode.audit.admin"].additive, "admin changes reach apimain.log");
    match &model.appenders["QUERIES_AUDIT_FILE"].kind {
        AppenderKind::Rolling { path, max_size, max_backups, append, .. } => {
            assert_eq!(
                (path.as_str(), *max_size, *max_backups, *append),
                ("/data/run/audit/queries.log", 100 << 20, 10, true),
                "at least 1 GB of query records before any is deleted"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(model.appenders["AUDITFILE"].layout, LayoutSpec::JsonAudit);
    match &model.appenders["AUDITFILE"].kind {
        AppenderKind::Rolling { max_size, max_backups, .. } => assert_eq!((*max_size, *max_backups), (100 << 20, 20)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_seed_snippet_works_pasted_alone() {
    let model = translate(&sources(SEED), &vars("/data")).expect("the seed snippet is valid");
    assert_eq!(model.loggers["dku.audit"].appenders, ["AUDITFILE"]);
    assert_eq!(model.loggers["dku.audit.generic"].appenders, ["QUERIES_AUDIT_FILE"]);
    assert_eq!(effective_level(&model, "dku.audit.generic.sub"), LevelFilter::Info);
}

#[test]
fn dotted_inheritance_and_overrides_key_by_key() {
    let extra = "log4j.logger.dku.apinode.audit=WARN\nlog4j.logger.dku.apinode.audit.auth=, AUTH_AUDIT_FILE\n";
    let model = translate(&sources(extra), &vars("/data")).expect("valid");
    // auth sets appenders but no level: it inherits WARN from dku.apinode.audit.
    assert_eq!(effective_level(&model, "dku.apinode.audit.auth"), LevelFilter::Warn);
    // queries keeps its own INFO from the base file.
    assert_eq!(effective_level(&model, "dku.apinode.audit.queries"), LevelFilter::Info);
    // An unconfigured child inherits from the nearest configured ancestor.
    assert_eq!(effective_level(&model, "dku.apinode.audit.admin.sub"), LevelFilter::Info);
    assert_eq!(effective_level(&model, "dku.apinode.other"), LevelFilter::Info, "root");
    assert_eq!(build::log4rs_name("dku.apinode.audit.queries"), "dku::apinode::audit::queries");
}

#[test]
fn variables_expand_and_unknown_ones_are_errors() {
    let extra = "log4j.appender.X=org.apache.log4j.FileAppender\nlog4j.appender.X.File=${env:LOGS}/x.log\nlog4j.logger.a=INFO, X\n";
    let model = translate(&sources(extra), &vars("/data")).expect("valid");
    assert_eq!(model.appenders["X"].kind, AppenderKind::File { path: "/var/log/x/x.log".into(), append: true });
    let errors = errors_of("log4j.appender.MAIN.File=${HOME}/a\nlog4j.appender.AUTH_AUDIT_FILE.File=${env:NOPE}/a\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "resources/logging/dku-log4j.properties:1: log4j.appender.MAIN.File: unknown variable ${HOME}"
        ),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(":2: log4j.appender.AUTH_AUDIT_FILE.File: environment variable NOPE is not set"),
        "{errors:?}"
    );
}

#[test]
fn every_kind_of_bad_input_is_reported_at_once_with_file_line_and_key() {
    let bad = "\
log4j.appender.A=org.apache.log4j.NoSuchAppender
log4j.logger.x=INFO, UNDEFINED
log4j.logger.y=LOUD, MAIN
log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize=10XB
log4j.appender.MAIN.layout.ConversionPattern=%d %Q %m
log4j.appender.MAIN.Colour=blue
log4j.additivity.x=maybe
log4j.appender.B.File=/tmp/b.log
log4j.appender.AUDITFILE.layout=org.example.FancyLayout
log4j.something=1
rootLogger=INFO
";
    let errors = errors_of(bad);
    let f = "resources/logging/dku-log4j.properties";
    for expected in [
        format!("{f}:1: log4j.appender.A: unknown appender class \"org.apache.log4j.NoSuchAppender\""),
        format!("{f}:2: log4j.logger.x: appender UNDEFINED (used by x) is not defined"),
        format!("{f}:3: log4j.logger.y: bad level \"LOUD\""),
        format!("{f}:4: log4j.appender.QUERIES_AUDIT_FILE.MaxFileSize: bad size \"10XB\""),
        format!(
            "{f}:5: log4j.appender.MAIN.layout.ConversionPattern: bad ConversionPattern: unsupported conversion %Q"
        ),
        format!("{f}:6: log4j.appender.MAIN.Colour: unknown property Colour of appender MAIN"),
        format!("{f}:7: log4j.additivity.x: bad boolean \"maybe\""),
        format!("{f}:8: log4j.appender.B.File: appender B has properties but no class"),
        format!("{f}:9: log4j.appender.AUDITFILE.layout: unknown layout class \"org.example.FancyLayout\""),
        format!("{f}:10: log4j.something: unknown log4j key"),
        format!("{f}:11: rootLogger: not a log4j key"),
    ] {
        assert!(errors.iter().any(|e| e.starts_with(&expected)), "missing {expected:?} in\n{}", errors.join("\n"));
    }
    assert_eq!(errors.len(), 11, "{}", errors.join("\n"));
}

#[test]
fn retention_settings_are_read_on_both_rolling_appenders() {
    let model = translate(
        &sources(
            "log4j.appender.QUERIES_AUDIT_FILE.MaxBackupAge=30d\nlog4j.appender.QUERIES_AUDIT_FILE.Compress=gzip\n\
             log4j.appender.D=org.apache.log4j.DailyRollingFileAppender\nlog4j.appender.D.File=/tmp/d.log\n\
             log4j.appender.D.MaxBackupAge=12h\n",
        ),
        &vars("/data"),
    )
    .expect("valid");
    let AppenderKind::Rolling { retention, .. } = &model.appenders["QUERIES_AUDIT_FILE"].kind else {
        panic!("rolling")
    };
    assert_eq!((retention.max_age, retention.compress), (Some(std::time::Duration::from_secs(30 * 86_400)), true));
    let AppenderKind::Daily { retention, .. } = &model.appenders["D"].kind else { panic!("daily") };
    assert_eq!((retention.max_age, retention.compress), (Some(std::time::Duration::from_secs(12 * 3600)), false));
    let errors = errors_of(
        "log4j.appender.QUERIES_AUDIT_FILE.MaxBackupAge=soon\nlog4j.appender.QUERIES_AUDIT_FILE.Compress=zip\n",
    );
    assert!(errors.iter().any(|e| e.contains("MaxBackupAge: bad age \"soon\"")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("Compress: bad Compress")), "{errors:?}");
}

#[test]
fn a_missing_file_property_and_a_bad_date_pattern_are_errors() {
    let errors = errors_of(
        "log4j.appender.D=org.apache.log4j.DailyRollingFileAppender\nlog4j.appender.D.File=/tmp/d.log\nlog4j.appender.D.DatePattern='.'QQ\nlog4j.appender.F=org.apache.log4j.FileAppender\n",
    );
    assert!(errors.iter().any(|e| e.contains("log4j.appender.D.DatePattern: bad DatePattern")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("log4j.appender.F: appender F needs a File")), "{errors:?}");
}

/// Logs records through a writer built from `extra` over the base file in
/// `dir`, then stops the writer (draining it).
fn log_through(dir: &Path, extra: &str, records: &[(&str, Level, &str)]) {
    let registry = crate::appender::AppenderRegistry::new();
    let loaded = load(&sources(extra), &vars(&dir.display().to_string()), &registry).expect("valid configuration");
    let (logger, guard) = writer::start(loaded.config, &registry).expect("writer");
    for (target, level, message) in records {
        let args = format_args!("{message}");
        logger.log(&log::Record::builder().target(target).level(*level).args(args).build());
    }
    guard.shutdown();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn records_reach_the_files_the_configuration_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let query = r#"{"msgType": "prediction-query", "requestId": "r1"}"#;
    log_through(
        dir.path(),
        "log4j.appender.AUTH_AUDIT_FILE.Threshold=WARN\n",
        &[
            ("dku::apinode::audit::queries", Level::Info, query),
            ("dku::apinode::audit::allcalls", Level::Info, "off by default"),
            ("dku::apinode::audit::auth", Level::Info, "below the appender's threshold"),
            ("dku::apinode::audit::auth", Level::Warn, r#"{"msgType": "authfail"}"#),
            ("dku::apinode::audit::admin", Level::Info, "service-create"),
            ("apinode::node", Level::Info, "Listening"),
            ("apinode::node", Level::Debug, "below INFO"),
        ],
    );
    let run = dir.path().join("run");
    let queries = lines(&run.join("audit/queries.log"));
    assert_eq!(queries.len(), 1, "{queries:?}");
    let parsed: serde_json::Value = serde_json::from_str(&queries[0]).expect("the seed pattern gives JSON lines");
    assert_eq!(parsed["logger"], "dku.apinode.audit.queries");
    assert_eq!(parsed["message"]["requestId"], "r1");
    let auth = lines(&run.join("audit/auth.log"));
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert!(!run.join("audit/audit.log").exists(), "an appender no logger uses is not opened");
    assert_eq!(lines(&run.join("audit/allcalls.log")), Vec::<String>::new(), "allcalls is OFF");
    let main = lines(&run.join("apimain.log"));
    assert_eq!(main.len(), 2, "{main:?}");
    assert!(main[0].contains("[INFO ] [dku.apinode.audit.admin] - service-create"), "{main:?}");
    assert!(main[1].contains("[apinode.node] - Listening"), "{main:?}");
    assert!(!main.iter().any(|l| l.contains("prediction-query")), "queries are not additive");
}

#[test]
fn daily_rolling_and_json_layout_for_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "\
log4j.logger.dku.apinode.audit.queries=INFO, DAILY
log4j.appender.DAILY=org.apache.log4j.DailyRollingFileAppender
log4j.appender.DAILY.File=${DIP_HOME}/run/audit/daily-queries.log
log4j.appender.DAILY.DatePattern='.'yyyy-MM-dd
log4j.appender.DAILY.layout=JsonLayout
";
    log_through(dir.path(), extra, &[("dku::apinode::audit::queries", Level::Info, r#"{"requestId": "r2"}"#)]);
    let daily = lines(&dir.path().join("run/audit/daily-queries.log"));
    let v: serde_json::Value = serde_json::from_str(&daily[0]).expect("JSON layout");
    assert_eq!((v["message"]["requestId"].as_str(), v["severity"].as_str()), (Some("r2"), Some("INFO")));
    assert!(!dir.path().join("run/audit/queries.log").exists(), "QUERIES_AUDIT_FILE is no longer used");
}

#[test]
fn an_appender_that_cannot_open_its_file_is_a_build_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("blocker"), "a file where a folder should be").expect("write");
    let extra = "log4j.appender.MAIN.File=${DIP_HOME}/blocker/apimain.log\n";
    let registry = crate::appender::AppenderRegistry::new();
    let errors = load(&sources(extra), &vars(&dir.path().display().to_string()), &registry).unwrap_err();
    assert!(errors.to_string().contains("appender MAIN cannot open its file"), "{errors}");
}

#[test]
fn switching_a_base_appender_keeps_going_with_warnings_like_log4j() {
    let extra = "\
log4j.appender.QUERIES_AUDIT_FILE=org.apache.log4j.DailyRollingFileAppender
log4j.appender.QUERIES_AUDIT_FILE.layout=com.dataiku.dip.logging.JSONAuditLayout
";
    let model = translate(&sources(extra), &vars("/data")).expect("valid");
    assert!(matches!(model.appenders["QUERIES_AUDIT_FILE"].kind, AppenderKind::Daily { .. }));
    assert_eq!(model.appenders["QUERIES_AUDIT_FILE"].layout, LayoutSpec::JsonAudit);
    let warnings: Vec<String> = model.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().any(|w| {
        w.contains("QUERIES_AUDIT_FILE.MaxFileSize: ignored: MaxFileSize does not apply to DailyRollingFileAppender")
    }));
    assert!(
        warnings
            .iter()
            .any(|w| { w.contains("ConversionPattern: ignored: JSONAuditLayout takes no ConversionPattern") })
    );
}

#[test]
fn a_logger_whose_records_go_nowhere_is_warned_about() {
    let model = translate(&sources("log4j.logger.dku.apinode.audit.allcalls=INFO\n"), &vars("/data")).expect("valid");
    let warnings: Vec<String> = model.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains("logger dku.apinode.audit.allcalls is not additive and has no appender")),
        "{warnings:?}"
    );
    let on = translate(&sources("log4j.logger.dku.apinode.audit.allcalls=INFO, ALLCALLS_AUDIT_FILE\n"), &vars("/data"))
        .expect("valid");
    assert!(on.warnings.is_empty(), "{:?}", on.warnings);
}
