//! The transparency-log vocabulary the node, its CLI and the event server
//! share (docs/integrity.md "Tamper evidence"): RFC 6962 trees and proofs
//! ([`merkle`]) and C2SP signed checkpoints ([`note`]). Pure functions over
//! bytes; no I/O.

pub mod merkle;
pub mod note;

pub use merkle::{Frontier, Hash, Known, LeafSource, TreeError, leaf_hash, verify_consistency, verify_inclusion};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier, SignedNote};
