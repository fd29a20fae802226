//! Applying a service's audit policy to what a record copies from the
//! caller (docs/privacy.md): its features, its context, the explanations of
//! its result, and the body excerpt of a failure record. Pure but for the
//! HMAC keys it is given. On the request path nothing is copied: a record's
//! features and context are serialised straight from the caller's maps
//! through a [`View`], each protected value made as it is written, and what
//! is kept of a value (a field kept as sent, a truncated text) is borrowed.

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::SerializeMap as _;
use serde_json::{Map, Value};

use super::hmac_keys::HmacKeys;
use super::policy::{Action, AuditPolicy, FieldPath, Rule, Rules};

/// What a query record keeps of a caller's data, besides its features.
#[derive(Debug)]
pub struct Applied<'a> {
    /// The context.
    pub context: Option<View<'a>>,
    /// The result.
    pub result: Cow<'a, Map<String, Value>>,
}

/// One value as the trail keeps it.
#[derive(Debug)]
enum Shown<'a> {
    /// As sent.
    Value(&'a Value),
    /// A text: a mask, or the start of the caller's text.
    Text(&'a str),
    /// A made text: an HMAC token, a truncated non-text value.
    Made(String),
    /// The lower bound of a bucket.
    Number(f64),
    /// `null`.
    Null,
}

impl Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Value(v) => v.serialize(serializer),
            Shown::Text(t) => serializer.serialize_str(t),
            Shown::Made(t) => serializer.serialize_str(t),
            Shown::Number(n) => serializer.serialize_f64(*n),
            Shown::Null => serializer.serialize_unit(),
        }
    }
}

/// The first `n` characters of `text`, borrowed.
fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(at, _)| &text[..at])
}

/// One value under one action; `None`: the field is dropped.
fn transform<'v>(action: Action, value: &'v Value, keys: &HmacKeys) -> Option<Shown<'v>> {
    Some(match action {
        Action::Keep => Shown::Value(value),
        Action::Drop => return None,
        Action::Mask => Shown::Text("***"),
        Action::Hmac => Shown::Made(keys.token(value)),
        Action::Truncate(n) => match value {
            Value::String(s) => Shown::Text(first_chars(s, n)),
            Value::Null => Shown::Null,
            other => Shown::Made(first_chars(&other.to_string(), n).to_owned()),
        },
        Action::Bucket(w) => {
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match number.filter(|n| n.is_finite()) {
                // A bound too large for JSON (a width near f64's limits) is not shown.
                Some(n) => Some((n / w).floor() * w).filter(|low| low.is_finite()).map_or(Shown::Null, Shown::Number),
                // Not a number: nothing can be bucketed, nothing is shown.
                None if value.is_null() => Shown::Null,
                None => Shown::Text("***"),
            }
        }
    })
}

/// A map of the caller's (a record's features, or its context) as a
/// policy keeps it, serialised straight from the map: protected values are
/// made as they are written, and nothing else is copied (the policy's
/// cost on the request path).
///
/// Paths inside one another (`context.user` and `context.user.note`): an
/// action other than KEEP on the outer one applies to its whole value;
/// inside an outer value that is kept (listed as KEEP, or by default), the
/// inner paths' actions apply, and under `"default": "DROP"` only listed
/// inner paths are kept, an object left with none of them being dropped.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    map: &'a Map<String, Value>,
    rules: &'a Rules,
    default_drop: bool,
    keys: &'a HmacKeys,
}

