//! The registry's files as they are on disk: `services/<id>/service.json` and
//! `services/<id>/generations/<gen>/generation.json`. Plain serde structs;
//! the loader validates them and builds the registry. Nothing here reads files.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::spec::ExplanationDefaults;

/// `service.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceFile {
    /// Whether the service answers predictions.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Which generations answer, with which probabilities.
    #[serde(default)]
    pub mapping: MappingFile,
    /// Written in every audit message of this service (audit routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// Raises the node's audit durability for this service's records
    /// (`WRITTEN` or `FSYNC`; never lowers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_durability: Option<String>,
    /// What the audit trail keeps of callers' data (docs/privacy.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_policy: Option<Value>,
    /// Who may call the user API.
    #[serde(default)]
    pub auth: AuthFile,
    /// Free-form properties and tags, set through the admin API.
    #[serde(default)]
    pub metadata: MetadataFile,
}

fn yes() -> bool {
    true
}

/// The generation mapping: `{"entries": [{"generation": "v1", "proba": 1.0}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// The entries; their probabilities sum to 1.
    #[serde(default)]
    pub entries: Vec<MappingEntryFile>,
}

/// One mapping entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingEntryFile {
    /// A generation id of this service.
    pub generation: String,
    /// The share of traffic, 0..=1.
    pub proba: f64,
}

/// Authentication of the user API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthFile {
    /// `PUBLIC` (default) or `API_KEYS`.
    #[serde(default)]
    pub method: AuthMethod,
    /// With `API_KEYS`: the accepted keys, hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<UserKeyFile>,
}

/// `PUBLIC` or `API_KEYS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethod {
    /// Anyone may call.
    #[default]
    Public,
    /// A key of the service is required.
    ApiKeys,
}

/// A user API key as stored: never the secret, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserKeyFile {
    /// A public identifier, written in audit records.
    pub id: String,
    /// A human label ("partner-a"), written in audit records.
    #[serde(default)]
    pub label: Option<String>,
    /// HMAC-SHA256 of the secret with the node's pepper (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<String>,
    /// Plain SHA-256 of the secret (earlier versions; still accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<u64>,
}

/// Service metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataFile {
    /// Key-value properties.
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `generation.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerationFile {
    /// Must equal the folder name.
    pub generation_id: String,
    /// Creation time, epoch milliseconds (default: the file's modification time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<u64>,
    /// The endpoints.
    pub endpoints: Vec<EndpointFile>,
}

/// One endpoint of a generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointFile {
    /// The endpoint id (second path segment of the user API).
    pub id: String,
    /// Only `STD_PREDICTION` so far.
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    /// The model file, relative to the generation folder.
    pub model: String,
    /// Explanation defaults, overridable per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanations: Option<ExplanationDefaultsFile>,
}

/// Endpoint kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndpointKind {
    /// A prediction model (Dataiku's visual prediction endpoint).
    StdPrediction,
}

/// Serialisable mirror of [`ExplanationDefaults`] (which is only `Deserialize`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExplanationDefaultsFile(pub Value);

impl ExplanationDefaultsFile {
    /// Parses the defaults.
    ///
    /// # Errors
    /// serde's message when the object has the wrong shape.
    pub fn parse(&self) -> Result<ExplanationDefaults, serde_json::Error> {
        serde_json::from_value(self.0.clone())
    }
}
