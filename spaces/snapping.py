"""Exact constants for fitted formulas: a fitted 0.159154943092 is 1/(2*pi) when putting 1/(2*pi) there keeps the
fit as good as it was, and a 1.0000000000003 is 1.

Candidates for a constant c are the simple numbers r*b within `search_tolerance` * 10^(-cost/2) (relative) of c,
cost growing with the digits of p and q and the base (1 costs 0, 3/5 1.8, 1/(2*pi) 2.1): r a small
rational p/q (q <= 12 or a decimal 16, 20, 25, 50, 100; |p| <= 120) and b one of 1, pi, e, sqrt(2), pi^2, sqrt(pi), sqrt(2*pi) and their inverses;
0 is always a candidate. They are tried simplest first; one is kept only if the whole formula, re-evaluated on the
data with it, has an RMSE no worse than the fitted one plus `fit_slack` relative, at most 1e-3 of the target's RMS
(plus `absolute_slack` times that RMS, for fits that are exact to rounding). So on noise-free data only a constant that is exact up to
float rounding snaps, and on noisy data one that the noise cannot tell apart from the simple number.

Works on any sympy expression with float constants (operator trees, pyoperon, gplearn), and on any space that can
evaluate a vector of constants (`snap_values`). `readable` then simplifies (bounded) for printing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

# (base, cost): the cost orders candidates, so 1/2 is tried before 1/(2*pi) and pi before pi**2.
BASES: tuple[tuple[sp.Expr, float], ...] = (
    (sp.Integer(1), 0.0), (sp.pi, 1.0), (1 / sp.pi, 1.0), (sp.E, 1.5), (1 / sp.E, 1.5), (sp.sqrt(2), 1.5),
    (sp.pi ** 2, 2.0), (1 / sp.pi ** 2, 2.0), (sp.sqrt(sp.pi), 2.5), (1 / sp.sqrt(sp.pi), 2.5),
    (sp.sqrt(2 * sp.pi), 2.5), (1 / sp.sqrt(2 * sp.pi), 2.5),
)
DENOMINATORS = (*range(1, 13), 16, 20, 25, 50, 100)
MAX_NUMERATOR = 120


@dataclass(frozen=True)
class Candidate:
    """An exact number `expr` (value `value`) proposed for a fitted constant; lower `cost` is simpler."""

    expr: sp.Expr
    value: float
    cost: float


def candidates(value: float, search_tolerance: float = 1e-2, noise_window: float = 0.0) -> list[Candidate]:
    """The simple numbers close enough to `value` (see the module docstring), simplest first; 0 always first.
    noise_window: a relative distance every candidate may have whatever its cost (the constant's uncertainty on
    noisy data: 1/(4*pi) fitted as 0.07963 through 1% noise is 6.7e-4 off, outside its cost window of 6.3e-4)."""
    out = [Candidate(sp.Integer(0), 0.0, 0.0)]
    if not math.isfinite(value) or value == 0.0:
        return out
    seen = {0.0}
    for base, base_cost in BASES:
        b = float(base)
        r = value / b
        for q in DENOMINATORS:
            p = round(r * q)
            if p == 0 or abs(p) > MAX_NUMERATOR or math.gcd(p, q) != 1:
                continue
            exact_value = p / q * b
            cost = base_cost + math.log10(abs(p) + 1) + (math.log10(q) + 0.5 if q > 1 else 0.0)
            # a more complex number must lie closer: 19/(6*pi) is no explanation of a noisy 1.008
            window = max(search_tolerance * 10 ** (-cost / 2), noise_window)
            if abs(exact_value - value) > window * abs(value) or exact_value in seen:
                continue
            seen.add(exact_value)
            out.append(Candidate(sp.Rational(p, q) * base, exact_value, cost + abs(exact_value / value - 1)))
    out[1:] = sorted(out[1:], key=lambda c: c.cost)
    return out


#: a fit whose RMSE is at most this fraction of the target's RMS explains the data up to noise (1% noise leaves
#: 0.01); a worse one (a gplearn fit at 0.04) is model error, and its constants get no noise window
NOISE_LEVEL_FIT = 0.02


def snap_values(values: Sequence[float], rmse_of: Callable[[np.ndarray], float], target_rms: float,
                search_tolerance: float = 1e-2, fit_slack: float = 1e-2, absolute_slack: float = 1e-10,
                max_relative_rmse: float = 0.05, n_samples: int | None = None,
                noise_sigmas: float = 4.0) -> list[sp.Expr | None]:
    """An exact number (or None: keep the float) for each constant, one constant at a time, left to right.

    rmse_of(constants) is the fit of the formula with those constant values on the data (target units);
    target_rms is the RMS of the target (same units), which scales `absolute_slack`. Nothing snaps when the fit's
    RMSE exceeds `max_relative_rmse` of target_rms (1% noise leaves about 0.01). With `n_samples`, candidates up to
    `noise_sigmas` standard errors of an overall scale factor away are tried too (relative RMSE / sqrt(n): 1.8e-3
    at 1% noise and 500 points, about 1e-12 on exact data, so noise-free snapping is unchanged) when the fit is
    within NOISE_LEVEL_FIT; the RMSE test below still decides."""
    current = np.asarray(values, dtype=np.float64).copy()
    baseline = rmse_of(current)
    if not math.isfinite(baseline) or baseline > max_relative_rmse * target_rms:
        return [None] * len(current)  # a formula that does not explain the data has no exact constants to find
    noise_window = 0.0
    if n_samples and target_rms > 0 and baseline <= NOISE_LEVEL_FIT * target_rms:
        noise_window = min(search_tolerance, noise_sigmas * baseline / target_rms / math.sqrt(n_samples))
    # a poor fit is insensitive to its constants: cap the slack so it does not snap them to arbitrary numbers
    allowed = min(baseline * (1.0 + fit_slack), baseline + 1e-3 * target_rms) + absolute_slack * target_rms
    exact: list[sp.Expr | None] = [None] * len(current)
    for i in range(len(current)):
        for cand in candidates(float(current[i]), search_tolerance, noise_window):
            trial = current.copy()
            trial[i] = cand.value
            with np.errstate(all="ignore"):
                rmse = rmse_of(trial)
            if math.isfinite(rmse) and rmse <= allowed:
                current, exact[i] = trial, cand.expr
                break
    return exact


def _rmse(pred, y: np.ndarray) -> float:
    p = np.asarray(pred)
    if np.iscomplexobj(p):
        if np.any(np.abs(p.imag) > 1e-9 * np.maximum(1.0, np.abs(p.real))):
            return math.inf
        p = p.real
    p = np.broadcast_to(p.astype(np.float64), y.shape)
    with np.errstate(all="ignore"):
        value = float(np.sqrt(np.mean((p - y) ** 2)))
    return value if math.isfinite(value) else math.inf


def snap_expression(expr: sp.Expr, symbols: Sequence[sp.Symbol], X: np.ndarray, y: np.ndarray,
                    **tolerances: float) -> sp.Expr:
    """`expr` with each float constant that snaps (see `snap_values`) replaced by its exact number.
    X (n_samples, len(symbols)) and y are the data the formula was fitted on, in the symbols' order."""
    floats = sorted(expr.atoms(sp.Float), key=sp.default_sort_key)
    if not floats:
        return expr
    params = sp.symbols(f"snap_c0:{len(floats)}")
    template = expr.xreplace(dict(zip(floats, params)))
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    try:
        fn = sp.lambdify([*symbols, *params], template, "numpy")
    except Exception:  # an expression numpy cannot print is kept as it is
        return expr
    columns = [X[:, i] for i in range(X.shape[1])]

    def rmse_of(constants: np.ndarray) -> float:
        try:
            with np.errstate(all="ignore"):
                return _rmse(fn(*columns, *constants), y)
        except (ArithmeticError, TypeError, ValueError):
            return math.inf

    tolerances.setdefault("n_samples", len(y))
    exact = snap_values([float(f) for f in floats], rmse_of, float(np.sqrt(np.mean(y ** 2))), **tolerances)
    return expr.xreplace({f: e for f, e in zip(floats, exact) if e is not None})


