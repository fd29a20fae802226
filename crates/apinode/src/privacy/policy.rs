//! A service's `auditPolicy` (docs/privacy.md "The policy"): what the audit
//! trail keeps of each field of a query (KEEP, DROP, MASK, HMAC,
//! TRUNCATE:n, BUCKET:w), the default for fields not listed, and the
//! sampling rate of query records. [`AuditPolicy::parse`] is pure and
//! reports every problem with its path; applying a policy is
//! [`super::apply`]'s.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// What the trail keeps of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// As sent.
    Keep,
    /// Absent.
    Drop,
    /// `"***"`.
    Mask,
    /// `"hmac-sha256:<keyId>:<hex>"` under the node's current audit HMAC key.
    Hmac,
    /// Text cut to this many characters.
    Truncate(usize),
    /// A number replaced by the lower bound of its bucket of this width.
    Bucket(f64),
}

impl Action {
    fn parse(text: &str) -> Option<Action> {
        let (name, arg) = text.split_once(':').map_or((text, None), |(n, a)| (n, Some(a)));
        Some(match (name, arg) {
            ("KEEP", None) => Action::Keep,
            ("DROP", None) => Action::Drop,
            ("MASK", None) => Action::Mask,
            ("HMAC", None) => Action::Hmac,
            ("TRUNCATE", Some(n)) => Action::Truncate(n.parse().ok()?),
            ("BUCKET", Some(w)) => Action::Bucket(w.parse().ok().filter(|w: &f64| w.is_finite() && *w > 0.0)?),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Keep => f.write_str("KEEP"),
            Action::Drop => f.write_str("DROP"),
            Action::Mask => f.write_str("MASK"),
            Action::Hmac => f.write_str("HMAC"),
            Action::Truncate(n) => write!(f, "TRUNCATE:{n}"),
            Action::Bucket(w) => write!(f, "BUCKET:{w}"),
        }
    }
}

/// Where a field is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldPath {
    /// `features.<name>`: one feature, by its whole name.
    Feature(String),
    /// `context.<a.b.c>`: a value inside the caller's context.
    Context(Vec<String>),
    /// `result.explanations`.
    Explanations,
}

impl FieldPath {
    /// Reads `features.<name>`, `context.<dotted path>` or `result.explanations`.
    pub fn parse(text: &str) -> Option<FieldPath> {
        if let Some(name) = text.strip_prefix("features.").filter(|n| !n.is_empty()) {
            return Some(FieldPath::Feature(name.to_owned()));
        }
        if let Some(path) = text.strip_prefix("context.") {
            let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
            return parts.iter().all(|p| !p.is_empty()).then_some(FieldPath::Context(parts));
        }
        (text == "result.explanations").then_some(FieldPath::Explanations)
    }
}

/// The actions of listed paths as a tree by key, walked beside a record's
/// map: one level for features (a feature's name is taken whole, dots and
/// all), one per dotted part for the context.
///
/// Hashed with foldhash rather than std's SipHash: every key of every
/// record's features and context is looked up, and the keys hashed are the
/// caller's but the table is the policy's (a caller cannot grow it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules(foldhash::HashMap<String, Rule>);

/// What a policy says of one key: its own action if listed, and the
/// actions of paths inside it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// The action of this path, when it is listed.
    pub action: Option<Action>,
    /// The listed paths inside it.
    pub inner: Rules,
}

impl Rules {
    /// The rule of `key`, if some listed path starts with it.
    pub fn get(&self, key: &str) -> Option<&Rule> {
        self.0.get(key)
    }

