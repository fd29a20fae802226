//! Reading services and generations from the data directory. Every problem of
//! a service (its `service.json`, its mapping, each generation and model file)
//! is collected and reported at once, each naming its file and field; a
//! service with problems is kept with a `start_aborted_reason` so that the
//! others still serve. This module reads files and logs what it found; it
//! does not serve or decide dispatch.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Component, Path};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::de::DeserializeOwned;

use super::dispatch::Mapping;
use super::files::{GenerationFile, ServiceFile};
use super::{Endpoint, Generation, Service};
use audit::commit::Durability;

use crate::auth::hasher::StoredHash;
use crate::auth::{UserAuth, UserKey};
use crate::ids::{EndpointId, GenerationId, ServiceId};
use crate::model::Model;
use crate::problems::Problems;
use crate::registry::files::{AuthFile, AuthMethod};

/// Loads every service folder under `dir` (normally `<data_dir>/services`).
pub fn load_services(dir: &Path) -> BTreeMap<ServiceId, Arc<Service>> {
    let mut services = BTreeMap::new();
    let entries = match sorted_subdirs(dir) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("No services loaded: cannot read {}: {e}", dir.display());
            return services;
        }
    };
    for name in entries {
        let id = match ServiceId::new(name.clone()) {
            Ok(id) => id,
            Err(e) => {
                log::error!("services/{name}: ignored, the folder name is not a service id: {e}");
                continue;
            }
        };
        let service = load_service(&dir.join(&name), id.clone());
        match &service.start_aborted_reason {
            Some(reason) => log::error!("Service {id} could not start: {reason}"),
            None => log::info!(
                "Service {id} loaded: {} generation(s), mapping [{}], enabled={}",
                service.generations.len(),
                service.mapping.entries().iter().map(|(g, p)| format!("{g}: {p}")).collect::<Vec<_>>().join(", "),
                service.enabled
            ),
        }
        for (g, why) in &service.unusable {
            log::warn!("Service {id}: generation {g} is not usable: {why}");
        }
        services.insert(id, Arc::new(service));
    }
    services
}

/// Loads one service folder. Never fails: problems become the
/// `start_aborted_reason`.
pub fn load_service(dir: &Path, id: ServiceId) -> Service {
    load_service_reusing(dir, id, &BTreeMap::new())
}

/// Loads one service folder, taking generations already loaded from `reuse`
/// instead of reading their models again.
pub fn load_service_reusing(dir: &Path, id: ServiceId, reuse: &BTreeMap<GenerationId, Arc<Generation>>) -> Service {
    let label = format!("services/{id}");
    let mut problems = Problems::new();
    let file: ServiceFile =
        read_json(&dir.join("service.json"), &format!("{label}/service.json"), &mut problems).unwrap_or_default();
    let (generations, mut unusable) = load_generations(&dir.join("generations"), &label, reuse);

    let mut file_problems = Problems::new();
    let mut entries = Vec::new();
    for (i, e) in file.mapping.entries.iter().enumerate() {
        let path = format!("mapping.entries[{i}].generation");
        match GenerationId::new(e.generation.clone()) {
            Err(err) => file_problems.push(path, err.to_string()),
            Ok(g) => {
                if let Some(why) = unusable.remove(g.as_str()) {
                    file_problems.push(path, format!("generation {g} is mapped but could not be loaded: {why}"));
                } else if !generations.contains_key(&g) {
                    file_problems.push(path, format!("no generation {g} under {label}/generations"));
                }
                entries.push((g, e.proba));
            }
        }
    }
    for p in Mapping::check(&entries) {
        let (path, msg) = p.split_once(": ").unwrap_or(("", &p));
        file_problems.push(format!("mapping.{path}"), msg);
    }
    let routing_key = match file.routing_key.as_deref().map(audit::RoutingKey::new) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            file_problems.push("routingKey", e.to_string());
            None
        }
    };
    let audit_durability = match file.audit_durability.as_deref() {
        None => Durability::Async,
        Some(d) => Durability::parse(d).unwrap_or_else(|| {
            file_problems.push("auditDurability", format!("{d:?} must be ASYNC, WRITTEN or FSYNC"));
            Durability::Async
        }),
    };
    let audit_policy = match file.audit_policy.as_ref().map(crate::privacy::AuditPolicy::parse) {
        None => None,
        Some(Ok(p)) => (!p.is_noop()).then(|| Arc::new(p)),
        Some(Err(found)) => {
            for (path, message) in found {
                let at = if path.is_empty() { "auditPolicy".to_owned() } else { format!("auditPolicy.{path}") };
                file_problems.push(at, message);
            }
            None
        }
    };
    let auth = user_auth(&file.auth, &mut |path, msg| file_problems.push(path, msg));
    problems.absorb(&format!("{label}/service.json"), file_problems);

    Service {
        id,
        enabled: file.enabled,
        mapping: Mapping::new(entries),
        routing_key,
        audit_durability,
        audit_policy,
        auth,
        generations,
        unusable,
        start_aborted_reason: (!problems.is_empty()).then(|| problems.to_string()),
        file,
    }
}

