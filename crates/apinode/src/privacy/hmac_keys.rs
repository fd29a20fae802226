//! The keys of HMAC'd audit fields (docs/privacy.md): `config/audit-hmac-keys.json`
//! (0600) holds every key with its id and which one is current. A token
//! names its key (`hmac-sha256:<keyId>:<hex of the first 128 bits>`), so rotation adds a key and
//! makes it current while older tokens can still be looked up. The file is
//! changed under the same lock as the other key files; the node re-reads
//! it when another process (`apinode-admin` with the node stopped) changed
//! it. Never logs or returns a secret.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::hasher::{FileLock, lock_path, write_private};

/// The file, relative to the data directory.
pub const FILE: &str = "config/audit-hmac-keys.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    current: String,
    keys: Vec<KeyEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    id: String,
    /// Hex of 32 random bytes.
    secret: String,
    created_on: u64,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The file as read, with every key's HMAC state prepared once (a token
/// then costs one clone of that state and two SHA-256 blocks).
struct Loaded {
    file: KeyFile,
    seen: Option<SystemTime>,
    macs: Vec<Hmac<Sha256>>,
    current: usize,
}

impl Loaded {
    fn new(file: KeyFile, seen: Option<SystemTime>) -> Loaded {
        let macs = file.keys.iter().map(mac_of).collect();
        let current = file.keys.iter().position(|k| k.id == file.current).unwrap_or_default();
        Loaded { file, seen, macs, current }
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("file", &self.file).finish_non_exhaustive()
    }
}

/// The keys, shared by every request.
#[derive(Debug, Clone)]
pub struct HmacKeys {
    path: PathBuf,
    state: Arc<RwLock<Loaded>>,
}

fn new_key(n: usize) -> KeyEntry {
    let secret: [u8; 32] = rand::random();
    let created_on = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    KeyEntry { id: format!("k{n}"), secret: hex::encode(secret), created_on }
}

fn read(path: &Path) -> std::io::Result<KeyFile> {
    let bytes = std::fs::read(path)?;
    let file: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    if !file.keys.iter().any(|k| k.id == file.current) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: the current key {:?} is not among its keys", path.display(), file.current),
        ));
    }
    Ok(file)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl HmacKeys {
    /// The keys of `data_dir`, with a first key created when there is none.
    ///
    /// # Errors
    /// When the file cannot be read, parsed or created.
    pub fn open(data_dir: &Path) -> std::io::Result<HmacKeys> {
        let path = data_dir.join(FILE);
        let file = {
            let _lock = FileLock::exclusive(&lock_path(&path))?;
            match read(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = new_key(1);
                    let f = KeyFile { current: key.id.clone(), keys: vec![key] };
                    write_private(&path, &serde_json::to_vec_pretty(&f).map_err(std::io::Error::other)?)?;
                    f
                }
                Err(e) => return Err(e),
            }
        };
        let seen = modified(&path);
        Ok(HmacKeys { path, state: Arc::new(RwLock::new(Loaded::new(file, seen))) })
    }

    /// Re-reads the file when another process changed it.
    fn fresh(&self) {
        let now = modified(&self.path);
        let stale = self.state.read().map(|s| s.seen != now).unwrap_or(false);
        if stale
            && let Ok(file) = read(&self.path)
            && let Ok(mut s) = self.state.write()
        {
            *s = Loaded::new(file, now);
        }
    }

    /// The current key's id.
    pub fn current_id(&self) -> String {
        self.fresh();
        self.state.read().map(|s| s.file.current.clone()).unwrap_or_default()
    }

    /// The token of `value` under the current key.
    pub fn token(&self, value: &Value) -> String {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        token_with(&state.file.keys[state.current].id, &state.macs[state.current], value)
    }

    /// The tokens of `value` under every key, newest first (a look-up
    /// finds records made before and after a rotation).
    pub fn tokens(&self, value: &Value) -> Vec<String> {
        self.fresh();
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.file.keys.iter().zip(&state.macs).rev().map(|(k, m)| token_with(&k.id, m, value)).collect()
    }

    /// The keys' ids and creation times (never their secrets), and the current id.
    pub fn list(&self) -> Value {
        self.fresh();
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keys: Vec<Value> =
            state.file.keys.iter().map(|k| serde_json::json!({"id": k.id, "createdOn": k.created_on})).collect();
        serde_json::json!({"current": state.file.current, "keys": keys})
    }

    /// A new key, not yet stored: its id goes into the admin record before
    /// [`HmacKeys::commit`] makes it current.
    pub fn prepare(&self) -> NewKey {
        self.fresh();
        let n = self.state.read().map(|s| s.file.keys.len()).unwrap_or_default();
        NewKey(new_key(n + 1))
    }

    /// Stores a prepared key and makes it current.
    ///
    /// # Errors
    /// When the file cannot be changed, or another process added a key of
    /// the same id meanwhile (nothing is changed then).
    pub fn commit(&self, key: NewKey) -> std::io::Result<()> {
        let _lock = FileLock::exclusive(&lock_path(&self.path))?;
        let mut file = read(&self.path)?;
        if file.keys.iter().any(|k| k.id == key.0.id) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("another process added HMAC key {} meanwhile; retry", key.0.id),
            ));
        }
        file.current = key.0.id.clone();
        file.keys.push(key.0);
        write_private(&self.path, &serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?)?;
        if let Ok(mut s) = self.state.write() {
            *s = Loaded::new(file, modified(&self.path));
        }
        Ok(())
    }
}

