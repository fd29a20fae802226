//! The registry: every service of the data directory, its generations and
//! their endpoints, loaded once and shared read-only by requests. A request
//! takes an `Arc` of the service and of the generation it was dispatched to,
//! so a later change of the registry (the admin API swaps a new map in) never
//! disturbs a request in flight. Reading files is `loader`'s job, choosing a
//! generation `dispatch`'s; this file holds the types and the lookups.

pub mod dispatch;
pub mod files;
pub mod loader;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::UserAuth;
use crate::ids::{EndpointId, GenerationId, ServiceId};
use crate::model::Model;
use crate::model::spec::ExplanationDefaults;
use dispatch::{Dispatch, Mapping};
use files::ServiceFile;

/// One endpoint of a generation.
#[derive(Debug)]
pub struct Endpoint {
    /// The endpoint id.
    pub id: EndpointId,
    /// The model that answers.
    pub model: Arc<Model>,
    /// Explanation defaults.
    pub explanations: ExplanationDefaults,
}

/// One immutable generation.
#[derive(Debug)]
pub struct Generation {
    /// The generation id.
    pub id: GenerationId,
    /// Creation time, epoch milliseconds.
    pub created_on_ms: u64,
    /// Endpoints by id.
    pub endpoints: BTreeMap<EndpointId, Endpoint>,
}

/// A service as loaded.
#[derive(Debug)]
pub struct Service {
    /// The service id.
    pub id: ServiceId,
    /// Whether it answers predictions.
    pub enabled: bool,
    /// Traffic shares of its generations.
    pub mapping: Mapping,
    /// Written in its audit messages.
    pub routing_key: Option<audit::RoutingKey>,
    /// The durability its records get at least (`auditDurability`; ASYNC
    /// when unset: the node's own mode then decides).
    pub audit_durability: audit::commit::Durability,
    /// What its records keep of callers' data (`auditPolicy`; none: all).
    pub audit_policy: Option<Arc<crate::privacy::AuditPolicy>>,
    /// User API authentication.
    pub auth: UserAuth,
    /// Generations that loaded.
    pub generations: BTreeMap<GenerationId, Arc<Generation>>,
    /// Generations on disk that did not load, with why (unmapped ones only:
    /// a mapped generation that fails aborts the service).
    pub unusable: BTreeMap<String, String>,
    /// Why the service does not serve at all, when it does not.
    pub start_aborted_reason: Option<String>,
    /// `service.json` as read (the base of admin changes).
    pub file: ServiceFile,
}

/// Why a service cannot answer a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The service failed to load.
    #[error("service {0} could not start: {1}")]
    Aborted(ServiceId, String),
    /// The service is disabled.
    #[error("service {0} is disabled")]
    Disabled(ServiceId),
    /// No generation is mapped.
    #[error("service {0} has no active generation")]
    NoActiveGeneration(ServiceId),
    /// A forced generation the service does not hold.
    #[error("service {0} has no generation {1:?}")]
    UnknownGeneration(ServiceId, String),
    /// A forced generation that is on disk but failed to load.
    #[error("generation {1:?} of service {0} could not be loaded: {2}")]
    UnusableGeneration(ServiceId, String, String),
}

impl Service {
    /// Picks the generation that answers, following `dispatch`.
    ///
    /// # Errors
    /// [`ResolveError`] when the service cannot answer.
    pub fn resolve(&self, dispatch: Dispatch<'_>) -> Result<Arc<Generation>, ResolveError> {
        if let Some(reason) = &self.start_aborted_reason {
            return Err(ResolveError::Aborted(self.id.clone(), reason.clone()));
        }
        if !self.enabled {
            return Err(ResolveError::Disabled(self.id.clone()));
        }
        let id = match dispatch {
            Dispatch::Forced(g) => {
                return GenerationId::new(g).ok().and_then(|g| self.generations.get(&g).cloned()).ok_or_else(|| {
                    match self.unusable.get(g) {
                        Some(why) => ResolveError::UnusableGeneration(self.id.clone(), g.to_owned(), why.clone()),
                        None => ResolveError::UnknownGeneration(self.id.clone(), g.to_owned()),
                    }
                });
            }
            Dispatch::Key(k) => self.mapping.for_key(k),
            Dispatch::Random => self.mapping.random(),
        };
        id.and_then(|g| self.generations.get(g).cloned())
            .ok_or_else(|| ResolveError::NoActiveGeneration(self.id.clone()))
    }
}

/// Every service, swapped whole when it changes.
#[derive(Debug, Default)]
pub struct Registry {
    dir: std::path::PathBuf,
    services: ArcSwap<BTreeMap<ServiceId, Arc<Service>>>,
}

impl Registry {
    /// Loads every service under `<data_dir>/services`. A service with
    /// problems is kept with its `start_aborted_reason`; the others serve.
    pub fn load(data_dir: &Path) -> Registry {
        let dir = data_dir.join("services");
        let services = loader::load_services(&dir);
        Registry { dir, services: ArcSwap::from_pointee(services) }
    }

    /// `<data_dir>/services`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads service `id` from disk again, reusing the generations already
    /// loaded (they are immutable), and puts it in place of the old one.
    /// Requests holding the old one finish with it.
    pub fn reload(&self, id: &ServiceId) -> Arc<Service> {
        let reuse = self.services.load().get(id).map(|s| s.generations.clone()).unwrap_or_default();
        let service = Arc::new(loader::load_service_reusing(&self.dir.join(id.as_str()), id.clone(), &reuse));
        self.services.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            map.insert(id.clone(), service.clone());
            map
        });
        service
    }

    /// Removes service `id` from what is served.
    pub fn remove(&self, id: &ServiceId) {
        self.services.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            map.remove(id);
            map
        });
    }

    /// The service holding a user API key with this secret, and the key's id
    /// (to tell a user key on the admin API from an unknown one).
    pub fn find_user_key(&self, header: &[u8], hasher: &crate::auth::KeyHasher) -> Option<(ServiceId, String)> {
        self.services.load().values().find_map(|s| match s.auth.check(Some(header), hasher) {
            Ok(Some(key)) => Some((s.id.clone(), key.id.clone())),
            _ => None,
        })
    }

    /// The service `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<Arc<Service>> {
        let id = ServiceId::new(id).ok()?;
        self.services.load().get(&id).cloned()
    }

    /// A snapshot of every service.
    pub fn snapshot(&self) -> Arc<BTreeMap<ServiceId, Arc<Service>>> {
        self.services.load_full()
    }
}
