#!/usr/bin/env python3
"""Export a fitted scikit-learn Pipeline as an apinode generation.

Supported, exactly (the parity tests check every combination within 1e-9):

    Pipeline([("preprocess", ColumnTransformer([...], remainder="drop")),
              ("model", <estimator>)])

- column transformers: "passthrough" (numeric), SimpleImputer (mean, median,
  most_frequent, constant), StandardScaler, MinMaxScaler (clip=False),
  OneHotEncoder (drop=None, handle_unknown "ignore" or "error", no
  infrequent categories), alone or chained in a Pipeline, one column each
  way (a column may appear in one transformer only);
- estimators: LinearRegression, Ridge, LogisticRegression (binary,
  multinomial, one-vs-rest), DecisionTreeClassifier/Regressor,
  RandomForestClassifier/Regressor, GradientBoostingClassifier (log_loss) /
  Regressor.

Anything else is refused with a message naming the step. The model file
format is docs/model-format.md; percentiles come from the training data, and
so does the reference profile the monitor measures drift against (features
and the model's own predictions; `--no-profile` leaves it out).

Use from Python:

    from export_sklearn import export, write_generation
    model = export(pipeline, X_train)                 # X_train: a pandas DataFrame
    write_generation(model, "out/v1", "v1")           # a generation folder
    write_generation(model, "out/v1", "v1", archive="v1.zip")  # and its archive

or from the command line, with a pipeline saved by joblib and its training
data as CSV:

    python3 tools/export_sklearn.py pipeline.joblib train.csv --generation v1 \\
        --out /tmp/v1 --archive /tmp/v1.zip [--endpoint score]
"""
import argparse
import json
import math
import os
import zipfile

import numpy as np


class ExportError(Exception):
    """The pipeline holds something the node cannot score exactly."""


def _refuse(step, why):
    raise ExportError("%s: %s" % (step, why))


def _num(x):
    x = float(x)
    if not math.isfinite(x):
        _refuse("value", "%r is not finite" % x)
    return x


def _label(v):
    """Class labels and categories as the node sees them: text."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def _is_nan(v):
    return isinstance(v, float) and math.isnan(v) or v is None


def _steps(transformer, name):
    """The fitted steps applied to a transformer's columns: (name or None, step)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    def identity(t):
        # A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer.
        return t == "passthrough" or (isinstance(t, FunctionTransformer) and t.func is None and t.inverse_func is None)

    if isinstance(transformer, str) and not identity(transformer):
        _refuse(name, "transformer %r is not supported" % transformer)
    if identity(transformer):
        return []
    if isinstance(transformer, Pipeline):
        return [(n, t) for n, t in transformer.steps if not identity(t)]
    return [(None, transformer)]


