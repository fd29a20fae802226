"""Independent check of apinode's OpenAPI documents (tests/integration/observe.rs).

For each service: fetch GET /public/api/v1/<service>/openapi.json, validate it
with openapi-spec-validator (OpenAPI 3.1), then build a request body for every
predict operation from the document alone (each required feature: the first
level of a category's enum, 1.0 for a number), send it, and check that the
answer is 200 and matches the document's response schema (jsonschema, as the
validator uses it).

    python openapi_check.py BASE_URL SERVICE...
Prints one line per operation; exits 1 on the first failure.
"""
import json
import sys

import jsonschema
import requests
from openapi_spec_validator import validate


def resolve(doc, schema):
    while "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def example(doc, schema):
    schema = resolve(doc, schema)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "enum" in schema:
        return next(v for v in schema["enum"] if v is not None)
    if "object" in types:
        props = schema.get("properties", {})
        wanted = schema.get("required", list(props))
        return {k: example(doc, props[k]) for k in wanted if k in props}
    if "array" in types:
        return [example(doc, schema["items"])]
    if "number" in types:
        return 1.0
    if "integer" in types:
        return 1
    if "string" in types:
        return "x"
    return None


def main():
    base, services = sys.argv[1], sys.argv[2:]
    for service in services:
        doc = requests.get(f"{base}/public/api/v1/{service}/openapi.json", timeout=10).json()
        validate(doc)
        posts = [(p, op["post"]) for p, op in doc["paths"].items() if "post" in op]
        assert posts, f"{service}: no operation"
        for path, op in posts:
            body_schema = op["requestBody"]["content"]["application/json"]["schema"]
            body = example(doc, body_schema)
            answer = requests.post(base + path, json=body, timeout=10)
            if answer.status_code != 200:
                print(f"FAIL {service} {path}: {answer.status_code} {answer.text} for {json.dumps(body)}")
                sys.exit(1)
            response_schema = dict(resolve(doc, op["responses"]["200"]["content"]["application/json"]["schema"]))
            response_schema["components"] = doc["components"]
            # $refs resolve against the document's components.
            resolver_doc = {"components": doc["components"], **response_schema}
            jsonschema.validate(answer.json(), resolver_doc, cls=jsonschema.Draft202012Validator)
            got = answer.json()
            result = got.get("result") or (got.get("results") or [got])[0]
            print(f"ok {service} {path} -> {json.dumps(result.get('prediction', result.get('accepted')))}")


if __name__ == "__main__":
    main()
