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
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        let config = format!(r#"{{"port": {port}, "bindAddress": "127.0.0.1", "nodeId": "test-node"}}"#);
        std::fs::write(dir.path().join("config/server.json"), config).expect("write config");
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
