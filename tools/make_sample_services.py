#!/usr/bin/env python3
"""Writes the sample services shipped in services/ (standard library only).

The models are hand-specified, not trained: a churn logistic regression with
plausible coefficients, an iris random forest whose splits are the classic
ones, and a house-price linear regression. Their probaPercentiles and
explanation reference values come from a seeded synthetic population, so the
output is identical on every run. The scikit-learn exporter (tools/, issue
"Models trained for real") replaces them with trained models.

    python3 tools/make_sample_services.py [DATA_DIR]
"""
import json
import math
import os
import random
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
CREATED_ON = 1763769600000  # 2025-11-22T00:00:00Z


def write(path, obj):
    path = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def quantiles(values, n):
    """n cut points splitting sorted values into n + 1 equal parts."""
    v = sorted(values)
    return [v[min(len(v) - 1, int(len(v) * (i + 1) / (n + 1)))] for i in range(n)]


def service(sid, endpoint, model, routing_key):
    write(f"services/{sid}/service.json", {
        "enabled": True,
        "mapping": {"entries": [{"generation": "v1", "proba": 1.0}]},
        "routingKey": routing_key,
        "auth": {"method": "PUBLIC"},
        "metadata": {"properties": {"origin": "tools/make_sample_services.py"}, "tags": ["sample"]},
    })
    write(f"services/{sid}/generations/v1/generation.json", {
        "generationId": "v1", "createdOn": CREATED_ON,
        "endpoints": [{"id": endpoint, "type": "STD_PREDICTION", "model": "model.json",
                       "explanations": {"enabled": False, "method": "ICE", "nExplanations": 3,
                                        "nMonteCarloSteps": 100}}],
    })
    write(f"services/{sid}/generations/v1/model.json", model)


