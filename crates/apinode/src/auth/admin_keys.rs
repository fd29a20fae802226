//! Admin API keys: `config/admin-keys.json` holds each key's id, label,
//! description, creator, dates and the SHA-256 of its secret, never the
//! secret itself. Keys can be created with the node stopped (the CLI opens
//! the same file), and a key created by another process is valid at once:
//! a secret that matches nothing makes the store re-read the file if it
//! changed. The node also writes a local secret (`run/admin-local.secret`,
//! mode 0600) at start, so that `apinode-admin` on the same machine needs no
//! key, as in Dataiku. Comparisons are constant-time. No HTTP here.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Principal;

/// Where the keys are, relative to the data directory.
pub const KEYS_FILE: &str = "config/admin-keys.json";
/// The local secret, relative to the data directory.
pub const LOCAL_SECRET_FILE: &str = "run/admin-local.secret";
/// The id under which the local secret authenticates.
pub const LOCAL_KEY_ID: &str = "local";

/// One stored admin key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminKey {
    /// Public id (safe to log; used by `DELETE /keys/{id}/key`).
    pub id: String,
    /// Human label.
    #[serde(default)]
    pub label: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Who created it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created_on: u64,
    /// Expiry, epoch milliseconds (none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
    /// Lowercase hex SHA-256 of the secret.
    pub sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<AdminKey>,
}

/// Problems of the key store.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: not a valid keys file: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid key (its id is `local` for the local secret).
    Valid(Principal),
    /// A known key past its expiry.
    Expired(String),
    /// No key has this secret.
    Unknown,
}

#[derive(Debug)]
struct State {
    keys: Vec<AdminKey>,
    modified: Option<SystemTime>,
}

/// The admin keys of one data directory.
#[derive(Debug)]
pub struct AdminKeyStore {
    path: PathBuf,
    local: Option<[u8; 32]>,
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh random secret: 32 letters and digits.
pub fn new_secret() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

impl AdminKeyStore {
    /// Opens the store of `data_dir` (an absent file is an empty store).
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file exists but cannot be read or parsed.
    pub fn open(data_dir: &Path) -> Result<AdminKeyStore, KeyStoreError> {
        let path = data_dir.join(KEYS_FILE);
        let (keys, modified) = read(&path)?;
        Ok(AdminKeyStore { path, local: None, state: Mutex::new(State { keys, modified }) })
    }

    /// Writes a new local secret under `data_dir` (mode 0600) and accepts it
    /// from now on.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] when it cannot be written.
    pub fn write_local_secret(&mut self, data_dir: &Path) -> Result<(), KeyStoreError> {
        let secret = new_secret();
        let path = data_dir.join(LOCAL_SECRET_FILE);
        write_private(&path, secret.as_bytes())?;
        self.local = Some(digest(&secret));
        Ok(())
    }

    /// Checks a presented secret against every key, in constant time per key.
    pub fn verify(&self, secret: &str) -> Verdict {
        let presented = digest(secret);
        if self.local.as_ref().is_some_and(|local| bool::from(local.ct_eq(&presented))) {
            return Verdict::Valid(Principal {
                key_id: LOCAL_KEY_ID.into(),
                label: Some("local apinode-admin".into()),
            });
        }
        let mut state = self.lock();
        if let Some(v) = find(&state.keys, &presented) {
            return v;
        }
        // Perhaps created by another process since we last read the file.
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified.is_some()
            && modified != state.modified
            && let Ok((keys, modified)) = read(&self.path)
        {
            *state = State { keys, modified };
            return find(&state.keys, &presented).unwrap_or(Verdict::Unknown);
        }
        Verdict::Unknown
    }

    /// Every key (with hashes; callers strip them before showing).
    pub fn list(&self) -> Vec<AdminKey> {
        let mut state = self.lock();
        if let Ok((keys, modified)) = read(&self.path) {
            *state = State { keys, modified };
        }
        state.keys.clone()
    }

    /// A new key and its secret, not stored yet (so that the change can be
    /// recorded before it takes effect).
    pub fn prepare(
        &self,
        label: Option<String>,
        description: Option<String>,
        created_by: Option<String>,
        expiry: Option<u64>,
    ) -> (AdminKey, String) {
        let secret = new_secret();
        let key = AdminKey {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            label,
            description,
            created_by,
            created_on: now_ms(),
            expiry,
            sha256: hex::encode(digest(&secret)),
        };
        (key, secret)
    }

    /// Stores a prepared key.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file cannot be read or written.
    pub fn insert(&self, key: AdminKey) -> Result<(), KeyStoreError> {
        self.update(|keys| keys.push(key))
    }

