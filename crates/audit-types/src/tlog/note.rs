//! Signed checkpoints in the C2SP formats (docs/integrity.md "Tamper
//! evidence"): the `tlog-checkpoint` body (`<origin>\n<size>\n<base64
//! root>\n`), the `signed-note` envelope (body, blank line, `— <name>
//! <base64(key ID || signature)>` lines) with Ed25519, key IDs
//! (`SHA-256(name || 0x0A || 0x01 || public key)[..4]`), verifier keys
//! (`<name>+<hex key ID>+<base64(0x01 || public key)>`) and signer keys in
//! the same `PRIVATE+KEY+...` form as Go's `golang.org/x/mod/sumdb/note`.
//!
//! Signing and verifying use `ed25519-dalek`; the text formats are a few
//! lines of parsing each and are written here. Owns no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::merkle::Hash;

/// The Ed25519 algorithm byte of C2SP keys.
const ED25519: u8 = 0x01;
/// The dash that starts a signature line (U+2014).
const DASH: &str = "\u{2014} ";

/// Why a note, checkpoint or key could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a note, or a malformed one.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// Not a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// A malformed key.
    #[error("malformed key: {0}")]
    Key(String),
    /// No signature by the key.
    #[error("the note has no signature by {0}")]
    NotSigned(String),
    /// A signature by the key that does not verify.
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// A key name: not empty, no spaces, no `+` (C2SP signed-note).
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A tree head: `origin`, size and root (C2SP `tlog-checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `<nodeId>/<APPENDER>`.
    pub origin: String,
    /// Leaves.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: three lines, each ending with a newline.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Reads a body (extension lines after the third are allowed and ignored).
    ///
    /// # Errors
    /// A malformed body.
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let bad = |m: &str| NoteError::Checkpoint(m.to_owned());
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no size line"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the size is not a decimal number"));
        }
        let size = size.parse().map_err(|_| bad("the size is too large"))?;
        let root = lines.next().ok_or_else(|| bad("no root line"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not a base64 SHA-256 hash"))?;
        if !body.ends_with('\n') {
            return Err(bad("the body does not end with a newline"));
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root })
    }
}

/// A signed note split into its body and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The text that was signed (ends with a newline).
    pub body: String,
    /// `(key name, key ID, signature bytes)` of each signature line.
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

impl SignedNote {
    /// Splits a note at its last blank line.
    ///
    /// # Errors
    /// When it is not a note.
    pub fn parse(text: &str) -> Result<SignedNote, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_owned());
        if !text.ends_with('\n') {
            return Err(bad("does not end with a newline"));
        }
        let split = text.rfind("\n\n").ok_or_else(|| bad("no blank line before the signatures"))?;
        let body = &text[..=split];
        let mut signatures = Vec::new();
        for line in text[split + 2..].lines() {
            let rest = line.strip_prefix(DASH).ok_or_else(|| bad("a signature line does not start with an em dash"))?;
            let (name, sig) = rest.split_once(' ').ok_or_else(|| bad("a signature line has no signature"))?;
            let bytes = B64.decode(sig).map_err(|_| bad("a signature is not base64"))?;
            if bytes.len() < 5 || !valid_key_name(name) {
                return Err(bad("a signature line is too short or names no valid key"));
            }
            let id = [bytes[0], bytes[1], bytes[2], bytes[3]];
            signatures.push((name.to_owned(), id, bytes[4..].to_vec()));
        }
        if signatures.is_empty() {
            return Err(bad("no signature line"));
        }
        Ok(SignedNote { body: body.to_owned(), signatures })
    }
}

/// Signs notes with an Ed25519 key under a name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed.
    ///
    /// # Errors
    /// When `name` is not a valid key name.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::Key(format!("{name:?} cannot name a key (empty, or holds spaces or '+')")));
        }
        Ok(NoteSigner { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    /// Reads `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    ///
    /// # Errors
    /// A malformed key, or one whose ID does not match.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let bad = |m: &str| NoteError::Key(m.to_owned());
        // The base64 key may hold '+': split off the first four fields only.
        let parts: Vec<&str> = text.trim().splitn(5, '+').collect();
        let ["PRIVATE", "KEY", name, id, key] = parts.as_slice() else {
            return Err(bad("a signer key is PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let bytes = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, seed)) => seed.try_into().map_err(|_| bad("an Ed25519 key is 32 bytes"))?,
            _ => return Err(bad("not an Ed25519 key")),
        };
        let signer = NoteSigner::from_seed(name, seed)?;
        if signer.verifier().id_hex() != *id {
            return Err(bad("the key ID does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key text (secret).
    pub fn to_secret_text(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, self.verifier().id_hex(), B64.encode(bytes))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// `body` (ending with a newline) as a signed note.
    pub fn sign(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes());
        let mut bytes = key_id(&self.name, self.key.verifying_key().as_bytes()).to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        format!("{body}\n{DASH}{} {}\n", self.name, B64.encode(bytes))
    }
}

/// Checks notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Reads `<name>+<hex key ID>+<base64(0x01 || public key)>`.
    ///
    /// # Errors
    /// A malformed key, or one whose ID does not match.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |m: &str| NoteError::Key(m.to_owned());
        // The base64 key may hold '+': split off the first two fields only.
        let parts: Vec<&str> = text.trim().splitn(3, '+').collect();
        let [name, id, key] = parts.as_slice() else {
            return Err(bad("a verifier key is <name>+<8 hex digits>+<base64 key>"));
        };
        let bytes = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, k)) => k.try_into().map_err(|_| bad("an Ed25519 key is 32 bytes"))?,
            _ => return Err(bad("not an Ed25519 key")),
        };
        if !valid_key_name(name) {
            return Err(bad("the key name is empty or holds spaces or '+'"));
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 public key"))?;
        let v = NoteVerifier { name: (*name).to_owned(), key };
        if v.id_hex() != *id {
            return Err(bad("the key ID does not match the key"));
        }
        Ok(v)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.key.as_bytes())
    }

    /// The key ID as 8 hex digits.
    pub fn id_hex(&self) -> String {
        self.id().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The verifier key text.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, self.id_hex(), B64.encode(bytes))
    }

    /// The body of `note` if this key signed it.
    ///
    /// # Errors
    /// Malformed, not signed by this key, or a signature that fails.
    pub fn open(&self, note: &str) -> Result<String, NoteError> {
        let parsed = SignedNote::parse(note)?;
        let id = self.id();
        let mine: Vec<&Vec<u8>> =
            parsed.signatures.iter().filter(|(n, i, _)| *n == self.name && *i == id).map(|(_, _, s)| s).collect();
        if mine.is_empty() {
            return Err(NoteError::NotSigned(self.to_text()));
        }
        for sig in mine {
            let ok = Signature::from_slice(sig).is_ok_and(|s| self.key.verify(parsed.body.as_bytes(), &s).is_ok());
            if !ok {
                return Err(NoteError::BadSignature(self.name.clone()));
            }
        }
        Ok(parsed.body)
    }

    /// The checkpoint of `note` if this key signed it.
    ///
    /// # Errors
    /// As [`NoteVerifier::open`], or a body that is not a checkpoint.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(&self.open(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::from_seed(name, [seed; 32]).expect("signer")
    }

    #[test]
    fn a_signed_checkpoint_round_trips_and_keys_print_and_parse() {
        let s = signer("node-a", 7);
        let cp = Checkpoint { origin: "node-a/QUERIES".into(), size: 42, root: [9; 32] };
        let note = s.sign(&cp.body());
        assert!(note.starts_with("node-a/QUERIES\n42\nCQkJ"), "{note}");
        assert!(note.contains("\n\n\u{2014} node-a "), "{note}");
        let v = NoteVerifier::parse(&s.verifier().to_text()).expect("verifier");
        assert_eq!(v.open_checkpoint(&note).expect("open"), cp);
        assert_eq!(NoteSigner::parse(&s.to_secret_text()).expect("signer").verifier(), v);
        assert!(s.verifier().to_text().starts_with("node-a+"));
    }

    #[test]
    fn keys_whose_base64_holds_plus_signs_parse() {
        for seed in 0..64u8 {
            let s = signer("n", seed);
            assert_eq!(NoteSigner::parse(&s.to_secret_text()).expect("signer").verifier(), s.verifier());
            assert_eq!(NoteVerifier::parse(&s.verifier().to_text()).expect("verifier"), s.verifier());
        }
    }

    #[test]
    fn tampered_notes_and_other_keys_are_refused() {
        let s = signer("node-a", 7);
        let note = s.sign(&Checkpoint { origin: "node-a/Q".into(), size: 5, root: [1; 32] }.body());
        let v = s.verifier();
        assert!(matches!(v.open(&note.replacen("\n5\n", "\n6\n", 1)), Err(NoteError::BadSignature(_))));
        let other = signer("node-a", 8).verifier();
        assert!(matches!(other.open(&note), Err(NoteError::NotSigned(_))));
        assert!(v.open("node-a/Q\n5\n").is_err());
        assert!(Checkpoint::parse("o\n05\nAAAA\n").is_err(), "no leading zeros");
        let text = v.to_text();
        let flipped = text.replacen('+', "+0", 1);
        assert!(NoteVerifier::parse(&flipped).is_err());
        assert!(NoteSigner::from_seed("bad name", [0; 32]).is_err());
    }
}
