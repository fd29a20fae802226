//! The pieces of `report.html` its sections share: HTML escaping, number
//! formatting, and the hand-written SVG line chart over windows (why by
//! hand: see `html`). Pure: JSON in, markup out.

use std::fmt::Write as _;

use serde_json::Value;

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// Text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn num(v: &Value, digits: usize) -> String {
    v.as_f64().map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

/// Epoch milliseconds as an RFC 3339 time (the x axis of the charts over time).
pub fn time_axis(x: f64) -> String {
    super::join::rfc3339(x as i64)
}

/// A line chart of `series` (name, points of (x, y)), x labelled by `x_text`.
pub fn line_chart(
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
pub fn over_windows(report: &Value, path: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
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
