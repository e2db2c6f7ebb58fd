#!/usr/bin/python3
"""Writes tests/golden/metrics/cases.txt: scores, labels and scikit-learn's
average_precision_score / roc_auc_score for a few cases (ties, all-tied, few positives,
perfect and inverted rankings). Run with Debian's python3-sklearn:

    /usr/bin/python3 tests/golden/make_metrics_golden.py

Format, per case, 4 lines: "case NAME", "scores s1 s2 ...", "labels l1 l2 ...",
"expect AP AUC" (repr-exact floats; "nan" when sklearn's value is undefined)."""
import pathlib

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

rng = np.random.default_rng(1234)
cases = {
    "hand": ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]),
    "all_tied": ([0.5] * 6, [1, 0, 1, 0, 0, 0]),
    "perfect": ([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]),
    "inverted": ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]),
}
# Random scores rounded to one decimal: many ties.
for n, positives in [(40, 5), (200, 60), (97, 1)]:
    labels = np.zeros(n, dtype=int)
    labels[rng.choice(n, positives, replace=False)] = 1
    scores = np.round(rng.normal(size=n) + 0.8 * labels, 1)
    cases[f"random_{n}_{positives}"] = (scores.tolist(), labels.tolist())

out = []
for name, (scores, labels) in cases.items():
    ap = average_precision_score(labels, scores)
    auc = roc_auc_score(labels, scores)
    out.append(f"case {name}")
    out.append("scores " + " ".join(repr(float(s)) for s in scores))
    out.append("labels " + " ".join(str(int(l)) for l in labels))
    out.append(f"expect {ap!r} {auc!r}")
path = pathlib.Path(__file__).parent / "metrics" / "cases.txt"
path.write_text("\n".join(out) + "\n")
print(f"wrote {path} ({len(cases)} cases)")