    /// Whether no path is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn insert(&mut self, path: &[String], action: Action) {
        let Some((first, rest)) = path.split_first() else { return };
        let rule = self.0.entry(first.clone()).or_default();
        if rest.is_empty() { rule.action = Some(action) } else { rule.inner.insert(rest, action) }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPolicy {
    /// What happens to features and context fields not listed (KEEP or DROP).
    pub default_drop: bool,
    /// Actions by field.
    pub fields: BTreeMap<FieldPath, Action>,
    /// The `features.<name>` fields' actions, by name (looked up per
    /// feature of every record without allocating).
    pub feature_rules: Rules,
    /// The `context.<dotted path>` fields' actions, as a tree by key.
    pub context_rules: Rules,
    /// Share of query records kept, in (0, 1].
    pub rate: f64,
}

impl AuditPolicy {
    /// Reads an `auditPolicy` value.
    ///
    /// # Errors
    /// Every problem, as `(path, message)` with paths such as
    /// `fields.features.ssn`.
    pub fn parse(value: &Value) -> Result<AuditPolicy, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut policy = AuditPolicy {
            default_drop: false,
            fields: BTreeMap::new(),
            feature_rules: Rules::default(),
            context_rules: Rules::default(),
            rate: 1.0,
        };
        let Some(o) = value.as_object() else {
            return Err(vec![(String::new(), "must be an object: {\"default\", \"fields\", \"sampling\"}".into())]);
        };
        for (key, v) in o {
            match key.as_str() {
                "default" => match v.as_str() {
                    Some("KEEP") => policy.default_drop = false,
                    Some("DROP") => policy.default_drop = true,
                    _ => problems.push(("default".into(), "must be KEEP or DROP".into())),
                },
                "fields" => match v.as_object() {
                    Some(fields) => {
                        for (path, action) in fields {
                            let at = format!("fields.{path}");
                            let Some(p) = FieldPath::parse(path) else {
                                problems.push((
                                    at,
                                    "is not features.<name>, context.<dotted path> or result.explanations".into(),
                                ));
                                continue;
                            };
                            match action.as_str().and_then(Action::parse) {
                                Some(a) if p == FieldPath::Explanations && !matches!(a, Action::Keep | Action::Drop) => {
                                    problems.push((at, "result.explanations can only be KEEP or DROP".into()));
                                }
                                Some(a) => {
                                    policy.fields.insert(p, a);
                                }
                                None => problems.push((
                                    at,
                                    format!(
                                        "{action} is not an action (KEEP, DROP, MASK, HMAC, TRUNCATE:<characters>, BUCKET:<width > 0>)"
                                    ),
                                )),
                            }
                        }
                    }
                    None => problems.push(("fields".into(), "must be an object of path: action".into())),
                },
                "sampling" => {
                    let rate = v.get("rate").and_then(Value::as_f64);
                    let only_rate = v.as_object().is_some_and(|s| s.keys().all(|k| k == "rate"));
                    match rate.filter(|r| *r > 0.0 && *r <= 1.0) {
                        Some(r) if only_rate => policy.rate = r,
                        _ => problems
                            .push(("sampling.rate".into(), "must be a number in (0, 1]: {\"rate\": 0.1}".into())),
                    }
                }
                other => problems.push((other.into(), "unknown key (known: default, fields, sampling)".into())),
            }
        }
        problems.sort();
        for (path, action) in &policy.fields {
            match path {
                FieldPath::Feature(name) => policy.feature_rules.insert(std::slice::from_ref(name), *action),
                FieldPath::Context(parts) => policy.context_rules.insert(parts, *action),
                FieldPath::Explanations => {}
            }
        }
        if problems.is_empty() { Ok(policy) } else { Err(problems) }
    }

    /// Whether it changes anything (a policy that keeps everything and
    /// samples nothing out costs nothing).
    pub fn is_noop(&self) -> bool {
        !self.default_drop && self.rate >= 1.0 && self.fields.values().all(|a| *a == Action::Keep)
    }

    /// Whether some field is protected (anything but KEEP, or DROP by default).
    pub fn protects(&self) -> bool {
        self.default_drop || self.fields.values().any(|a| *a != Action::Keep)
    }

    /// Whether the query record of `request_id` is kept: decided from the
    /// SHA-256 of the id, so every stream, target and retry agrees.
    pub fn keeps(&self, request_id: &str) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        let digest = Sha256::digest(request_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The top 53 bits as a fraction in [0, 1).
        let x = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        x < self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_policy_reads_and_every_problem_is_named() {
        let p = AuditPolicy::parse(&json!({"default": "DROP", "fields": {"features.ssn": "HMAC",
            "features.income": "BUCKET:10000", "context.user.name": "TRUNCATE:1", "result.explanations": "DROP"},
            "sampling": {"rate": 0.5}}))
        .expect("valid");
        assert!(p.default_drop && p.rate == 0.5);
        assert_eq!(p.fields[&FieldPath::Context(vec!["user".into(), "name".into()])], Action::Truncate(1));
        let e = AuditPolicy::parse(&json!({"default": "MAYBE", "fields": {"feature.x": "KEEP", "features.y": "HASH",
            "result.explanations": "MASK"}, "sampling": {"rate": 0}, "colour": 1}))
        .unwrap_err();
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "colour",
                "default",
                "fields.feature.x",
                "fields.features.y",
                "fields.result.explanations",
                "sampling.rate"
            ]
        );
    }

    #[test]
    fn sampling_is_a_pure_function_of_the_request_id() {
        let mut p = AuditPolicy::parse(&json!({})).expect("empty policy");
        p.rate = 0.1;
        let kept = (0..20_000).filter(|i| p.keeps(&format!("r-{i}"))).count();
        assert!((1_800..=2_200).contains(&kept), "{kept}");
        assert_eq!(p.keeps("r-42"), p.keeps("r-42"));
    }
}
