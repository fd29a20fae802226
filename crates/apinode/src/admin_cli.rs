//! `apinode-admin`: one subcommand per admin call, named as in Dataiku. It
//! talks to the running node through the admin API, authenticating with the
//! local secret the node wrote (`run/admin-local.secret`) unless `--key` is
//! given. Admin key commands also work with the node stopped: they change
//! `config/admin-keys.json` directly, after writing their admin audit record
//! through the node's own logging configuration, and so do the audit HMAC
//! key and look-up commands (`privacy_cli`). Output: tables by default,
//! `--output json`, `--no-header`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::auth::admin_keys::{AdminKeyStore, LOCAL_SECRET_FILE};
use crate::offline::{record_offline, whoami};

/// `println!` that stops quietly when the reader went away (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// Administers an apinode (services, generations, keys, metrics).
#[derive(Debug, Parser)]
#[command(name = "apinode-admin", version, about)]
pub struct Args {
    /// The node's data directory.
    #[arg(long, env = "DKU_APINODE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The node's base URL (default: http://127.0.0.1:<port of run/apinode.port>).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// An admin key (default: the local secret of the data directory).
    #[arg(long, env = "APINODE_ADMIN_KEY", global = true, hide_env_values = true)]
    pub key: Option<String>,
    /// Output format where a table is printed.
    #[arg(long, value_enum, default_value = "fancy", global = true)]
    pub output: Output,
    /// Omit table headers.
    #[arg(long, global = true)]
    pub no_header: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables.
    Fancy,
    /// The API's JSON.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List services: id, enabled, start error.
    ServicesList,
    /// Create a service.
    ServiceCreate { service: String },
    /// Delete a service.
    ServiceDelete { service: String },
    /// Import a generation archive (zip) into a service.
    ServiceImportGeneration { service: String, archive: PathBuf },
    /// List a service's generations.
    ServiceListGenerations { service: String },
    /// Preload a generation.
    ServicePreloadGeneration { service: String, generation: String },
    /// Send all traffic to the newest generation.
    ServiceSwitchToNewest { service: String },
    /// Send all traffic to one generation.
    ServiceSwitchToGeneration { service: String, generation: String },
    /// Set the generation mapping, read as JSON on stdin: {"entries": [{"generation": "v1", "proba": 1}]}.
    ServiceSetMapping { service: String },
    /// Enable a service.
    ServiceEnable { service: String },
    /// Disable a service.
    ServiceDisable { service: String },
    /// List a service's user API keys (never their secrets).
    ServiceKeysList { service: String },
    /// Create a user API key of a service; prints its secret once. The
    /// service then requires a key.
    ServiceKeyCreate {
        service: String,
        /// A label, written in audit records.
        #[arg(long)]
        label: Option<String>,
    },
    /// Delete a user API key of a service, by id.
    ServiceKeyDelete { service: String, key_id: String },
    /// Print a service's audit policy (docs/privacy.md).
    ServiceGetAuditPolicy { service: String },
    /// Replace a service's audit policy, read as JSON on stdin (`null` removes it).
    ServiceSetAuditPolicy { service: String },
    /// Print the tokens a value gets in a field the service's audit policy HMACs,
    /// under every key (search the trail for any of them). Works with the node stopped.
    AuditHash { service: String, field: String, value: String },
    /// List the audit HMAC keys (ids only). Works with the node stopped.
    AuditHmacKeys,
    /// Add an audit HMAC key and make it current (older keys stay for
    /// look-ups). Works with the node stopped.
    AuditHmacRotate,
    /// List admin keys (never their secrets).
    AdminKeysList,
    /// Create an admin key (works with the node stopped); prints its secret once.
    AdminKeyCreate {
        /// A label, written in audit records.
        #[arg(long)]
        label: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an admin key, by secret or by id (works with the node stopped).
    AdminKeyDelete {
        /// The key's secret or its id.
        #[arg(value_name = "KEY_OR_ID")]
        key_or_id: String,
    },
    /// Print the node's metrics as JSON.
    MetricsGet,
    /// Predict one record on a public service: predict SERVICE ENDPOINT k=v ...
    Predict {
        service: String,
        endpoint: String,
        /// Features as name=value (numbers are sent as numbers).
        features: Vec<String>,
        /// Answer with this generation.
        #[arg(long)]
        forced_generation: Option<String>,
        /// Dispatch by this key.
        #[arg(long)]
        dispatch_key: Option<String>,
    },
    /// Send outcomes for predictions from a CSV (requestId,outcome[,time,weight]) or JSON-lines file.
    FeedbackImport {
        service: String,
        endpoint: String,
        file: PathBuf,
        /// The service's user API key, when it has keys.
        #[arg(long, env = "APINODE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Outcomes per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Join predictions with outcomes and write report.json, report.html and report.prom (offline).
    Monitor {
        /// The service.
        #[arg(long)]
        service: String,
        /// One endpoint (default: all).
        #[arg(long)]
        endpoint: Option<String>,
        /// Files or folders of query records: audit files (rolled, .gz), an event server's folders, or
        /// kafka://HOST:PORT/TOPIC (consumer group apinode-monitor-<service>) (default: run/audit).
        #[arg(long, value_name = "SOURCE")]
        queries: Vec<PathBuf>,
        /// Files, folders or kafka://HOST:PORT/TOPIC of feedback records (default: run/audit).
        #[arg(long, value_name = "SOURCE")]
        feedback: Vec<PathBuf>,
        /// From this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Until this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Window length: 90s, 30m, 1h, 1d.
        #[arg(long, default_value = "1h")]
        window: String,
        /// Where the report goes.
        #[arg(long, default_value = "monitor-report")]
        out: PathBuf,
        /// A CSV file of reference data (a header row; a `prediction` column for prediction drift) used for
        /// every generation instead of the profiles in the model files.
        #[arg(long, value_name = "FILE.csv")]
        reference: Option<PathBuf>,
        /// Also write what was read, mergeable, as OUT/partial.json.gz (for --merge on another machine).
        #[arg(long)]
        partial: bool,
        /// Combine partial runs (their report folders, or partial.json.gz files) instead of reading sources;
        /// --service, --endpoint, --since, --until and --window must be those of the partial runs.
        #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with_all = ["queries", "feedback"])]
        merge: Vec<PathBuf>,
    },
    /// Print the verifier key of the audit checkpoints (C2SP form).
    AuditPublicKey,
    /// Check the audit files against every signed checkpoint (offline; exit 0 only when all is ok).
    AuditVerify {
        /// More checkpoints to check against: files or folders (the event server's `audit-integrity`).
        #[arg(long, value_name = "DIR_OR_FILE")]
        checkpoints: Vec<PathBuf>,
        /// The verifier key to trust (default: the data directory's own).
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
    },
    /// Write a proof that the record with this request id is in the signed audit trail.
    AuditProve {
        request_id: String,
        /// Write the proof here instead of stdout.
        #[arg(long, value_name = "FILE")]
        output_file: Option<PathBuf>,
        /// The verifier key to trust (default: the data directory's own).
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
    },
}

/// Runs a command.
///
/// # Errors
/// A message for the user (HTTP errors carry the node's errorType and message).
pub fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(args.data_dir.clone().unwrap_or_else(|| PathBuf::from(".")))?;
    let ctx = Ctx { data_dir, args };
    match &ctx.args.command {
        Cmd::AuditPublicKey => crate::audit_cli::public_key(&ctx.data_dir),
        Cmd::AuditVerify { checkpoints, key } => {
            crate::audit_cli::verify(&ctx.data_dir, checkpoints, key.as_deref(), ctx.args.output == Output::Json)
        }
        Cmd::AuditProve { request_id, output_file, key } => {
            crate::audit_cli::prove(&ctx.data_dir, request_id, output_file.as_deref(), key.as_deref())
        }
        Cmd::FeedbackImport { service, endpoint, file, api_key, batch } => {
            let items = crate::monitor_cli::outcomes_file(file)?;
            let url = format!("{}/public/api/v1/{service}/{endpoint}/feedback", ctx.base()?);
            let client = ctx.client()?;
            let mut sent = 0;
            for (n, chunk) in items.chunks((*batch).max(1)).enumerate() {
                let mut request = client.post(&url).json(&json!({"items": chunk}));
                if let Some(k) = api_key {
                    request = request.bearer_auth(k);
                }
                let answer = http(request).with_context(|| {
                    format!(
                        "batch {} (outcomes {} to {}); the batches before it were kept",
                        n + 1,
                        sent + 1,
                        sent + chunk.len()
                    )
                })?;
                sent += answer["accepted"].as_u64().unwrap_or(0) as usize;
            }
            out!("Imported {sent} outcomes into {service}/{endpoint}");
            Ok(())
        }
        Cmd::Monitor {
            service,
            endpoint,
            queries,
            feedback,
            since,
            until,
            window,
            out: dir,
            reference,
            partial,
            merge,
        } => {
            let options = crate::monitor_cli::options(
                &ctx.data_dir,
                service,
                endpoint.clone(),
                queries,
                feedback,
                since,
                until,
                window,
                reference.clone(),
                partial.then(|| dir.clone()),
                merge,
            )?;
            let report = crate::monitor::report(&options)?;
            crate::monitor::write(&report, dir)?;
            match ctx.args.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&report)?),
                Output::Fancy => {
                    out!(
                        "{} query records, {} outcomes ({} unmatched); report in {}/report.html",
                        report["totals"]["queryRecords"],
                        report["totals"]["outcomes"],
                        report["totals"]["unmatchedOutcomes"],
                        dir.display()
                    );
                    for line in crate::monitor::drift_lines(&report) {
                        out!("{line}");
                    }
                }
            }
            Ok(())
        }
        Cmd::ServicesList => {
            let v = ctx.call("GET", "services", None)?;
            ctx.table(&v, &["Service", "Enabled", "Error"], |s| {
                vec![text(&s["serviceId"]), text(&s["enabled"]), s.get("startAbortedReason").map_or("-".into(), text)]
            })
        }
        Cmd::ServiceCreate { service } => {
            out!("Creating service {service}");
            ctx.call("POST", "services/", Some(json!({"serviceId": service})))?;
            out!("OK");
            Ok(())
        }
        Cmd::ServiceDelete { service } => ctx.ok(&format!("services/{service}"), "DELETE", None),
        Cmd::ServiceImportGeneration { service, archive } => {
            let archive = std::path::absolute(archive)?;
            out!("Importing service generation from {}", archive.display());
            let path =
                format!("services/{service}/generations/actions/importFromArchive?filePath={}", encode(&archive));
            ctx.ok(&path, "POST", None)
        }
        Cmd::ServiceListGenerations { service } => {
            let v = ctx.call("GET", &format!("services/{service}/generations"), None)?;
            let list = v.get("generations").cloned().unwrap_or(Value::Array(vec![]));
            ctx.table(&list, &["Gen. Tag", "Created", "Mounted", "Mapped %"], |g| {
                let created = g["createdOn"].as_i64().and_then(chrono::DateTime::from_timestamp_millis);
                let mapped = g["mapped"].as_f64().unwrap_or(0.0) * 100.0;
                vec![
                    text(&g["generationId"]),
                    created.map_or("-".into(), |c| c.to_rfc3339()),
                    text(&g["mounted"]),
                    format!("{mapped:.0}"),
                ]
            })
        }
        Cmd::ServicePreloadGeneration { service, generation } => {
            ctx.ok(&format!("services/{service}/generations/{generation}/preload"), "POST", None)
        }
        Cmd::ServiceSwitchToNewest { service } => {
            let v = ctx.call("POST", &format!("services/{service}/actions/switchToNewest"), None)?;
            if let Some(g) = v.get("switchedToGeneration").and_then(Value::as_str) {
                out!("Switched to generation={g}");
            }
            Ok(())
        }
        Cmd::ServiceSwitchToGeneration { service, generation } => {
            ctx.ok(&format!("services/{service}/actions/switchTo/{generation}"), "POST", None)
        }
        Cmd::ServiceSetMapping { service } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).context("reading the mapping on stdin")?;
            let mapping: Value = serde_json::from_str(&input).context("the mapping on stdin is not JSON")?;
            ctx.ok(&format!("services/{service}/actions/setMapping"), "POST", Some(mapping))
        }
        Cmd::ServiceEnable { service } => ctx.ok(&format!("services/{service}/actions/enable"), "POST", None),
        Cmd::ServiceDisable { service } => ctx.ok(&format!("services/{service}/actions/disable"), "POST", None),
        Cmd::ServiceKeysList { service } => {
            let v = ctx.call("GET", &format!("services/{service}/keys"), None)?;
            let keys = v.get("keys").cloned().unwrap_or(Value::Array(vec![]));
            ctx.table(&keys, &["Id", "Label", "Created"], |k| {
                let created = k["createdOn"].as_i64().and_then(chrono::DateTime::from_timestamp_millis);
                vec![text(&k["id"]), text(&k["label"]), created.map_or("-".into(), |c| c.to_rfc3339())]
            })
        }
        Cmd::ServiceKeyCreate { service, label } => {
            let key = ctx.call("POST", &format!("services/{service}/keys"), Some(json!({"label": label})))?;
            match ctx.args.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&key)?),
                Output::Fancy => out!(
                    "API key {} of service {service} created (shown only once; store it now):\n\t{}",
                    text(&key["id"]),
                    text(&key["key"])
                ),
            }
            Ok(())
        }
        Cmd::ServiceKeyDelete { service, key_id } => {
            ctx.ok(&format!("services/{service}/keys/{key_id}"), "DELETE", None)
        }
        Cmd::ServiceGetAuditPolicy { service } => {
            let v = ctx.call("GET", &format!("services/{service}/auditPolicy"), None)?;
            out!("{}", serde_json::to_string_pretty(&v["auditPolicy"])?);
            Ok(())
        }
        Cmd::ServiceSetAuditPolicy { service } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).context("reading the audit policy on stdin")?;
            let policy: Value = serde_json::from_str(&input).context("the audit policy on stdin is not JSON")?;
            ctx.ok(&format!("services/{service}/auditPolicy"), "PUT", Some(policy))
        }
        Cmd::AuditHash { service, field, value } => {
            // The value as the caller would send it: a number when it reads as one.
            let value = serde_json::from_str::<serde_json::Number>(value)
                .map_or_else(|_| Value::String(value.clone()), Value::Number);
            let answer = if ctx.node_running() {
                ctx.call(
                    "POST",
                    &format!("services/{service}/auditHash"),
                    Some(json!({"field": field, "value": value})),
                )?
            } else {
                crate::privacy_cli::offline_hash(&ctx.data_dir, service, field, &value)?
            };
            match ctx.args.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&answer)?),
                Output::Fancy => {
                    for t in answer["tokens"].as_array().into_iter().flatten() {
                        out!("{}", text(t));
                    }
                }
            }
            Ok(())
        }
        Cmd::AuditHmacKeys => {
            let v = if ctx.node_running() {
                ctx.call("GET", "auditHmacKeys", None)?
            } else {
                crate::privacy::HmacKeys::open(&ctx.data_dir)?.list()
            };
            let current = v["current"].clone();
            ctx.table(&v["keys"], &["Id", "Current", "Created"], |k| {
                let created = k["createdOn"].as_i64().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
                let mark = if k["id"] == current { "*" } else { "" };
                vec![text(&k["id"]), mark.into(), created.map_or("-".into(), |c| c.to_rfc3339())]
            })
        }
        Cmd::AuditHmacRotate => {
            let v = if ctx.node_running() {
                ctx.call("POST", "auditHmacKeys/actions/rotate", None)?
            } else {
                crate::privacy_cli::offline_rotate(&ctx.data_dir)?
            };
            out!("Audit HMAC key {} is now current", text(&v["keyId"]));
            Ok(())
        }
        Cmd::AdminKeysList => {
            let v = if ctx.node_running() { ctx.call("GET", "keys", None)? } else { offline_keys(&ctx.data_dir)? };
            ctx.table(&v, &["Id", "Label", "Created by", "Created"], |k| {
                let created = k["createdOn"].as_i64().and_then(chrono::DateTime::from_timestamp_millis);
                vec![
                    text(&k["id"]),
                    text(&k["label"]),
                    text(&k["createdBy"]),
                    created.map_or("-".into(), |c| c.to_rfc3339()),
                ]
            })
        }
        Cmd::AdminKeyCreate { label, description } => {
            let body = json!({"label": label, "description": description, "createdBy": whoami()});
            let key = if ctx.node_running() {
                ctx.call("POST", "keys", Some(body))?
            } else {
                offline_create(&ctx.data_dir, label, description)?
            };
            match ctx.args.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&key)?),
                Output::Fancy => out!("Admin key created (shown only once; store it now):\n\t{}", text(&key["key"])),
            }
            Ok(())
        }
        Cmd::AdminKeyDelete { key_or_id: key } => {
            if ctx.node_running() {
                let by_id = ctx
                    .call("GET", "keys", None)?
                    .as_array()
                    .is_some_and(|l| l.iter().any(|k| k["id"] == key.as_str()));
                let path = if by_id { format!("keys/{key}/key") } else { format!("keys/{key}") };
                ctx.ok(&path, "DELETE", None)
            } else {
                offline_delete(&ctx.data_dir, key)
            }
        }
        Cmd::MetricsGet => {
            out!("{}", serde_json::to_string_pretty(&ctx.call("GET", "metrics", None)?)?);
            Ok(())
        }
        Cmd::Predict { service, endpoint, features, forced_generation, dispatch_key } => {
            let mut map = serde_json::Map::new();
            for f in features {
                let (k, v) = f.split_once('=').with_context(|| format!("feature {f:?} is not name=value"))?;
                let value = v.parse::<f64>().ok().and_then(|n| serde_json::Number::from_f64(n).map(Value::Number));
                map.insert(k.to_owned(), value.unwrap_or_else(|| Value::String(v.to_owned())));
            }
            let mut body = json!({"features": map});
            if let Some(g) = forced_generation {
                body["dispatch"] = json!({"forcedGeneration": g});
            } else if let Some(k) = dispatch_key {
                body["dispatch"] = json!({"dispatchKey": k});
            }
            let url = format!("{}/public/api/v1/{service}/{endpoint}/predict", ctx.base()?);
            let answer = http(ctx.client()?.post(url).json(&body))?;
            out!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
    }
}

