//! Applying a service's audit policy to what a record copies from the
//! caller (docs/privacy.md): its features, its context, the explanations of
//! its result, and the body excerpt of a failure record. Pure but for the
//! HMAC keys it is given. A field a policy does not touch is borrowed, not
//! copied.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::hmac_keys::HmacKeys;
use super::policy::{Action, AuditPolicy, FieldPath};

/// What a query record keeps of a caller's data.
#[derive(Debug)]
pub struct Applied<'a> {
    /// The context.
    pub context: Option<Cow<'a, Map<String, Value>>>,
    /// The result.
    pub result: Cow<'a, Map<String, Value>>,
}

/// One value under one action; `None`: the field is dropped.
pub fn transform(action: Action, value: &Value, keys: &HmacKeys) -> Option<Value> {
    Some(match action {
        Action::Keep => value.clone(),
        Action::Drop => return None,
        Action::Mask => Value::String("***".into()),
        Action::Hmac => Value::String(keys.token(value)),
        Action::Truncate(n) => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => return Some(Value::Null),
                other => other.to_string(),
            };
            Value::String(text.chars().take(n).collect())
        }
        Action::Bucket(w) => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match number.filter(|n| n.is_finite()) {
                Some(n) => {
                    let low = (n / w).floor() * w;
                    serde_json::Number::from_f64(low).map_or(Value::Null, Value::Number)
                }
                // Not a number: nothing can be bucketed, nothing is shown.
                None if value.is_null() => Value::Null,
                None => Value::String("***".into()),
            }
        }
    })
}

/// A record's features under a policy, serialised straight from the
/// caller's map: protected values are made as they are written, and
/// nothing else is copied (the policy's cost on the request path).
#[derive(Debug, Clone, Copy)]
pub struct FeatureView<'a> {
    map: &'a Map<String, Value>,
    policy: &'a AuditPolicy,
    keys: &'a HmacKeys,
}

impl<'a> FeatureView<'a> {
    /// `map` as `policy` keeps it.
    pub fn new(policy: &'a AuditPolicy, keys: &'a HmacKeys, map: &'a Map<String, Value>) -> Self {
        FeatureView { map, policy, keys }
    }
}

impl serde::Serialize for FeatureView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let default = if self.policy.default_drop { Action::Drop } else { Action::Keep };
        let mut out = serializer.serialize_map(None)?;
        for (k, v) in self.map {
            match self.policy.feature_actions.get(k.as_str()).copied().unwrap_or(default) {
                Action::Keep => out.serialize_entry(k, v)?,
                Action::Drop => {}
                action => {
                    if let Some(t) = transform(action, v, self.keys) {
                        out.serialize_entry(k, &t)?;
                    }
                }
            }
        }
        out.end()
    }
}

/// `features` under `policy`.
fn features<'a>(policy: &AuditPolicy, keys: &HmacKeys, map: &'a Map<String, Value>) -> Cow<'a, Map<String, Value>> {
    let listed = |name: &str| policy.feature_actions.get(name).copied();
    if !policy.default_drop && !map.keys().any(|k| listed(k).is_some_and(|a| a != Action::Keep)) {
        return Cow::Borrowed(map);
    }
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let action = listed(k).unwrap_or(if policy.default_drop { Action::Drop } else { Action::Keep });
        if let Some(t) = transform(action, v, keys) {
            out.insert(k.clone(), t);
        }
    }
    Cow::Owned(out)
}

/// The value at `path` inside `map`, if any.
fn at<'m>(map: &'m Map<String, Value>, path: &[String]) -> Option<&'m Value> {
    let (first, rest) = path.split_first()?;
    let v = map.get(first)?;
    if rest.is_empty() { Some(v) } else { at(v.as_object()?, rest) }
}

/// Sets (or removes, with `None`) the value at `path`, creating objects.
fn put(map: &mut Map<String, Value>, path: &[String], value: Option<Value>) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        match value {
            Some(v) => {
                map.insert(first.clone(), v);
            }
            None => {
                map.remove(first);
            }
        }
        return;
    }
    let entry = map.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = entry {
        put(inner, rest, value);
    }
}

/// `context` under `policy`.
fn context<'a>(policy: &AuditPolicy, keys: &HmacKeys, map: &'a Map<String, Value>) -> Cow<'a, Map<String, Value>> {
    let listed: Vec<(&Vec<String>, Action)> = policy
        .fields
        .iter()
        .filter_map(|(p, a)| if let FieldPath::Context(path) = p { Some((path, *a)) } else { None })
        .collect();
    if policy.default_drop {
        let mut out = Map::new();
        for (path, action) in listed {
            if let Some(v) = at(map, path).and_then(|v| transform(action, v, keys)) {
                put(&mut out, path, Some(v));
            }
        }
        return Cow::Owned(out);
    }
    if !listed.iter().any(|(path, a)| *a != Action::Keep && at(map, path).is_some()) {
        return Cow::Borrowed(map);
    }
    let mut out = map.clone();
    for (path, action) in listed {
        if let Some(v) = at(map, path) {
            put(&mut out, path, transform(action, v, keys));
        }
    }
    Cow::Owned(out)
}