def readable(expr: sp.Expr, max_ops: int = 80) -> sp.Expr:
    """sympy's simplification when the expression is small enough for it to be quick (count_ops <= max_ops) and
    it does not lengthen the expression; otherwise the expression as it is. Float constants are held as symbols
    meanwhile: simplify would otherwise turn the exact numbers beside them into floats (3/5 -> 0.6)."""
    if sp.count_ops(expr) > max_ops:
        return expr
    floats = sorted(expr.atoms(sp.Float), key=sp.default_sort_key)
    held = dict(zip(floats, sp.symbols(f"held_c0:{len(floats)}")))
    try:
        simpler = sp.simplify(expr.xreplace(held)).xreplace({v: k for k, v in held.items()})
    except Exception:  # sympy raises on some exotic forms; printing the unsimplified form is still right
        return expr
    return simpler if sp.count_ops(simpler) <= sp.count_ops(expr) else expr


#: a subterm whose every value on the data is below this in magnitude is taken as the zero it rounds to
VANISHING = 1e-200


def drop_vanishing(expr: sp.Expr, symbols: Sequence[sp.Symbol], X: np.ndarray, y: np.ndarray) -> sp.Expr:
    """`expr` with each subterm that holds a fitted constant and is zero to float64 on every data row replaced by
    0, when the fit stays as good: x**(-154534.4) over x in [1, 3] underflows to 0, so x**(x**(-154534.4) + 2)
    fits exactly as x**2 does, but no snapping of the constant itself can show that it is x**2."""
    X = np.asarray(X, dtype=np.float64)
    columns = [X[:, i] for i in range(X.shape[1])]

    def values(e: sp.Expr):
        try:
            with np.errstate(all="ignore"):
                return np.broadcast_to(np.asarray(sp.lambdify(symbols, e, "numpy")(*columns)), y.shape)
        except Exception:  # noqa: BLE001 - a subterm numpy cannot evaluate is left alone
            return None

    if sp.count_ops(expr) > 200:   # bounded work: describe() runs this on every front member
        return expr
    base = values(expr)
    if base is None:
        return expr
    base_rmse = _rmse(base, y)
    # "as good": within a few float64 roundings of the data's scale, not only 1e-9 of a near-zero RMSE (theta**2
    # and theta**(0 + 2.0) differ in the last bit where numpy's SIMD pow rounds differently, as on AVX-512 hosts)
    with np.errstate(all="ignore"):
        noise = 16 * np.finfo(np.float64).eps * float(np.sqrt(np.nanmean(np.asarray(y, np.float64) ** 2)))
    for sub in sp.preorder_traversal(expr):
        if sub.is_Atom or not sub.atoms(sp.Float) or not sub.free_symbols:
            continue
        v = values(sub)
        if v is None or np.iscomplexobj(v) or not np.all(np.abs(v) < VANISHING):
            continue
        trial = expr.xreplace({sub: sp.Integer(0)})
        if _rmse(values(trial) if trial.free_symbols else float(trial), y) <= base_rmse * (1 + 1e-9) + noise + 1e-300:
            return drop_vanishing(trial, symbols, X, y)
    return expr


def exact_formula(expr: sp.Expr, symbols: Sequence[sp.Symbol], X: np.ndarray, y: np.ndarray,
                  max_ops: int = 80, **tolerances: float) -> sp.Expr:
    """Drop subterms that vanish on the data, snap, simplify, and snap again the constants that simplification
    merged (`2.0*(0.25*x)` -> `0.5*x`)."""
    expr = drop_vanishing(expr, symbols, X, y)
    snapped = readable(snap_expression(expr, symbols, X, y, **tolerances), max_ops)
    if snapped.atoms(sp.Float):
        snapped = readable(snap_expression(snapped, symbols, X, y, **tolerances), max_ops)
    return snapped


def positive_symbols(names: Sequence[str], X: np.ndarray | None) -> list[sp.Symbol]:
    """Symbols for the variables, declared positive where all the data are (lets sympy write log(x)/x)."""
    if X is None:
        return [sp.Symbol(n, real=True) for n in names]
    return [sp.Symbol(n, positive=True) if np.all(X[:, i] > 0) else sp.Symbol(n, real=True)
            for i, n in enumerate(names)]
