//! apinode: a real-time prediction server that answers like Dataiku's API
//! node (same URLs, same JSON) and records what it does.
//!
//! A request enters through [`http`], which finds the service in the
//! [`registry`], checks the caller's key ([`auth`]), dispatches to a
//! generation, and hands the records to [`scoring`], which runs the
//! endpoint's [`model`]. Everything a node serves is read from its data
//! directory at start ([`server`], [`config`]); every request handler shares
//! the [`state::Node`], whose audit runtime records what the node does.
//!
//! # Layout
//!
//! - [`ids`]: identifier newtypes (services, generations, endpoints, requests).
//! - [`permissions`]: modes of secret and audit files.
//! - [`problems`]: validation problems collected and reported all at once.
//! - [`model`]: model files, preprocessing, algorithms, explanations.
//! - [`registry`]: services, generations, endpoints; loading and dispatch.
//! - [`auth`]: who calls: the `Principal`, user API keys, admin keys (hashed, constant-time).
//! - [`scoring`]: scoring records and shaping Dataiku's `result` objects.
//! - [`audit_log`]: the node's audit messages (queries, failures, auth, calls, admin).
//! - [`entity`]: CDAP entity audit messages.
//! - [`process`]: this process's CPU, memory and file descriptors (`/proc/self`).
//! - [`resource_usage`]: compute-resource-usage messages, reported drops.
//! - [`metrics`]: request counters and latency histograms (HDR, exact to 1%).
//! - [`monitor`]: the feedback loop's join, drift and report, and partial runs merged (offline).
//! - [`monitor_cli`]: `feedback-import` files and `monitor` options.
//! - [`openapi`]: each service's OpenAPI 3.1 document, typed from its models.
//! - [`prometheus`]: `GET /metrics`: requests, the audit pipeline, the process.
//! - [`query_ring`]: each service's recent query records.
//! - [`admin`]: the admin API and generation archives.
//! - [`http`]: the router, handlers, wire formats and the error table.
//! - [`config`]: `config/server.json`, environment and flags.
//! - [`logging`]: the runtime log (log4rs).
//! - [`state`]: the state every handler shares.
//! - [`server`]: start, serve, stop (the only module that serves `http`).
//! - [`cli`]: the `apinode` command line.
//! - [`admin_cli`]: the `apinode-admin` command line.
//! - [`offline`]: the admin record of a change made with the node stopped.
//! - [`audit_cli`]: its offline audit commands: public key, verify, prove.
//! - [`privacy`]: per-service audit policies (drop, mask, HMAC, truncate, bucket, sample).
//! - [`privacy_cli`]: the offline privacy commands (`audit-hash`, `audit-hmac-rotate`).

pub mod admin;
pub mod admin_cli;
pub mod audit_cli;
pub mod audit_log;
pub mod auth;
pub mod cli;
pub mod config;
pub mod entity;
pub mod http;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod monitor_cli;
pub mod offline;
pub mod openapi;
pub mod permissions;
pub mod privacy;
pub mod privacy_cli;
pub mod problems;
pub mod process;
pub mod prometheus;
pub mod query_ring;
pub mod registry;
pub mod resource_usage;
pub mod scoring;
pub mod server;
pub mod state;