type Loaded = (BTreeMap<GenerationId, Arc<Generation>>, BTreeMap<String, String>);

fn load_generations(dir: &Path, label: &str, reuse: &BTreeMap<GenerationId, Arc<Generation>>) -> Loaded {
    let (mut ok, mut bad) = (BTreeMap::new(), BTreeMap::new());
    let Ok(names) = sorted_subdirs(dir) else {
        return (ok, bad);
    };
    for name in names {
        if let Some(g) = GenerationId::new(name.clone()).ok().and_then(|id| reuse.get(&id)) {
            ok.insert(g.id.clone(), g.clone());
            continue;
        }
        let glabel = format!("{label}/generations/{name}");
        match load_generation(&dir.join(&name), &name, &glabel) {
            Ok(g) => {
                ok.insert(g.id.clone(), Arc::new(g));
            }
            Err(p) => {
                bad.insert(name, p.to_string());
            }
        }
    }
    (ok, bad)
}

/// Loads one generation folder whose name must be `folder_name`; `label` is
/// the path used in problems.
///
/// # Errors
/// Every problem of `generation.json` and of each model file.
pub fn load_generation(dir: &Path, folder_name: &str, label: &str) -> Result<Generation, Problems> {
    let mut problems = Problems::new();
    let gen_path = dir.join("generation.json");
    let file_label = format!("{label}/generation.json");
    let Some(file) = read_json::<GenerationFile>(&gen_path, &file_label, &mut problems) else {
        return Err(problems);
    };
    let mut fp = Problems::new();
    let id = GenerationId::new(file.generation_id.clone()).map_err(|e| fp.push("generationId", e.to_string())).ok();
    if file.generation_id != folder_name {
        fp.push("generationId", format!("{:?} differs from the folder name {folder_name:?}", file.generation_id));
    }
    if file.endpoints.is_empty() {
        fp.push("endpoints", "must list at least one endpoint");
    }
    let mut endpoints = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut model_problems = Vec::new();
    for (i, e) in file.endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let eid = EndpointId::new(e.id.clone()).map_err(|err| fp.push(format!("{path}.id"), err.to_string())).ok();
        if !seen.insert(e.id.as_str()) {
            fp.push(format!("{path}.id"), format!("duplicate endpoint {:?}", e.id));
        }
        let explanations = match &e.explanations {
            None => Default::default(),
            Some(x) => x.parse().unwrap_or_else(|err| {
                fp.push(format!("{path}.explanations"), err.to_string());
                Default::default()
            }),
        };
        if !is_plain_relative(&e.model) {
            fp.push(format!("{path}.model"), format!("{:?} must be a file name inside the generation folder", e.model));
            continue;
        }
        match Model::load(&dir.join(&e.model)) {
            Ok(model) => {
                if let Some(eid) = eid {
                    endpoints.insert(eid.clone(), Endpoint { id: eid, model: Arc::new(model), explanations });
                }
            }
            Err(p) => model_problems.push((format!("{label}/{}", e.model), p)),
        }
    }
    problems.absorb(&file_label, fp);
    for (file, p) in model_problems {
        problems.absorb(&file, p);
    }
    let created_on_ms = file.created_on.unwrap_or_else(|| mtime_ms(&gen_path));
    match id {
        Some(id) if problems.is_empty() => Ok(Generation { id, created_on_ms, endpoints }),
        _ => Err(problems),
    }
}

/// True for a relative path without `..`, root or prefix components.
pub fn is_plain_relative(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn read_json<T: DeserializeOwned>(path: &Path, label: &str, problems: &mut Problems) -> Option<T> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(label, format!("cannot read: {e}"));
            return None;
        }
    };
    serde_json::from_str(&text).map_err(|e| problems.push(label, e.to_string())).ok()
}

fn sorted_subdirs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

fn mtime_ms(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// The user keys of a service from its file; each problem goes to
/// `problem` as (field path, message).
fn user_auth(file: &AuthFile, problem: &mut dyn FnMut(String, String)) -> UserAuth {
    if file.method == AuthMethod::Public {
        if !file.keys.is_empty() {
            problem("auth.keys".into(), "keys are only used with method API_KEYS".into());
        }
        return UserAuth::Public;
    }
    let mut keys = Vec::with_capacity(file.keys.len());
    for (i, k) in file.keys.iter().enumerate() {
        match StoredHash::parse(k.hmac_sha256.as_deref(), k.sha256.as_deref()) {
            Ok(hash) => keys.push(UserKey::new(&k.id, k.label.as_deref(), hash)),
            Err(e) => problem(format!("auth.keys[{i}]"), e),
        }
    }
    UserAuth::ApiKeys(keys)
}
