//! How key secrets are stored (docs/security.md "Secrets"): as
//! HMAC-SHA256 with a per-node secret pepper (`config/key-pepper`, 32 random
//! bytes in hex, mode 0600, created at first use under a file lock so that
//! the node and `apinode-admin` never make two), so that a leaked key file
//! cannot be brute-forced offline without it. Hashes written by earlier
//! versions (plain SHA-256) are still accepted. Every comparison is
//! constant-time. Also the exclusive file lock every key file is changed
//! under ([`FileLock`]). Never logs or returns a secret or the pepper.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The pepper, relative to the data directory.
pub const PEPPER_FILE: &str = "config/key-pepper";

/// Hashes secrets with the node's pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pepper is a secret: never printed.
        f.write_str("KeyHasher(***)")
    }
}

/// An exclusive lock on a lock file, released when dropped (`flock`): the
/// node and every `apinode-admin` process change key files under it.
#[derive(Debug)]
pub struct FileLock(File);

impl FileLock {
    /// Waits for the exclusive lock on `path` (created, mode 0600).
    ///
    /// # Errors
    /// When the lock file cannot be opened or locked.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let f = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
        f.lock()?;
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The lock file of a key file.
pub fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Writes a file readable by its owner only, atomically (temporary file,
/// fsync, rename).
///
/// # Errors
/// The I/O error.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes).and_then(|()| f.sync_all())?;
    std::fs::rename(&tmp, path)
}

impl KeyHasher {
    /// The pepper of `data_dir`, created if there is none.
    ///
    /// # Errors
    /// When it cannot be read or created, or is not 64 hex digits.
    pub fn open_or_create(data_dir: &Path) -> io::Result<KeyHasher> {
        let path = data_dir.join(PEPPER_FILE);
        let _lock = FileLock::exclusive(&lock_path(&path))?;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut pepper = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut pepper).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: not 64 hex digits", path.display()))
                })?;
                Ok(KeyHasher { pepper })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut pepper = [0u8; 32];
                rand::rng().fill_bytes(&mut pepper);
                write_private(&path, hex::encode(pepper).as_bytes())?;
                Ok(KeyHasher { pepper })
            }
            Err(e) => Err(e),
        }
    }

    /// A hasher with a fixed pepper (tests).
    pub fn fixed(pepper: [u8; 32]) -> KeyHasher {
        KeyHasher { pepper }
    }

    /// HMAC-SHA256 of `secret` with the pepper.
    pub fn hmac(&self, secret: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.pepper).expect("HMAC takes a key of any size");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A stored hash of a key's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// HMAC-SHA256 with the node's pepper (`hmacSha256`).
    Hmac([u8; 32]),
    /// Plain SHA-256, from earlier versions (`sha256`).
    Sha256([u8; 32]),
}

impl StoredHash {
    /// Reads the hash of a key file entry: `hmacSha256` wins over `sha256`.
    ///
    /// # Errors
    /// When neither is 64 hex digits.
    pub fn parse(hmac_sha256: Option<&str>, sha256: Option<&str>) -> Result<StoredHash, String> {
        let mut d = [0u8; 32];
        match (hmac_sha256, sha256) {
            (Some(h), _) => hex::decode_to_slice(h, &mut d)
                .map(|()| StoredHash::Hmac(d))
                .map_err(|_| "hmacSha256: must be 64 hex digits".to_owned()),
            (None, Some(h)) => hex::decode_to_slice(h, &mut d)
                .map(|()| StoredHash::Sha256(d))
                .map_err(|_| "sha256: must be 64 hex digits".to_owned()),
            (None, None) => Err("hmacSha256: missing (the key's hash)".to_owned()),
        }
    }

    /// Whether `presented` is the secret, in constant time.
    pub fn matches(&self, presented: &Presented<'_>) -> bool {
        match self {
            StoredHash::Hmac(d) => bool::from(d.ct_eq(presented.hmac())),
            StoredHash::Sha256(d) => bool::from(d.ct_eq(presented.sha256())),
        }
    }
}

/// A presented secret, its hashes computed at most once each.
#[derive(Debug)]
pub struct Presented<'a> {
    secret: &'a str,
    hasher: &'a KeyHasher,
    hmac: OnceLock<[u8; 32]>,
    sha256: OnceLock<[u8; 32]>,
}

impl<'a> Presented<'a> {
    /// `secret` as presented by a caller.
    pub fn new(secret: &'a str, hasher: &'a KeyHasher) -> Presented<'a> {
        Presented { secret, hasher, hmac: OnceLock::new(), sha256: OnceLock::new() }
    }

    fn hmac(&self) -> &[u8; 32] {
        self.hmac.get_or_init(|| self.hasher.hmac(self.secret))
    }

    fn sha256(&self) -> &[u8; 32] {
        self.sha256.get_or_init(|| Sha256::digest(self.secret.as_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pepper_is_made_once_private_and_keyed_hashes_need_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = KeyHasher::open_or_create(dir.path()).expect("create");
        let b = KeyHasher::open_or_create(dir.path()).expect("read");
        assert_eq!(a.hmac("s3cret"), b.hmac("s3cret"), "the same pepper is read back");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(PEPPER_FILE)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{a:?}").contains(&hex::encode(a.pepper)));
        let other = KeyHasher::fixed([7; 32]);
        assert_ne!(a.hmac("s3cret"), other.hmac("s3cret"), "another pepper, another hash");
        let stored = StoredHash::Hmac(a.hmac("s3cret"));
        assert!(stored.matches(&Presented::new("s3cret", &a)));
        assert!(!stored.matches(&Presented::new("s3cret", &other)));
        let legacy = StoredHash::parse(None, Some(&hex::encode(Sha256::digest(b"old")))).expect("legacy");
        assert!(legacy.matches(&Presented::new("old", &a)), "plain SHA-256 hashes still work");
        assert!(StoredHash::parse(None, None).is_err());
    }
}