/// What a view writes for one key.
enum Entry<'a> {
    Omit,
    Keep(&'a Value),
    Apply(Action, &'a Value),
    Inside(View<'a>),
}

impl<'a> View<'a> {
    /// A record's features under `policy`.
    pub fn features(policy: &'a AuditPolicy, keys: &'a HmacKeys, map: &'a Map<String, Value>) -> Self {
        View { map, rules: &policy.feature_rules, default_drop: policy.default_drop, keys }
    }

    /// A record's context under `policy`.
    pub fn context(policy: &'a AuditPolicy, keys: &'a HmacKeys, map: &'a Map<String, Value>) -> Self {
        View { map, rules: &policy.context_rules, default_drop: policy.default_drop, keys }
    }

    fn entry(&self, rule: Option<&'a Rule>, value: &'a Value) -> Entry<'a> {
        let Some(rule) = rule else {
            return if self.default_drop { Entry::Omit } else { Entry::Keep(value) };
        };
        match rule.action {
            Some(Action::Keep) | None => {}
            Some(action) => return Entry::Apply(action, value),
        }
        let kept_whole = rule.action == Some(Action::Keep);
        match value {
            Value::Object(map) if !rule.inner.is_empty() => {
                let inner =
                    View { map, rules: &rule.inner, default_drop: self.default_drop && !kept_whole, keys: self.keys };
                if inner.default_drop && !inner.keeps_any() { Entry::Omit } else { Entry::Inside(inner) }
            }
            _ if kept_whole || !self.default_drop => Entry::Keep(value),
            _ => Entry::Omit,
        }
    }

    fn keeps_any(&self) -> bool {
        self.map.iter().any(|(k, v)| match self.entry(self.rules.get(k), v) {
            Entry::Omit | Entry::Apply(Action::Drop, _) => false,
            Entry::Keep(_) | Entry::Apply(..) | Entry::Inside(_) => true,
        })
    }
}

impl Serialize for View<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(None)?;
        for (k, v) in self.map {
            match self.entry(self.rules.get(k), v) {
                Entry::Omit => {}
                Entry::Keep(v) => out.serialize_entry(k, v)?,
                Entry::Apply(action, v) => {
                    if let Some(shown) = transform(action, v, self.keys) {
                        out.serialize_entry(k, &shown)?;
                    }
                }
                Entry::Inside(inner) => out.serialize_entry(k, &inner)?,
            }
        }
        out.end()
    }
}

/// A query record's copies of the caller's data under `policy`.
pub fn query<'a>(
    policy: &'a AuditPolicy,
    keys: &'a HmacKeys,
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
    Applied { context: context_map.map(|c| View::context(policy, keys, c)), result }
}

