//! Admin handlers for services and generations: create, list, delete,
//! import a generation archive, preload, enable, disable, switch, set the
//! mapping, metadata, and the recent-queries ring. Each change follows the
//! module rule (validate → stage → audit record on disk → commit), then
//! swaps the reloaded service into the registry (requests in flight finish
//! on the old one) and publishes the entity messages of what changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminCall, archive, body_json, io_failed, ok, record_change, store};
use crate::entity::{self, Entity, Metadata, Scope};
use crate::http::error::ApiError;
use crate::ids::{GenerationId, ServiceId};
use crate::registry::Service;
use crate::registry::dispatch::Mapping;
use crate::registry::files::{MappingEntryFile, MappingFile, MetadataFile, ServiceFile};
use crate::state::Node;

pub(super) fn find(node: &Node, id: &str) -> Result<Arc<Service>, ApiError> {
    node.registry.get(id).ok_or_else(|| ApiError::NotFound(format!("unknown service {id:?}")))
}

/// `GET /services`
pub async fn list_services(State(node): State<Arc<Node>>) -> Json<Value> {
    let list: Vec<Value> = node
        .registry
        .snapshot()
        .values()
        .map(|s| {
            let mut v = json!({"serviceId": s.id, "enabled": s.enabled});
            if let Some(reason) = &s.start_aborted_reason {
                v["startAbortedReason"] = json!(reason);
            }
            v
        })
        .collect();
    Json(Value::Array(list))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    service_id: String,
}

/// `POST /services` `{"serviceId": "fraud"}`
pub async fn create_service(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: CreateBody = body_json(&node, body).await?;
    let id = ServiceId::new(body.service_id).map_err(|e| ApiError::InvalidRequest(format!("serviceId: {e}")))?;
    let _lock = node.admin_lock.lock().await;
    let dir = node.registry.dir().join(id.as_str());
    if node.registry.get(id.as_str()).is_some() || dir.exists() {
        return Err(ApiError::InvalidRequest(format!("service {id} already exists")));
    }
    let file = ServiceFile { enabled: true, ..ServiceFile::default() };
    let staged = store::stage_dir(&dir, |tmp| {
        std::fs::create_dir_all(tmp.join("generations"))?;
        let text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        std::fs::write(tmp.join("service.json"), text)
    })
    .map_err(io_failed("creating the service folder"))?;
    record_change(&node, &call, "service-create", json!({"serviceId": id})).await?;
    staged.commit().map_err(io_failed("creating the service folder"))?;
    let service = node.registry.reload(&id);
    node.entity(Entity::Service(id.as_str()), "CREATE", call.user(), json!({})).await;
    node.entity(Entity::Queries(id.as_str()), "CREATE", call.user(), json!({})).await;
    log::info!("Service {id} created by admin key {}", call.who.key_id);
    drop(service);
    Ok(ok())
}

/// `DELETE /services/{id}`
pub async fn delete_service(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let _lock = node.admin_lock.lock().await;
    let service = find(&node, &id)?;
    record_change(&node, &call, "service-delete", json!({"serviceId": service.id})).await?;
    store::remove_dir(&node.registry.dir().join(service.id.as_str()))
        .map_err(io_failed("removing the service folder"))?;
    node.registry.remove(&service.id);
    node.metrics.forget(service.id.as_str());
    node.queries.clear(service.id.as_str());
    for g in service.generations.values() {
        for e in g.endpoints.keys() {
            node.entity(Entity::Endpoint(service.id.as_str(), e.as_str()), "DELETE", call.user(), json!({})).await;
        }
        node.entity(Entity::Generation(service.id.as_str(), g.id.as_str()), "DELETE", call.user(), json!({})).await;
    }
    node.entity(Entity::Service(service.id.as_str()), "DELETE", call.user(), json!({})).await;
    Ok(ok())
}

