//! `report.html`: one self-contained page (no script, no font, no network)
//! with the figures of `report.json`: a table per generation, and SVG
//! charts of volume, the headline metric and the join rate per window, the
//! calibration curve, the confusion matrix. The SVG is written by hand: the
//! charts are polylines, axes and labels (about a hundred lines), where a
//! plotting crate (plotters) would bring a font stack and a rasteriser for
//! nothing the page uses, and a larger, less readable page. The page's size
//! grows with the number of windows, never with the number of records.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart::{esc, line_chart, num, over_windows, time_axis};

/// The page.
pub fn page(report: &Value) -> String {
    let service = report["service"].as_str().unwrap_or_default();
    let classifier = report["generations"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(_, g)| g["overall"]["predictions"].get("classes").is_some());
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>apinode monitor: {s}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:72em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #bbb;padding:.25em .6em;text-align:right}}th{{background:#eee}}figure{{margin:1em 0}}</style></head><body>\
         <h1>Service {s}{e}</h1><p>Window {w}; generated {at}. {n} query records ({d} duplicates skipped), {o} outcomes \
         ({u} for no query record read).</p>",
        s = esc(service),
        e = report["endpoint"].as_str().map(|e| format!(", endpoint {}", esc(e))).unwrap_or_default(),
        w = esc(report["window"].as_str().unwrap_or_default()),
        at = esc(report["generatedAt"].as_str().unwrap_or_default()),
        n = report["totals"]["queryRecords"],
        d = report["totals"]["duplicates"],
        o = report["totals"]["outcomes"],
        u = report["totals"]["unmatchedOutcomes"],
    );
    if let Some(n) = report["errors"]["total"].as_u64().filter(|n| *n > 0) {
        let _ = write!(
            html,
            "<p>{n} requests to this service were refused as a whole (prediction-failure records; see failures.log).</p>"
        );
    }
    if report["totals"]["sampled"] == true {
        html.push_str("<p>Query records are sampled (auditPolicy): counts and metrics are weighted by the inverse of each record's samplingRate.</p>");
    }
    let headline: [(&str, &str); 4] = if classifier {
        [
            ("accuracy", "accuracy"),
            ("balancedAccuracy", "balanced accuracy"),
            ("rocAuc", "ROC AUC"),
            ("logLoss", "log loss"),
        ]
    } else {
        [("mae", "MAE"), ("rmse", "RMSE"), ("r2", "R²"), ("mape", "MAPE")]
    };
    html.push_str("<h2>Per generation</h2><table><tr><th>generation</th><th>records</th><th>ignored</th><th>labelled</th><th>join rate</th><th>p99 latency µs</th>");
    for (_, label) in headline {
        let _ = write!(html, "<th>{label}</th>");
    }
    html.push_str("</tr>");
    for (g, v) in report["generations"].as_object().into_iter().flatten() {
        let o = &v["overall"];
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(g),
            o["records"],
            o["ignored"],
            o["labelled"],
            num(&o["joinRate"], 3),
            num(&o["latencyUs"]["p99"], 0)
        );
        for (key, _) in headline {
            let _ = write!(html, "<td>{}</td>", num(&o["performance"][key], 4));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table><h2>Over time</h2>");
    html.push_str(&line_chart("Records per window", "records", &over_windows(report, &["records"]), time_axis));
    let (key, label) = headline[0];
    html.push_str(&line_chart(
        &format!("{label} per window"),
        label,
        &over_windows(report, &["performance", key]),
        time_axis,
    ));
    html.push_str(&line_chart(
        "Join rate per window",
        "labelled / scored",
        &over_windows(report, &["joinRate"]),
        time_axis,
    ));
    if classifier {
        let mut curves = Vec::new();
        for (g, v) in report["generations"].as_object().into_iter().flatten() {
            let pts: Vec<(f64, f64)> = v["overall"]["performance"]["calibration"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| Some((b["meanPredicted"].as_f64()?, b["fractionPositive"].as_f64()?)))
                .collect();
            if !pts.is_empty() {
                curves.push((format!("generation {g}"), pts));
            }
        }
        if !curves.is_empty() {
            html.push_str("<h2>Calibration</h2><p>Observed share of the positive class against the mean predicted probability (x: mean predicted probability).</p>");
            html.push_str(&line_chart("Calibration", "fraction positive", &curves, |x| format!("{x:.2}")));
        }
        html.push_str("<h2>Confusion matrices</h2>");
        for (g, v) in report["generations"].as_object().into_iter().flatten() {
            let c = &v["overall"]["performance"]["confusion"];
            let Some(labels) = c["labels"].as_array() else { continue };
            let _ = write!(html, "<table><tr><th>generation {} (rows: outcome)</th>", esc(g));
            for l in labels {
                let _ = write!(html, "<th>{}</th>", esc(l.as_str().unwrap_or_default()));
            }
            html.push_str("</tr>");
            for (l, row) in labels.iter().zip(c["matrix"].as_array().into_iter().flatten()) {
                let _ = write!(html, "<tr><th>{}</th>", esc(l.as_str().unwrap_or_default()));
                for x in row.as_array().into_iter().flatten() {
                    let _ = write!(html, "<td>{}</td>", num(x, 0));
                }
                html.push_str("</tr>");
            }
            html.push_str("</table>");
        }
    }
    html.push_str(&super::html_drift::section(report));
    html.push_str("</body></html>\n");
    html
}
