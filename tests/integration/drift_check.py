"""Independent check of the drift part of `apinode-admin monitor`
(tests/integration/drift.rs).

Rebuilds each generation's reference from its model file's profile (values
repeated by their counts) or from a CSV file with pandas, reads the query
records itself, and computes each feature's drift the way Evidently does by
default (its `_get_default_stattest`, `get_binned_data`, stattests; restated
here from Evidently's source) with pandas, numpy and scipy. Compares every
method, score, KS statistic, decision and PSI with report.json within 1e-9.

Evidently itself is not installed: it pulls in about sixty packages (plotly,
nltk, litestar, ...) and its legacy API moves between releases; its default
tests are a few lines each, on top of the scipy functions used here.

    python drift_check.py REPORT_JSON QUERIES_FILE WINDOW_MS GENERATION=MODEL_JSON...
    python drift_check.py REPORT_JSON QUERIES_FILE WINDOW_MS --csv CSV MODEL_JSON
Prints one line per generation; exits 1 on the first difference.
"""
import json
import math
import sys
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance


def reference_from_profile(model_path):
    model = json.load(open(model_path))
    profile = model["referenceProfile"]
    out = {}
    for name, col in list(profile["features"].items()) + [("__prediction__", profile["prediction"])]:
        kind = "num" if col["type"] == "NUMERIC" else "cat"
        values = np.repeat(np.array(col["values"], dtype=float if kind == "num" else object), col["counts"])
        out[name] = (kind, pd.Series(values))
    return out


def reference_from_csv(csv_path, model_path):
    kinds = {f["name"]: ("num" if f["type"] == "NUMERIC" else "cat") for f in json.load(open(model_path))["features"]}
    df = pd.read_csv(csv_path, dtype=object, keep_default_na=True)
    out = {}
    for name in df.columns:
        kind = kinds.get(name, "cat")
        s = df[name].dropna()
        if kind == "num":
            s = pd.to_numeric(s).astype(float)
            s = s[np.isfinite(s)]
        out["__prediction__" if name == "prediction" else name] = (kind, s.reset_index(drop=True))
    return out


def as_number(v):
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x + 0.0 if math.isfinite(x) else None


