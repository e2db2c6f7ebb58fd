#!/usr/bin/python3
"""Writes tests/golden/stats/cases.txt: numbers for framework/src/bootstrap.hpp computed
independently with numpy (no patchbay code), for tests/unit/test_bootstrap.cpp.

    /usr/bin/python3 tests/golden/make_stats_golden.py

Each line is "KEY v1 v2 ..." (repr-exact floats):
- w.*: predictions with many tied scores and integer clip weights; w.expect holds accuracy,
  mAP and ROC-AUC computed on the *expanded* set (each clip repeated by its weight), AP from
  its definition over distinct thresholds and AUC by comparing every positive-negative pair.
- p.*: values and numpy.percentile's 2.5 and 97.5 percentiles (default interpolation).
- b.*: two sweep points over one test set (A: two seeds, B: one), and numpy's own
  hierarchical bootstrap (seeds and clips, clips shared) with b.replicates replicates:
  the 95 % interval of A's mean accuracy and of A - B. patchbay's intervals use another
  random stream, so the test compares them within a Monte Carlo tolerance."""
import pathlib

import numpy as np

rng = np.random.default_rng(20261203)
lines = []


def put(key, values):
    lines.append(key + " " + " ".join(repr(float(v)) for v in np.ravel(values)))


def ap_expanded(scores, labels):
    positives = labels.sum()
    if positives == 0:
        return np.nan
    ap, previous = 0.0, 0.0
    for t in np.unique(scores)[::-1]:  # thresholds from the top
        above = scores >= t
        tp = labels[above].sum()
        recall, precision = tp / positives, tp / above.sum()
        ap += (recall - previous) * precision
        previous = recall
    return ap


def auc_expanded(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


# Weighted metrics: 50 clips, 5 classes, scores rounded to 1 decimal (ties), multi-label
# targets, weights 0..3 (a bootstrap draw), one class with no positive at all.
n, c = 50, 5
logits = np.round(rng.normal(size=(n, c)), 1)
targets = (rng.random((n, c)) < 0.3).astype(int)
targets[:, 3] = 0
targets[np.arange(n), rng.integers(0, c, n)] = 1  # every clip has a label
targets[:, 3] = 0
weights = rng.integers(0, 4, n)
weights[0] = max(weights[0], 1)
lo, ta = np.repeat(logits, weights, axis=0), np.repeat(targets, weights, axis=0)
accuracy = np.mean(ta[np.arange(len(lo)), lo.argmax(axis=1)] == 1)
aps = [ap_expanded(lo[:, k], ta[:, k]) for k in range(c)]
aucs = [auc_expanded(lo[:, k], ta[:, k]) for k in range(c)]
put("w.shape", [n, c])
put("w.logits", logits)
put("w.targets", targets)
put("w.weights", weights)
put("w.expect", [accuracy, np.nanmean(aps), np.nanmean(aucs)])
# ... and every clip once, the plain metrics.
aps1 = [ap_expanded(logits[:, k], targets[:, k]) for k in range(c)]
aucs1 = [auc_expanded(logits[:, k], targets[:, k]) for k in range(c)]
put("w.expect_unweighted",
    [np.mean(targets[np.arange(n), logits.argmax(axis=1)] == 1), np.nanmean(aps1), np.nanmean(aucs1)])

# Percentiles.
values = rng.normal(size=37)
put("p.values", values)
put("p.expect", np.percentile(values, [2.5, 97.5]))

# Hierarchical paired bootstrap of accuracy: 240 clips, 6 classes, each clip with an ease
# shared by every run (a hard clip is hard for all: that is what pairing exploits); point A
# right on ~70 % and ~76 % (two seeds), B on ~66 % (one seed).
n, c, replicates = 240, 6, 20000
truth = rng.integers(0, c, n)
onehot = np.eye(c, dtype=int)[truth]
ease = rng.random(n)


def run(p_right):
    scores = rng.normal(size=(n, c))
    right = ease + 0.1 * rng.normal(size=n) < p_right
    scores[right, truth[right]] += 10.0
    return np.round(scores, 3)


a = [run(0.7), run(0.76)]
b = [run(0.66)]
correct = lambda s: (s.argmax(axis=1) == truth).astype(float)
ca = np.array([correct(s) for s in a])
cb = np.array([correct(s) for s in b])
point, diff = [], []
for _ in range(replicates):
    w = np.bincount(rng.integers(0, n, n), minlength=n)
    ma = np.mean([ca[i] @ w / n for i in rng.integers(0, len(a), len(a))])
    mb = np.mean([cb[i] @ w / n for i in rng.integers(0, len(b), len(b))])
    point.append(ma)
    diff.append(ma - mb)
put("b.shape", [n, c])
put("b.replicates", [replicates])
put("b.targets", onehot)
put("b.a0", a[0])
put("b.a1", a[1])
put("b.b0", b[0])
put("b.point_a", np.percentile(point, [2.5, 97.5]))
put("b.diff", [ca.mean() - cb.mean(), *np.percentile(diff, [2.5, 97.5])])

path = pathlib.Path(__file__).parent / "stats" / "cases.txt"
path.write_text("\n".join(lines) + "\n")
print(f"wrote {path} ({len(lines)} lines)")
