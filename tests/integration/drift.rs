//! Data drift (docs/monitoring.md "Data drift", "Reference profiles"):
//! the exporter's reference profiles in real model files, then
//! `apinode-admin monitor` on query records. Every statistic is checked
//! against scipy by an independent Python computation of Evidently's
//! defaults (`drift_check.py`), on both sides of the 1000-row switch, for
//! numbers, few-valued numbers and categories with missing values, from
//! the model files' profiles and from `--reference FILE.csv`. Then through
//! a real node: an unshifted stream drifts no feature, a shifted one
//! drifts exactly the shifted features.

use std::path::Path;
use std::process::Command;

use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use crate::common::dss::{DssNode, text};
use crate::common::{data_dir, python};

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration").join(name).display().to_string()
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(python()).args(args).output().expect("python runs");
    assert!(out.status.success(), "python {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn monitor(dir: &Path, args: &[&str]) -> Value {
    let out = crate::common::admin(dir).arg("monitor").args(args).output().expect("apinode-admin runs");
    assert!(out.status.success(), "monitor {args:?}: {}", text(&out));
    let out_dir = args.iter().position(|a| *a == "--out").map(|i| args[i + 1]).expect("--out");
    serde_json::from_slice(&std::fs::read(Path::new(out_dir).join("report.json")).expect("report")).expect("json")
}

#[test]
fn drift_statistics_equal_scipy_on_both_sides_of_the_1000_row_switch() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    run_python(&[&script("drift_data.py"), "export", d, "drift"]);
    let queries = dir.path().join("run/audit/queries.log");
    std::fs::create_dir_all(queries.parent().expect("parent")).expect("mkdir");
    run_python(&[&script("drift_data.py"), "queries", queries.to_str().expect("utf-8"), "5"]);
    let gen_model = |g: &str| format!("{g}={d}/services/drift/generations/{g}/model.json");

    // The profiles in the model files: v1 has 400 training rows, v2 3,000.
    let out = format!("{d}/report");
    let report = monitor(dir.path(), &["--service", "drift", "--out", &out]);
    let v1 = &report["generations"]["v1"];
    assert_eq!(v1["overall"]["drift"]["features"]["age"]["method"], "ks");
    assert_eq!(v1["overall"]["drift"]["features"]["plan"]["method"], "chisquare");
    assert_eq!(v1["overall"]["drift"]["features"]["region"]["method"], "z");
    let v2 = &report["generations"]["v2"]["overall"]["drift"];
    assert_eq!(v2["features"]["income"]["method"], "wasserstein");
    assert_eq!(v2["features"]["plan"]["method"], "jensenshannon");
    // Missing values are counted, not tested: 3% of ages, every 97th income absent.
    assert!(v2["features"]["age"]["currentMissing"].as_u64().expect("missing") > 50, "{v2}");
    let checked = run_python(&[
        &script("drift_check.py"),
        &format!("{out}/report.json"),
        queries.to_str().expect("utf-8"),
        "3600000",
        &gen_model("v1"),
        &gen_model("v2"),
    ]);
    assert!(checked.contains("OK 49 columns"), "{checked}");

    // The same from a CSV reference (v2's training rows) for every generation.
    let out = format!("{d}/report-csv");
    let csv = format!("{d}/reference.csv");
    let report = monitor(dir.path(), &["--service", "drift", "--out", &out, "--reference", &csv]);
    assert_eq!(report["generations"]["v1"]["overall"]["drift"]["reference"], csv);
    let checked = run_python(&[
        &script("drift_check.py"),
        &format!("{out}/report.json"),
        queries.to_str().expect("utf-8"),
        "3600000",
        "--csv",
        &csv,
        &format!("{d}/services/drift/generations/v2/model.json"),
    ]);
    assert!(checked.contains("OK 49 columns"), "{checked}");
    let prom = std::fs::read_to_string(format!("{out}/report.prom")).expect("prom");
    assert!(prom.contains("apinode_monitor_drift_share{service=\"drift\",generation=\"v1\"}"), "{prom}");
    assert!(prom.contains("apinode_monitor_feature_drifted{service=\"drift\",generation=\"v2\",feature=\"income\"} 1"));
    let page = std::fs::read_to_string(format!("{out}/report.html")).expect("html");
    // Above 100,000 distinct values the exporter keeps a seeded sample of 100,000.
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let sampled = run_python(&[
        "-c",
        &format!(
            "import sys, numpy as np; sys.path.insert(0, {tools:?}); import export_sklearn as e; \
             a = e._numeric_profile(list(np.arange(150000) / 7) + [float('nan')]); \
             b = e._numeric_profile(list(np.arange(150000) / 7)); \
             print(a['sampled'], sum(a['counts']), a['missing'], a['values'] == b['values'])",
            tools = tools.display().to_string()
        ),
    ]);
    assert_eq!(sampled.trim(), "True 100000 1 True", "sampled, 100,000 values, NaN apart, seeded");
    assert!(page.contains("Data drift") && page.contains("wasserstein"), "the page shows the drift table");
}

