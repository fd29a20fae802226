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

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// Text for HTML.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(super) fn num(v: &Value, digits: usize) -> String {
    v.as_f64().map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

/// Epoch milliseconds as an RFC 3339 time (the x axis of the charts over time).
pub(super) fn time_axis(x: f64) -> String {
    super::join::rfc3339(x as i64)
}

/// A line chart of `series` (name, points of (x, y)), x labelled by `x_text`.
pub(super) fn line_chart(
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_text: fn(f64) -> String,
) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 240.0, 56.0, 36.0, 28.0, 120.0);
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let mut svg = format!(
        "<figure><svg class=\"chart\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">\
         <text x=\"{left}\" y=\"16\" font-weight=\"bold\">{t}</text>",
        t = esc(title)
    );
    if points.is_empty() {
        svg.push_str("<text x=\"60\" y=\"120\">no data</text></svg></figure>");
        return svg;
    }
    let (x0, x1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let (pw, ph) = (w - left - right, h - top - bottom);
    let sx = |x: f64| if x1 > x0 { left + (x - x0) / (x1 - x0) * pw } else { left + pw / 2.0 };
    let sy = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * ph;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"#444\"/>\
         <text x=\"4\" y=\"{yt}\" font-size=\"11\">{y1:.3}</text><text x=\"4\" y=\"{b}\" font-size=\"11\">{y0:.3}</text>\
         <text x=\"{left}\" y=\"{xl}\" font-size=\"11\">{from}</text><text x=\"{r}\" y=\"{xl}\" font-size=\"11\" text-anchor=\"end\">{to}</text>\
         <text x=\"4\" y=\"{mid}\" font-size=\"11\" transform=\"rotate(-90 10 {mid})\">{yl}</text>",
        b = top + ph,
        r = left + pw,
        yt = top + 4.0,
        xl = top + ph + 16.0,
        mid = top + ph / 2.0,
        from = x_text(x0),
        to = x_text(x1),
        yl = esc(y_label),
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = write!(
            svg,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>", sx(*x), sy(*y));
        }
        let ly = top + 12.0 + 16.0 * i as f64;
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{ry}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{tx}\" y=\"{ly}\" font-size=\"12\">{n}</text>",
            lx = left + pw + 12.0,
            ry = ly - 9.0,
            tx = left + pw + 26.0,
            n = esc(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Points of `metric` (a path in each window summary) per generation.
pub(super) fn over_windows(report: &Value, path: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out = Vec::new();
    for (g, v) in report["generations"].as_object().into_iter().flatten() {
        let mut pts = Vec::new();
        for w in v["windows"].as_array().into_iter().flatten() {
            let mut x = w;
            for p in path {
                x = &x[*p];
            }
            let start = w["start"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            if let (Some(y), Some(t)) = (x.as_f64(), start) {
                pts.push((t.timestamp_millis() as f64, y));
            }
        }
        out.push((format!("generation {g}"), pts));
    }
    out
}

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