struct Ctx {
    data_dir: PathBuf,
    args: Args,
}

impl Ctx {
    fn node_running(&self) -> bool {
        self.args.url.is_some() || self.data_dir.join("run/apinode.pid").exists()
    }

    fn base(&self) -> anyhow::Result<String> {
        if let Some(u) = &self.args.url {
            return Ok(u.trim_end_matches('/').to_owned());
        }
        let port_file = self.data_dir.join("run/apinode.port");
        let port = std::fs::read_to_string(&port_file).with_context(|| {
            format!("the node does not seem to run on {} (./bin/dss start)", self.data_dir.display())
        })?;
        let scheme = if self.tls().is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://127.0.0.1:{}", port.trim()))
    }

    /// The node's `tls` settings, when it serves HTTPS.
    fn tls(&self) -> Option<serve::TlsSettings> {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        let config =
            crate::config::ServerConfig::load(&self.data_dir, &env, crate::config::Overrides::default()).ok()?;
        config.tls.map(|t| t.resolved(&self.data_dir))
    }

    /// An HTTP client for the node: over HTTPS it trusts exactly the node's
    /// own certificate (no host name to match on 127.0.0.1) and presents
    /// `tls.clientCertFile` when the node asks for a client certificate.
    fn client(&self) -> anyhow::Result<reqwest::blocking::Client> {
        let Some(tls) = self.tls() else { return Ok(reqwest::blocking::Client::new()) };
        let identity = tls.tool_identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        if tls.files.client_ca_file.is_some() && identity.is_none() {
            bail!(
                "the node asks for client certificates (tls.clientCaFile): set tls.clientCertFile and tls.clientKeyFile in config/server.json for apinode-admin"
            );
        }
        let config = serve::tls::client_config(None, Some(&tls.files.cert_file), identity)?;
        Ok(reqwest::blocking::Client::builder().use_preconfigured_tls(config).build()?)
    }

