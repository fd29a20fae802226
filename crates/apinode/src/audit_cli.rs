//! The offline audit commands of `apinode-admin` (docs/integrity.md
//! "Verification", "Proof of one record"): print the verifier key, verify
//! the files against the signed checkpoints, prove one record. They read
//! the data directory only; the node may be running or not.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use audit::integrity::tlog::note::NoteVerifier;
use audit::integrity::{self, verify::Report};

/// The key to trust: `--key`, else the data directory's own.
fn key(data_dir: &Path, given: Option<&str>) -> anyhow::Result<(NoteVerifier, String)> {
    match given {
        Some(text) => Ok((NoteVerifier::parse(text).context("--key")?, "--key".into())),
        None => {
            let k = integrity::public_key(data_dir).with_context(|| {
                format!("no audit signing key in {} (has the node run with integrity on?)", data_dir.display())
            })?;
            Ok((
                k,
                format!(
                    "{} (local: pass --key with a copy kept elsewhere for an independent check)",
                    integrity::PUBLIC_KEY_FILE
                ),
            ))
        }
    }
}

/// `audit-public-key`.
///
/// # Errors
/// When there is no key.
pub fn public_key(data_dir: &Path) -> anyhow::Result<()> {
    let (k, _) = key(data_dir, None)?;
    println!("{}", k.to_text());
    Ok(())
}

/// `audit-verify`.
///
/// # Errors
/// When something does not verify (after printing the report).
pub fn verify(data_dir: &Path, checkpoints: &[PathBuf], given: Option<&str>, json: bool) -> anyhow::Result<()> {
    let (k, source) = key(data_dir, given)?;
    let started = std::time::Instant::now();
    let report = integrity::verify::verify(data_dir, checkpoints, &k, &source)
        .with_context(|| format!("reading {}", data_dir.join(integrity::STATE_DIR).display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, started.elapsed());
    }
    if !report.ok() {
        bail!("the audit trail does not verify");
    }
    Ok(())
}

fn print_report(r: &Report, took: std::time::Duration) {
    println!("key: {} from {}", r.key, r.key_source);
    for a in &r.appenders {
        println!(
            "{:<28} {:<6} {} records, {} checkpoints checked (up to {}), {} records not signed yet",
            a.appender, a.status, a.records, a.checkpoints_checked, a.verified_size, a.unsigned_records
        );
        for d in &a.deleted_by_retention {
            println!("    deleted by retention (announced): {d}");
        }
        for p in &a.problems {
            let at = match (&p.file, p.line) {
                (Some(f), Some(l)) => format!(" {f}:{l}"),
                (Some(f), None) => format!(" {f}"),
                _ => String::new(),
            };
            println!(
                "    {}{at}: {}",
                serde_json::to_value(p.kind).unwrap_or_default().as_str().unwrap_or("?"),
                p.detail
            );
        }
    }
    let rate = r.records as f64 / took.as_secs_f64().max(1e-9);
    println!("{}: {} records in {:.2} s ({:.0} records/s)", r.status, r.records, took.as_secs_f64(), rate);
}

/// `audit-prove`.
///
/// # Errors
/// When the record is not found or not signed yet.
pub fn prove(data_dir: &Path, request_id: &str, output: Option<&Path>, given: Option<&str>) -> anyhow::Result<()> {
    let (k, _) = key(data_dir, given)?;
    let proof = integrity::prove::prove(data_dir, request_id, &k)?;
    let text = serde_json::to_string_pretty(&proof)?;
    match output {
        Some(path) => {
            std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{text}"),
    }
    Ok(())
}
