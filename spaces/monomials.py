"""Closed-form starting points for formula search, found by linear least squares instead of evolution.

Many laws of physics are a power law, y = c * x1^a1 * x2^a2 ... (about 40 of the 100 AI Feynman equations), or a
short sum of such monomials (m*(v^2 + u^2 + w^2)/2). `power_law` fits the first on logarithms (log|y| is linear in
log x) and rounds the exponents to halves; `monomial_sums` finds the second by a beam search over a library of
monomials of up to three variables, each step refitting the coefficients by least squares (an intercept included).
The AI Feynman method does the same two steps as "dimensional analysis" and "polynomial fit". The search then
refines whatever these do not get exactly.

A monomial is a tuple of (variable index, exponent) pairs, exponents multiples of 1/2.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

Monomial = tuple[tuple[int, float], ...]
SINGLE_EXPONENTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0)
PAIR_EXPONENTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
TRIPLE_EXPONENTS = (-2.0, -1.0, 1.0, 2.0)


@dataclass(frozen=True)
class LinearFit:
    """y ~ intercept + sum_k coefficients[k] * terms[k](X); rmse in the target's units on the fitted data."""

    terms: tuple[Monomial, ...]
    coefficients: tuple[float, ...]
    intercept: float
    rmse: float


def monomial_values(m: Monomial, X: np.ndarray) -> np.ndarray:
    out = np.ones(X.shape[0])
    with np.errstate(all="ignore"):
        for i, a in m:
            out = out * X[:, i] ** a
    return out


def power_law(X: np.ndarray, y: np.ndarray) -> LinearFit | None:
    """c * prod x_i^a_i with the a_i rounded to halves, or None when a log cannot be taken (x <= 0, y of both signs
    or zero). c is refitted by least squares on y itself after rounding."""
    if X.shape[1] == 0 or np.any(X <= 0) or not (np.all(y > 0) or np.all(y < 0)):
        return None
    A = np.column_stack([np.ones(len(y)), np.log(X)])
    coef, *_ = np.linalg.lstsq(A, np.log(np.abs(y)), rcond=None)
    exponents = np.round(coef[1:] * 2) / 2
    term = tuple((i, float(a)) for i, a in enumerate(exponents) if a != 0)
    values = monomial_values(term, X)
    c = float(values @ y / (values @ values))
    return LinearFit((term,), (c,), 0.0, _rmse(c * values, y))


def library(n_vars: int, max_columns: int = 20000) -> list[Monomial]:
    """Monomials of one, two and three distinct variables (exponents from SINGLE/PAIR/TRIPLE_EXPONENTS), in that
    order, cut at `max_columns`."""
    out: list[Monomial] = [((i, a),) for i in range(n_vars) for a in SINGLE_EXPONENTS]
    for pair in itertools.combinations(range(n_vars), 2):
        out += [tuple(zip(pair, e)) for e in itertools.product(PAIR_EXPONENTS, repeat=2)]
    for triple in itertools.combinations(range(n_vars), 3):
        out += [tuple(zip(triple, e)) for e in itertools.product(TRIPLE_EXPONENTS, repeat=3)]
        if len(out) >= max_columns:
            break
    return out[:max_columns]


def monomial_sums(X: np.ndarray, y: np.ndarray, max_terms: int = 3, beam: int = 6, fan_out: int = 12,
                  max_rows: int = 400) -> list[LinearFit]:
    """Sums of up to `max_terms` monomials (plus an intercept), best first: forward selection by the exact RMSE
    gain of each added column (orthogonal least squares), as a beam search, run on three libraries of growing
    size (one-, two-, three-variable monomials), so a short sum of simple terms is not crowded out by one complex
    term that happens to correlate better."""
    X, y = X[:max_rows], y[:max_rows]
    terms = library(X.shape[1])
    with np.errstate(all="ignore"):
        F = np.column_stack([monomial_values(m, X) for m in terms])
    ok = np.all(np.isfinite(F), axis=0) & (np.ptp(F, axis=0) > 0)
    terms = [m for m, good in zip(terms, ok) if good]
    F = F[:, ok]
    fits: dict[tuple[Monomial, ...], LinearFit] = {}
    for n_vars in (1, 2, 3):
        columns = [j for j, m in enumerate(terms) if len(m) <= n_vars]
        for fit in _forward_selection(F[:, columns], y, max_terms, beam, fan_out):
            chosen = tuple(terms[columns[j]] for j in fit[0])
            fits[chosen] = LinearFit(chosen, fit[1], fit[2], fit[3])
    return sorted(fits.values(), key=lambda f: (f.rmse, len(f.terms)))


def _forward_selection(F: np.ndarray, y: np.ndarray, max_terms: int, beam: int, fan_out: int):
    """(chosen columns, coefficients, intercept, rmse) of the best state at each size, by beam search."""
    norms = np.einsum("ij,ij->j", F, F)
    states: list[tuple[int, ...]] = [()]
    out = []
    for _ in range(max_terms):
        scored: dict[tuple[int, ...], float] = {}
        for chosen in states:
            Q, _ = np.linalg.qr(np.column_stack([np.ones(len(y)), F[:, list(chosen)]]))
            residual = y - Q @ (Q.T @ y)
            left = norms - np.einsum("ij,ij->j", Q.T @ F, Q.T @ F)
            with np.errstate(all="ignore"):
                gain = np.where(left > 1e-10 * norms, (F.T @ residual) ** 2 / left, -1.0)
            gain[list(chosen)] = -1.0
            for j in np.argsort(-gain)[:fan_out]:
                key = tuple(sorted((*chosen, int(j))))
                if key not in scored and gain[j] >= 0:
                    scored[key] = _rmse(_least_squares(F[:, list(key)], y)[1], y)
        if not scored:
            break
        ranked = sorted(scored.items(), key=lambda kv: kv[1])[:beam]
        states = [k for k, _ in ranked]
        coef, _ = _least_squares(F[:, list(states[0])], y)
        out.append((states[0], tuple(float(c) for c in coef[1:]), float(coef[0]), ranked[0][1]))
    return out


def _least_squares(A: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (intercept first) and fitted values of y ~ 1 + A."""
    design = np.column_stack([np.ones(len(y)), A])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, design @ coef


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    value = float(np.sqrt(np.mean((pred - y) ** 2)))
    return value if math.isfinite(value) else math.inf