    /// Creates and stores a key; returns it with its secret (shown once).
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file cannot be read or written.
    pub fn create(
        &self,
        label: Option<String>,
        description: Option<String>,
        created_by: Option<String>,
        expiry: Option<u64>,
    ) -> Result<(AdminKey, String), KeyStoreError> {
        let (key, secret) = self.prepare(label, description, created_by, expiry);
        self.insert(key.clone())?;
        Ok((key, secret))
    }

    /// Deletes the key with this secret; returns it when there was one.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file cannot be read or written.
    pub fn delete_by_secret(&self, secret: &str) -> Result<Option<AdminKey>, KeyStoreError> {
        let hash = hex::encode(digest(secret));
        self.delete_where(|k| bool::from(k.sha256.as_bytes().ct_eq(hash.as_bytes())))
    }

    /// Deletes the key with this id; returns it when there was one.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file cannot be read or written.
    pub fn delete_by_id(&self, id: &str) -> Result<Option<AdminKey>, KeyStoreError> {
        self.delete_where(|k| k.id == id)
    }

    /// The key that `delete_by_secret` would delete (for audit before acting).
    pub fn find_by_secret(&self, secret: &str) -> Option<AdminKey> {
        let hash = hex::encode(digest(secret));
        self.list().into_iter().find(|k| bool::from(k.sha256.as_bytes().ct_eq(hash.as_bytes())))
    }

    fn delete_where(&self, matches: impl Fn(&AdminKey) -> bool) -> Result<Option<AdminKey>, KeyStoreError> {
        let mut removed = None;
        self.update(|keys| {
            if let Some(i) = keys.iter().position(&matches) {
                removed = Some(keys.remove(i));
            }
        })?;
        Ok(removed)
    }

    /// Re-reads the file, applies `change`, writes it back atomically.
    fn update(&self, change: impl FnOnce(&mut Vec<AdminKey>)) -> Result<(), KeyStoreError> {
        let mut state = self.lock();
        let (mut keys, _) = read(&self.path)?;
        change(&mut keys);
        let text = serde_json::to_string_pretty(&KeysFile { keys: keys.clone() }).expect("keys serialise");
        write_private(&self.path, text.as_bytes())?;
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        *state = State { keys, modified };
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn find(keys: &[AdminKey], presented: &[u8; 32]) -> Option<Verdict> {
    let presented = hex::encode(presented);
    let mut found = None;
    for k in keys {
        if bool::from(k.sha256.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(k);
        }
    }
    found.map(|k| match k.expiry {
        Some(e) if e <= now_ms() => Verdict::Expired(k.id.clone()),
        _ => Verdict::Valid(Principal { key_id: k.id.clone(), label: k.label.clone() }),
    })
}

fn read(path: &Path) -> Result<(Vec<AdminKey>, Option<SystemTime>), KeyStoreError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(source) => return Err(KeyStoreError::Io { path: shown, source }),
    };
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let file: KeysFile =
        serde_json::from_str(&text).map_err(|e| KeyStoreError::Invalid { path: shown, message: e.to_string() })?;
    Ok((file.keys, modified))
}

/// Writes a file readable by its owner only, atomically (temp file, fsync, rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyStoreError::Io { path: path.display().to_string(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f =
        std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stored_hashed_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = AdminKeyStore::open(dir.path()).expect("open");
        let (key, secret) = store.create(Some("ops".into()), None, Some("alice".into()), None).expect("create");
        let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).expect("file");
        assert!(!text.contains(&secret), "the secret is never stored");
        assert!(text.contains(&key.sha256));
        assert_eq!(
            store.verify(&secret),
            Verdict::Valid(Principal { key_id: key.id.clone(), label: Some("ops".into()) })
        );
        assert_eq!(store.verify("nope"), Verdict::Unknown);
        assert_eq!(store.delete_by_id(&key.id).expect("delete").map(|k| k.id), Some(key.id));
        assert_eq!(store.verify(&secret), Verdict::Unknown);
    }

    #[test]
    fn a_key_written_by_another_process_is_valid_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = AdminKeyStore::open(dir.path()).expect("open");
        assert_eq!(running.verify("x"), Verdict::Unknown);
        let offline = AdminKeyStore::open(dir.path()).expect("open");
        let (_, secret) = offline.create(None, None, None, None).expect("create");
        assert!(matches!(running.verify(&secret), Verdict::Valid(_)));
    }

    #[test]
    fn expired_keys_and_the_local_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = AdminKeyStore::open(dir.path()).expect("open");
        let (key, secret) = store.create(None, None, None, Some(1)).expect("create");
        assert_eq!(store.verify(&secret), Verdict::Expired(key.id));
        store.write_local_secret(dir.path()).expect("local secret");
        let path = dir.path().join(LOCAL_SECRET_FILE);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let local = std::fs::read_to_string(path).expect("read");
        assert!(matches!(store.verify(&local), Verdict::Valid(Principal { ref key_id, .. }) if key_id == LOCAL_KEY_ID));
    }
}
