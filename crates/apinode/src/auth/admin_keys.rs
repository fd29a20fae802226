//! Admin API keys: `config/admin-keys.json` (mode 0600) holds each key's
//! id, label, description, creator, dates and the peppered hash of its
//! secret (`auth::hasher`), never the secret itself. Keys can be created
//! with the node stopped (the CLI opens the same file). Every change, by the
//! node or any `apinode-admin` process, re-reads the file and writes it back
//! under an exclusive lock (`config/admin-keys.json.lock`), so concurrent
//! creates and deletes never lose a key; and every check first looks whether
//! the file changed, so a key deleted by another process never
//! authenticates again and a key it created is valid at once. A key stored
//! with an earlier version's plain SHA-256 is still accepted, and its hash
//! is rewritten peppered the first time it authenticates. The node also
//! writes a local secret (`run/admin-local.secret`, mode 0600) at start, so
//! that `apinode-admin` on the same machine needs no key, as in Dataiku.
//! Comparisons are constant-time. No HTTP here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Principal;
use super::hasher::{FileLock, KeyHasher, Presented, StoredHash, lock_path, write_private};

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
    /// HMAC-SHA256 of the secret with the node's pepper (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<String>,
    /// Plain SHA-256 of the secret, from earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl AdminKey {
    fn hash(&self) -> Option<StoredHash> {
        StoredHash::parse(self.hmac_sha256.as_deref(), self.sha256.as_deref()).ok()
    }
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
    hasher: KeyHasher,
    local: Option<[u8; 32]>,
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A fresh random secret: 32 letters and digits.
pub fn new_secret() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

impl AdminKeyStore {
    /// Opens the store of `data_dir` (an absent file is an empty store),
    /// with the node's pepper (created if there is none).
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file exists but cannot be read or parsed,
    /// or the pepper cannot be read.
    pub fn open(data_dir: &Path) -> Result<AdminKeyStore, KeyStoreError> {
        let path = data_dir.join(KEYS_FILE);
        let hasher = KeyHasher::open_or_create(data_dir).map_err(|source| KeyStoreError::Io {
            path: data_dir.join(super::hasher::PEPPER_FILE).display().to_string(),
            source,
        })?;
        let (keys, modified) = read(&path)?;
        Ok(AdminKeyStore { path, hasher, local: None, state: Mutex::new(State { keys, modified }) })
    }

    /// The pepper's hasher (user keys use it too).
    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Writes a new local secret under `data_dir` (mode 0600) and accepts it
    /// from now on.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] when it cannot be written.
    pub fn write_local_secret(&mut self, data_dir: &Path) -> Result<(), KeyStoreError> {
        let secret = new_secret();
        let path = data_dir.join(LOCAL_SECRET_FILE);
        write_private(&path, secret.as_bytes())
            .map_err(|source| KeyStoreError::Io { path: path.display().to_string(), source })?;
        self.local = Some(self.hasher.hmac(&secret));
        Ok(())
    }

    /// Checks a presented secret against every key, in constant time per key.
    pub fn verify(&self, secret: &str) -> Verdict {
        if self.local.as_ref().is_some_and(|local| bool::from(local.ct_eq(&self.hasher.hmac(secret)))) {
            return Verdict::Valid(Principal {
                key_id: LOCAL_KEY_ID.into(),
                label: Some("local apinode-admin".into()),
            });
        }
        let presented = Presented::new(secret, &self.hasher);
        let found = {
            let mut state = self.lock();
            // Another process may have changed the file: a deleted key must
            // never authenticate again, a created one at once.
            let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
            if modified != state.modified {
                match read(&self.path) {
                    Ok((keys, modified)) => *state = State { keys, modified },
                    Err(e) => {
                        log::error!("Admin keys: {e}; no key is valid until the file is fixed");
                        return Verdict::Unknown;
                    }
                }
            }
            find(&state.keys, &presented)
        };
        let Some(key) = found else { return Verdict::Unknown };
        if key.expiry.is_some_and(|e| e <= now_ms()) {
            return Verdict::Expired(key.id);
        }
        if key.hmac_sha256.is_none() {
            self.upgrade(&key.id, secret);
        }
        Verdict::Valid(Principal { key_id: key.id, label: key.label })
    }

