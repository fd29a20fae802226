//! Who may read the node's files (docs/security.md "Secrets"): files that
//! hold secrets are the owner's only (0600: `config/server.json`,
//! `config/admin-keys.json`, `config/key-pepper`, `config/audit-signing.key`,
//! `run/admin-local.secret`, every `service.json` with keys), and what holds
//! personal data is the owner's and the group's (`run/audit`, `run/spool`:
//! folders 0750, files 0640). Files the node writes get these modes when
//! they are created; at start, this module also brings files left by
//! earlier versions or by hand into line, and warns about each one it had
//! to change. No secret is read here.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// The secret files of a data directory, relative to it.
pub const SECRET_FILES: [&str; 6] = [
    "config/server.json",
    "config/audit-hmac-keys.json",
    "config/admin-keys.json",
    "config/key-pepper",
    "config/audit-signing.key",
    "run/admin-local.secret",
];

/// Sets `mode` on `path` when it allows more than `mode`; says whether it did.
fn tighten(path: &Path, mode: u32) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return false };
    let current = meta.permissions().mode() & 0o777;
    if current & !mode == 0 {
        return false;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => {
            log::warn!("{} could be read by others (mode {current:o}); set to {mode:o}", path.display());
            true
        }
        Err(e) => {
            log::warn!("{} can be read by others (mode {current:o}) and cannot be changed: {e}", path.display());
            false
        }
    }
}

fn tighten_tree(dir: &Path, dir_mode: u32, file_mode: u32) -> usize {
    let mut changed = usize::from(tighten(dir, dir_mode));
    let Ok(entries) = std::fs::read_dir(dir) else { return changed };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => changed += tighten_tree(&path, dir_mode, file_mode),
            Ok(t) if t.is_file() => changed += usize::from(tighten(&path, file_mode)),
            _ => {}
        }
    }
    changed
}

/// Brings the modes of `data_dir`'s files into line; returns how many changed.
pub fn secure(data_dir: &Path) -> usize {
    let mut changed = 0;
    for f in SECRET_FILES {
        changed += usize::from(tighten(&data_dir.join(f), 0o600));
    }
    if let Ok(services) = std::fs::read_dir(data_dir.join("services")) {
        for s in services.flatten() {
            changed += usize::from(tighten(&s.path().join("service.json"), 0o600));
        }
    }
    for tree in ["run/audit", "run/spool"] {
        let dir = data_dir.join(tree);
        if dir.is_dir() {
            changed += tighten_tree(&dir, 0o750, 0o640);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_and_audit_files_are_brought_into_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).expect("meta").permissions().mode() & 0o777;
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("run/audit")).expect("mkdir");
        for (p, m) in [("config/server.json", 0o644), ("run/audit/queries.log", 0o644), ("config/other.json", 0o644)] {
            std::fs::write(dir.path().join(p), "{}").expect("write");
            std::fs::set_permissions(dir.path().join(p), std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        std::fs::set_permissions(dir.path().join("run/audit"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(secure(dir.path()), 3);
        assert_eq!(
            (mode("config/server.json"), mode("run/audit/queries.log"), mode("run/audit")),
            (0o600, 0o640, 0o750)
        );
        assert_eq!(mode("config/other.json"), 0o644, "not a secret file");
        assert_eq!(secure(dir.path()), 0, "nothing more to do");
    }
}
