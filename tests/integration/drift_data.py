"""Data for tests/integration/drift.rs.

Trains a churn pipeline (numeric features with missing values, few-valued
numbers, categories with a missing level) on seeded training sets and exports
two generations with the real exporter (tools/export_sklearn.py), so their
model files carry reference profiles: v1 from 400 rows (at most 1000: KS,
chi-square, Z-test) and v2 from 3,000 rows (Wasserstein, Jensen-Shannon).
Also writes v2's training rows as CSV (with the model's predictions), and a
generator of feature rows, shifted or not.

    python drift_data.py export DATA_DIR SERVICE      # generations + reference.csv
    python drift_data.py queries FILE SEED            # query records (log4j lines)
    python drift_data.py outcomes FILE SEED           # outcomes for two thirds of them
    python drift_data.py rows SEED N SHIFT            # JSON lines of features
"""
import json
import os
import sys

import numpy as np
import pandas as pd

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools"))


def rows(rng, n, shift=()):
    """n feature rows; `shift` names the features moved away from training."""
    age = rng.normal(40, 10, n) + (8 if "age" in shift else 0)
    income = rng.normal(50000, 15000, n) * (1.4 if "income" in shift else 1)
    children = rng.integers(0, 5, n).astype(float)
    if "children" in shift:
        children = np.minimum(children + 2, 4)
    flag = (rng.random(n) < (0.7 if "flag" in shift else 0.3)).astype(float)
    plan_p = [0.1, 0.2, 0.3, 0.4] if "plan" in shift else [0.4, 0.3, 0.2, 0.1]
    plan = rng.choice(["basic", "plus", "pro", "enterprise"], n, p=plan_p).astype(object)
    region = rng.choice(["north", "south"], n, p=[0.2, 0.8] if "region" in shift else [0.6, 0.4]).astype(object)
    age[rng.random(n) < 0.03] = np.nan
    plan[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"age": age, "income": np.round(income, 2), "children": children, "flag": flag,
                         "plan": plan, "region": region})


def export(data_dir, service):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from export_sklearn import export as export_model, write_generation

    for generation, n, seed in [("v1", 400, 1), ("v2", 3000, 2)]:
        rng = np.random.default_rng(seed)
        X = rows(rng, n)
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-(X["age"].fillna(40) - 40) / 10)), "yes", "no")
        numeric = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())])
        ct = ColumnTransformer([("num", numeric, ["age", "income", "children", "flag"]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"])],
                               remainder="drop")
        pipeline = Pipeline([("preprocess", ct), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
        model = export_model(pipeline, X)
        folder = os.path.join(data_dir, "services", service, "generations", generation)
        write_generation(model, folder, generation)
        if generation == "v2":
            csv = X.copy()
            csv["prediction"] = pipeline.predict(X)
            csv.to_csv(os.path.join(data_dir, "reference.csv"), index=False)
    mapping = {"enabled": True, "mapping": {"entries": [{"generation": "v1", "proba": 0.5},
                                                        {"generation": "v2", "proba": 0.5}]}}
    with open(os.path.join(data_dir, "services", service, "service.json"), "w") as f:
        json.dump(mapping, f)


def features_of(row):
    """A row as a caller sends it: missing values null; a few numbers as text."""
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and np.isnan(v):
            out[k] = None
        else:
            out[k] = v.item() if hasattr(v, "item") else v
    return out


def queries(path, seed):
    """Windows of several sizes per generation, some shifted: v1 300 rows
    (exact KS), 12,000 shifted rows (asymptotic KS), 40 rows; v2 2,000 rows,
    2,000 shifted rows. Some records ignored, some features absent, some
    numbers sent as text or as -0.0."""
    rng = np.random.default_rng(int(seed))
    plan = [("v1", 0, 300, ()), ("v1", 1, 12000, ("age", "plan", "flag")), ("v1", 2, 40, ()),
            ("v2", 0, 2000, ()), ("v2", 1, 2000, ("income", "region", "children"))]
    i = 0
    with open(path, "w") as f:
        for generation, hour, n, shift in plan:
            for _, row in rows(rng, n, shift).iterrows():
                i += 1
                feats = features_of(row)
                if i % 97 == 0:
                    del feats["income"]
                if i % 89 == 0:
                    feats["age"] = str(feats["age"])
                if i % 83 == 0:
                    feats["children"] = -0.0
                ignored = i % 101 == 0
                p = float(rng.random())
                result = {"ignored": True} if ignored else {
                    "prediction": "yes" if p > 0.5 else "no", "probas": {"no": 1 - p, "yes": p}, "ignored": False}
                t = "2026-12-01T%02d:%02d:%02d.000Z" % (hour, (i // 60) % 60, i % 60)
                rec = {"msgType": "prediction-query", "eventId": f"q{i}", "requestId": f"r{i}", "timestamp": t,
                       "serviceId": "drift", "endpointId": "score", "generation": generation,
                       "features": feats, "result": result}
                f.write(json.dumps({"message": rec}) + "\n")


def main():
    what = sys.argv[1]
    if what == "export":
        export(sys.argv[2], sys.argv[3])
    elif what == "queries":
        queries(sys.argv[2], sys.argv[3])
    elif what == "outcomes":
        rng = np.random.default_rng(int(sys.argv[3]))
        with open(sys.argv[2], "w") as f:
            for i in range(1, 16341):
                if i % 3 == 0:
                    continue
                for k, when in enumerate(["2026-12-02T00:00:00Z"] + (["2026-12-03T00:00:00Z"] if i % 50 == 1 else [])):
                    rec = {"msgType": "prediction-feedback", "eventId": f"f{i}-{k}", "requestId": f"r{i}",
                           "serviceId": "drift", "endpointId": "score", "time": when,
                           "outcome": "yes" if rng.random() < 0.4 else "no", "weight": 1.0}
                    f.write(json.dumps({"message": rec}) + "\n")
    elif what == "rows":
        rng = np.random.default_rng(int(sys.argv[2]))
        shift = tuple(s for s in sys.argv[4].split(",") if s)
        for _, row in rows(rng, int(sys.argv[3]), shift).iterrows():
            print(json.dumps(features_of(row)))


if __name__ == "__main__":
    main()
