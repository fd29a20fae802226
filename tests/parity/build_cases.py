"""Builds the parity cases: for every supported estimator and preprocessing
combination, train a scikit-learn pipeline, export it with
tools/export_sklearn.py as a service of a data directory, and write what
scikit-learn itself answers on held-out records (with missing values and
unseen categories) to expected/<case>.json. tests/integration/parity.rs then
scores the same records through a real node's HTTP API and compares.

    python build_cases.py DATA_DIR
"""
import json
import math
import os
import sys

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
from export_sklearn import ExportError, export, write_generation  # noqa: E402

OUT = sys.argv[1]
SEED = 7


def frame(loader):
    d = loader()
    return pd.DataFrame(d.data, columns=[str(c) for c in d.feature_names]), d.target


def mixed(n=900, seed=SEED):
    """Numeric and categorical columns with missing values."""
    rng = np.random.default_rng(seed)
    a = rng.normal(10, 3, n)
    b = rng.uniform(0, 100, n)
    e = rng.integers(0, 5, n).astype(float)
    c = rng.choice(["red", "green", "blue"], n)
    d = rng.choice(["x", "y", "z", "w"], n)
    z = 0.4 * (a - 10) - 0.03 * (b - 50) + np.where(c == "red", 1.0, -0.5) + np.where(d == "x", 0.8, 0) + 0.2 * e
    X = pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "e": e})
    X["c"] = X["c"].astype(object)
    X["d"] = X["d"].astype(object)
    for col, frac in [("a", 0.08), ("b", 0.1), ("c", 0.1), ("d", 0.1)]:
        X.loc[rng.random(n) < frac, col] = np.nan
    y_bin = (z + rng.normal(0, 0.5, n) > 0).astype(int)
    y_multi = np.digitize(z + rng.normal(0, 0.5, n), [-0.7, 0.7])
    return X, y_bin, y_multi, 3.0 * z + rng.normal(0, 0.3, n)


def mixed_ct(handle_unknown="ignore"):
    return ColumnTransformer([
        ("a", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())]), ["a"]),
        ("b", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())]), ["b"]),
        ("c", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown=handle_unknown))]), ["c"]),
        ("d", OneHotEncoder(handle_unknown="ignore"), ["d"]),
        ("e", "passthrough", ["e"]),
    ])


def numeric_ct(X, scaler=None):
    return ColumnTransformer([("num", scaler if scaler is not None else "passthrough", list(X.columns))])


def jsonable(v):
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def held_out_records(X_test, extra):
    rows = [{k: jsonable(v) for k, v in row.items()} for row in X_test.to_dict("records")]
    return rows + extra


def case(name, pipeline, X, y, extra=()):
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=SEED)
    pipeline.fit(X_train, y_train)
    model = export(pipeline, X_train, target="y")
    folder = os.path.join(OUT, "services", name, "generations", "v1")
    write_generation(model, folder, "v1")
    with open(os.path.join(OUT, "services", name, "service.json"), "w") as f:
        json.dump({"enabled": True, "mapping": {"entries": [{"generation": "v1", "proba": 1.0}]}}, f)
    records = held_out_records(X_test, list(extra))
    X_eval = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in r.items()} for r in records], columns=X.columns)
    for col in X.columns:
        if X[col].dtype == object:
            X_eval[col] = X_eval[col].astype(object)
    expected = []
    est = pipeline.steps[-1][1]
    classifier = hasattr(est, "classes_")
    probas = pipeline.predict_proba(X_eval) if classifier else None
    predictions = pipeline.predict(X_eval)
    cuts = model.get("probaPercentiles")
    for i, r in enumerate(records):
        e = {"features": r}
        if classifier:
            labels = [str(c) for c in est.classes_]
            e["probas"] = {labels[k]: float(p) for k, p in enumerate(probas[i])}
            e["prediction"] = str(predictions[i])
            if cuts:
                # The node's rule: 1 + the cut points strictly below p. Cut points
                # within 1e-9 of p (ties are common for trees) may fall either side
                # of the node's p, equal to scikit-learn's within 1e-9.
                p1 = probas[i][1]
                lo = 1 + sum(1 for c in cuts if c < p1 - 1e-9)
                hi = 1 + sum(1 for c in cuts if c <= p1 + 1e-9)
                e["percentile"] = [min(100, lo), min(100, hi)]
        else:
            e["prediction"] = float(predictions[i])
        expected.append(e)
    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    with open(os.path.join(OUT, "expected", name + ".json"), "w") as f:
        json.dump({"case": name, "algorithm": model["algorithm"], "records": expected}, f)
    return name


def refused(pipeline, X, y, needle):
    pipeline.fit(X, y)
    try:
        export(pipeline, X)
    except ExportError as e:
        if needle not in str(e):
            raise SystemExit("refusal %r does not name %r" % (str(e), needle))
        return str(e)
    raise SystemExit("the exporter accepted a pipeline it cannot score exactly (%s)" % needle)


