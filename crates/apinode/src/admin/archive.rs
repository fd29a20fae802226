//! Generation archives (`importFromArchive`, docs/security.md "Archives"): a
//! zip of one generation folder, `generation.json` and the model files at
//! its root or inside one top-level folder. The archive is read entry by
//! entry and each entry is streamed into a staging folder through a bounded
//! buffer, never inflated whole into memory: duplicate names, symlinks,
//! names that leave the folder, a file and a folder of the same name, an
//! entry that inflates to more than its header says, and more than
//! `maxArchiveBytes` in all are each refused naming the entry, before any
//! byte of it is trusted. Then `generation.json` and every model file are
//! read back and checked. Whoever extracts into a staging folder removes it
//! when this fails. No HTTP here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::ids::GenerationId;
use crate::model::Model;
use crate::registry::files::GenerationFile;
use crate::registry::loader::is_plain_relative;

/// What an extracted archive holds.
#[derive(Debug)]
pub struct Extracted {
    /// The generation it holds.
    pub generation_id: GenerationId,
    /// The endpoint ids it declares.
    pub endpoints: Vec<String>,
}

/// Unix file type bits of a symbolic link in a zip entry's mode.
const S_IFLNK: u32 = 0o120_000;
const S_IFMT: u32 = 0o170_000;

/// Copies at most `limit` bytes; more is an error (a bomb, or a header that lies).
fn copy_bounded(from: &mut impl Read, to: &mut impl Write, limit: u64) -> io::Result<u64> {
    let mut buf = [0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(io::Error::other(format!("inflates to more than {limit} bytes")));
        }
        to.write_all(&buf[..n])?;
    }
}

/// Extracts and checks the archive at `path` into the (empty) folder `into`.
///
/// # Errors
/// Every problem found, as sentences naming the entry or field; `into` may
/// then hold part of the archive and must be removed by the caller.
pub fn extract(path: &Path, into: &Path, max_bytes: u64) -> Result<Extracted, Vec<String>> {
    let file = File::open(path).map_err(|e| vec![format!("cannot open {}: {e}", path.display())])?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| vec![format!("{} is not a zip archive: {e}", path.display())])?;
    let names = check_names(&mut zip)?;
    let strip = common_top_folder(&names);
    let mut total = 0u64;
    let mut files: Vec<String> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        let mut entry = zip.by_index(i).map_err(|e| vec![format!("entry {name:?} cannot be read: {e}")])?;
        if entry.is_dir() {
            continue;
        }
        let declared = entry.size();
        if total.saturating_add(declared) > max_bytes {
            return Err(vec![format!(
                "entry {name:?}: the archive inflates to more than maxArchiveBytes ({max_bytes} bytes)"
            )]);
        }
        let relative = strip.as_deref().and_then(|s| name.strip_prefix(s)).unwrap_or(name);
        let target = into.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| vec![format!("entry {name:?}: {e}")])?;
        }
        let mut out = File::create(&target).map_err(|e| vec![format!("entry {name:?}: {e}")])?;
        let written = copy_bounded(&mut entry, &mut out, declared)
            .map_err(|e| vec![format!("entry {name:?}: {e} (its header says {declared} bytes)")])?;
        total += written;
        out.sync_all().map_err(|e| vec![format!("entry {name:?}: {e}")])?;
        files.push(relative.to_owned());
    }
    check_content(into, &files)
}

/// Every entry's name, checked: `None` for directories' own entries.
fn check_names(zip: &mut zip::ZipArchive<File>) -> Result<Vec<Option<String>>, Vec<String>> {
    let mut problems = Vec::new();
    let mut names = Vec::with_capacity(zip.len());
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // The archive's index keeps one entry per name: a name the central
    // directory holds twice is only visible through this flag.
    if zip.has_duplicate_names() {
        problems.push("an entry appears twice in the archive's directory".to_owned());
    }
    let mut folders: BTreeSet<String> = BTreeSet::new();
    let mut plain: BTreeSet<String> = BTreeSet::new();
    for i in 0..zip.len() {
        let entry = match zip.by_index_raw(i) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("entry {i} cannot be read: {e}"));
                names.push(None);
                continue;
            }
        };
        let name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                problems.push(format!("entry {i} has an unreadable name: {e}"));
                names.push(None);
                continue;
            }
        };
        if !safe_entry_name(&name) {
            problems.push(format!("entry {name:?} escapes the generation folder"));
        } else if entry.unix_mode().is_some_and(|m| m & S_IFMT == S_IFLNK) {
            problems.push(format!("entry {name:?} is a symbolic link"));
        } else if !seen.insert(name.trim_end_matches('/').to_owned()) {
            problems.push(format!("entry {name:?} appears twice"));
        }
        let trimmed = name.trim_end_matches('/').to_owned();
        let mut parent = Path::new(&trimmed).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            folders.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        if entry.is_dir() {
            folders.insert(trimmed);
            names.push(None);
        } else {
            plain.insert(trimmed);
            names.push(Some(name));
        }
    }
    for clash in plain.intersection(&folders) {
        problems.push(format!("entry {clash:?} is both a file and a folder"));
    }
    if problems.is_empty() { Ok(names) } else { Err(problems) }
}

