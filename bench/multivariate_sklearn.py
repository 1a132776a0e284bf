#!/usr/bin/python3
"""Baseline of `npm run bench -- multivariate`: NumPy / SciPy / scikit-learn doing the same computation as
each modelwatch multivariate method, with the same caps, fold count, permutations and model settings.

Usage: multivariate_sklearn.py METHOD DATASET DIR PARAMS_JSON
  METHOD   load | reconstruction | domain_classifier | mmd | component_share | mean_distance
  DATASET  numeric | embedding  (reads DIR/DATASET_ref.f64 and DIR/DATASET_cur.f64, little-endian float64,
           shapes in DIR/shapes.json)
Prints one JSON object: {"seconds": compute time (data loading excluded), "statistic": ..., ...}.
"""
import json
import os
import sys
import time

import numpy as np

method, dataset, d, params = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
shapes = json.load(open(os.path.join(d, "shapes.json")))
rows, cols = shapes[dataset]
ref = np.fromfile(os.path.join(d, f"{dataset}_ref.f64"), dtype="<f8").reshape(rows, cols)
cur = np.fromfile(os.path.join(d, f"{dataset}_cur.f64"), dtype="<f8").reshape(rows, cols)
rng = np.random.default_rng(params.get("seed", 42))


def cap(x, n):
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), n, replace=False))]


def reconstruction():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(ref)
    pca = PCA(n_components=params["varianceShare"], svd_solver="full").fit(scaler.transform(ref))

    def err(x):
        z = scaler.transform(x)
        return float(np.mean(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)))

    size = len(ref) // 10
    chunks = [err(ref[i : i + size]) for i in range(0, len(ref) - size + 1, size)]
    mean, std = np.mean(chunks), np.std(chunks)
    e = err(cur)
    return {"statistic": e, "upper": float(mean + 3 * std), "components": int(pca.n_components_)}


def domain_classifier():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = np.vstack([cap(ref, params["maxRowsPerSide"]), cap(cur, params["maxRowsPerSide"])])
    y = np.r_[np.zeros(len(x) // 2), np.ones(len(x) - len(x) // 2)]
    aucs, drops = [], np.zeros(x.shape[1])
    for train, test in StratifiedKFold(params["folds"], shuffle=True, random_state=params["seed"]).split(x, y):
        model = HistGradientBoostingClassifier(
            max_iter=params["nEstimators"],
            learning_rate=params["learningRate"],
            max_depth=params["maxDepth"],
            max_leaf_nodes=None,
            min_samples_leaf=params["minSamplesLeaf"],
            max_bins=params["maxBins"],
            l2_regularization=params["l2"],
            early_stopping=False,
        ).fit(x[train], y[train])
        xt = x[test]
        base = roc_auc_score(y[test], model.predict_proba(xt)[:, 1])
        aucs.append(base)
        # Permutation importance: one permutation of each held-out column, the AUC drop.
        for j in range(x.shape[1]):
            saved = xt[:, j].copy()
            xt[:, j] = rng.permutation(saved)
            drops[j] += base - roc_auc_score(y[test], model.predict_proba(xt)[:, 1])
            xt[:, j] = saved
    return {"statistic": float(np.mean(aucs)), "top_feature": int(np.argmax(drops))}


def mmd():
    from scipy.spatial.distance import cdist, pdist

    x, yy = cap(ref, params["maxRowsPerSide"]), cap(cur, params["maxRowsPerSide"])
    pooled = np.vstack([x, yy])
    sigma = float(np.median(pdist(pooled)))
    k = np.exp(-cdist(pooled, pooled, "sqeuclidean") / (2 * sigma**2))
    np.fill_diagonal(k, 0)
    n, m = len(pooled), len(x)

    def stat(ix, iy):
        a, b = len(ix), len(iy)
        return (
            k[np.ix_(ix, ix)].sum() / (a * (a - 1))
            + k[np.ix_(iy, iy)].sum() / (b * (b - 1))
            - 2 * k[np.ix_(ix, iy)].sum() / (a * b)
        )

    obs = stat(np.arange(m), np.arange(m, n))
    hits = 0
    for _ in range(params["permutations"]):
        p = rng.permutation(n)
        hits += stat(p[:m], p[m:]) >= obs
    return {"statistic": float(obs), "p_value": (1 + hits) / (1 + params["permutations"]), "bandwidth": sigma}


def component_share():
    from scipy.stats import ks_2samp

    p = np.array([ks_2samp(ref[:, j], cur[:, j], method="asymp").pvalue for j in range(cols)])
    return {"statistic": float(np.mean(p < params["alpha"]))}


def mean_distance():
    a, b = ref.mean(axis=0), cur.mean(axis=0)
    return {
        "statistic": float(np.linalg.norm(a - b)),
        "cosine": float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
    }


fns = {
    "load": lambda: {"statistic": float(ref[0, 0] + cur[0, 0])},
    "reconstruction": reconstruction,
    "domain_classifier": domain_classifier,
    "mmd": mmd,
    "component_share": component_share,
    "mean_distance": mean_distance,
}
t = time.perf_counter()
out = fns[method]()
out["seconds"] = time.perf_counter() - t
print(json.dumps(out))