def main():
    breast_X, breast_y = frame(datasets.load_breast_cancer)
    iris_X, iris_y = frame(datasets.load_iris)
    wine_X, wine_y = frame(datasets.load_wine)
    diab_X, diab_y = frame(datasets.load_diabetes)
    mix_X, mix_bin, mix_multi, mix_reg = mixed()
    unseen = [{"a": 11.0, "b": None, "c": "purple", "d": "q", "e": 2.0},
              {"a": None, "b": 50.0, "c": None, "d": None, "e": 1.0},
              {"a": 9.5, "b": 20.0, "c": "red", "d": None, "e": 0.0}]
    names = [
        case("logreg-binary-breast", Pipeline([("p", numeric_ct(breast_X, StandardScaler())),
                                               ("m", LogisticRegression(max_iter=5000))]), breast_X, breast_y),
        case("logreg-multinomial-iris", Pipeline([("p", numeric_ct(iris_X, StandardScaler())),
                                                  ("m", LogisticRegression(max_iter=5000))]), iris_X, iris_y),
        case("linear-minmax-diabetes", Pipeline([("p", numeric_ct(diab_X, MinMaxScaler())),
                                                 ("m", LinearRegression())]), diab_X, diab_y),
        case("ridge-diabetes", Pipeline([("p", numeric_ct(diab_X, StandardScaler())), ("m", Ridge(alpha=1.0))]),
             diab_X, diab_y),
        case("tree-classifier-iris", Pipeline([("p", numeric_ct(iris_X)), ("m", DecisionTreeClassifier(max_depth=4, random_state=SEED))]),
             iris_X, iris_y),
        case("tree-regressor-diabetes", Pipeline([("p", numeric_ct(diab_X)),
                                                  ("m", DecisionTreeRegressor(max_depth=6, random_state=SEED))]), diab_X, diab_y),
        case("forest-classifier-breast", Pipeline([("p", numeric_ct(breast_X)),
                                                   ("m", RandomForestClassifier(n_estimators=25, max_depth=6, random_state=SEED))]),
             breast_X, breast_y),
        case("forest-regressor-diabetes", Pipeline([("p", numeric_ct(diab_X)),
                                                    ("m", RandomForestRegressor(n_estimators=25, max_depth=6, random_state=SEED))]),
             diab_X, diab_y),
        case("gb-binary-breast", Pipeline([("p", numeric_ct(breast_X)),
                                           ("m", GradientBoostingClassifier(n_estimators=40, random_state=SEED))]), breast_X, breast_y),
        case("gb-multiclass-wine", Pipeline([("p", numeric_ct(wine_X)),
                                             ("m", GradientBoostingClassifier(n_estimators=30, random_state=SEED))]), wine_X, wine_y),
        case("gb-regressor-diabetes", Pipeline([("p", numeric_ct(diab_X)),
                                                ("m", GradientBoostingRegressor(n_estimators=50, random_state=SEED))]), diab_X, diab_y),
        case("mixed-logreg-binary", Pipeline([("p", mixed_ct()), ("m", LogisticRegression(max_iter=5000))]),
             mix_X, mix_bin, unseen),
        case("mixed-logreg-multinomial", Pipeline([("p", mixed_ct()), ("m", LogisticRegression(max_iter=5000))]),
             mix_X, mix_multi, unseen),
        case("mixed-forest-multiclass", Pipeline([("p", mixed_ct()),
                                                  ("m", RandomForestClassifier(n_estimators=20, max_depth=5, random_state=SEED))]),
             mix_X, mix_multi, unseen),
        case("mixed-tree-binary", Pipeline([("p", mixed_ct()), ("m", DecisionTreeClassifier(max_depth=5, random_state=SEED))]),
             mix_X, mix_bin, unseen),
        case("mixed-gb-regressor", Pipeline([("p", mixed_ct()),
                                             ("m", GradientBoostingRegressor(n_estimators=40, random_state=SEED))]), mix_X, mix_reg, unseen),
        case("mixed-gb-binary", Pipeline([("p", mixed_ct()),
                                          ("m", GradientBoostingClassifier(n_estimators=30, random_state=SEED))]), mix_X, mix_bin, unseen),
    ]
    refusals = [
        refused(Pipeline([("p", numeric_ct(iris_X, StandardScaler())), ("m", SVC())]), iris_X, iris_y, "model: SVC is not supported"),
        refused(Pipeline([("p", ColumnTransformer([("c", OneHotEncoder(drop="first"), ["c"])])), ("m", LogisticRegression())]),
                mix_X.dropna(), mix_bin[mix_X.notna().all(axis=1).to_numpy()], "preprocess.c: drop='first'"),
        refused(Pipeline([("p", numeric_ct(iris_X, MinMaxScaler(clip=True))), ("m", LogisticRegression(max_iter=5000))]),
                iris_X, iris_y, "clip=True"),
        refused(Pipeline([("p", ColumnTransformer([("a", SimpleImputer(add_indicator=True), ["a"])])),
                          ("m", LinearRegression())]), mix_X, mix_reg, "add_indicator"),
    ]
    print("built %d parity cases; %d refusals named their step" % (len(names), len(refusals)))


if __name__ == "__main__":
    main()