/// The one top-level folder every file is in, with its slash, if any.
fn common_top_folder(names: &[Option<String>]) -> Option<String> {
    let files: Vec<&String> = names.iter().flatten().collect();
    let first = files.first()?.split_once('/')?.0;
    files.iter().all(|n| n.split_once('/').is_some_and(|(top, _)| top == first)).then(|| format!("{first}/"))
}

/// Reads back `generation.json` and the model files it names.
fn check_content(dir: &Path, files: &[String]) -> Result<Extracted, Vec<String>> {
    let at = |name: &str| -> PathBuf { dir.join(name) };
    if !files.iter().any(|f| f == "generation.json") {
        return Err(vec![
            "generation.json is missing (at the root of the archive or in its one top-level folder)".into(),
        ]);
    }
    let text = std::fs::read_to_string(at("generation.json"))
        .map_err(|e| vec![format!("generation.json: cannot be read: {e}")])?;
    let generation: GenerationFile =
        serde_json::from_str(&text).map_err(|e| vec![format!("generation.json: not valid: {e}")])?;
    let generation_id = GenerationId::new(generation.generation_id.clone())
        .map_err(|e| vec![format!("generation.json: generationId: {e}")])?;
    let mut problems = Vec::new();
    if generation.endpoints.is_empty() {
        problems.push("generation.json: endpoints: must list at least one endpoint".into());
    }
    let present: BTreeMap<&str, ()> = files.iter().map(|f| (f.as_str(), ())).collect();
    for (i, ep) in generation.endpoints.iter().enumerate() {
        if !is_plain_relative(&ep.model) {
            problems
                .push(format!("generation.json: endpoints[{i}].model: {:?} is not a file of the archive", ep.model));
            continue;
        }
        if !present.contains_key(ep.model.as_str()) {
            problems.push(format!("generation.json: endpoints[{i}].model: {:?} is not in the archive", ep.model));
            continue;
        }
        match std::fs::read_to_string(at(&ep.model)) {
            Ok(text) => {
                if let Err(p) = Model::from_json(&text) {
                    problems.push(format!("{}: {p}", ep.model));
                }
            }
            Err(e) => problems.push(format!("{}: not UTF-8 text: {e}", ep.model)),
        }
    }
    if problems.is_empty() {
        Ok(Extracted { generation_id, endpoints: generation.endpoints.iter().map(|e| e.id.clone()).collect() })
    } else {
        Err(problems)
    }
}

/// A relative path of normal components: no root, no `..`, no backslash.
fn safe_entry_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && !name.starts_with('/')
        && Path::new(name).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_must_stay_inside() {
        for ok in ["generation.json", "v1/model.json", "./a.json"] {
            assert!(safe_entry_name(ok), "{ok}");
        }
        for bad in ["../x", "/etc/passwd", "a/../../b", "a\\..\\b", ""] {
            assert!(!safe_entry_name(bad), "{bad}");
        }
    }

    #[test]
    fn one_top_folder_is_stripped() {
        let names = [Some("v2/generation.json".to_owned()), Some("v2/m.json".to_owned()), None];
        assert_eq!(common_top_folder(&names).as_deref(), Some("v2/"));
        let flat = [Some("generation.json".to_owned()), Some("d/m.json".to_owned())];
        assert_eq!(common_top_folder(&flat), None);
    }

    #[test]
    fn a_copy_stops_at_its_limit() {
        let data = vec![7u8; 100_000];
        let mut out = Vec::new();
        assert_eq!(copy_bounded(&mut &data[..], &mut out, 100_000).expect("fits"), 100_000);
        assert!(copy_bounded(&mut &data[..], &mut Vec::new(), 99_999).is_err(), "one byte over is refused");
    }
}