/// `GET /services/{id}/generations`
pub async fn list_generations(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let s = find(&node, &id)?;
    let mut list: Vec<Value> = s
        .generations
        .values()
        .map(|g| json!({"generationId": g.id, "createdOn": g.created_on_ms, "mounted": true, "mapped": s.mapping.share(&g.id)}))
        .collect();
    list.extend(
        s.unusable.iter().map(|(g, why)| json!({"generationId": g, "mounted": false, "mapped": 0.0, "error": why})),
    );
    Ok(Json(json!({"generations": list})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportQuery {
    file_path: Option<String>,
}

/// `POST /services/{id}/generations/actions/importFromArchive?filePath=/abs/path.zip`
pub async fn import_generation(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    Query(query): Query<ImportQuery>,
) -> Result<Json<Value>, ApiError> {
    let path = query.file_path.ok_or_else(|| ApiError::InvalidRequest("filePath: missing".into()))?;
    let archive_path = allowed_archive(&node, &path)?;
    let _lock = node.admin_lock.lock().await;
    let service = find(&node, &id)?;
    let generations = node.registry.dir().join(service.id.as_str()).join("generations");
    std::fs::create_dir_all(&generations).map_err(io_failed("creating the generations folder"))?;
    // Extracted straight into a staging folder (removed unless committed).
    let temp = store::temp_for(&generations.join("import"));
    std::fs::create_dir_all(&temp).map_err(io_failed("creating a staging folder"))?;
    let placeholder = store::staged_dir(temp.clone(), &generations.join(".never"));
    let max = node.config.limits.max_archive_bytes;
    let into = temp.clone();
    let extracted = tokio::task::spawn_blocking(move || archive::extract(&archive_path, &into, max))
        .await
        .map_err(|e| ApiError::Internal(format!("the archive check failed: {e}")))?
        .map_err(|problems| {
            ApiError::InvalidRequest(format!("invalid generation archive {path}: {}", problems.join("; ")))
        })?;
    let gen_id = extracted.generation_id.clone();
    let gen_dir = generations.join(gen_id.as_str());
    if service.generations.contains_key(&gen_id) || gen_dir.exists() {
        return Err(ApiError::InvalidRequest(format!("service {} already has a generation {gen_id}", service.id)));
    }
    drop(placeholder.disarm());
    let staged = store::staged_dir(temp, &gen_dir);
    let details = json!({"serviceId": service.id, "generationId": gen_id, "archive": path});
    record_change(&node, &call, "generation-import", details).await?;
    staged.commit().map_err(io_failed("installing the generation"))?;
    node.registry.reload(&service.id);
    node.entity(Entity::Generation(service.id.as_str(), gen_id.as_str()), "CREATE", call.user(), json!({})).await;
    for e in &extracted.endpoints {
        node.entity(Entity::Endpoint(service.id.as_str(), e), "CREATE", call.user(), json!({"generation": gen_id}))
            .await;
    }
    Ok(ok())
}

/// The archive of `filePath`: an absolute path under one of `importRoots`
/// (default: the data directory and the system's temporary folder), its
/// links resolved first so that none leads outside.
fn allowed_archive(node: &Node, path: &str) -> Result<std::path::PathBuf, ApiError> {
    let given = std::path::Path::new(path);
    if !given.is_absolute() {
        return Err(ApiError::InvalidRequest(format!("filePath: {path:?} must be an absolute path on the node")));
    }
    let roots = node.config.import_roots(&node.data_dir);
    let resolved = given.canonicalize().map_err(|e| ApiError::InvalidRequest(format!("filePath: {path}: {e}")))?;
    if roots.iter().filter_map(|r| r.canonicalize().ok()).any(|r| resolved.starts_with(r)) {
        Ok(resolved)
    } else {
        let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        Err(ApiError::InvalidRequest(format!(
            "filePath: {path} is outside the folders archives may be imported from (importRoots: {})",
            shown.join(", ")
        )))
    }
}

/// `POST /services/{id}/generations/{gen}/preload` (generations are loaded at
/// import or start; this checks it and records the request).
pub async fn preload_generation(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path((id, generation)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let gen_id = held_generation(&service, &generation)?;
    record_change(&node, &call, "generation-preload", json!({"serviceId": service.id, "generationId": gen_id})).await?;
    let before = Metadata::default();
    let mut after = Metadata::default();
    after.system.properties.insert("preloaded".into(), json!("true"));
    let payload = entity::metadata_change(&before, &after);
    node.entity(Entity::Generation(service.id.as_str(), gen_id.as_str()), "METADATA_CHANGE", call.user(), payload)
        .await;
    Ok(ok())
}

/// `POST /services/{id}/actions/enable`
pub async fn enable_service(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&node, &call, &id, true).await
}

/// `POST /services/{id}/actions/disable`
pub async fn disable_service(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&node, &call, &id, false).await
}

async fn set_enabled(node: &Node, call: &AdminCall, id: &str, enabled: bool) -> Result<Json<Value>, ApiError> {
    let msg_type = if enabled { "service-enable" } else { "service-disable" };
    change_service(node, call, id, msg_type, |f| {
        f.enabled = enabled;
        Ok(())
    })
    .await?;
    Ok(ok())
}

/// `POST /services/{id}/actions/switchToNewest` → `{"switchedToGeneration": "v3"}`
pub async fn switch_to_newest(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let newest = service
        .generations
        .values()
        .max_by_key(|g| (g.created_on_ms, g.id.clone()))
        .map(|g| g.id.clone())
        .ok_or_else(|| ApiError::InvalidRequest(format!("service {id} has no generation to switch to")))?;
    switch_single(&node, &call, &id, &newest).await?;
    Ok(Json(json!({"switchedToGeneration": newest})))
}

/// `POST /services/{id}/actions/switchTo/{gen}`
pub async fn switch_to(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path((id, generation)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let gen_id = held_generation(&service, &generation)?;
    switch_single(&node, &call, &id, &gen_id).await?;
    Ok(ok())
}

/// Sends all traffic to one generation (and enables the service).
async fn switch_single(node: &Node, call: &AdminCall, id: &str, generation: &GenerationId) -> Result<(), ApiError> {
    change_service(node, call, id, "service-switch", |f| {
        f.mapping = MappingFile { entries: vec![MappingEntryFile { generation: generation.to_string(), proba: 1.0 }] };
        f.enabled = true;
        Ok(())
    })
    .await
    .map(drop)
}

/// `POST /services/{id}/actions/setMapping` `{"entries": [{"generation", "proba"}]}`
/// (also enables the service).
pub async fn set_mapping(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let mapping: MappingFile = body_json(&node, body).await?;
    let service = find(&node, &id)?;
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (i, e) in mapping.entries.iter().enumerate() {
        match GenerationId::new(e.generation.clone()) {
            Ok(g) => {
                if !service.generations.contains_key(&g) {
                    problems.push(format!("entries[{i}].generation: service {id} has no generation {g}"));
                }
                entries.push((g, e.proba));
            }
            Err(err) => problems.push(format!("entries[{i}].generation: {err}")),
        }
    }
    problems.extend(Mapping::check(&entries));
    if mapping.entries.is_empty() {
        problems.push("entries: must list at least one generation".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidRequest(format!("invalid mapping: {}", problems.join("; "))));
    }
    change_service(&node, &call, &id, "service-set-mapping", move |f| {
        f.mapping = mapping;
        f.enabled = true;
        Ok(())
    })
    .await?;
    Ok(ok())
}

/// `GET /services/{id}/metadata`
pub async fn get_metadata(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let s = find(&node, &id)?;
    Ok(Json(json!({"properties": s.file.metadata.properties, "tags": s.file.metadata.tags})))
}

/// `PUT /services/{id}/metadata` `{"properties": {...}, "tags": [...]}`
pub async fn put_metadata(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let metadata: MetadataFile = body_json(&node, body).await?;
    let answer = json!({"properties": metadata.properties, "tags": metadata.tags});
    change_service(&node, &call, &id, "service-metadata", move |f| {
        f.metadata = metadata;
        Ok(())
    })
    .await?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /services/{id}/queries?limit=N` (default 100)
pub async fn get_queries(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    let records: Vec<Value> = node
        .queries
        .last(service.id.as_str(), q.limit.unwrap_or(100))
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    node.entity(Entity::Queries(service.id.as_str()), "ACCESS", call.user(), json!({"accessType": "READ"})).await;
    Ok(Json(Value::Array(records)))
}

/// `DELETE /services/{id}/queries` (the ring only; audit files are never rewritten)
pub async fn purge_queries(
    State(node): State<Arc<Node>>,
    Extension(call): Extension<AdminCall>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = find(&node, &id)?;
    record_change(&node, &call, "queries-purge", json!({"serviceId": service.id})).await?;
    node.queries.clear(service.id.as_str());
    node.entity(Entity::Queries(service.id.as_str()), "TRUNCATE", call.user(), json!({})).await;
    Ok(ok())
}

fn held_generation(service: &Service, generation: &str) -> Result<GenerationId, ApiError> {
    GenerationId::new(generation)
        .ok()
        .filter(|g| service.generations.contains_key(g))
        .ok_or_else(|| ApiError::NotFound(format!("service {} has no generation {generation:?}", service.id)))
}

/// Changes `service.json` of a service under the admin lock, following the
/// module rule, then publishes what changed.
async fn change_service(
    node: &Node,
    call: &AdminCall,
    id: &str,
    msg_type: &str,
    edit: impl FnOnce(&mut ServiceFile) -> Result<(), ApiError>,
) -> Result<Arc<Service>, ApiError> {
    change_service_with(node, call, id, msg_type, Value::Null, edit).await
}

/// [`change_service`], with more details (`extra`, an object) in its admin record.
pub(super) async fn change_service_with(
    node: &Node,
    call: &AdminCall,
    id: &str,
    msg_type: &str,
    extra: Value,
    edit: impl FnOnce(&mut ServiceFile) -> Result<(), ApiError>,
) -> Result<Arc<Service>, ApiError> {
    let _lock = node.admin_lock.lock().await;
    let before = find(node, id)?;
    let mut file = before.file.clone();
    edit(&mut file)?;
    let path = node.registry.dir().join(before.id.as_str()).join("service.json");
    let staged = store::stage_json(&path, &file).map_err(io_failed("writing service.json"))?;
    let mut details =
        json!({"serviceId": before.id, "enabled": file.enabled, "mapping": file.mapping, "metadata": file.metadata});
    if let (Some(d), Value::Object(e)) = (details.as_object_mut(), extra) {
        d.extend(e);
    }
    record_change(node, call, msg_type, details).await?;
    staged.commit().map_err(io_failed("replacing service.json"))?;
    let after = node.registry.reload(&before.id);
    publish_changes(node, call, &before, &after).await;
    Ok(after)
}

/// What the node derives about a service (CDAP SYSTEM scope) and what admins set (USER).
fn service_metadata(s: &Service) -> Metadata {
    let mut system = Scope::default();
    system.properties.insert("enabled".into(), json!(s.enabled.to_string()));
    let mapping: Vec<String> = s.mapping.entries().iter().map(|(g, p)| format!("{g}:{p}")).collect();
    system.properties.insert("mapping".into(), json!(mapping.join(",")));
    if let Some(k) = &s.routing_key {
        system.properties.insert("routingKey".into(), json!(k.as_str()));
    }
    let user =
        Scope { properties: s.file.metadata.properties.clone(), tags: s.file.metadata.tags.iter().cloned().collect() };
    Metadata { user, system }
}

fn generation_metadata(s: &Service, g: &GenerationId) -> Metadata {
    let mut system = Scope::default();
    system.properties.insert("mapped".into(), json!(s.mapping.share(g).to_string()));
    Metadata { user: Scope::default(), system }
}

async fn publish_changes(node: &Node, call: &AdminCall, before: &Service, after: &Service) {
    let (b, a) = (service_metadata(before), service_metadata(after));
    if b != a {
        node.entity(
            Entity::Service(after.id.as_str()),
            "METADATA_CHANGE",
            call.user(),
            entity::metadata_change(&b, &a),
        )
        .await;
    }
    let ids: BTreeMap<&GenerationId, ()> = after.generations.keys().map(|g| (g, ())).collect();
    for g in ids.keys() {
        let (b, a) = (generation_metadata(before, g), generation_metadata(after, g));
        if b != a {
            let payload = entity::metadata_change(&b, &a);
            node.entity(Entity::Generation(after.id.as_str(), g.as_str()), "METADATA_CHANGE", call.user(), payload)
                .await;
        }
    }
}
