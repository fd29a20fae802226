//! The test harness: a data directory copied from `tests/fixtures`, a node
//! started in this process on 127.0.0.1:0, and small HTTP helpers that
//! return status, headers and the JSON body.

pub mod certs;
pub mod dss;
pub mod eventserver;
pub mod kafka;
pub mod tls_proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apinode::config::ServerConfig;
use apinode::server::RunningNode;
use apinode::state::Node;
use audit::dispatch::memory::MemoryTarget;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// Copies a directory tree.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create destination");
    for entry in std::fs::read_dir(src).expect("read source") {
        let entry = entry.expect("dir entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy file");
        }
    }
}

/// A data directory holding the fixture services.
pub fn data_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&fixtures().join("services"), &dir.path().join("services"));
    dir
}

/// An HTTP answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the error shape of the spec and returns the message.
    #[track_caller]
    pub fn error(&self, status: u16, error_type: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["errorType"], error_type, "body: {}", self.body);
        self.body["message"].as_str().expect("a message").to_owned()
    }

    /// The body of a successful answer.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        &self.body
    }
}

/// A node serving a temporary data directory, in this process, whose audit
/// runtime keeps every record in memory ([`TestNode::audit`]).
pub struct TestNode {
    pub dir: TempDir,
    pub base: String,
    pub client: reqwest::Client,
    /// Every audit record the node made, in order.
    pub audit: MemoryTarget,
    running: Option<RunningNode>,
}

impl TestNode {
    /// Fixture services, default settings.
    pub async fn start() -> TestNode {
        Self::start_with(data_dir(), ServerConfig::default()).await
    }

    /// A given data directory and settings (the port is ignored: 127.0.0.1:0).
    pub async fn start_with(dir: TempDir, config: ServerConfig) -> TestNode {
        let (audit, memory) = audit::AuditRuntime::in_memory(&config.node_id);
        let node = Arc::new(Node::load(dir.path(), config, audit).expect("node"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = RunningNode::spawn(listener, node).expect("spawn");
        let base = format!("http://{}", running.addr);
        TestNode { dir, base, client: reqwest::Client::new(), audit: memory, running: Some(running) }
    }

    /// Sends a request and reads the answer as JSON (Null when empty).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        send(request).await
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    /// `predict` on `service/endpoint`.
    pub async fn predict(&self, service: &str, endpoint: &str, body: &Value) -> Answer {
        self.post(&format!("/public/api/v1/{service}/{endpoint}/predict"), body).await
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// Asserts `|a - b| <= 1e-12`.
#[track_caller]
pub fn close(actual: &Value, expected: f64) {
    let a = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((a - expected).abs() <= 1e-12, "{a} != {expected}");
}

/// Sends a request and reads the answer as JSON (Null when empty).
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("HTTP exchange");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    Answer { status, headers, body }
}

/// The entries of a zip archive: name and bytes.
pub type Entries = Vec<(String, Vec<u8>)>;

/// A generation whose model answers `intercept` for every record.
pub fn constant_generation(generation_id: &str, intercept: f64) -> Entries {
    let model = serde_json::json!({
        "algorithm": "LINEAR_REGRESSION", "predictionType": "REGRESSION",
        "features": [{"name": "x", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 0}}],
        "params": {"coefficients": [0.0], "intercept": intercept}
    });
    let generation = serde_json::json!({"generationId": generation_id,
        "endpoints": [{"id": "score", "type": "STD_PREDICTION", "model": "model.json"}]});
    vec![
        ("generation.json".to_owned(), generation.to_string().into_bytes()),
        ("model.json".to_owned(), model.to_string().into_bytes()),
    ]
}

/// Writes a zip archive of `entries` (names used as given).
pub fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    use std::io::Write as _;
    let file = std::fs::File::create(path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).expect("zip entry");
        zip.write_all(bytes).expect("zip write");
    }
    zip.finish().expect("zip finish");
}

/// A tool the project's scripts install: `$env` when set (tools/test sets
/// it), else the last line `tools/<script>` prints (run here, idempotent).
pub fn installed_tool(env: &str, script: &str) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join(script);
    let out = std::process::Command::new(&path).output().unwrap_or_else(|e| panic!("tools/{script} runs: {e}"));
    assert!(out.status.success(), "tools/{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().expect("the tool's path").trim().to_owned()
}

/// The virtualenv python with dataikuapi and scikit-learn (tools/setup-test-env).
pub fn python() -> String {
    installed_tool("APINODE_TEST_PYTHON", "setup-test-env")
}

/// Every regular file under `dir`, but those `skip` says to leave.
pub fn files_under(dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if skip(&p) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// `apinode-admin --data-dir DIR`, arguments to add.
pub fn admin(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_apinode-admin"));
    c.arg("--data-dir").arg(dir);
    c
}
