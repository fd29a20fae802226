//! Generation archives (`importFromArchive`): a zip of one generation folder,
//! `generation.json` and the model files at its root, or inside one
//! top-level folder. The whole archive is read and checked in memory before
//! anything is written: entries that would escape the folder (`..`, absolute
//! paths), duplicate entries, a missing or invalid `generation.json`, model
//! files that are missing or invalid. Writing the checked files is a
//! separate step. No HTTP here.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

use crate::ids::GenerationId;
use crate::model::Model;
use crate::registry::files::GenerationFile;
use crate::registry::loader::is_plain_relative;

/// Largest archive accepted (uncompressed), to bound memory.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// A checked archive: the generation id and its files (relative path → bytes).
#[derive(Debug)]
pub struct CheckedArchive {
    /// The generation it holds.
    pub generation_id: GenerationId,
    /// The endpoint ids it declares.
    pub endpoints: Vec<String>,
    /// Every file, by path relative to the generation folder.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Reads and checks an archive.
///
/// # Errors
/// Every problem found, as sentences naming the entry or field.
pub fn check(path: &Path) -> Result<CheckedArchive, Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| vec![format!("cannot open {}: {e}", path.display())])?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| vec![format!("{} is not a zip archive: {e}", path.display())])?;
    let mut problems = Vec::new();
    let mut raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = match zip.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("entry {i} cannot be read: {e}"));
                continue;
            }
        };
        let name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                problems.push(format!("entry {i} has an unreadable name: {e}"));
                continue;
            }
        };
        if !safe_entry_name(&name) {
            problems.push(format!("entry {name:?} escapes the generation folder"));
            continue;
        }
        if entry.is_dir() {
            continue;
        }
        total += entry.size();
        if total > MAX_ARCHIVE_BYTES {
            return Err(vec![format!("the archive holds more than {MAX_ARCHIVE_BYTES} bytes")]);
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        if let Err(e) = entry.read_to_end(&mut bytes) {
            problems.push(format!("entry {name:?} cannot be read: {e}"));
            continue;
        }
        if raw.insert(name.clone(), bytes).is_some() {
            problems.push(format!("entry {name:?} appears twice"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let files = strip_top_folder(raw);
    let Some(gen_bytes) = files.get("generation.json") else {
        return Err(vec![
            "generation.json is missing (at the root of the archive or in its one top-level folder)".into(),
        ]);
    };
    let generation: GenerationFile =
        serde_json::from_slice(gen_bytes).map_err(|e| vec![format!("generation.json: not valid: {e}")])?;
    let generation_id = GenerationId::new(generation.generation_id.clone())
        .map_err(|e| vec![format!("generation.json: generationId: {e}")])?;
    if generation.endpoints.is_empty() {
        problems.push("generation.json: endpoints: must list at least one endpoint".into());
    }
    for (i, ep) in generation.endpoints.iter().enumerate() {
        if !is_plain_relative(&ep.model) {
            problems
                .push(format!("generation.json: endpoints[{i}].model: {:?} is not a file of the archive", ep.model));
            continue;
        }
        match files.get(&ep.model) {
            None => {
                problems.push(format!("generation.json: endpoints[{i}].model: {:?} is not in the archive", ep.model))
            }
            Some(bytes) => match std::str::from_utf8(bytes).map_err(|e| e.to_string()).map(Model::from_json) {
                Ok(Ok(_)) => {}
                Ok(Err(p)) => problems.push(format!("{}: {p}", ep.model)),
                Err(e) => problems.push(format!("{}: not UTF-8 text: {e}", ep.model)),
            },
        }
    }
    if problems.is_empty() {
        let endpoints = generation.endpoints.iter().map(|e| e.id.clone()).collect();
        Ok(CheckedArchive { generation_id, endpoints, files })
    } else {
        Err(problems)
    }
}

/// Writes a checked archive's files under `dir` (created).
///
/// # Errors
/// The I/O error.
pub fn write(archive: &CheckedArchive, dir: &Path) -> std::io::Result<()> {
    for (name, bytes) in &archive.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// A relative path of normal components: no root, no `..`, no backslash.
fn safe_entry_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && !name.starts_with('/')
        && Path::new(name).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// When every file is inside one top-level folder, drops that folder.
fn strip_top_folder(files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let tops: std::collections::BTreeSet<&str> = files.keys().map(|k| k.split('/').next().unwrap_or("")).collect();
    let all_nested = files.keys().all(|k| k.contains('/'));
    match (tops.len(), all_nested) {
        (1, true) => {
            let top = format!("{}/", tops.into_iter().next().unwrap_or_default());
            files.into_iter().map(|(k, v)| (k.strip_prefix(&top).unwrap_or(&k).to_owned(), v)).collect()
        }
        _ => files,
    }
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
        let files: BTreeMap<String, Vec<u8>> =
            [("v2/generation.json".to_owned(), vec![]), ("v2/m.json".to_owned(), vec![])].into();
        assert_eq!(strip_top_folder(files).keys().collect::<Vec<_>>(), ["generation.json", "m.json"]);
        let flat: BTreeMap<String, Vec<u8>> =
            [("generation.json".to_owned(), vec![]), ("d/m.json".to_owned(), vec![])].into();
        assert_eq!(strip_top_folder(flat).len(), 2);
    }
}