def _feature(column, steps, j, step_path, X_column):
    """One input feature: column j of the chain of fitted transformers."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    spec = {"name": str(column), "type": "NUMERIC", "missing": {"method": "IGNORE_RECORD"}}
    encoded = False
    for i, (name, t) in enumerate(steps):
        where = step_path if name is None else "%s.%s" % (step_path, name)
        if encoded:
            _refuse(where, "nothing may follow OneHotEncoder")
        if isinstance(t, SimpleImputer):
            if i != 0:
                _refuse(where, "SimpleImputer must come first")
            if t.add_indicator:
                _refuse(where, "add_indicator=True is not supported")
            if not _is_nan(t.missing_values):
                _refuse(where, "missing_values must be NaN/None, not %r" % (t.missing_values,))
            value = t.statistics_[j]
            spec["missing"] = {"method": "IMPUTE", "value": value, "strategy": t.strategy.upper()}
        elif isinstance(t, StandardScaler):
            mean = 0.0 if t.mean_ is None else _num(t.mean_[j])
            scale = 1.0 if t.scale_ is None else _num(t.scale_[j])
            spec["rescaling"] = {"method": "STANDARD", "mean": mean, "scale": scale}
        elif isinstance(t, MinMaxScaler):
            if t.clip:
                _refuse(where, "clip=True is not supported")
            spec["rescaling"] = {"method": "MIN_MAX", "scale": _num(t.scale_[j]), "min": _num(t.min_[j])}
        elif isinstance(t, OneHotEncoder):
            if t.drop is not None:
                _refuse(where, "drop=%r is not supported (use drop=None)" % (t.drop,))
            infrequent = getattr(t, "infrequent_categories_", None)
            if infrequent and infrequent[j] is not None:
                _refuse(where, "infrequent categories are not supported")
            if t.handle_unknown not in ("ignore", "error"):
                _refuse(where, "handle_unknown=%r is not supported" % t.handle_unknown)
            cats = list(t.categories_[j])
            nan_level = any(_is_nan(c) for c in cats)
            levels = [_label(c) for c in cats if not _is_nan(c)]
            spec["type"] = "CATEGORY"
            spec["encoding"] = {"method": "DUMMY", "levels": levels,
                                "unseen": "IGNORE" if t.handle_unknown == "ignore" else "IGNORE_RECORD"}
            if nan_level:
                if spec["missing"]["method"] == "IMPUTE":
                    _refuse(where, "a NaN category after an imputer cannot occur")
                if not (len(cats) and _is_nan(cats[-1])):
                    _refuse(where, "the NaN category must be the last one")
                spec["missing"] = {"method": "AS_CATEGORY"}
            encoded = True
        else:
            _refuse(where, "%s is not supported" % type(t).__name__)
    if spec["type"] == "NUMERIC":
        imp = spec["missing"]
        if imp["method"] == "IMPUTE":
            imp["value"] = _num(imp["value"])
        values = np.asarray(X_column, dtype=float)
        values = values[~np.isnan(values)]
        if len(values):
            spec["reference"] = [float(q) for q in np.percentile(values, [10, 30, 50, 70, 90])]
    else:
        imp = spec["missing"]
        if imp["method"] == "IMPUTE":
            imp["value"] = _label(imp["value"])
    return spec


def _features(ct, X):
    from sklearn.compose import ColumnTransformer

    if not isinstance(ct, ColumnTransformer):
        _refuse("preprocess", "the first step must be a ColumnTransformer, not %s" % type(ct).__name__)
    names = list(getattr(ct, "feature_names_in_", []))
    if not names:
        _refuse("preprocess", "fit the pipeline on a pandas DataFrame so that features have names")
    features, seen = [], set()
    for name, transformer, columns in ct.transformers_:
        if name == "remainder":
            if transformer not in ("drop",) and len(columns):
                _refuse("preprocess.remainder", "remainder columns must be dropped")
            continue
        if transformer == "drop":
            continue
        cols = [names[c] if isinstance(c, (int, np.integer)) else c for c in np.atleast_1d(columns)]
        steps = _steps(transformer, "preprocess.%s" % name)
        for j, col in enumerate(cols):
            if col in seen:
                _refuse("preprocess.%s" % name, "column %r is used twice" % col)
            seen.add(col)
            features.append(_feature(col, steps, j, "preprocess.%s" % name, X[col] if col in X else []))
    return features


def _tree(t, kind):
    tree = t.tree_
    if tree.n_outputs != 1:
        _refuse("model", "multi-output trees are not supported")
    value = tree.value[:, 0, :]
    values = [[float(v) for v in row] for row in value] if kind == "classes" else [[float(row[0])] for row in value]
    return {"feature": [int(f) for f in tree.feature], "threshold": [float(x) for x in tree.threshold],
            "left": [int(c) for c in tree.children_left], "right": [int(c) for c in tree.children_right],
            "value": values}


def _estimator(est, X_encoded):
    from sklearn import ensemble, linear_model, tree

    name = type(est).__name__
    if isinstance(est, (linear_model.LinearRegression, linear_model.Ridge)):
        coef = np.atleast_1d(est.coef_)
        if coef.ndim != 1:
            _refuse("model", "%s with several targets is not supported" % name)
        return "LINEAR_REGRESSION", "REGRESSION", [], {"coefficients": [float(c) for c in coef],
                                                      "intercept": float(est.intercept_)}
    if isinstance(est, linear_model.LogisticRegression):
        classes = [_label(c) for c in est.classes_]
        ovr = getattr(est, "multi_class", "auto") == "ovr" or (
            len(classes) > 2 and getattr(est, "multi_class", "auto") in ("auto", "deprecated") and est.solver == "liblinear")
        params = {"coefficients": [[float(c) for c in row] for row in est.coef_],
                  "intercepts": [float(b) for b in est.intercept_],
                  "multiClass": "OVR" if ovr else "MULTINOMIAL"}
        kind = "BINARY_CLASSIFICATION" if len(classes) == 2 else "MULTICLASS"
        return "LOGISTIC_REGRESSION", kind, classes, params
    if isinstance(est, tree.DecisionTreeClassifier):
        classes = [_label(c) for c in est.classes_]
        kind = "BINARY_CLASSIFICATION" if len(classes) == 2 else "MULTICLASS"
        return "DECISION_TREE", kind, classes, {"tree": _tree(est, "classes")}
    if isinstance(est, tree.DecisionTreeRegressor):
        return "DECISION_TREE", "REGRESSION", [], {"tree": _tree(est, "value")}
    if isinstance(est, ensemble.RandomForestClassifier):
        classes = [_label(c) for c in est.classes_]
        kind = "BINARY_CLASSIFICATION" if len(classes) == 2 else "MULTICLASS"
        return "RANDOM_FOREST", kind, classes, {"trees": [_tree(t, "classes") for t in est.estimators_]}
    if isinstance(est, ensemble.RandomForestRegressor):
        return "RANDOM_FOREST", "REGRESSION", [], {"trees": [_tree(t, "value") for t in est.estimators_]}
    if isinstance(est, (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor)):
        classifier = isinstance(est, ensemble.GradientBoostingClassifier)
        if classifier and est.loss != "log_loss":
            _refuse("model", "GradientBoostingClassifier(loss=%r) is not supported (use log_loss)" % est.loss)
        init = est._raw_predict_init(X_encoded[:1])[0]
        stages = [[_tree(t, "value") for t in stage] for stage in est.estimators_]
        params = {"learningRate": float(est.learning_rate), "init": [float(v) for v in init], "stages": stages}
        if classifier:
            classes = [_label(c) for c in est.classes_]
            kind = "BINARY_CLASSIFICATION" if len(classes) == 2 else "MULTICLASS"
            return "GRADIENT_BOOSTING", kind, classes, params
        return "GRADIENT_BOOSTING", "REGRESSION", [], params
    _refuse("model", "%s is not supported" % name)


PROFILE_MAX_DISTINCT = 100_000


def _numeric_profile(values):
    """Sorted distinct values with counts; missing (NaN, None, infinite) apart;
    a seeded sample of PROFILE_MAX_DISTINCT values above that many distinct."""
    import pandas as pd

    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    finite = x[np.isfinite(x)] + 0.0  # -0.0 and 0.0 are one value
    uniq, counts = np.unique(finite, return_counts=True)
    sampled = len(uniq) > PROFILE_MAX_DISTINCT
    if sampled:
        sample = np.random.default_rng(0).choice(finite, PROFILE_MAX_DISTINCT, replace=False)
        uniq, counts = np.unique(sample, return_counts=True)
    return {"type": "NUMERIC", "missing": int(len(x) - len(finite)), "sampled": bool(sampled),
            "values": [float(v) for v in uniq], "counts": [int(c) for c in counts]}


def _category_profile(values):
    """Category counts (as the node labels categories); missing apart."""
    counts, missing = {}, 0
    for v in values:
        if _is_nan(v) or (isinstance(v, np.floating) and math.isnan(v)):
            missing += 1
            continue
        label = _label(v)
        counts[label] = counts.get(label, 0) + 1
    keys = sorted(counts)
    return {"type": "CATEGORY", "missing": missing, "values": keys, "counts": [counts[k] for k in keys]}


def reference_profile(pipeline, X_train, features):
    """The training data's profile for drift (docs/model-format.md
    "referenceProfile"): each feature, and the model's own predictions."""
    out = {"rows": int(len(X_train)), "features": {}}
    for f in features:
        column = list(X_train[f["name"]])
        out["features"][f["name"]] = (_numeric_profile(column) if f["type"] == "NUMERIC"
                                      else _category_profile(column))
    predictions = pipeline.predict(X_train)
    if hasattr(pipeline, "classes_"):
        out["prediction"] = _category_profile(list(predictions))
    else:
        out["prediction"] = _numeric_profile(predictions)
    return out