    /// Rewrites a legacy (plain SHA-256) hash peppered, now that the secret is known.
    fn upgrade(&self, id: &str, secret: &str) {
        let hmac = hex::encode(self.hasher.hmac(secret));
        let done = self.update(|keys| {
            if let Some(k) = keys.iter_mut().find(|k| k.id == id) {
                k.hmac_sha256 = Some(hmac);
                k.sha256 = None;
            }
        });
        if let Err(e) = done {
            log::warn!("Admin key {id}: its hash could not be rewritten peppered: {e}");
        }
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
            hmac_sha256: Some(hex::encode(self.hasher.hmac(&secret))),
            sha256: None,
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

    /// Deletes the key with this id; returns it when there was one.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the file cannot be read or written.
    pub fn delete_by_id(&self, id: &str) -> Result<Option<AdminKey>, KeyStoreError> {
        let mut removed = None;
        self.update(|keys| {
            if let Some(i) = keys.iter().position(|k| k.id == id) {
                removed = Some(keys.remove(i));
            }
        })?;
        Ok(removed)
    }

    /// The key with this secret, if any.
    pub fn find_by_secret(&self, secret: &str) -> Option<AdminKey> {
        let presented = Presented::new(secret, &self.hasher);
        find(&self.list(), &presented)
    }

    /// Under the file's exclusive lock: re-reads the file, applies
    /// `change`, writes it back atomically.
    fn update(&self, change: impl FnOnce(&mut Vec<AdminKey>)) -> Result<(), KeyStoreError> {
        let io = |source| KeyStoreError::Io { path: self.path.display().to_string(), source };
        let _file_lock = FileLock::exclusive(&lock_path(&self.path)).map_err(io)?;
        let mut state = self.lock();
        let (mut keys, _) = read(&self.path)?;
        change(&mut keys);
        let text = serde_json::to_string_pretty(&KeysFile { keys: keys.clone() }).expect("keys serialise");
        write_private(&self.path, text.as_bytes()).map_err(io)?;
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        *state = State { keys, modified };
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The key whose hash matches, comparing with every key (no early stop).
fn find(keys: &[AdminKey], presented: &Presented<'_>) -> Option<AdminKey> {
    let mut found = None;
    for k in keys {
        if k.hash().is_some_and(|h| h.matches(presented)) {
            found = Some(k);
        }
    }
    found.cloned()
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
        assert!(text.contains(key.hmac_sha256.as_deref().expect("peppered")));
        assert!(!text.contains("\"sha256\""), "new keys are stored peppered only");
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
    fn a_legacy_hash_still_works_and_is_rewritten_peppered() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let legacy = format!(
            r#"{{"keys": [{{"id": "old1", "createdOn": 1, "sha256": "{}"}}]}}"#,
            hex::encode(sha2::Sha256::digest(b"legacy-secret"))
        );
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        std::fs::write(dir.path().join(KEYS_FILE), legacy).expect("write");
        let store = AdminKeyStore::open(dir.path()).expect("open");
        assert!(matches!(store.verify("legacy-secret"), Verdict::Valid(_)));
        let text = std::fs::read_to_string(dir.path().join(KEYS_FILE)).expect("file");
        assert!(text.contains("hmacSha256") && !text.contains("\"sha256\""), "{text}");
        assert!(matches!(store.verify("legacy-secret"), Verdict::Valid(_)), "and works after");
    }

    #[test]
    fn a_key_deleted_by_another_process_never_authenticates_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = AdminKeyStore::open(dir.path()).expect("open");
        let (key, secret) = node.create(None, None, None, None).expect("create");
        assert!(matches!(node.verify(&secret), Verdict::Valid(_)));
        let cli = AdminKeyStore::open(dir.path()).expect("open");
        cli.delete_by_id(&key.id).expect("delete");
        assert_eq!(node.verify(&secret), Verdict::Unknown);
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
