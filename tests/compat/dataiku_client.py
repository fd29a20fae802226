"""Drives an apinode with Dataiku's own Python client (dataikuapi), unchanged.

Run by tests/integration/compat.rs against a real node:

    python dataiku_client.py BASE_URL ADMIN_KEY ARCHIVE_V1 ARCHIVE_V2 USER_KEY

Every step asserts what Dataiku's client returns; the last line says how many
checks passed. Any failure raises and exits non-zero.
"""
import sys

import dataikuapi
from dataikuapi.utils import DataikuException

base, admin_key, archive_v1, archive_v2, user_key = sys.argv[1:6]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


def refused(call, error_type):
    try:
        call()
    except DataikuException as e:
        check(str(e).startswith(error_type + ":"), "expected %s, got %s" % (error_type, e))
        return
    raise AssertionError("expected a %s refusal" % error_type)


admin = dataikuapi.APINodeAdminClient(base, admin_key)

# Services and generations.
admin.create_service("compat")
ids = [s["serviceId"] for s in admin.list_services()]
check("compat" in ids, "the new service is listed: %s" % ids)
service = admin.service("compat")
service.import_generation_from_archive(archive_v1)
service.import_generation_from_archive(archive_v2)
generations = service.list_generations()  # the client unwraps {"generations": [...]}
check([g["generationId"] for g in generations] == ["v1", "v2"], generations)
check(all(g["mounted"] and isinstance(g["createdOn"], int) for g in generations), generations)
switched = service.switch_to_newest()
check(switched == {"switchedToGeneration": "v2"}, switched)

# Predictions without a key (public service).
client = dataikuapi.APINodeClient(base, "compat")
answer = client.predict_record("score", {"x": 1}, context={"caller": "compat"})
check(answer["result"]["prediction"] == 2.0, answer)
check(answer["apiContext"]["serviceGeneration"] == "v2", answer)
check(set(answer["timing"]) >= {"preProcessing", "prediction", "postProcessing"}, answer)
forced = client.predict_record("score", {"x": 1}, forced_generation="v1")
check(forced["result"]["prediction"] == 1.0, forced)
batch = client.predict_records("score", [{"features": {"x": 1}}, {"features": {"x": 2}, "context": {"n": 2}}])
check(len(batch["results"]) == 2, batch)
refused(lambda: client.predict_record("nope", {"x": 1}), "NotFound")

# A mapping, then a single switch.
service.set_generations_mapping({"entries": [{"generation": "v1", "proba": 0.5}, {"generation": "v2", "proba": 0.5}]})
mapped = {g["generationId"]: g["mapped"] for g in service.list_generations()}
check(mapped == {"v1": 0.5, "v2": 0.5}, mapped)
refused(lambda: service.set_generations_mapping({"entries": [{"generation": "v1", "proba": 0.3}]}), "InvalidRequest")
service.switch_to_single_generation("v1")
service.preload_generation("v1")
service.disable()
refused(lambda: client.predict_record("score", {"x": 1}), "ServiceUnavailable")
service.enable()
check(client.predict_record("score", {"x": 1})["result"]["prediction"] == 1.0, "v1 answers after the switch")

# Predictions with an API key (a service whose auth is API_KEYS).
secured = dataikuapi.APINodeClient(base, "secured", api_key=user_key)
check(secured.predict_record("score", {"x": 1})["result"]["prediction"] == 7.0, "the key is accepted")
refused(lambda: dataikuapi.APINodeClient(base, "secured").predict_record("score", {"x": 1}), "Unauthorized")
refused(lambda: dataikuapi.APINodeClient(base, "secured", api_key="wrong").predict_record("score", {"x": 1}), "Unauthorized")
bearer = dataikuapi.APINodeClient(base, "secured", bearer_token=user_key)
check(bearer.predict_record("score", {"x": 1})["result"]["prediction"] == 7.0, "bearer tokens work too")
refused(lambda: dataikuapi.APINodeAdminClient(base, user_key).list_services(), "Forbidden")

# Admin keys.
auth = admin.auth()
created = auth.add_key(label="compat-key", description="made by the compat test", created_by="compat")
check(len(created["key"]) >= 32 and created["label"] == "compat-key", created)
listed = auth.list_keys()
check(any(k["id"] == created["id"] for k in listed), listed)
check(all("key" not in k for k in listed), "listings never show secrets")
check(len(dataikuapi.APINodeAdminClient(base, created["key"]).list_services()) >= 1, "the new key works at once")
auth.delete_key(created["key"])
refused(lambda: dataikuapi.APINodeAdminClient(base, created["key"]).list_services(), "Unauthorized")
second = auth.add_key(label="by-id")
auth.delete_key_by_id(second["id"])
check(all(k["id"] != second["id"] for k in auth.list_keys()), "deleted by id")

# Metrics, then delete the service.
metrics = admin.get_metrics()
endpoints = metrics["services"]["compat"]["endpoints"]
# Four calls scored on "score"; the unknown endpoint and the disabled service
# were refused before an endpoint was resolved, so they count under "*".
check(endpoints["score"]["requests"] == 4 and endpoints["score"]["errors"] == 0, endpoints)
check(endpoints["*"]["requests"] == 2 and endpoints["*"]["errors"] == 2, endpoints)
service.delete()
check("compat" not in [s["serviceId"] for s in admin.list_services()], "deleted")
refused(lambda: client.predict_record("score", {"x": 1}), "NotFound")

print("compat: %d checks passed with dataikuapi %s" % (checks, getattr(dataikuapi, "__version__", "15.2.0")))
