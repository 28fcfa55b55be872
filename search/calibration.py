"""Calibrated proxies: refit a cost model's per-feature costs from the measurements a run made, and say how well
it ranks candidates (Spearman rank correlation with the measurement) before and after.

A proxy is calibratable when its objective offers `cost_features(genome) -> dict[str, float]` (counts of what costs
time: operations by kind, FLOPs by kind, layers) and `cost_weights() -> dict[str, float]` (its current cost per
unit of each feature); its estimate is their dot product. Refitting is non-negative least squares (a cost per
unit is never negative) on the measured values. Rank correlation is what matters to a search (selection only
compares), so that is what is reported; the refit's correlation is also given out-of-sample (k-fold), because an
in-sample fit always looks better than it predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Fewer measurements than this and a run does not report a calibration (a refit of several costs on a handful of
# points says nothing).
MIN_CANDIDATES = 10


@dataclass(frozen=True)
class Calibration:
    """feature_names: the proxy's features. prior / fitted: cost per unit of each, before and after (in the
    measurement's unit per feature unit). spearman_*: rank correlation of proxy and measurement over the `n`
    candidates: with the prior costs, with the refit (in-sample), and with refits that never saw the candidate
    (k-fold, `folds` folds)."""

    feature_names: tuple[str, ...]
    prior: tuple[float, ...]
    fitted: tuple[float, ...]
    spearman_before: float
    spearman_after: float
    spearman_after_cv: float
    n: int
    folds: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prior"] = dict(zip(self.feature_names, self.prior))
        d["fitted"] = dict(zip(self.feature_names, self.fitted))
        del d["feature_names"]
        return d


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (ties get average ranks); 0 when either side is constant."""
    # imported on use: scipy.stats costs seconds at every CLI start
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def refit(features: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Non-negative per-feature costs minimising the squared error of features @ costs against `measured`.
    Columns are scaled to unit norm first so features counted in FLOPs and in layers are fitted alike."""
    from scipy.optimize import nnls

    scale = np.linalg.norm(features, axis=0)
    scale[scale == 0] = 1.0
    costs, _ = nnls(features / scale, measured)
    return costs / scale


def calibrate(features: np.ndarray, measured: np.ndarray, prior: Sequence[float], feature_names: Sequence[str],
              rng: np.random.Generator, folds: int = 5) -> Calibration:
    """Refit costs on all candidates and report rank correlations; `rng` draws the k-fold split."""
    features = np.asarray(features, dtype=float)
    measured = np.asarray(measured, dtype=float)
    prior = np.asarray(prior, dtype=float)
    n = len(measured)
    if features.shape != (n, len(prior)) or n < 3:
        raise ValueError(f"calibrate: need >= 3 candidates and features of shape (n, {len(prior)}), "
                         f"got {features.shape} for {n} measurements")
    fitted = refit(features, measured)
    folds = max(2, min(folds, n))
    fold_of = rng.permutation(n) % folds
    held_out = np.empty(n)
    for k in range(folds):
        test = fold_of == k
        held_out[test] = features[test] @ refit(features[~test], measured[~test])
    return Calibration(feature_names=tuple(feature_names), prior=tuple(float(v) for v in prior),
                       fitted=tuple(float(v) for v in fitted),
                       spearman_before=spearman(features @ prior, measured),
                       spearman_after=spearman(features @ fitted, measured),
                       spearman_after_cv=spearman(held_out, measured), n=n, folds=folds)


def feature_matrix(proxy: Any, genomes: Sequence[Any]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(feature names, features (n, k), prior costs (k,)) of a calibratable proxy objective over `genomes`."""
    weights = proxy.cost_weights()
    names = tuple(weights)
    rows = []
    for genome in genomes:
        counts = proxy.cost_features(genome)
        rows.append([float(counts.get(name, 0.0)) for name in names])
    return names, np.asarray(rows, dtype=float), np.asarray([weights[name] for name in names], dtype=float)


def find_proxy(objective: Any) -> Any | None:
    """The calibratable part of an objective (itself, or one of a combined objective's parts), or None."""
    for part in [objective, *getattr(objective, "parts", [])]:
        if hasattr(part, "cost_features") and hasattr(part, "cost_weights"):
            return part
    return None


def calibrate_run(cheap: Any, history: Sequence[tuple[Any, Sequence[float], Sequence[float]]],
                  rng: np.random.Generator, measured_index: int = 0) -> Calibration | None:
    """Calibrate the cheap stage's proxy on a staged run's measurements (`StagedEvaluator.history`); None when the
    cheap stage has no calibratable proxy or fewer than MIN_CANDIDATES measurements were made."""
    proxy = find_proxy(cheap)
    if proxy is None or len(history) < MIN_CANDIDATES:
        return None
    names, features, prior = feature_matrix(proxy, [genome for genome, _, _ in history])
    measured = np.asarray([m[measured_index] for _, _, m in history], dtype=float)
    return calibrate(features, measured, prior, names, rng)
