//! The monitor's `report.html` in a real headless browser (Debian's
//! Chromium, installed by tools/setup-chromium), with the network cut: the
//! screenshot must show each generation's series colour in its charts,
//! and the drift section's current-data bars, so the page renders its SVG
//! from itself alone.

use std::path::Path;
use std::process::Command;

use apinode::monitor::join::Filter;
use apinode::monitor::{Options, report, write};
use serde_json::json;

fn chromium() -> String {
    crate::common::installed_tool("APINODE_CHROMIUM", "setup-chromium")
}

/// Pixels of the screenshot within a small distance of `rgb`.
fn pixels_near(png_path: &Path, rgb: (u8, u8, u8)) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).expect("png")));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| {
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
            d(p[0], rgb.0) + d(p[1], rgb.1) + d(p[2], rgb.2) < 40
        })
        .count()
}

#[test]
fn the_report_page_renders_its_charts_with_no_network() {
    let dir = tempfile::tempdir().expect("tmp");
    let audit = dir.path().join("audit");
    std::fs::create_dir_all(&audit).expect("mkdir");
    // Three hours of a binary classifier in two generations, with outcomes.
    let (mut queries, mut feedback) = (String::new(), String::new());
    for i in 0..600 {
        let generation = if i % 2 == 0 { "v1" } else { "v2" };
        let p = f64::from(i % 10) / 10.0 + 0.05;
        let prediction = if p > 0.5 { "yes" } else { "no" };
        let time = format!("2026-12-01T{:02}:{:02}:00.000Z", i / 200, (i / 4) % 60);
        let q = json!({"msgType": "prediction-query", "eventId": format!("q{i}"), "requestId": format!("r{i}"),
            "timestamp": time, "serviceId": "churn", "endpointId": "score", "generation": generation,
            "features": {"x": f64::from(i % 17) * if i >= 300 { 2.0 } else { 1.0 }},
            "result": {"prediction": prediction, "probas": {"no": 1.0 - p, "yes": p}, "ignored": false},
            "timing": {"prediction": 40 + i % 7}});
        queries.push_str(&format!("{}\n", json!({"message": q})));
        let right = (i % 3 != 0) == (generation == "v1");
        let outcome = if right {
            prediction
        } else if prediction == "yes" {
            "no"
        } else {
            "yes"
        };
        let f = json!({"msgType": "prediction-feedback", "eventId": format!("f{i}"), "requestId": format!("r{i}"),
            "serviceId": "churn", "endpointId": "score", "outcome": outcome, "time": time, "weight": 1.0});
        feedback.push_str(&format!("{}\n", json!({"message": f})));
    }
    std::fs::write(audit.join("queries.log"), queries).expect("write");
    std::fs::write(audit.join("feedback.log"), feedback).expect("write");
    // A reference profile for v1 (x uniform over 0..16), so the drift section shows.
    let generations = dir.path().join("generations");
    std::fs::create_dir_all(generations.join("v1")).expect("mkdir");
    let model = json!({"features": [{"name": "x", "type": "NUMERIC"}], "referenceProfile": {"rows": 1700,
        "features": {"x": {"type": "NUMERIC", "values": (0..17).map(f64::from).collect::<Vec<f64>>(), "counts": vec![100; 17]}}}});
    std::fs::write(generations.join("v1/model.json"), model.to_string()).expect("write");
    let endpoints = json!({"generationId": "v1", "endpoints": [{"id": "score", "model": "model.json"}]});
    std::fs::write(generations.join("v1/generation.json"), endpoints.to_string()).expect("write");
    let options = Options {
        filter: Filter { service: "churn".into(), ..Filter::default() },
        queries: vec![audit.clone()],
        feedback: vec![audit],
        window_ms: 3_600_000,
        window_text: "1h".into(),
        generations: Some(generations),
        reference: None,
        partial: None,
        merge: Vec::new(),
    };
    let r = report(&options).expect("report");
    let out = dir.path().join("out");
    write(&r, &out).expect("write");
    let shot = dir.path().join("page.png");
    let run = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,4000"])
        // No network: every host resolves to nothing, every proxy is closed.
        .args(["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--no-first-run"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .expect("chromium runs");
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&run.stderr));
    let blue = pixels_near(&shot, (0x1f, 0x77, 0xb4));
    let red = pixels_near(&shot, (0xd6, 0x27, 0x28));
    let orange = pixels_near(&shot, (0xff, 0x7f, 0x0e));
    eprintln!("report page: {blue} pixels of v1's colour, {red} of v2's, {orange} of current-data bars");
    assert_eq!(r["generations"]["v1"]["overall"]["drift"]["features"]["x"]["drifted"], true);
    assert!(r["generations"]["v2"]["overall"]["drift"]["why"].is_string(), "v2 has no reference");
    if let Ok(keep) = std::env::var("APINODE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("keep the screenshot");
    }
    assert!(blue > 500 && red > 500, "both generations' series are drawn: {blue} and {red}");
    assert!(orange > 500, "the drift histograms are drawn: {orange}");
}
