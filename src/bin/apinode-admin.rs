//! The `apinode-admin` binary: parse the command line and run it. The
//! commands live in the `apinode` library (`admin_cli`).

use clap::Parser;

fn main() -> std::process::ExitCode {
    match apinode::admin_cli::run(apinode::admin_cli::Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apinode-admin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
