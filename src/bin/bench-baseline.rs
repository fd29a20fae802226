//! The benchmark baseline (bench/run): the least an axum server on this
//! machine does per request: parse the JSON body, answer a constant JSON
//! body. Its throughput is what the hardware and the HTTP stack allow;
//! apinode's figures are reported as ratios of it.
//!
//!     bench-baseline PORT

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

async fn answer(body: Bytes) -> ([(&'static str, &'static str); 1], &'static str) {
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&body);
    let answer = if parsed.is_ok() {
        r#"{"result":{"prediction":"yes","ignored":false}}"#
    } else {
        r#"{"errorType":"InvalidRequest"}"#
    };
    ([("content-type", "application/json")], answer)
}

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18080);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let app = Router::new().fallback(post(answer));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}
