"""Exact formula recovery: a candidate counts as the target when sympy proves them equal or, where simplify
cannot decide, when they agree to 1e-12 relative on 1,000 fresh points, half inside the training box and half in
a box three times as wide (kept on the training sign of each variable, so a log or sqrt stays in its domain).

System-agnostic: the candidate is a sympy expression (EML, operator trees, pyoperon, gplearn all give one) and
optionally a numeric predictor used instead of the expression for the numeric check (the exact EML evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

RELATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Recovery:
    """recovered: the verdict. method: "sympy" (proved), "numeric" (1e-12 agreement), or "" when not recovered.
    max_relative_error: worst error on the fresh points (inf when a side was not finite and real)."""

    recovered: bool
    method: str
    max_relative_error: float


def fresh_points(X_train: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points: half in the training box, half in a 3x wider box clipped to the training sign per variable."""
    lo, hi = X_train.min(axis=0), X_train.max(axis=0)
    width = np.maximum(hi - lo, 1e-3)
    wide_lo, wide_hi = lo - width, hi + width
    wide_lo = np.where(lo > 0, np.maximum(wide_lo, lo / 4), wide_lo)
    wide_hi = np.where(hi < 0, np.minimum(wide_hi, hi / 4), wide_hi)
    inside = rng.uniform(lo, hi, (n // 2, X_train.shape[1]))
    outside = rng.uniform(wide_lo, wide_hi, (n - n // 2, X_train.shape[1]))
    return np.vstack([inside, outside])


def _values(expr: sp.Expr, symbols: Sequence[sp.Symbol], X: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        fn = sp.lambdify(list(symbols), expr, "numpy")
        out = fn(*[X[:, i].astype(np.complex128) for i in range(len(symbols))])
    return np.broadcast_to(np.asarray(out, dtype=np.complex128), (X.shape[0],))


def _proved_equal(candidate: sp.Expr, target: sp.Expr, ops_limit: int) -> bool:
    difference = candidate - target
    if sp.count_ops(difference) > ops_limit:
        return False
    try:
        return sp.simplify(difference) == 0
    except Exception:  # sympy can raise on exotic forms; that means "cannot decide", not "different"
        return False


def check_recovery(candidate: sp.Expr | None, target: sp.Expr, symbols: Sequence[sp.Symbol], X_train: np.ndarray,
                   predict: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0,
                   ops_limit: int = 300, target_predict: Callable[[np.ndarray], np.ndarray] | None = None,
                   ) -> Recovery:
    """Is `candidate` (or `predict`) exactly `target` over `symbols`? See the module docstring.
    `target_predict` replaces the lambdified target for the numeric check (an EML target is evaluated with the
    EML semantics, not numpy's)."""
    rng = np.random.default_rng(seed)
    X = fresh_points(np.asarray(X_train, dtype=np.float64), 1000, rng)
    reference = target_predict(X) if target_predict is not None else _values(target, symbols, X)
    got = predict(X) if predict is not None else _values(candidate, symbols, X)
    with np.errstate(all="ignore"):
        error = np.abs(got - reference) / np.maximum(np.abs(reference), 1e-300)
    ok_points = np.isfinite(reference) & (np.abs(reference.imag) <= 1e-12 * np.maximum(1, np.abs(reference.real)))
    worst = float(np.max(np.where(ok_points, error, 0.0))) if ok_points.any() else np.inf
    worst = worst if np.all(np.isfinite(got[ok_points])) else np.inf
    if candidate is not None and _proved_equal(candidate, target, ops_limit):
        return Recovery(True, "sympy", worst)
    if ok_points.mean() >= 0.99 and worst <= RELATIVE_TOLERANCE:
        return Recovery(True, "numeric", worst)
    return Recovery(False, "", worst)
