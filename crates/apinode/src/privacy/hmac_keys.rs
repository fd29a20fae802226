//! The keys of HMAC'd audit fields (docs/privacy.md): `config/audit-hmac-keys.json`
//! (0600) holds every key with its id and which one is current. A token
//! names its key (`hmac-sha256:<keyId>:<hex>`), so rotation adds a key and
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

/// The keys, shared by every request.
#[derive(Debug, Clone)]
pub struct HmacKeys {
    path: PathBuf,
    state: Arc<RwLock<(KeyFile, Option<SystemTime>)>>,
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
        Ok(HmacKeys { path, state: Arc::new(RwLock::new((file, seen))) })
    }

    /// Re-reads the file when another process changed it.
    fn fresh(&self) {
        let now = modified(&self.path);
        let stale = self.state.read().map(|s| s.1 != now).unwrap_or(false);
        if stale && let Ok(file) = read(&self.path) {
            if let Ok(mut s) = self.state.write() {
                *s = (file, now);
            }
        }
    }

    /// The current key's id.
    pub fn current_id(&self) -> String {
        self.fresh();
        self.state.read().map(|s| s.0.current.clone()).unwrap_or_default()
    }

    /// The token of `value` under the current key.
    pub fn token(&self, value: &Value) -> String {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = &state.0;
        let key = file.keys.iter().find(|k| k.id == file.current).expect("the current key exists (checked at read)");
        token_with(key, value)
    }

    /// The tokens of `value` under every key, newest first (a look-up
    /// finds records made before and after a rotation).
    pub fn tokens(&self, value: &Value) -> Vec<String> {
        self.fresh();
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0.keys.iter().rev().map(|k| token_with(k, value)).collect()
    }

    /// Adds a key and makes it current; returns its id.
    ///
    /// # Errors
    /// When the file cannot be changed.
    pub fn rotate(&self) -> std::io::Result<String> {
        let _lock = FileLock::exclusive(&lock_path(&self.path))?;
        let mut file = read(&self.path)?;
        let key = new_key(file.keys.len() + 1);
        let id = key.id.clone();
        file.current = id.clone();
        file.keys.push(key);
        write_private(&self.path, &serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?)?;
        if let Ok(mut s) = self.state.write() {
            *s = (file, modified(&self.path));
        }
        Ok(id)
    }
}

/// The bytes a value is hashed as: a string's text, else its JSON.
fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn token_with(key: &KeyEntry, value: &Value) -> String {
    let secret = hex::decode(&key.secret).unwrap_or_default();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(&bytes_of(value));
    format!("hmac-sha256:{}:{}", key.id, hex::encode(mac.finalize().into_bytes()))
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
        assert_eq!(keys.rotate().expect("rotate"), "k2");
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
