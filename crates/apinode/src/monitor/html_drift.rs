//! The drift section of `report.html`: per generation, the whole period's
//! drift table (method, score, threshold, decision, PSI, missing values),
//! the share of drifted features per window, and a reference-vs-current
//! histogram per feature (hand-written SVG bars, for the reasons given in
//! `html`). Only reads `report.json`'s drift figures; its size grows with
//! features and windows, never with records.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart::{esc, line_chart, num, over_windows, time_axis};

/// Reference and current shares side by side, one pair of bars per bin.
fn histogram(name: &str, h: &Value) -> String {
    let (w, hgt, top, bottom) = (300.0, 130.0, 18.0, 22.0);
    let empty = Vec::new();
    let r = h["reference"].as_array().unwrap_or(&empty);
    let c = h["current"].as_array().unwrap_or(&empty);
    let bins = r.len().max(1) as f64;
    let max = r.iter().chain(c).filter_map(Value::as_f64).fold(1e-12, f64::max);
    let ph = hgt - top - bottom;
    let bw = (w - 8.0) / bins;
    let mut svg = format!(
        "<svg class=\"histogram\" role=\"img\" aria-label=\"{n}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\">\
         <text x=\"4\" y=\"13\" font-size=\"12\" font-weight=\"bold\">{n}</text>",
        n = esc(name)
    );
    for (i, (a, b)) in r.iter().zip(c).enumerate() {
        let x = 4.0 + i as f64 * bw;
        for (k, (v, colour)) in [(a, "#1f77b4"), (b, "#ff7f0e")].into_iter().enumerate() {
            let bh = v.as_f64().unwrap_or(0.0) / max * ph;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"/>",
                x + k as f64 * bw / 2.0,
                top + ph - bh,
                (bw / 2.0 - 0.5).max(0.5)
            );
        }
    }
    let labels = match (h["edges"].as_array(), h["categories"].as_array()) {
        (Some(e), _) => format!("{} … {}", num(&e[0], 3), num(&e[e.len() - 1], 3)),
        (_, Some(k)) => k.iter().filter_map(Value::as_str).take(6).map(esc).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    let _ = write!(svg, "<text x=\"4\" y=\"{:.0}\" font-size=\"10\">{labels}</text></svg>", hgt - 6.0);
    svg
}

/// The section (empty when no generation has a reference).
pub fn section(report: &Value) -> String {
    let generations = report["generations"].as_object();
    let with_drift = generations.into_iter().flatten().any(|(_, g)| g["overall"]["drift"]["features"].is_object());
    if !with_drift {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Data drift</h2><p>Each feature of the whole period against the generation's reference, with Evidently's \
         default tests: up to 1000 reference rows, Kolmogorov-Smirnov (numbers), chi-square or Z-test (p-value, drift \
         below 0.05); above, Wasserstein distance over the reference's standard deviation (numbers) or Jensen-Shannon \
         distance (drift at 0.1 or more). PSI beside each. Dataset drift when at least half the features drift. \
         Blue: reference; orange: current.</p>",
    );
    html.push_str(&line_chart(
        "Share of drifted features per window",
        "drifted / tested",
        &over_windows(report, &["drift", "share"]),
        time_axis,
    ));
    for (g, v) in generations.into_iter().flatten() {
        let d = &v["overall"]["drift"];
        let Some(features) = d["features"].as_object() else {
            let _ = write!(html, "<p>Generation {}: {}.</p>", esc(g), esc(d["why"].as_str().unwrap_or("no drift")));
            continue;
        };
        let _ = write!(
            html,
            "<h3>Generation {} — {} of {} features drifted{}</h3><p>Reference: {}</p><table><tr><th>feature</th><th>type</th>\
             <th>test</th><th>score</th><th>threshold</th><th>drifted</th><th>PSI</th><th>current rows</th><th>missing</th></tr>",
            esc(g),
            d["driftedFeatures"],
            d["testedFeatures"],
            if d["datasetDrift"] == true { ": dataset drift" } else { "" },
            esc(d["reference"].as_str().unwrap_or_default()),
        );
        let prediction = [("(prediction)".to_owned(), &d["prediction"])];
        let rows = features.iter().map(|(k, v)| (k.clone(), v)).chain(prediction.iter().map(|(k, v)| (k.clone(), *v)));
        let mut charts = String::new();
        for (name, f) in rows {
            if f.is_null() {
                continue;
            }
            let drifted = match f["drifted"].as_bool() {
                Some(true) => "<b>yes</b>",
                Some(false) => "no",
                None => "–",
            };
            let _ = write!(
                html,
                "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{drifted}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&name),
                esc(f["type"].as_str().unwrap_or_default()),
                esc(f["method"].as_str().unwrap_or("–")),
                num(&f["score"], 4),
                num(&f["threshold"], 2),
                num(&f["psi"], 4),
                f["currentRows"],
                f["currentMissing"],
            );
            if f["histogram"].is_object() {
                charts.push_str(&histogram(&name, &f["histogram"]));
            }
        }
        html.push_str("</table><div>");
        html.push_str(&charts);
        html.push_str("</div>");
    }
    html
}
