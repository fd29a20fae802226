//! A service's OpenAPI 3.1 document (docs/monitoring.md "OpenAPI"): the
//! predict, predict-multi, predict-simple and feedback operations of every
//! endpoint
//! its mapping sends traffic to, each feature typed from the model (number,
//! or category with its known levels), the result shaped by the prediction
//! type, and the error body. Pure: built from the loaded service, no I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::Model;
use crate::model::features::FeatureDoc;
use crate::model::spec::PredictionType;
use crate::registry::Service;

fn feature_schema(f: &FeatureDoc<'_>) -> Value {
    let mut types = vec![json!(if f.numeric { "number" } else { "string" })];
    if !f.required {
        types.push(json!("null"));
    }
    let mut schema = json!({"type": types});
    if f.numeric {
        schema["description"] = json!("A number (a text that reads as one is taken too).");
    } else {
        let mut levels: Vec<Value> = f.levels.iter().map(|l| json!(l)).collect();
        if !f.required {
            levels.push(Value::Null);
        }
        schema["enum"] = Value::Array(levels);
        schema["description"] = json!(if f.unseen_refused {
            "One of the levels the model was trained on; another level is not scored (ignored: UNSEEN_CATEGORY)."
        } else {
            "One of the levels the model was trained on (another level is scored as none of them)."
        });
    }
    schema
}

fn features_schema(model: &Model) -> Value {
    let docs = model.preprocessor().describe();
    let properties: Map<String, Value> = docs.iter().map(|f| (f.name.to_owned(), feature_schema(f))).collect();
    let required: Vec<&str> = docs.iter().filter(|f| f.required).map(|f| f.name).collect();
    json!({"type": "object", "properties": properties, "required": required,
           "additionalProperties": true,
           "description": "The model's features; other keys are accepted and ignored, as Dataiku does."})
}

fn result_schema(model: &Model) -> Value {
    let mut props = json!({
        "ignored": {"type": "boolean"},
        "ignoreReason": {"type": "string", "enum": ["MISSING_FEATURE", "UNSEEN_CATEGORY", "INVALID_FEATURE", "SCORING_FAILED"]},
        "requestId": {"type": "string"},
        "explanations": {"type": "object", "additionalProperties": {"type": "number"}},
    });
    match model.prediction_type() {
        PredictionType::Regression => props["prediction"] = json!({"type": "number"}),
        _ => {
            props["prediction"] = json!({"type": "string", "enum": model.classes()});
            let probas: Map<String, Value> =
                model.classes().iter().map(|c| (c.clone(), json!({"type": "number"}))).collect();
            props["probas"] = json!({"type": "object", "properties": probas});
            if model.prediction_type() == PredictionType::BinaryClassification {
                props["probaPercentile"] = json!({"type": "integer", "minimum": 1, "maximum": 100});
            }
        }
    }
    json!({"type": "object", "properties": props, "required": ["ignored"]})
}

