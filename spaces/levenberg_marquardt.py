"""Least-squares constant fitting whose result depends on the inputs only, bit for bit.

scipy's `least_squares(method="lm")` goes through MINPACK and OpenBLAS kernels whose summation order depends on
the memory alignment of the arrays; on a rank-deficient fit (two constants that only matter through their sum,
common in evolved trees) that last-bit noise grows into different constants in different processes, and a search
seeded the same way diverged after one generation. Here every reduction is numpy's own pairwise sum over
contiguous data and the normal equations are solved by elimination written out in plain Python floats, so no
BLAS call decides the order of a sum.

The method is Levenberg-Marquardt with Marquardt's diagonal scaling and forward-difference Jacobians (step
sqrt(eps) * max(1, |c|)), as in MINPACK's lmdif.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

_STEP = float(np.sqrt(np.finfo(np.float64).eps))


def _jacobian(residual: Callable[[np.ndarray], np.ndarray], c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Forward differences, one column per constant: shape (n_residuals, n_constants)."""
    columns = []
    for j in range(c.size):
        h = _STEP * max(1.0, abs(float(c[j])))
        shifted = c.copy()
        shifted[j] += h
        columns.append((residual(shifted) - r) / h)
    return np.stack(columns, axis=1)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """x with a @ x = b by Gaussian elimination with partial pivoting; None if singular. Plain Python floats:
    the systems are tiny (one row per constant), where this is faster than numpy calls and has a fixed order."""
    k = len(b)
    m = [[float(v) for v in row] + [float(rhs)] for row, rhs in zip(a.tolist(), b.tolist())]
    for i in range(k):
        p = max(range(i, k), key=lambda r: abs(m[r][i]))
        if not m[p][i] != 0.0:
            return None
        m[i], m[p] = m[p], m[i]
        pivot = m[i]
        for r in range(i + 1, k):
            f = m[r][i] / pivot[i]
            if f != 0.0:
                row = m[r]
                for col in range(i, k + 1):
                    row[col] -= f * pivot[col]
    x = [0.0] * k
    for i in range(k - 1, -1, -1):
        acc = m[i][k]
        for col in range(i + 1, k):
            acc -= m[i][col] * x[col]
        x[i] = acc / m[i][i]
    out = np.array(x)
    return out if np.all(np.isfinite(out)) else None


def least_squares_lm(residual: Callable[[np.ndarray], np.ndarray], c0: np.ndarray, max_nfev: int,
                     xtol: float = 1e-12, ftol: float = 1e-15) -> tuple[np.ndarray, float]:
    """Constants minimising 0.5 * sum(residual(c)**2) from `c0`, and that cost.

    residual must return finite values (clip them). At most `max_nfev` residual evaluations; the best point seen
    is returned, so the cost never exceeds the starting one.
    """
    c = np.asarray(c0, dtype=np.float64).copy()
    r = residual(c)
    cost = 0.5 * float(np.sum(r * r))
    nfev, damping = 1, 1e-3
    while nfev + c.size < max_nfev and cost > 0.0:
        jac = _jacobian(residual, c, r)
        nfev += c.size
        jtj = np.sum(jac[:, :, None] * jac[:, None, :], axis=0)
        grad = np.sum(jac * r[:, None], axis=0)
        scale = np.maximum(np.diag(jtj), 1e-12)
        improved = False
        while nfev < max_nfev:
            step = _solve(jtj + damping * np.diag(scale), -grad)
            if step is None:
                damping *= 10.0
                if damping > 1e16:
                    return c, cost
                continue
            trial = c + step
            r_trial = residual(trial)
            nfev += 1
            cost_trial = 0.5 * float(np.sum(r_trial * r_trial))
            if cost_trial < cost:
                small_step = float(np.sum(step * step)) <= xtol ** 2 * (float(np.sum(c * c)) + xtol)
                small_gain = cost - cost_trial <= ftol * cost
                c, r, cost = trial, r_trial, cost_trial
                damping = max(damping / 3.0, 1e-15)
                improved = True
                if small_step or small_gain:
                    return c, cost
                break
            damping *= 2.0
            if damping > 1e16:
                return c, cost
        if not improved:
            break
    return c, cost


#: values a redundant constant is pinned to, simplest first (e: the base a fitted pow c**(k*x) really means)
PIN_VALUES = (1.0, -1.0, float(np.e), 2.0, 0.5)


def pin_redundant(residual: Callable[[np.ndarray], np.ndarray], c: np.ndarray, max_cost: float, max_nfev: int,
                  bases: Sequence[bool] = ()) -> np.ndarray:
    """Fix constants the fit does not need to simple values, refitting the others, while the cost stays <= max_cost.

    An exact fit with redundant constants (c1 * c2**(c3 * x**2) for exp(-x**2/2)/sqrt(2*pi): c2 and c3 only
    matter through c3 * ln c2) has a valley of equivalent optima, and LM stops at an arbitrary point of it where no
    constant is a simple number. Pinning c2 = e moves c3 to -1/2, which constant snapping then recognises.
    Each constant is tried in turn against `PIN_VALUES`; the first pin that keeps the fit is kept. A constant
    marked in `bases` (the base of a power) tries e first.
    """
    c = np.asarray(c, dtype=np.float64).copy()
    pinned = np.zeros(c.size, dtype=bool)
    for j in range(c.size):
        pins = (float(np.e), *PIN_VALUES) if j < len(bases) and bases[j] else PIN_VALUES
        if float(c[j]) in pins:
            pinned[j] = True
            continue
        free = ~pinned & (np.arange(c.size) != j)
        for value in pins:
            trial = c.copy()
            trial[j] = value

            def partial(cf, trial=trial, free=free):
                full = trial.copy()
                full[free] = cf
                return residual(full)

            if free.any():
                fitted, cost = least_squares_lm(partial, c[free], max_nfev)
                trial[free] = fitted
            else:
                r = residual(trial)
                cost = 0.5 * float(np.sum(r * r))
            if cost <= max_cost and np.all(np.isfinite(trial)):
                c, pinned[j] = trial, True
                break
    return c
