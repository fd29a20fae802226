# Shared by benches/load/run and benches/load/instructions (sourced): the
# request bodies and the ten-field audit policy both measure, a free port,
# and a policy put into a service's service.json.

# write_bodies DIR → DIR/one.json (one churn record with a context),
# DIR/multi.json (100 of them), DIR/wide.json (ten personal fields besides the
# features), DIR/policy-10.json (two fields each of HMAC, MASK, TRUNCATE,
# BUCKET, DROP over those).
write_bodies() {
    python3 - "$1" <<'PY'
import json, sys
record = {"features": {"tenure_months": 4, "monthly_charges": 95.5, "plan": "basic", "support_calls": 5}, "context": {"customer": 42}}
open(sys.argv[1] + "/one.json", "w").write(json.dumps(record))
open(sys.argv[1] + "/multi.json", "w").write(json.dumps({"items": [record] * 100}))
wide = {"features": dict(record["features"], ssn="123-45-6789", email="jane.doe@example.org", name="Jane Doe",
        city="Lyon", income=53210.5, age=41, note="called about a refund", card="4111111111111111"),
        "context": {"customer": 42, "phone": "+33 6 12 34 56 78", "segment": "retail"}}
open(sys.argv[1] + "/wide.json", "w").write(json.dumps(wide))
policy = {"default": "KEEP", "fields": {"features.ssn": "HMAC", "features.card": "HMAC", "features.email": "MASK",
          "context.phone": "MASK", "features.name": "TRUNCATE:1", "features.city": "TRUNCATE:2",
          "features.income": "BUCKET:10000", "features.age": "BUCKET:10", "features.note": "DROP", "context.segment": "DROP"}}
open(sys.argv[1] + "/policy-10.json", "w").write(json.dumps(policy))
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# set_policy SERVICE_JSON POLICY_FILE: the service's auditPolicy becomes the file's.
set_policy() {
    python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); s["auditPolicy"] = json.load(open(sys.argv[2]))
json.dump(s, open(sys.argv[1], "w"))
PY
}
