//! The audit path's CPU costs: serialising a query record (on the request
//! thread), rendering it with the default PatternLayout and with the JSON
//! layout (on the writer thread), and translating the base log4j file (at
//! start).
//!
//!     cargo bench --bench audit

use std::collections::HashMap;
use std::time::Duration;

use audit::layout::{JsonAuditLayout, PatternLayout};
use audit::log4j::{Source, Vars};
use audit::writer::RecordContext;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const QUERY_PATTERN: &str =
    r#"{"timestamp" : "%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "logger": "%c", "severity" : "%p", "message" : %m}%n"#;

fn query_record() -> String {
    json!({"msgType": "prediction-query", "eventId": "932c7edbd9c940daba4116d5c71ab7b0", "requestId": "order-1",
        "timestamp": "2026-11-22T04:28:28.550Z", "nodeId": "vm", "serviceId": "churn", "endpointId": "score",
        "generation": "v1", "routingKey": "churn-prod", "clientIp": "127.0.0.1", "auth": null,
        "features": {"tenure_months": 4, "monthly_charges": 95.5, "plan": "basic", "support_calls": 5},
        "context": {"customer": 42}, "dispatch": {"dispatchKey": "c-42"},
        "result": {"prediction": "yes", "probas": {"no": 0.0881, "yes": 0.9119}, "probaPercentile": 99, "ignored": false},
        "timing": {"preProcessing": 70, "wait": 0, "enrich": 0, "preparation": 1, "prediction": 4, "postProcessing": 2}})
    .to_string()
}

fn records(c: &mut Criterion) {
    let value: serde_json::Value = serde_json::from_str(&query_record()).expect("JSON");
    c.bench_function("query_record_serialise", |b| b.iter(|| serde_json::to_string(std::hint::black_box(&value))));
    let message = query_record();
    let context = RecordContext::now();
    let pattern = PatternLayout::parse(QUERY_PATTERN).expect("pattern");
    c.bench_function("render_query_pattern_layout", |b| {
        b.iter(|| {
            let args = format_args!("{message}");
            let record = log::Record::builder()
                .target("dku::apinode::audit::queries")
                .level(log::Level::Info)
                .args(args)
                .build();
            let mut out = String::with_capacity(1024);
            pattern.render(&mut out, &record, &context);
            out
        })
    });
    c.bench_function("render_query_json_layout", |b| {
        b.iter(|| {
            let args = format_args!("{message}");
            let record = log::Record::builder()
                .target("dku::apinode::audit::queries")
                .level(log::Level::Info)
                .args(args)
                .build();
            JsonAuditLayout.render(&record, &context)
        })
    });
}

fn translation(c: &mut Criterion) {
    let base = include_str!("../bin/log4j.properties");
    let sources = vec![Source { label: "bin/log4j.properties".into(), text: base.into() }];
    let vars = Vars { data_dir: "/data".into(), env: HashMap::new() };
    c.bench_function("translate_base_log4j_properties", |b| b.iter(|| audit::log4j::translate(&sources, &vars)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = records, translation
}
criterion_main!(benches);
