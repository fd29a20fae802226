//! An event server run as an operator runs it: `bin/eventserver` on a
//! temporary data directory with this build's binary (`EVENTSERVER_BIN`), a
//! fixed free port on 127.0.0.1, and the stored events read back from its
//! files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use super::dss::{free_port, text};

/// An event server's data directory.
pub struct EventServer {
    pub dir: TempDir,
    pub port: u16,
}

/// One stored line and the folder it is in, relative to the root
/// (`apinode-query/churn/2026/11/22/06`).
pub struct Stored {
    pub folder: PathBuf,
    pub line: Value,
}

impl EventServer {
    /// `config/eventserver.json` = `config` with this server's port and address.
    pub fn new(mut config: Value) -> EventServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        config["port"] = port.into();
        config["bindAddress"] = "127.0.0.1".into();
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        std::fs::write(dir.path().join("config/eventserver.json"), config.to_string()).expect("write config");
        EventServer { dir, port }
    }

    /// Runs `bin/eventserver <verb>`.
    pub fn ctl(&self, verb: &str) -> Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/eventserver"))
            .arg(verb)
            .env("DKU_EVENTSERVER_DATA_DIR", self.dir.path())
            .env("EVENTSERVER_BIN", env!("CARGO_BIN_EXE_eventserver"))
            .env_remove("DKU_EVENTSERVER_PORT")
            .output()
            .expect("bin/eventserver runs")
    }

    /// `bin/eventserver start`, asserting success.
    #[track_caller]
    pub fn start(&self) {
        let out = self.ctl("start");
        assert!(out.status.success(), "start failed: {}", text(&out));
    }

    /// `bin/eventserver stop`, asserting success.
    #[track_caller]
    pub fn stop(&self) {
        let out = self.ctl("stop");
        assert!(out.status.success(), "stop failed: {}", text(&out));
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The default destination's root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("run/eventserver-data")
    }

    /// Every stored line under `root`.
    pub fn stored(root: &Path) -> Vec<Stored> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let folder = path.parent().expect("parent").strip_prefix(root).expect("under root").to_path_buf();
                    for line in std::fs::read_to_string(&path).expect("read").lines() {
                        let line = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line ({e}): {line}"));
                        out.push(Stored { folder: folder.clone(), line });
                    }
                }
            }
        }
        out
    }
}

impl Drop for EventServer {
    fn drop(&mut self) {
        let _ = self.ctl("stop");
    }
}
