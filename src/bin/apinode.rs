//! The `apinode` binary: parse the command line, run the node until a stop
//! signal. Everything else is in the `apinode` library.

use anyhow::Context;
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = apinode::cli::Args::parse();
    let data_dir = std::path::absolute(args.data_dir()).context("resolving the data directory")?;
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let overrides = apinode::config::Overrides { port: args.port };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime
        .block_on(apinode::server::run(&data_dir, &env, overrides))
        .with_context(|| format!("apinode on {}", data_dir.display()))
}
