//! Tamper evidence of the audit files (docs/integrity.md "Tamper
//! evidence"): each file appender's lines are the leaves of an RFC 6962
//! tree that continues across rolls, restarts and crashes; its root is
//! signed (Ed25519, C2SP signed notes) at checkpoints written beside the
//! tree and sent on the `audit-integrity` topic; anyone with the public key
//! can check the files offline ([`verify`]) and prove one record
//! ([`prove`]).
//!
//! # Layout
//!
//! - this file: the settings, the signing key files, and [`Integrity`], the
//!   context every file appender's tree shares (one per process, held by
//!   the appender registry, with an exclusive lock on the state folder).
//! - [`tree`]: one appender's tree while the node writes.
//! - [`ledger`]: the tree's state on disk.
//! - [`files`]: an appender's files read line by line.
//! - [`trail`]: an appender's files, segments and checkpoints as found on disk.
//! - [`verify`], [`prove`]: the offline checks of `apinode-admin`.
//!
//! Nothing here writes an audit file or decides what is recorded.

pub mod files;
pub mod ledger;
pub mod prove;
pub mod trail;
pub mod tree;
pub mod verify;

pub use audit_types::tlog;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use audit_types::tlog::note::{NoteSigner, NoteVerifier};

use crate::report::{Event, Events};

/// `auditLog.integrity` of `config/server.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Trees and checkpoints are kept (`enabled`, default true).
    pub enabled: bool,
    /// A checkpoint is signed this often while a tree grows
    /// (`checkpointIntervalSeconds`, default 10).
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { enabled: true, interval: Duration::from_secs(10) }
    }
}

/// The signing key, relative to the data directory (0600).
pub const KEY_FILE: &str = "config/audit-signing.key";
/// The verifier key, relative to the data directory.
pub const PUBLIC_KEY_FILE: &str = "config/audit-signing.pub";
/// The trees' state, relative to the data directory.
pub const STATE_DIR: &str = "run/audit/integrity";

/// The signer of `data_dir`, created with the name `node_id` at first use
/// (`config/audit-signing.key`, 0600, and `config/audit-signing.pub`).
///
/// # Errors
/// When the key cannot be read, parsed or created.
pub fn signing_key(data_dir: &Path, node_id: &str) -> io::Result<NoteSigner> {
    let path = data_dir.join(KEY_FILE);
    let invalid = |e: audit_types::tlog::NoteError| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let signer = NoteSigner::parse(&text).map_err(invalid)?;
            if signer.name() != node_id {
                log::warn!(
                    "{} is named {:?}, not the nodeId {node_id:?}: checkpoints stay signed under its name",
                    path.display(),
                    signer.name()
                );
            }
            Ok(signer)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let signer = NoteSigner::from_seed(node_id, rand::random()).map_err(invalid)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let staged = path.with_extension("key.tmp");
            let mut f = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&staged)?;
            io::Write::write_all(&mut f, format!("{}\n", signer.to_secret_text()).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&staged, &path)?;
            std::fs::write(data_dir.join(PUBLIC_KEY_FILE), format!("{}\n", signer.verifier().to_text()))?;
            log::info!("Created the audit signing key {} ({})", path.display(), signer.verifier().to_text());
            Ok(signer)
        }
        Err(e) => Err(e),
    }
}

/// The verifier key of `data_dir` (from the signing key, else the `.pub`).
///
/// # Errors
/// When neither can be read.
pub fn public_key(data_dir: &Path) -> io::Result<NoteVerifier> {
    let invalid = |e: audit_types::tlog::NoteError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    match std::fs::read_to_string(data_dir.join(KEY_FILE)) {
        Ok(text) => Ok(NoteSigner::parse(&text).map_err(invalid)?.verifier()),
        Err(_) => NoteVerifier::parse(&std::fs::read_to_string(data_dir.join(PUBLIC_KEY_FILE))?).map_err(invalid),
    }
}