/// A failure record's body under `policy`: the parsed body with every
/// item's features and context protected, as JSON text; `None` when it
/// must not be kept (it did not parse, and the policy protects something:
/// its fields cannot be found in it, so none of it is kept).
pub fn body(policy: &AuditPolicy, keys: &HmacKeys, raw: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(raw) else {
        return (!policy.protects()).then(|| String::from_utf8_lossy(raw).into_owned());
    };
    // A view always serialises (its keys are strings): the fallback is never taken.
    let protected = |view: View<'_>| serde_json::to_value(view).unwrap_or_default();
    let protect = |item: &mut Map<String, Value>| {
        for (name, is_features) in [("features", true), ("context", false)] {
            let kept = match item.get(name) {
                Some(Value::Object(m)) if is_features => Some(protected(View::features(policy, keys, m))),
                Some(Value::Object(m)) => Some(protected(View::context(policy, keys, m))),
                _ if policy.protects() => None,
                _ => continue,
            };
            match kept {
                Some(k) => item.insert(name.into(), k),
                None => item.remove(name),
            };
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

    fn json_of(view: View<'_>) -> Value {
        serde_json::to_value(view).expect("json")
    }

    #[test]
    fn each_action_does_what_it_says_and_the_rest_is_kept_or_dropped_by_default() {
        let (p, keys, _d) = setup(json!({"fields": {"features.ssn": "HMAC", "features.email": "MASK",
            "features.income": "BUCKET:10000", "features.name": "TRUNCATE:1", "features.city": "TRUNCATE:3",
            "features.zip": "TRUNCATE:2", "context.user.note": "DROP", "result.explanations": "DROP"}}));
        let f = obj(json!({"ssn": "123-45-6789", "email": "a@b.c", "income": 53_210, "name": "Élodie", "age": 41,
            "city": "Lyon", "zip": 69001}));
        let c = obj(json!({"user": {"note": "secret", "tier": "gold"}}));
        let r = obj(json!({"prediction": "yes", "explanations": {"age": 0.2}}));
        let a = query(&p, &keys, Some(&c), &r);
        let view = json_of(View::features(&p, &keys, &f));
        assert_eq!(view["ssn"], json!(keys.token(&json!("123-45-6789"))));
        assert_eq!(view["email"], "***");
        assert_eq!(view["income"], json!(50000.0));
        assert_eq!(view["name"], "É", "characters, not bytes");
        assert_eq!(view["city"], "Lyo");
        assert_eq!(view["zip"], "69", "a number truncated as its text");
        assert_eq!(view["age"], 41);
        assert_eq!(a.context.map(json_of), Some(json!({"user": {"tier": "gold"}})));
        assert!(!a.result.contains_key("explanations") && a.result["prediction"] == "yes");
        let (p, keys, _d) =
            setup(json!({"default": "DROP", "fields": {"features.age": "KEEP", "context.user.tier": "KEEP"}}));
        let a = query(&p, &keys, Some(&c), &r);
        assert_eq!(json_of(View::features(&p, &keys, &f)), json!({"age": 41}));
        assert_eq!(a.context.map(json_of), Some(json!({"user": {"tier": "gold"}})));
        assert!(matches!(a.result, Cow::Borrowed(_)));
    }

    #[test]
    fn buckets_show_numbers_and_hide_the_rest() {
        let (p, keys, _d) = setup(json!({"fields": {"features.a": "BUCKET:10", "features.b": "BUCKET:10",
            "features.c": "BUCKET:10", "features.d": "BUCKET:10", "features.e": "BUCKET:1e-300"}}));
        let f = obj(json!({"a": -3, "b": " 47.5 ", "c": "many", "d": null, "e": 1e300}));
        assert_eq!(
            json_of(View::features(&p, &keys, &f)),
            json!({"a": -10.0, "b": 40.0, "c": "***", "d": null, "e": null})
        );
    }

    #[test]
    fn paths_inside_one_another_follow_the_outer_action() {
        let c = obj(json!({"user": {"note": "secret", "tier": "gold", "id": 7}, "other": {"x": 1}, "flat": 3}));
        // The outer one protected: it applies to the whole value.
        let (p, keys, _d) = setup(json!({"fields": {"context.user": "MASK", "context.user.tier": "KEEP"}}));
        assert_eq!(json_of(View::context(&p, &keys, &c)), json!({"user": "***", "other": {"x": 1}, "flat": 3}));
        // The outer one kept: the inner actions apply, the rest of it is kept even under DROP.
        let (p, keys, _d) =
            setup(json!({"default": "DROP", "fields": {"context.user": "KEEP", "context.user.note": "DROP"}}));
        assert_eq!(json_of(View::context(&p, &keys, &c)), json!({"user": {"tier": "gold", "id": 7}}));
        // Under DROP, an object none of whose listed paths is present is dropped, and a
        // listed path under a value that is not an object finds nothing.
        let (p, keys, _d) = setup(
            json!({"default": "DROP", "fields": {"context.other.y": "KEEP", "context.flat.z": "KEEP", "context.user.id": "HMAC"}}),
        );
        assert_eq!(json_of(View::context(&p, &keys, &c)), json!({"user": {"id": keys.token(&json!(7))}}));
        // Under KEEP, the same paths change nothing.
        let (p, keys, _d) = setup(json!({"fields": {"context.other.y": "MASK", "context.flat.z": "MASK"}}));
        assert_eq!(json_of(View::context(&p, &keys, &c)), Value::Object(c.clone()));
    }

    #[test]
    fn bodies_are_protected_like_records_or_withheld() {
        let (p, keys, _d) = setup(json!({"fields": {"features.ssn": "MASK", "context.phone": "DROP"}}));
        let b = body(&p, &keys, br#"{"items": [{"features": {"ssn": "1"}, "context": {"phone": "06"}}, {"features": {"ssn": "2", "age": 3}}, 5]}"#)
            .expect("kept");
        let b: Value = serde_json::from_str(&b).expect("json");
        assert_eq!(
            b,
            json!({"items": [{"features": {"ssn": "***"}, "context": {}}, {"features": {"ssn": "***", "age": 3}}, null]})
        );
        let b = body(&p, &keys, br#"{"features": "not an object", "context": {"phone": "06", "k": 1}}"#).expect("kept");
        assert_eq!(serde_json::from_str::<Value>(&b).expect("json"), json!({"context": {"k": 1}}));
        assert_eq!(body(&p, &keys, br#"{"features": {"ssn": "12"#), None, "unparsable: withheld");
    }
}