    fn key(&self) -> anyhow::Result<String> {
        if let Some(k) = &self.args.key {
            return Ok(k.clone());
        }
        let path = self.data_dir.join(LOCAL_SECRET_FILE);
        std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).with_context(|| {
            format!("no admin key given and no local secret at {} (is the node running?)", path.display())
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/admin/api/{path}", self.base()?);
        let client = self.client()?;
        let mut request =
            client.request(reqwest::Method::from_bytes(method.as_bytes())?, url).basic_auth(self.key()?, Some(""));
        if let Some(b) = body {
            request = request.json(&b);
        }
        http(request)
    }

    fn ok(&self, path: &str, method: &str, body: Option<Value>) -> anyhow::Result<()> {
        self.call(method, path, body)?;
        out!("OK");
        Ok(())
    }

    fn table(&self, v: &Value, header: &[&str], row: impl Fn(&Value) -> Vec<String>) -> anyhow::Result<()> {
        if self.args.output == Output::Json {
            out!("{}", serde_json::to_string_pretty(v)?);
            return Ok(());
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        if !self.args.no_header {
            rows.push(header.iter().map(|h| (*h).to_owned()).collect());
        }
        rows.extend(v.as_array().map(|a| a.iter().map(&row).collect::<Vec<_>>()).unwrap_or_default());
        let widths: Vec<usize> =
            (0..header.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in rows {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out!("{}", cells.join("  ").trim_end());
        }
        Ok(())
    }
}

fn http(request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().context("the node did not answer (is it running? ./bin/dss status)")?;
    let status = response.status();
    let text = response.text()?;
    let body: Value =
        if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    if !status.is_success() {
        bail!(
            "{}: {} (HTTP {})",
            text_or(&body["errorType"], "Error"),
            text_or(&body["message"], "no message"),
            status.as_u16()
        );
    }
    Ok(body)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn text_or(v: &Value, default: &str) -> String {
    v.as_str().unwrap_or(default).to_owned()
}

fn encode(path: &Path) -> String {
    path.display().to_string().bytes().fold(String::new(), |mut s, b| {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
        s
    })
}

fn offline_keys(data_dir: &Path) -> anyhow::Result<Value> {
    let keys = AdminKeyStore::open(data_dir)?.list();
    Ok(Value::Array(
        keys.iter()
            .map(|k| json!({"id": k.id, "label": k.label, "createdBy": k.created_by, "createdOn": k.created_on}))
            .collect(),
    ))
}

fn offline_create(data_dir: &Path, label: &Option<String>, description: &Option<String>) -> anyhow::Result<Value> {
    let store = AdminKeyStore::open(data_dir)?;
    let (key, secret) = store.prepare(label.clone(), description.clone(), Some(whoami()), None);
    record_offline(data_dir, "admin-key-create", json!({"keyId": key.id, "keyLabel": key.label}))?;
    store.insert(key.clone())?;
    Ok(json!({"id": key.id, "label": key.label, "description": key.description, "createdBy": key.created_by,
              "createdOn": key.created_on, "key": secret}))
}

fn offline_delete(data_dir: &Path, key: &str) -> anyhow::Result<()> {
    let store = AdminKeyStore::open(data_dir)?;
    let found = store.list().into_iter().find(|k| k.id == key).or_else(|| store.find_by_secret(key));
    let Some(found) = found else { bail!("NotFound: no admin key {key:?}") };
    record_offline(data_dir, "admin-key-delete", json!({"keyId": found.id, "keyLabel": found.label}))?;
    store.delete_by_id(&found.id)?;
    out!("OK");
    Ok(())
}