#[test]
fn a_bad_reference_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3\n").expect("write");
    let out = crate::common::admin(dir.path())
        .args(["monitor", "--service", "s", "--reference"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("r"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("bad.csv") && err.contains("row 3"), "{err}");
    assert!(!dir.path().join("r/report.json").exists(), "no report from a bad reference");
}

async fn send(base: &str, service: &str, rows: &str) -> usize {
    let items: Vec<Value> =
        rows.lines().map(|l| json!({"features": serde_json::from_str::<Value>(l).expect("row")})).collect();
    let client = reqwest::Client::new();
    for chunk in items.chunks(100) {
        let r = client
            .post(format!("{base}/public/api/v1/{service}/score/predict-multi"))
            .json(&json!({"items": chunk}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200);
    }
    items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifted_stream_drifts_exactly_the_shifted_features() {
    let dir = data_dir();
    let d = dir.path().to_str().expect("utf-8").to_owned();
    for service in ["steady", "shifted"] {
        run_python(&[&script("drift_data.py"), "export", &d, service]);
        // v2 only: its 3,000-row reference uses distances (thresholds 0.1).
        let mapping = json!({"enabled": true, "mapping": {"entries": [{"generation": "v2", "proba": 1.0}]}});
        std::fs::write(dir.path().join(format!("services/{service}/service.json")), mapping.to_string())
            .expect("write");
    }
    let node = DssNode::with_dir(dir, None);
    node.start();
    let base = node.base();
    // Seeded rows unlike the training rows' seeds; 1,500 per service.
    let steady = run_python(&[&script("drift_data.py"), "rows", "11", "1500", ""]);
    let shifted = run_python(&[&script("drift_data.py"), "rows", "12", "1500", "income,region,children"]);
    assert_eq!(send(&base, "steady", &steady).await, 1500);
    assert_eq!(send(&base, "shifted", &shifted).await, 1500);
    node.stop();

    let drifted = |report: &Value| -> Vec<String> {
        let d = &report["generations"]["v2"]["overall"]["drift"];
        let mut names: Vec<String> = d["features"]
            .as_object()
            .expect("features")
            .iter()
            .filter(|(_, f)| f["drifted"] == json!(true))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    };
    let out = format!("{d}/steady-report");
    let report = monitor(node.dir.path(), &["--service", "steady", "--window", "1d", "--out", &out]);
    let overall = &report["generations"]["v2"]["overall"];
    assert_eq!(overall["records"], 1500);
    assert_eq!(drifted(&report), Vec::<String>::new(), "{}", overall["drift"]);
    assert_eq!(overall["drift"]["datasetDrift"], false);
    assert_eq!(overall["drift"]["testedFeatures"], 6);
    assert_eq!(overall["drift"]["prediction"]["drifted"], false, "{}", overall["drift"]["prediction"]);

    let out = format!("{d}/shifted-report");
    let report = monitor(node.dir.path(), &["--service", "shifted", "--window", "1d", "--out", &out]);
    assert_eq!(drifted(&report), vec!["children", "income", "region"]);
    let overall = &report["generations"]["v2"]["overall"]["drift"];
    assert_eq!(overall["datasetDrift"], true, "3 of 6 features is a share of 0.5");
    // The histograms the page draws: shares that add up to 1 on each side.
    let h = &overall["features"]["income"]["histogram"];
    for side in ["reference", "current"] {
        let sum: f64 = h[side].as_array().expect("shares").iter().filter_map(Value::as_f64).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{side}: {sum}");
    }
}

/// Issue 18's `--merge`: two partial runs (queries split as two Kafka
/// partitions would split them, outcomes split across them, some outcomes
/// read by both) report exactly what one run over everything reports,
/// drift included.
#[test]
fn merged_partial_runs_report_what_one_run_reports() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf-8");
    run_python(&[&script("drift_data.py"), "export", d, "drift"]);
    let all_q = format!("{d}/queries.log");
    let all_f = format!("{d}/feedback.log");
    run_python(&[&script("drift_data.py"), "queries", &all_q, "5"]);
    run_python(&[&script("drift_data.py"), "outcomes", &all_f, "9"]);
    let q = std::fs::read_to_string(&all_q).expect("queries");
    let f = std::fs::read_to_string(&all_f).expect("outcomes");
    // Queries: odd lines to part A, even to B. Outcomes: the first 60% to A,
    // the last 50% to B (a tenth read by both; many cross the split).
    let split = |text: &str, keep: &dyn Fn(usize, usize) -> bool| -> String {
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().enumerate().filter(|(i, _)| keep(*i, lines.len())).map(|(_, l)| format!("{l}\n")).collect()
    };
    for (part, qk, fk) in [
        (
            "a",
            &(|i: usize, _| i % 2 == 1) as &dyn Fn(usize, usize) -> bool,
            &(|i: usize, n: usize| i < n * 6 / 10) as &dyn Fn(usize, usize) -> bool,
        ),
        ("b", &|i: usize, _| i.is_multiple_of(2), &|i: usize, n: usize| i >= n / 2),
    ] {
        std::fs::create_dir_all(format!("{d}/{part}")).expect("mkdir");
        std::fs::write(format!("{d}/{part}/queries.log"), split(&q, qk)).expect("write");
        std::fs::write(format!("{d}/{part}/feedback.log"), split(&f, fk)).expect("write");
        let out = format!("{d}/out-{part}");
        let src = format!("{d}/{part}");
        monitor(dir.path(), &["--service", "drift", "--queries", &src, "--feedback", &src, "--out", &out, "--partial"]);
    }
    let one = monitor(
        dir.path(),
        &["--service", "drift", "--queries", &all_q, "--feedback", &all_f, "--out", &format!("{d}/one")],
    );
    let merged = monitor(
        dir.path(),
        &[
            "--service",
            "drift",
            "--merge",
            &format!("{d}/out-a"),
            &format!("{d}/out-b"),
            "--out",
            &format!("{d}/merged"),
        ],
    );
    let strip = |mut v: Value| {
        v["generatedAt"] = Value::Null;
        v["sources"] = Value::Null;
        v
    };
    assert!(one["generations"]["v1"]["overall"]["performance"]["rocAuc"].as_f64().is_some(), "{}", one["totals"]);
    assert!(one["totals"]["duplicates"].as_u64().expect("duplicates") == 0);
    assert!(merged["totals"]["duplicates"].as_u64().expect("duplicates") > 1000, "{}", merged["totals"]);
    let (mut one, mut merged) = (strip(one), strip(merged));
    // The one run never saw the outcomes twice; otherwise the same.
    one["totals"]["duplicates"] = Value::Null;
    merged["totals"]["duplicates"] = Value::Null;
    // Records are summed in one order (time, event id) however they were
    // read: equal to the last bit.
    if one != merged {
        let at = same(&one, &merged, "").err().unwrap_or_else(|| "the last bits of a number".into());
        panic!("a merge of the partial runs differs from one run at {at}");
    }

    // A partial merged with itself: every record once more, counted as repeats.
    let out = format!("{d}/twice");
    let twice = monitor(
        dir.path(),
        &["--service", "drift", "--merge", &format!("{d}/out-a"), &format!("{d}/out-a"), "--out", &out],
    );
    let alone =
        monitor(dir.path(), &["--service", "drift", "--merge", &format!("{d}/out-a"), "--out", &format!("{d}/alone")]);
    assert_eq!(twice["totals"]["queryRecords"], alone["totals"]["queryRecords"]);
    assert_eq!(twice["totals"]["outcomes"], alone["totals"]["outcomes"]);
    assert_eq!(
        twice["generations"]["v1"]["overall"]["performance"],
        alone["generations"]["v1"]["overall"]["performance"]
    );
    // The partial holds what the trail holds: owner-only, as the audit files.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(format!("{d}/out-a/partial.json.gz")).expect("partial").permissions().mode();
    assert_eq!(mode & 0o077, 0, "partial.json.gz is {mode:o}");
    // Not a partial run: refused, naming the file.
    std::fs::write(format!("{d}/junk.json.gz"), b"not gzip").expect("write");
    let junk = crate::common::admin(dir.path())
        .args(["monitor", "--service", "drift", "--merge", &format!("{d}/junk.json.gz"), "--out", &out])
        .output()
        .expect("runs");
    assert!(!junk.status.success() && text(&junk).contains("junk.json.gz"), "{}", text(&junk));
    // Partial runs of another window do not merge.
    let err = crate::common::admin(dir.path())
        .args(["monitor", "--service", "drift", "--window", "1d", "--merge", &format!("{d}/out-a"), "--out", &out])
        .output()
        .expect("runs");
    assert!(!err.status.success() && text(&err).contains("window"), "{}", text(&err));
}

/// Equal JSON, numbers within 1e-9 (the report's promise); the first difference.
fn same(a: &Value, b: &Value, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            if (x - y).abs() <= 1e-9 { Ok(()) } else { Err(format!("{at}: {x} vs {y}")) }
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return Err(format!(
                    "{at}: keys {:?} vs {:?}",
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>()
                ));
            }
            x.iter().try_for_each(|(k, v)| same(v, y.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}")))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().try_for_each(|(i, (u, v))| same(u, v, &format!("{at}[{i}]")))
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{at}: {a} vs {b}")),
    }
}

/// A regression: the sample `diabetes` service (its profile made by the
/// exporter from scikit-learn's diabetes data, 442 rows: KS for every
/// feature and for the predicted numbers), served by a real node, rows
/// drawn from the profile itself, two of them shifted; every statistic
/// checked against scipy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regression_s_predictions_and_features_drift_as_scipy_says() {
    let dir = data_dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate::common::copy_dir(&repo.join("services/diabetes"), &dir.path().join("services/diabetes"));
    let model_path = dir.path().join("services/diabetes/generations/v1/model.json");
    let model: Value = serde_json::from_slice(&std::fs::read(&model_path).expect("model")).expect("json");
    let profile = &model["referenceProfile"]["features"];
    let node = DssNode::with_dir(dir, None);
    node.start();
    // 400 rows drawn from the profile's own values (seeded), bmi and bp moved up.
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let mut rows = String::new();
    for _ in 0..400 {
        let mut f = serde_json::Map::new();
        for (name, p) in profile.as_object().expect("features") {
            let values = p["values"].as_array().expect("values");
            let mut v = values[rng.random_range(0..values.len())].as_f64().expect("number");
            if name == "bmi" || name == "bp" {
                v += 0.03;
            }
            f.insert(name.clone(), json!(v));
        }
        rows.push_str(&format!("{}\n", Value::Object(f)));
    }
    let items: Vec<Value> =
        rows.lines().map(|l| json!({"features": serde_json::from_str::<Value>(l).expect("row")})).collect();
    let r = reqwest::Client::new()
        .post(format!("{}/public/api/v1/diabetes/progression/predict-multi", node.base()))
        .json(&json!({"items": items}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    node.stop();
    let d = node.dir.path().to_str().expect("utf-8").to_owned();
    let out = format!("{d}/report");
    let report = monitor(node.dir.path(), &["--service", "diabetes", "--window", "1d", "--out", &out]);
    let drift = &report["generations"]["v1"]["overall"]["drift"];
    assert_eq!(drift["prediction"]["type"], "NUMERIC");
    assert_eq!(drift["prediction"]["method"], "ks", "{}", drift["prediction"]);
    for shifted in ["bmi", "bp"] {
        assert_eq!(drift["features"][shifted]["drifted"], true, "{shifted}: {}", drift["features"][shifted]);
    }
    let checked = run_python(&[
        &script("drift_check.py"),
        &format!("{out}/report.json"),
        &format!("{d}/run/audit/queries.log"),
        "86400000",
        &format!("v1={}", model_path.display()),
    ]);
    assert!(checked.contains("OK"), "{checked}");
}
