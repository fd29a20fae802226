//! The request-path cost of an audit policy (docs/privacy.md "Cost") and of
//! counting a call for `/metrics` (docs/monitoring.md): one query record
//! serialised with no policy and with a ten-field policy (two fields for
//! each of HMAC, MASK, TRUNCATE, BUCKET, DROP), on the load harness's
//! `wide` request; and one `Prometheus::call` plus `scored`.
//!
//!     cargo bench --bench privacy

use std::net::IpAddr;
use std::time::Duration;

use apinode::audit_log::{CallInfo, Fields, Scored, query_message};
use apinode::ids::RequestId;
use apinode::privacy::apply::{View, query};
use apinode::privacy::{AuditPolicy, HmacKeys};
use apinode::scoring::Timing;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

fn object(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

fn records(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = HmacKeys::open(dir.path()).expect("keys");
    let policy = AuditPolicy::parse(&json!({"default": "KEEP", "fields": {"features.ssn": "HMAC", "features.card": "HMAC",
        "features.email": "MASK", "context.phone": "MASK", "features.name": "TRUNCATE:1", "features.city": "TRUNCATE:2",
        "features.income": "BUCKET:10000", "features.age": "BUCKET:10", "features.note": "DROP", "context.segment": "DROP"}}))
    .expect("policy");
    let features = object(json!({"tenure_months": 4, "monthly_charges": 95.5, "plan": "basic", "support_calls": 5,
        "ssn": "123-45-6789", "email": "jane.doe@example.org", "name": "Jane Doe", "city": "Lyon", "income": 53210.5,
        "age": 41, "note": "called about a refund", "card": "4111111111111111"}));
    let context = object(json!({"customer": 42, "phone": "+33 6 12 34 56 78", "segment": "retail"}));
    let result = object(json!({"prediction": "yes", "probas": {"no": 0.0881, "yes": 0.9119}, "probaPercentile": 99,
        "ignored": false, "requestId": "order-1"}));
    let id = RequestId::from_client("order-1").expect("id");
    let timing = Timing::default();
    let info = CallInfo {
        node_id: "vm",
        request_id: &id,
        client_ip: IpAddr::from([127, 0, 0, 1]),
        service_id: "churn",
        endpoint_id: "score",
        caller: None,
    };
    let scored = |f: Fields<'_>, ctx: Option<Fields<'_>>, r: &Map<String, Value>| {
        query_message(
            &info,
            &Scored {
                request_id: &id,
                generation: "v1",
                routing_key: None,
                features: f,
                context: ctx,
                dispatch: None,
                result: r,
                timing: &timing,
                sampling_rate: None,
            },
        )
    };
    c.bench_function("query_record_no_policy", |b| {
        b.iter(|| scored(Fields::Plain(&features), Some(Fields::Plain(&context)), &result))
    });
    c.bench_function("query_record_ten_field_policy", |b| {
        b.iter(|| {
            let applied = query(&policy, &keys, Some(&context), &result);
            scored(
                Fields::Protected(View::features(&policy, &keys, &features)),
                applied.context.map(Fields::Protected),
                &applied.result,
            )
        })
    });
    let (audit, _memory) = audit::AuditRuntime::in_memory("bench");
    let prometheus = apinode::prometheus::Prometheus::new(audit, 0.0);
    c.bench_function("prometheus_count_one_call", |b| {
        b.iter(|| {
            prometheus.call("churn", "score", "v1", "predict", 200, 0.0004);
            prometheus.scored("churn", "score", "v1", 1, 0);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = records
}
criterion_main!(benches);
