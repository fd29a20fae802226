"""Independent check of `apinode-admin monitor` (tests/integration/feedback.rs).

Reads the query and feedback records itself (log4j lines of the node's audit
files), joins them as docs/monitoring.md says (newest outcome per request id
by its time, a record seen twice by eventId counted once), and computes each
generation's metrics with scikit-learn; compares with report.json within 1e-9.

    python monitor_check.py REPORT_JSON SERVICE QUERIES_FILE FEEDBACK_FILE...
Prints one line per generation; exits 1 on the first difference.
"""
import json
import math
import sys

import numpy as np
from sklearn import metrics as m


def records(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                v = json.loads(line)
                yield v.get("message", v)


def close(name, got, want):
    if got is None or not math.isclose(got, want, rel_tol=0, abs_tol=1e-9):
        print(f"FAIL {name}: report {got!r}, scikit-learn {want!r}")
        sys.exit(1)


def main():
    report_path, service, queries_path, *feedback_paths = sys.argv[1:]
    report = json.load(open(report_path))
    seen = set()
    queries = []
    for r in records(queries_path):
        if r.get("msgType") == "prediction-query" and r["serviceId"] == service and r["eventId"] not in seen:
            seen.add(r["eventId"])
            queries.append(r)
    newest = {}
    for path in feedback_paths:
        for r in records(path):
            if r.get("msgType") != "prediction-feedback" or r["serviceId"] != service or r["eventId"] in seen:
                continue
            seen.add(r["eventId"])
            old = newest.get(r["requestId"])
            if old is None or r["time"] >= old["time"]:
                newest[r["requestId"]] = r
    checked = 0
    for generation, summary in report["generations"].items():
        rows = [(q, newest[q["requestId"]]) for q in queries
                if q["generation"] == generation and not q["result"].get("ignored") and q["requestId"] in newest]
        perf = summary["overall"]["performance"]
        w = np.array([o.get("weight", 1.0) for _, o in rows])
        if isinstance(rows[0][0]["result"]["prediction"], str):
            y = [str(o["outcome"]) for _, o in rows]
            yhat = [q["result"]["prediction"] for q, _ in rows]
            classes = list(rows[0][0]["result"]["probas"].keys())
            labels = sorted(set(y) | set(yhat))
            close("accuracy", perf["accuracy"], m.accuracy_score(y, yhat, sample_weight=w))
            close("balancedAccuracy", perf["balancedAccuracy"], m.balanced_accuracy_score(y, yhat, sample_weight=w))
            p, r, f, _ = m.precision_recall_fscore_support(y, yhat, labels=labels, sample_weight=w, zero_division=0)
            for i, label in enumerate(labels):
                close(f"precision[{label}]", perf["perClass"][label]["precision"], p[i])
                close(f"recall[{label}]", perf["perClass"][label]["recall"], r[i])
                close(f"f1[{label}]", perf["perClass"][label]["f1"], f[i])
            mp, mr, mf, _ = m.precision_recall_fscore_support(y, yhat, labels=labels, sample_weight=w, average="macro", zero_division=0)
            close("macro precision", perf["macro"]["precision"], mp)
            close("macro recall", perf["macro"]["recall"], mr)
            close("macro f1", perf["macro"]["f1"], mf)
            probas = np.array([[q["result"]["probas"][c] for c in classes] for q, _ in rows])
            close("logLoss", perf["logLoss"], m.log_loss(y, probas, labels=classes, sample_weight=w))
            pos = classes[1]
            truth = [1 if t == pos else 0 for t in y]
            close("rocAuc", perf["rocAuc"], m.roc_auc_score(truth, probas[:, 1], sample_weight=w))
            close("brier", perf["brier"], m.brier_score_loss(truth, probas[:, 1], sample_weight=w))
            print(f"ok {service} {generation}: {len(rows)} labelled, accuracy {perf['accuracy']:.4f}, ROC AUC {perf['rocAuc']:.4f}")
        else:
            y = np.array([float(o["outcome"]) for _, o in rows])
            yhat = np.array([q["result"]["prediction"] for q, _ in rows])
            close("mae", perf["mae"], m.mean_absolute_error(y, yhat, sample_weight=w))
            close("rmse", perf["rmse"], m.root_mean_squared_error(y, yhat, sample_weight=w))
            close("r2", perf["r2"], m.r2_score(y, yhat, sample_weight=w))
            close("mape", perf["mape"], m.mean_absolute_percentage_error(y, yhat, sample_weight=w))
            close("medianAbsoluteError", perf["medianAbsoluteError"], m.median_absolute_error(y, yhat, sample_weight=w))
            print(f"ok {service} {generation}: {len(rows)} labelled, RMSE {perf['rmse']:.4f}, R2 {perf['r2']:.4f}")
        if summary["overall"]["labelled"] != len(rows):
            print(f"FAIL labelled {summary['overall']['labelled']} vs {len(rows)}")
            sys.exit(1)
        checked += 1
    if checked == 0:
        print("FAIL: no generation in the report")
        sys.exit(1)


if __name__ == "__main__":
    main()
