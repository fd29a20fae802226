//! End-to-end tests of apinode: every test starts a real server listening on
//! 127.0.0.1 (port 0) over a temporary data directory and talks HTTP to it.
//! All modules form one test binary, to link once.

mod admin;
mod admin_cli;
mod audit_files;
mod audit_records;
mod central;
mod common;
mod compat;
mod dead_letter;
mod dispatch;
mod drift;
mod dss;
mod durability;
mod errors;
mod feedback;
mod hostile;
mod integrity;
mod kafka;
mod loading;
mod observe;
mod parity;
mod predict;
mod privacy;
mod report_page;
mod secrets;
mod tls;