def as_category(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def current_values(queries_path, window_ms):
    """{generation: {window_start or None: {feature: [values]}}} (None: whole period)."""
    out = {}
    with open(queries_path) as f:
        for line in f:
            r = json.loads(line)
            r = r.get("message", r)
            if r.get("msgType") != "prediction-query":
                continue
            t = int(datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
            start = t // window_ms * window_ms
            g = out.setdefault(r["generation"], {})
            for w in (start, None):
                cols = g.setdefault(w, {})
                for k, v in (r.get("features") or {}).items():
                    cols.setdefault(k, []).append(v)
                res = r.get("result") or {}
                if not res.get("ignored"):
                    cols.setdefault("__prediction__", []).append(res.get("prediction"))
    return out


# Evidently's defaults (evidently/calculations/stattests): the choice of test, ...
def default_test(ref, cur, kind):
    n_values = pd.concat([ref, cur]).nunique()
    if ref.shape[0] <= 1000:
        if kind == "num" and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "num" and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def unique_keys(ref, cur):
    return list(set(ref.dropna().unique()) | set(cur.dropna().unique()))


def binned(ref, cur, kind, fill_zeroes):
    if kind == "num" and ref.nunique() > 20:
        bins = np.histogram_bin_edges(pd.concat([ref, cur], axis=0).values, bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = unique_keys(ref, cur)
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        r = np.array([rd[k] / len(ref) for k in keys])
        c = np.array([cd[k] / len(cur) for k in keys])
    if fill_zeroes:
        for a in (r, c):
            m = min(a[a != 0])
            np.place(a, a == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


def evidently(ref, cur, kind):
    """(method, score, ks statistic, drifted, psi)."""
    method = default_test(ref, cur, kind)
    statistic = None
    if method == "ks":
        res = stats.ks_2samp(ref, cur)
        score, statistic = res.pvalue, res.statistic
        drifted = score <= 0.05
    elif method == "chisquare":
        keys = unique_keys(ref, cur)
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        k_norm = cur.shape[0] / ref.shape[0]
        score = stats.chisquare([cd[k] for k in keys], [rd[k] * k_norm for k in keys])[1]
        drifted = score < 0.05
    elif method == "z":
        if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
            score = 1.0
        else:
            key = sorted(set(list(ref.unique()) + list(cur.unique())))[0]
            p1 = float(sum(ref.apply(lambda x: 0 if x == key else 1))) / len(ref)
            p2 = float(sum(cur.apply(lambda x: 0 if x == key else 1))) / len(cur)
            n1, n2 = len(ref), len(cur)
            P = float(p1 * n1 + p2 * n2) / (n1 + n2)
            z = (p1 - p2) / np.sqrt(P * (1 - P) * (1.0 / n1 + 1.0 / n2))
            score = 2 * (1 - stats.norm.cdf(np.abs(z)))
        drifted = score < 0.05
    elif method == "wasserstein":
        score = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
        drifted = score >= 0.1
    else:
        r, c = binned(ref, cur, kind, False)
        score = distance.jensenshannon(r, c, 2)
        drifted = score >= 0.1
    r, c = binned(ref, cur, kind, True)
    psi = sum((r[i] - c[i]) * np.log(r[i] / c[i]) for i in range(len(r)))
    return method, float(score), statistic, bool(drifted), float(psi)


def fail(what):
    print("FAIL " + what)
    sys.exit(1)


def close(what, got, want):
    if got is None or not math.isclose(got, want, rel_tol=0, abs_tol=1e-9):
        fail(f"{what}: report {got!r}, scipy {want!r}")


def check(d, reference, columns, where):
    drifted = tested = 0
    for name, (kind, ref) in reference.items():
        values = columns.get(name, [])
        conv = as_number if kind == "num" else as_category
        cur = pd.Series([x for x in map(conv, values) if x is not None],
                        dtype=float if kind == "num" else object)
        got = d["prediction"] if name == "__prediction__" else d["features"].get(name)
        if got is None:
            fail(f"{where} {name}: not in the report")
        if len(cur) == 0 or len(ref) == 0:
            if got.get("drifted") is not None:
                fail(f"{where} {name}: a test without data")
            continue
        method, score, statistic, is_drifted, psi = evidently(ref, cur, kind)
        if got["method"] != method:
            fail(f"{where} {name}: method {got['method']}, Evidently {method}")
        close(f"{where} {name} {method} score", got["score"], score)
        close(f"{where} {name} psi", got["psi"], psi)
        if statistic is not None:
            close(f"{where} {name} statistic", got["statistic"], statistic)
        if got["drifted"] != is_drifted:
            fail(f"{where} {name}: drifted {got['drifted']}, Evidently {is_drifted}")
        if got["currentRows"] != len(cur):
            fail(f"{where} {name}: currentRows {got['currentRows']}, counted {len(cur)}")
        if name != "__prediction__":
            tested += 1
            drifted += is_drifted
    if d["testedFeatures"] != tested or d["driftedFeatures"] != drifted:
        fail(f"{where}: {d['driftedFeatures']}/{d['testedFeatures']} drifted, counted {drifted}/{tested}")
    if d["datasetDrift"] != (drifted / tested >= 0.5):
        fail(f"{where}: datasetDrift {d['datasetDrift']}")
    return drifted, tested


def main():
    report_path, queries_path, window_ms, *rest = sys.argv[1:]
    report = json.load(open(report_path))
    if rest[0] == "--csv":
        ref = reference_from_csv(rest[1], rest[2])
        references = {g: ref for g in report["generations"]}
    else:
        references = {a.split("=", 1)[0]: reference_from_profile(a.split("=", 1)[1]) for a in rest}
    current = current_values(queries_path, int(window_ms))
    checked = 0
    for g, reference in references.items():
        gen = report["generations"][g]
        windows = {int(datetime.fromisoformat(w["start"].replace("Z", "+00:00")).timestamp() * 1000): w
                   for w in gen["windows"]}
        for start, columns in current[g].items():
            d = gen["overall"]["drift"] if start is None else windows[start]["drift"]
            drifted, tested = check(d, reference, columns, f"{g} {start or 'overall'}")
            checked += tested + 1
            print(f"{g} {start or 'overall'}: {drifted}/{tested} features drifted, prediction checked")
    print(f"OK {checked} columns equal Evidently's defaults on scipy within 1e-9")


if __name__ == "__main__":
    main()
