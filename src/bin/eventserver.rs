//! `eventserver`: the central collector of apinode audit messages. Usually
//! started by `bin/eventserver start`.

use std::path::PathBuf;

use clap::Parser;

/// The event server.
#[derive(Debug, Parser)]
#[command(version, about = "Collects the audit messages of many apinodes (POST /events)")]
struct Args {
    /// The data directory (config/eventserver.json, run/).
    #[arg(long, env = "DKU_EVENTSERVER_DATA_DIR", default_value = ".")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = std::env::vars().collect();
    eventserver::server::run(&args.data_dir, &env).await
}