/// What every tree of a process shares.
#[derive(Debug)]
pub struct Integrity {
    /// The node's id (the first part of each origin).
    pub node_id: String,
    /// Signs checkpoints.
    pub signer: NoteSigner,
    /// The data directory (live files under it are recorded relative to it,
    /// so that a copy of the directory verifies anywhere).
    pub data_dir: PathBuf,
    /// `run/audit/integrity`.
    pub dir: PathBuf,
    /// Checkpoint interval.
    pub interval: Duration,
    /// Held while this process owns the trees: two writers would fork a tree.
    _lock: File,
    /// The integrity thread's queue: syncing, proving and signing happen
    /// there, so that the writer thread only takes a snapshot.
    jobs: Mutex<mpsc::Sender<Job>>,
    /// When each origin's last checkpoint was signed (epoch ms).
    signed: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// A checkpoint to finish on the integrity thread.
struct Job {
    pending: tree::Pending,
    /// Where to report it (none: only written, sent at the next start).
    report: Option<Events>,
    /// Answered once it is done.
    done: Option<mpsc::Sender<()>>,
}

fn run_jobs(signer: &NoteSigner, jobs: &mpsc::Receiver<Job>, signed: &Mutex<BTreeMap<String, u64>>) {
    while let Ok(job) = jobs.recv() {
        let origin = job.pending.origin().to_owned();
        match job.pending.finish(signer) {
            Ok(report) => {
                let now = crate::delivery::now_ms();
                signed.lock().unwrap_or_else(PoisonError::into_inner).insert(origin.clone(), now);
                if let Some(events) = &job.report {
                    events.report(&origin, Event::Checkpoint(Box::new(report)));
                }
            }
            Err(e) => log::error!("Audit integrity of {origin}: the checkpoint could not be signed and kept: {e}"),
        }
        if let Some(done) = job.done {
            let _ = done.send(());
        }
    }
}

impl Integrity {
    /// The context for `data_dir`, waiting for the state folder's lock.
    ///
    /// # Errors
    /// When the key or the folder cannot be read or created.
    pub fn open(data_dir: &Path, node_id: &str, settings: &Settings) -> io::Result<Arc<Integrity>> {
        let signer = signing_key(data_dir, node_id)?;
        let dir = data_dir.join(STATE_DIR);
        std::fs::DirBuilder::new().recursive(true).create(&dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).mode(0o640).open(dir.join(".lock"))?;
        lock.lock()?;
        let (tx, rx) = mpsc::channel();
        let for_thread = signer.clone();
        let signed: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let signed_by_thread = signed.clone();
        std::thread::Builder::new()
            .name("audit-integrity".into())
            .spawn(move || run_jobs(&for_thread, &rx, &signed_by_thread))?;
        Ok(Arc::new(Integrity {
            node_id: node_id.to_owned(),
            signer,
            data_dir: data_dir.to_path_buf(),
            dir,
            interval: settings.interval,
            _lock: lock,
            jobs: Mutex::new(tx),
            signed,
        }))
    }

    /// Starts the clock of `origin`'s checkpoint age when its tree opens
    /// (until its first checkpoint, the age counts from then).
    pub fn opened(&self, origin: &str) {
        let now = crate::delivery::now_ms();
        self.signed.lock().unwrap_or_else(PoisonError::into_inner).entry(origin.to_owned()).or_insert(now);
    }

    /// Seconds since each origin's last checkpoint was signed (or since its
    /// tree opened in this process, before its first one).
    pub fn checkpoint_ages(&self) -> BTreeMap<String, f64> {
        let now = crate::delivery::now_ms();
        let signed = self.signed.lock().unwrap_or_else(PoisonError::into_inner);
        signed.iter().map(|(o, at)| (o.clone(), now.saturating_sub(*at) as f64 / 1000.0)).collect()
    }

    /// Finishes `pending` on the integrity thread, reporting it on `report`
    /// when given; with `wait`, returns once it is done (at most 10 s).
    pub fn submit(&self, pending: tree::Pending, report: Option<Events>, wait: bool) {
        let (tx, rx) = mpsc::channel();
        let job = Job { pending, report, done: wait.then_some(tx) };
        if self.jobs.lock().unwrap_or_else(PoisonError::into_inner).send(job).is_ok() && wait {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}