/// A key made by [`HmacKeys::prepare`], not yet stored.
#[derive(Debug)]
pub struct NewKey(KeyEntry);

impl NewKey {
    /// The key's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

fn mac_of(key: &KeyEntry) -> Hmac<Sha256> {
    let secret = hex::decode(&key.secret).unwrap_or_default();
    <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes any key length")
}

fn token_with(id: &str, mac: &Hmac<Sha256>, value: &Value) -> String {
    let mut mac = mac.clone();
    match value {
        Value::String(s) => mac.update(s.as_bytes()),
        other => mac.update(other.to_string().as_bytes()),
    }
    // The first 128 bits (RFC 2104 truncation, at half the output): a
    // token is in every protected field of every record, and under WRITTEN
    // the writer thread's bytes are the node's bottleneck; 2^64 values
    // before a likely collision is ample for joins and look-ups.
    let full = mac.finalize().into_bytes();
    let mut digits = [0u8; 32];
    hex::encode_to_slice(&full[..16], &mut digits).expect("16 bytes are 32 hex digits");
    // One allocation, made to size: a token is made per protected field of every record.
    let mut token = String::with_capacity("hmac-sha256::".len() + id.len() + digits.len());
    token.push_str("hmac-sha256:");
    token.push_str(id);
    token.push(':');
    token.extend(digits.iter().map(|&d| char::from(d)));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_stable_name_their_key_and_survive_rotation() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = HmacKeys::open(dir.path()).expect("keys");
        let before = keys.token(&json!("123-45-6789"));
        assert!(before.starts_with("hmac-sha256:k1:"), "{before}");
        assert_eq!(before, keys.token(&json!("123-45-6789")));
        assert_ne!(before, keys.token(&json!("123-45-6780")));
        let next = keys.prepare();
        assert_eq!(next.id(), "k2");
        keys.commit(next).expect("rotate");
        let after = keys.token(&json!("123-45-6789"));
        assert!(after.starts_with("hmac-sha256:k2:"));
        let all = keys.tokens(&json!("123-45-6789"));
        assert!(all.contains(&before) && all.contains(&after));
        let again = HmacKeys::open(dir.path()).expect("reopen");
        assert_eq!(again.token(&json!("123-45-6789")), after, "the file keeps the keys");
        let file: Value = serde_json::from_slice(&std::fs::read(dir.path().join(FILE)).expect("file")).expect("json");
        let secret = file["keys"][0]["secret"].as_str().expect("secret");
        assert!(!format!("{keys:?}").contains(secret), "Debug never shows a secret");
    }
}
