#!/usr/bin/env python3
"""NumPy/SciPy baseline for `npm run bench -- drift`.

Computes, for the same data `modelwatch report` reads, the statistics of DESIGN section 3: per numeric
feature ks_2samp (statistic, p-value), wasserstein_distance (and its normalised form), reference-decile
bins with psi / Jensen-Shannon / Hellinger; per categorical feature the category counts, chi2_contingency
(correction=False), psi / Jensen-Shannon / Hellinger.

pyarrow is not installed here, so the bench has ClickHouse write each column as a .npy file next to the
Parquet files; loading those is timed separately and NOT counted in `stats_seconds`.

usage: drift_scipy.py DIR NUMERIC CATEGORICAL   (reads DIR/{reference,current}_<column>.npy)
prints one JSON object: {"load_seconds", "stats_seconds", "features": {...}}
"""
import json
import sys
import time

import numpy as np
from scipy import stats
from scipy.spatial import distance

FLOOR = 1e-4


def binned(r, c):
    rp = r / r.sum() if r.sum() > 0 else r.astype(float)
    cp = c / c.sum() if c.sum() > 0 else c.astype(float)
    rf = np.maximum(rp, FLOOR)
    cf = np.maximum(cp, FLOOR)
    psi = float(np.sum((cf - rf) * np.log(cf / rf)))
    js = float(distance.jensenshannon(rp, cp))
    hel = float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(rp * cp)))))
    return psi, js, hel


def numeric(ref, cur):
    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    ks = stats.ks_2samp(ref, cur)
    w = stats.wasserstein_distance(ref, cur)
    sd = float(np.std(ref))
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    nb = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, ref, side='right'), minlength=nb)
    c = np.bincount(np.searchsorted(edges, cur, side='right'), minlength=nb)
    psi, js, hel = binned(r, c)
    return {'ks': {'statistic': float(ks.statistic), 'p_value': float(ks.pvalue)}, 'wasserstein': float(w),
            'wasserstein_norm': float(w / (sd if sd > 0 else 1.0)), 'psi': psi, 'jensen_shannon': js, 'hellinger': hel}


def categorical(ref, cur):
    cats, inv = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    r = np.bincount(inv[: len(ref)], minlength=len(cats))
    c = np.bincount(inv[len(ref):], minlength=len(cats))
    chi = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    psi, js, hel = binned(r, c)
    return {'chi_square': {'statistic': float(chi.statistic), 'p_value': float(chi.pvalue)}, 'psi': psi,
            'jensen_shannon': js, 'hellinger': hel}


def main():
    d, num, cat = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
    t0 = time.perf_counter()
    data = {}
    for side in ('reference', 'current'):
        for col in num + cat:
            data[(side, col)] = np.load(f'{d}/{side}_{col}.npy')
    t1 = time.perf_counter()
    out = {}
    for col in num:
        out[col] = numeric(data[('reference', col)].astype(np.float64), data[('current', col)].astype(np.float64))
    for col in cat:
        out[col] = categorical(data[('reference', col)], data[('current', col)])
    t2 = time.perf_counter()
    print(json.dumps({'load_seconds': t1 - t0, 'stats_seconds': t2 - t1, 'features': out}))


if __name__ == '__main__':
    main()