def export(pipeline, X_train, target=None, profile=True):
    """The model file (a dict) of a fitted pipeline; X_train gives percentiles,
    explanation references and (unless profile=False) the reference profile."""
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        _refuse("pipeline", "expected Pipeline([(preprocess, ColumnTransformer), (model, estimator)])")
    (_, ct), (_, est) = pipeline.steps
    features = _features(ct, X_train)
    X_encoded = np.asarray(ct.transform(X_train), dtype=float)
    algorithm, kind, classes, params = _estimator(est, X_encoded)
    model = {"algorithm": algorithm, "predictionType": kind, "target": target, "classes": classes,
             "features": features, "params": params}
    if kind == "BINARY_CLASSIFICATION":
        p = pipeline.predict_proba(X_train)[:, 1]
        model["threshold"] = 0.5
        model["probaPercentiles"] = [float(c) for c in np.percentile(p, list(range(1, 100)))]
    if profile:
        model["referenceProfile"] = reference_profile(pipeline, X_train, features)
    return model


def write_generation(model, folder, generation_id, endpoint="score", archive=None):
    """Writes generation.json and model.json in folder (and a zip archive)."""
    os.makedirs(folder, exist_ok=True)
    generation = {"generationId": generation_id,
                  "endpoints": [{"id": endpoint, "type": "STD_PREDICTION", "model": "model.json",
                                 "explanations": {"enabled": False, "method": "ICE", "nExplanations": 3,
                                                  "nMonteCarloSteps": 100}}]}
    files = {"generation.json": json.dumps(generation, indent=1) + "\n",
             "model.json": json.dumps(model, indent=1, allow_nan=False) + "\n"}
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    if archive:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in files.items():
                z.writestr(name, text)
    return folder


def main():
    import joblib
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pipeline", help="a fitted Pipeline saved with joblib.dump")
    ap.add_argument("train_csv", help="the training data (features as columns, with a header)")
    ap.add_argument("--generation", required=True)
    ap.add_argument("--out", required=True, help="the generation folder to write")
    ap.add_argument("--archive", help="also write this zip archive")
    ap.add_argument("--endpoint", default="score")
    ap.add_argument("--target", help="the target column, dropped from the training data")
    ap.add_argument("--no-profile", action="store_true",
                    help="leave the reference profile (for drift) out of the model file")
    args = ap.parse_args()
    X = pd.read_csv(args.train_csv)
    if args.target:
        X = X.drop(columns=[args.target])
    try:
        model = export(joblib.load(args.pipeline), X, target=args.target, profile=not args.no_profile)
    except ExportError as e:
        raise SystemExit("cannot export: %s" % e)
    write_generation(model, args.out, args.generation, args.endpoint, args.archive)
    print("wrote %s%s" % (args.out, " and %s" % args.archive if args.archive else ""))


if __name__ == "__main__":
    main()