fn json_body(schema: &str) -> Value {
    json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn responses(ok: &str) -> Value {
    let error = json_body("Error");
    let mut r = json!({"200": {"description": "Scored", "headers": {"X-Request-Id": {"schema": {"type": "string"}}}}});
    r["200"]["content"] = json_body(ok)["content"].clone();
    for (code, what) in [
        ("400", "The request is not valid (the message names the field)"),
        ("401", "A user API key is required or not valid"),
        ("404", "No such service, endpoint or generation"),
        ("408", "The body was not received in time"),
        ("413", "The body or the number of items is over the node's limits"),
        ("429", "Too many failed keys from this address"),
        ("503", "The request could not be recorded in the audit trail"),
    ] {
        r[code] = json!({"description": what});
        r[code]["content"] = error["content"].clone();
    }
    r
}

/// The document of `service`.
pub fn document(service: &Service) -> Value {
    // Endpoints of the generations traffic goes to (the newest first wins
    // when two describe the same endpoint).
    let mut endpoints: BTreeMap<String, &Model> = BTreeMap::new();
    let mut generations: Vec<&str> = Vec::new();
    for (g, share) in service.mapping.entries().iter().rev() {
        let Some(generation) = service.generations.get(g).filter(|_| *share > 0.0) else { continue };
        generations.push(g.as_str());
        for (id, ep) in &generation.endpoints {
            endpoints.entry(id.as_str().to_owned()).or_insert(&ep.model);
        }
    }
    let sid = service.id.as_str();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["errorType", "message"],
               "properties": {"errorType": {"type": "string"}, "message": {"type": "string"}}}),
    );
    schemas.insert(
        "FeedbackRequest".into(),
        json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "minItems": 1,
            "items": {"type": "object", "required": ["requestId", "outcome"], "additionalProperties": false,
                "properties": {"requestId": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                    "outcome": {"type": ["string", "number"]},
                    "time": {"type": "string", "format": "date-time"},
                    "weight": {"type": "number", "minimum": 0}}}}}}),
    );
    schemas.insert(
        "FeedbackAnswer".into(),
        json!({"type": "object", "required": ["accepted"], "properties": {"accepted": {"type": "integer"}}}),
    );
    let api_context = json!({"type": "object", "properties": {"serviceId": {"type": "string"},
        "endpointId": {"type": "string"}, "serviceGeneration": {"type": "string"}}});
    for (ep, model) in &endpoints {
        let name = |what: &str| {
            format!("{ep}.{what}").replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '_', "_")
        };
        let (features, result) = (name("Features"), name("Result"));
        schemas.insert(features.clone(), features_schema(model));
        schemas.insert(result.clone(), result_schema(model));
        let feats_ref = json!({"$ref": format!("#/components/schemas/{features}")});
        let result_ref = json!({"$ref": format!("#/components/schemas/{result}")});
        let dispatch = json!({"type": "object", "properties": {"forcedGeneration": {"type": "string"},
            "dispatchKey": {"type": "string"}}});
        let item = json!({"type": "object", "required": ["features"],
            "properties": {"features": feats_ref, "context": {"type": "object"}}});
        schemas.insert(
            name("Request"),
            json!({"type": "object", "required": ["features"], "properties": {
            "features": feats_ref, "context": {"type": "object"}, "dispatch": dispatch,
            "explanations": {"type": "object"}}}),
        );
        schemas.insert(
            name("MultiRequest"),
            json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "minItems": 1, "items": item}, "dispatch": dispatch,
            "explanations": {"type": "object"}}}),
        );
        schemas.insert(
            name("Answer"),
            json!({"type": "object", "required": ["result"], "properties": {
            "result": result_ref, "timing": {"type": "object"}, "apiContext": api_context}}),
        );
        schemas.insert(name("MultiAnswer"), json!({"type": "object", "required": ["results"], "properties": {
            "results": {"type": "array", "items": result_ref}, "timing": {"type": "object"}, "apiContext": api_context}}));
        let base = format!("/public/api/v1/{sid}/{ep}");
        let mut predict = json!({"operationId": format!("{ep}-predict"), "summary": format!("Score one record with {ep}"),
            "parameters": [{"name": "X-Request-Id", "in": "header", "required": false,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}}],
            "responses": responses(&name("Answer"))});
        predict["requestBody"] = json_body(&name("Request"));
        predict["requestBody"]["required"] = json!(true);
        let mut multi = predict.clone();
        multi["operationId"] = json!(format!("{ep}-predict-multi"));
        multi["summary"] = json!(format!("Score several records with {ep} (each gets <X-Request-Id>-<index>)"));
        multi["requestBody"] = json_body(&name("MultiRequest"));
        multi["requestBody"]["required"] = json!(true);
        multi["responses"] = responses(&name("MultiAnswer"));
        let params: Vec<Value> = model
            .preprocessor()
            .describe()
            .iter()
            .map(|f| json!({"name": f.name, "in": "query", "required": false, "schema": {"type": "string"}}))
            .collect();
        let simple = json!({"operationId": format!("{ep}-predict-simple"),
            "summary": format!("Score one record with {ep}, features as query parameters (text)"),
            "parameters": params, "responses": responses(&name("Answer"))});
        let mut feedback = json!({"operationId": format!("{ep}-feedback"),
            "summary": format!("Send outcomes of {ep}'s predictions (the feedback loop)"),
            "responses": responses("FeedbackAnswer")});
        feedback["requestBody"] = json_body("FeedbackRequest");
        feedback["requestBody"]["required"] = json!(true);
        paths.insert(format!("{base}/feedback"), json!({"post": feedback}));
        paths.insert(format!("{base}/predict"), json!({"post": predict}));
        paths.insert(format!("{base}/predict-multi"), json!({"post": multi}));
        paths.insert(format!("{base}/predict-simple"), json!({"get": simple}));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": format!("apinode service {sid}"), "version": generations.join(","),
                 "description": "Predictions of this service, as the apinode answers them (Dataiku's API node wire format)."},
        "paths": paths,
        "components": {"schemas": schemas},
    });
    if service.auth.requires_key() {
        doc["components"]["securitySchemes"] = json!({"basic": {"type": "http", "scheme": "basic",
            "description": "The user API key as the user name, no password"}, "bearer": {"type": "http", "scheme": "bearer"}});
        doc["security"] = json!([{"basic": []}, {"bearer": []}]);
    }
    doc
}