def churn():
    rng = random.Random(42)
    plans = ["basic", "pro", "enterprise"]
    coef = {"tenure_months": -0.9, "monthly_charges": 0.6, "support_calls": 0.8}
    plan_coef = {"basic": 0.4, "pro": -0.1, "enterprise": -0.6}
    scale = {"tenure_months": (30.0, 20.0), "monthly_charges": (65.0, 30.0), "support_calls": (2.0, 1.5)}
    rows = []
    for _ in range(5000):
        rows.append({
            "tenure_months": max(0.0, rng.gauss(30, 20)),
            "monthly_charges": max(10.0, rng.gauss(65, 30)),
            "support_calls": float(min(12, int(rng.expovariate(0.5)))),
            "plan": rng.choices(plans, weights=[5, 3, 2])[0],
        })

    def proba(r):
        z = -1.2 + plan_coef[r["plan"]]
        for k, c in coef.items():
            mean, sd = scale[k]
            z += c * (r[k] - mean) / sd
        return 1.0 / (1.0 + math.exp(-z))

    probas = [proba(r) for r in rows]
    features = []
    for name in ["tenure_months", "monthly_charges", "support_calls"]:
        mean, sd = scale[name]
        col = [r[name] for r in rows]
        features.append({"name": name, "type": "NUMERIC",
                         "missing": {"method": "IMPUTE", "value": round(sorted(col)[len(col) // 2], 2),
                                     "strategy": "MEDIAN"},
                         "rescaling": {"method": "STANDARD", "mean": mean, "scale": sd},
                         "reference": [round(q, 2) for q in quantiles(col, 9)]})
    features.append({"name": "plan", "type": "CATEGORY", "missing": {"method": "IMPUTE", "value": "basic"},
                     "encoding": {"method": "DUMMY", "levels": plans, "unseen": "IGNORE"}})
    return {
        "algorithm": "LOGISTIC_REGRESSION", "predictionType": "BINARY_CLASSIFICATION",
        "target": "churned", "classes": ["stay", "churn"], "threshold": 0.5,
        "features": features,
        "probaPercentiles": [round(q, 6) for q in quantiles(probas, 99)],
        "params": {"coefficients": [[coef["tenure_months"], coef["monthly_charges"], coef["support_calls"],
                                     plan_coef["basic"], plan_coef["pro"], plan_coef["enterprise"]]],
                   "intercepts": [-1.2]},
    }


def tree(nodes):
    """nodes: list of (feature, threshold, left, right, value); leaves use feature -2."""
    return {"feature": [n[0] for n in nodes], "threshold": [n[1] for n in nodes],
            "left": [n[2] for n in nodes], "right": [n[3] for n in nodes], "value": [n[4] for n in nodes]}


def iris():
    L = -2
    SL, SW, PL, PW = 0, 1, 2, 3
    t1 = tree([(PL, 2.45, 1, 2, [50, 50, 50]), (L, -2.0, -1, -1, [50, 0, 0]),
               (PW, 1.75, 3, 6, [0, 50, 50]), (PL, 4.95, 4, 5, [0, 49, 5]),
               (L, -2.0, -1, -1, [0, 47, 1]), (L, -2.0, -1, -1, [0, 2, 4]), (L, -2.0, -1, -1, [0, 1, 45])])
    t2 = tree([(PW, 0.8, 1, 2, [50, 50, 50]), (L, -2.0, -1, -1, [50, 0, 0]),
               (PL, 4.85, 3, 4, [0, 50, 50]), (L, -2.0, -1, -1, [0, 46, 3]), (L, -2.0, -1, -1, [0, 4, 47])])
    t3 = tree([(PL, 2.6, 1, 2, [50, 50, 50]), (L, -2.0, -1, -1, [50, 0, 0]),
               (SL, 6.2, 3, 6, [0, 50, 50]), (PW, 1.7, 4, 5, [0, 41, 18]),
               (L, -2.0, -1, -1, [0, 40, 3]), (L, -2.0, -1, -1, [0, 1, 15]),
               (PL, 5.0, 7, 8, [0, 9, 32]), (L, -2.0, -1, -1, [0, 8, 2]), (L, -2.0, -1, -1, [0, 1, 30])])
    medians = {"sepal_length": 5.8, "sepal_width": 3.0, "petal_length": 4.35, "petal_width": 1.3}
    refs = {"sepal_length": [5.0, 5.6, 6.1, 6.7, 7.2], "sepal_width": [2.6, 2.9, 3.0, 3.3, 3.6],
            "petal_length": [1.4, 1.6, 4.3, 5.1, 5.9], "petal_width": [0.2, 0.3, 1.3, 1.8, 2.2]}
    return {
        "algorithm": "RANDOM_FOREST", "predictionType": "MULTICLASS", "target": "species",
        "classes": ["setosa", "versicolor", "virginica"],
        "features": [{"name": n, "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": m, "strategy": "MEDIAN"},
                      "reference": refs[n]} for n, m in medians.items()],
        "params": {"trees": [t1, t2, t3]},
    }


def house_prices():
    cities = ["paris", "lyon", "marseille"]
    return {
        "algorithm": "LINEAR_REGRESSION", "predictionType": "REGRESSION", "target": "price_keur",
        "features": [
            {"name": "surface_m2", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 68.0, "strategy": "MEDIAN"},
             "rescaling": {"method": "STANDARD", "mean": 72.0, "scale": 31.0}, "reference": [35, 50, 68, 90, 130]},
            {"name": "rooms", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 3, "strategy": "MEDIAN"},
             "reference": [1, 2, 3, 4, 5]},
            {"name": "age_years", "type": "NUMERIC", "missing": {"method": "IMPUTE", "value": 35, "strategy": "MEAN"},
             "reference": [5, 20, 35, 60, 100]},
            {"name": "city", "type": "CATEGORY", "missing": {"method": "AS_CATEGORY"},
             "encoding": {"method": "DUMMY", "levels": cities, "unseen": "IGNORE"}},
        ],
        # price ≈ 180 + 3.2 per m² above the mean (99.2 per standard deviation) + 12 per room
        # - 0.6 per year of age, plus a city premium
        "params": {"coefficients": [99.2, 12.0, -0.6, 310.0, 60.0, 20.0, 0.0], "intercept": 180.0},
    }


service("churn", "score", churn(), "churn-prod")
service("iris", "species", iris(), "iris-prod")
service("house-prices", "estimate", house_prices(), "house-prices-prod")
print("wrote services/churn, services/iris, services/house-prices under", os.path.abspath(ROOT))