/// A query record's copies of the caller's data under `policy`.
pub fn query<'a>(
    policy: &AuditPolicy,
    keys: &HmacKeys,
    context_map: Option<&'a Map<String, Value>>,
    result: &'a Map<String, Value>,
) -> Applied<'a> {
    let drop_explanations = policy.fields.get(&FieldPath::Explanations) == Some(&Action::Drop);
    let result = if drop_explanations && result.contains_key("explanations") {
        let mut r = result.clone();
        r.remove("explanations");
        Cow::Owned(r)
    } else {
        Cow::Borrowed(result)
    };
    Applied { context: context_map.map(|c| context(policy, keys, c)), result }
}

/// A failure record's body under `policy`: the parsed body with every
/// item's features and context protected, as JSON text; `None` when it
/// must not be kept (it did not parse, and the policy protects something:
/// its fields cannot be found in it, so none of it is kept).
pub fn body(policy: &AuditPolicy, keys: &HmacKeys, raw: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(raw) else {
        return (!policy.protects()).then(|| String::from_utf8_lossy(raw).into_owned());
    };
    let protect = |item: &mut Map<String, Value>| {
        if let Some(Value::Object(f)) = item.get("features") {
            let f = features(policy, keys, f).into_owned();
            item.insert("features".into(), Value::Object(f));
        } else if policy.protects() {
            item.remove("features");
        }
        if let Some(Value::Object(c)) = item.get("context") {
            let c = context(policy, keys, c).into_owned();
            item.insert("context".into(), Value::Object(c));
        } else if policy.protects() {
            item.remove("context");
        }
    };
    protect(&mut v);
    if let Some(Value::Array(items)) = v.get_mut("items") {
        for item in items.iter_mut() {
            match item {
                Value::Object(o) => protect(o),
                _ if policy.protects() => *item = Value::Null,
                _ => {}
            }
        }
    }
    Some(Value::Object(v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup(policy: Value) -> (AuditPolicy, HmacKeys, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = HmacKeys::open(dir.path()).expect("keys");
        (AuditPolicy::parse(&policy).expect("policy"), keys, dir)
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn each_action_does_what_it_says_and_the_rest_is_kept_or_dropped_by_default() {
        let (p, keys, _d) = setup(json!({"fields": {"features.ssn": "HMAC", "features.email": "MASK",
            "features.income": "BUCKET:10000", "features.name": "TRUNCATE:1", "context.user.note": "DROP",
            "result.explanations": "DROP"}}));
        let f = obj(json!({"ssn": "123-45-6789", "email": "a@b.c", "income": 53_210, "name": "Alice", "age": 41}));
        let c = obj(json!({"user": {"note": "secret", "tier": "gold"}}));
        let r = obj(json!({"prediction": "yes", "explanations": {"age": 0.2}}));
        let a = query(&p, &keys, Some(&c), &r);
        let view = serde_json::to_value(FeatureView::new(&p, &keys, &f)).expect("json");
        assert_eq!(view["ssn"], json!(keys.token(&json!("123-45-6789"))));
        assert_eq!(view["email"], "***");
        assert_eq!(view["income"], json!(50000.0));
        assert_eq!(view["name"], "A");
        assert_eq!(view["age"], 41);
        assert_eq!(Value::Object(features(&p, &keys, &f).into_owned()), view, "bodies protect alike");
        assert_eq!(a.context.as_deref(), Some(&obj(json!({"user": {"tier": "gold"}}))));
        assert!(!a.result.contains_key("explanations") && a.result["prediction"] == "yes");
        let (p, keys, _d) =
            setup(json!({"default": "DROP", "fields": {"features.age": "KEEP", "context.user.tier": "KEEP"}}));
        let a = query(&p, &keys, Some(&c), &r);
        assert_eq!(serde_json::to_value(FeatureView::new(&p, &keys, &f)).expect("json"), json!({"age": 41}));
        assert_eq!(a.context.as_deref(), Some(&obj(json!({"user": {"tier": "gold"}}))));
        assert!(matches!(a.result, Cow::Borrowed(_)));
    }

    #[test]
    fn an_untouched_record_is_borrowed_and_bodies_are_protected_or_withheld() {
        let (p, keys, _d) = setup(json!({"fields": {"features.ssn": "MASK"}}));
        let f = obj(json!({"age": 3}));
        assert!(matches!(features(&p, &keys, &f), Cow::Borrowed(_)));
        let b = body(&p, &keys, br#"{"items": [{"features": {"ssn": "1"}}, {"features": {"ssn": "2", "age": 3}}]}"#)
            .expect("kept");
        assert!(!b.contains("\"1\"") && !b.contains("\"2\"") && b.contains("\"age\":3"), "{b}");
        assert_eq!(body(&p, &keys, br#"{"features": {"ssn": "12"#), None, "unparsable: withheld");
    }
}
