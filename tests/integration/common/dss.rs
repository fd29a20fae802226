//! A node run as an operator runs it: `bin/dss` on a temporary data
//! directory, with this build's binary (`APINODE_BIN`), a fixed free port on
//! 127.0.0.1, and optional logging overrides. For tests of what lands in
//! files across processes, restarts and signals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::data_dir;

/// A data directory driven through `bin/dss`.
pub struct DssNode {
    pub dir: TempDir,
    pub port: u16,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl DssNode {
    /// Fixture services, `dku-log4j.properties` = `overrides` (if any).
    pub fn new(overrides: Option<&str>) -> DssNode {
        Self::with_dir(data_dir(), overrides)
    }

    /// A given data directory, `dku-log4j.properties` = `overrides` (if any).
    pub fn with_dir(dir: TempDir, overrides: Option<&str>) -> DssNode {
        Self::with_settings(dir, overrides, serde_json::json!({}))
    }

    /// As [`DssNode::with_dir`], with more `config/server.json` keys (`extra`
    /// wins over the defaults: port, bindAddress, nodeId "test-node").
    pub fn with_settings(dir: TempDir, overrides: Option<&str>, extra: serde_json::Value) -> DssNode {
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        let mut config = serde_json::json!({"port": port, "bindAddress": "127.0.0.1", "nodeId": "test-node"});
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        std::fs::write(dir.path().join("config/server.json"), config.to_string()).expect("write config");
        if let Some(text) = overrides {
            let path = dir.path().join("resources/logging/dku-log4j.properties");
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write overrides");
        }
        DssNode { dir, port }
    }

    /// Runs `bin/dss <verb>`.
    pub fn dss(&self, verb: &str) -> Output {
        dss(self.dir.path(), verb)
    }

    /// `bin/dss start`, asserting success.
    #[track_caller]
    pub fn start(&self) {
        let out = self.dss("start");
        assert!(out.status.success(), "start failed: {}", text(&out));
    }

    /// `bin/dss stop`, asserting success.
    #[track_caller]
    pub fn stop(&self) {
        let out = self.dss("stop");
        assert!(out.status.success(), "stop failed: {}", text(&out));
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The admin key the node wrote for local tools (`run/admin-local.secret`).
    pub fn admin_secret(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run/admin-local.secret")).expect("admin secret").trim().to_owned()
    }

    /// Spooled files left for the audit target `target`.
    pub fn spool_files(&self, target: &str) -> Vec<PathBuf> {
        match std::fs::read_dir(self.dir.path().join("run/spool").join(target)) {
            Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// `<data>/run/audit/<name>`
    pub fn audit_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("run/audit").join(name)
    }

    /// Every line of every file whose name starts with `prefix` in run/audit.
    pub fn audit_lines(&self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.dir.path().join("run/audit")).expect("run/audit") {
            let entry = entry.expect("entry");
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let text = std::fs::read_to_string(entry.path()).expect("read");
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        lines
    }
}

impl Drop for DssNode {
    fn drop(&mut self) {
        let _ = self.dss("stop");
    }
}

/// Runs `bin/dss <verb>` on `data`.
pub fn dss(data: &Path, verb: &str) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/dss"))
        .arg(verb)
        .env("DKU_APINODE_DATA_DIR", data)
        .env("APINODE_BIN", env!("CARGO_BIN_EXE_apinode"))
        .env_remove("DKU_APINODE_PORT")
        .output()
        .expect("bin/dss runs")
}

/// stdout and stderr of a command.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
