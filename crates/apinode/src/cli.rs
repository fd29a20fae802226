//! The `apinode` command line: where the data directory is and which port to
//! use. It parses arguments only; `server::run` does the work.

use std::path::PathBuf;

use clap::Parser;

/// Runs an apinode in the foreground (`bin/dss` runs it in the background).
#[derive(Debug, Parser)]
#[command(name = "apinode", version, about)]
pub struct Args {
    /// The data directory (services/, config/, run/). Default: the current directory.
    #[arg(long, env = "DKU_APINODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The TCP port, over config/server.json and DKU_APINODE_PORT.
    #[arg(long)]
    pub port: Option<u16>,
}

impl Args {
    /// The data directory to use.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}
