#!/usr/bin/env python3
"""Trains the sample services shipped in services/ with scikit-learn and
exports them with tools/export_sklearn.py. Deterministic (fixed seeds).

- churn (binary, LogisticRegression): a synthetic customer table with
  numeric and categorical columns and missing values;
- iris (multiclass, RandomForestClassifier): scikit-learn's iris;
- breast-cancer (binary, GradientBoostingClassifier): scikit-learn's breast_cancer;
- diabetes (regression, Ridge): scikit-learn's diabetes.

    ./tools/setup-test-env      # a virtualenv with the pinned packages
    ~/.cache/apinode/test-venv/bin/python tools/train_sample_services.py [DATA_DIR]
"""
import json
import os
import sys

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, os.path.dirname(__file__))
from export_sklearn import export, write_generation  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
SEED = 42


def service(sid, endpoint, model, routing_key):
    folder = os.path.join(ROOT, "services", sid, "generations", "v1")
    write_generation(model, folder, "v1", endpoint)
    with open(os.path.join(ROOT, "services", sid, "service.json"), "w") as f:
        json.dump({"enabled": True, "mapping": {"entries": [{"generation": "v1", "proba": 1.0}]},
                   "routingKey": routing_key, "auth": {"method": "PUBLIC"},
                   "metadata": {"properties": {"origin": "tools/train_sample_services.py"}, "tags": ["sample"]}},
                  f, indent=1)
        f.write("\n")


def churn():
    rng = np.random.default_rng(SEED)
    n = 5000
    X = pd.DataFrame({
        "tenure_months": np.clip(rng.normal(30, 20, n), 0, None).round(),
        "monthly_charges": np.clip(rng.normal(65, 30, n), 10, None).round(2),
        "support_calls": np.minimum(12, rng.exponential(2, n).astype(int)).astype(float),
        "plan": rng.choice(["basic", "pro", "enterprise"], n, p=[0.5, 0.3, 0.2]),
    })
    X["plan"] = X["plan"].astype(object)
    z = (-1.2 - 0.045 * (X.tenure_months - 30) + 0.02 * (X.monthly_charges - 65) + 0.5 * (X.support_calls - 2)
         + X.plan.map({"basic": 0.4, "pro": -0.1, "enterprise": -0.6}))
    # Labels sort as scikit-learn orders classes: "yes" (churned) is the positive class.
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-z)), "yes", "no")
    for col, frac in [("monthly_charges", 0.05), ("support_calls", 0.05), ("plan", 0.05)]:
        X.loc[rng.random(n) < frac, col] = np.nan
    numeric = ["tenure_months", "monthly_charges", "support_calls"]
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("plan", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                               ("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["plan"]),
        ])),
        ("model", LogisticRegression(max_iter=2000)),
    ]).fit(X, y)
    return export(pipeline, X, target="churned")


def sklearn_frame(loader, rename=None):
    d = loader()
    names = [rename(c) if rename else str(c) for c in d.feature_names]
    X = pd.DataFrame(d.data, columns=names)
    target = np.array(d.target_names)[d.target] if hasattr(d, "target_names") and loader is not datasets.load_diabetes else d.target
    return X, target


def numeric_pipeline(X, model, scale=True):
    step = StandardScaler() if scale else "passthrough"
    return Pipeline([("preprocess", ColumnTransformer([("num", step, list(X.columns))])), ("model", model)])


def main():
    service("churn", "score", churn(), "churn-prod")
    iris_X, iris_y = sklearn_frame(datasets.load_iris, lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    iris = numeric_pipeline(iris_X, RandomForestClassifier(n_estimators=30, max_depth=5, random_state=SEED), scale=False)
    service("iris", "species", export(iris.fit(iris_X, iris_y), iris_X, target="species"), "iris-prod")
    bc_X, bc_y = sklearn_frame(datasets.load_breast_cancer)
    bc = numeric_pipeline(bc_X, GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=SEED), scale=False)
    service("breast-cancer", "diagnosis", export(bc.fit(bc_X, bc_y), bc_X, target="diagnosis"), "breast-cancer-prod")
    db_X, db_y = sklearn_frame(datasets.load_diabetes)
    db = numeric_pipeline(db_X, Ridge(alpha=0.5))
    service("diabetes", "progression", export(db.fit(db_X, db_y), db_X, target="progression"), "diabetes-prod")
    print("wrote services/churn, services/iris, services/breast-cancer, services/diabetes under", os.path.abspath(ROOT))


if __name__ == "__main__":
    main()
