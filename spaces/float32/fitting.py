"""The inner optimiser: constants for a program structure, so that evolution only has to search structure.

Three stages, all deterministic for a given program (random starts are seeded from the program text):
1. least squares on the relative error over Chebyshev nodes of the reduced interval (float64, Levenberg-Marquardt
   from a few starts; a program linear in its constants, e.g. Horner form, converges in one step);
2. minimax: Lawson's iteratively re-weighted least squares (weights *= |error|), keeping the best max error;
3. float32-rounding-aware refinement: round to float32, then coordinate descent over each constant's float32
   neighbours (+-1, +-2, +-4 ULP steps) on the *whole function* (reduction + program + reconstruction, float32
   simulation) over a fixed stratified sample and the target's hard points, minimising the max ULP error.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import least_squares

from spaces.float32.program import Program, evaluate_f64, n_constants
from spaces.float32.reduction import TARGETS, Target, ulp_error


@dataclass(frozen=True)
class FitSettings:
    """points: Chebyshev nodes for stages 1-2. starts: LM starts. lawson_rounds: minimax re-weightings.
    refine_points: stratified float32 inputs for stage 3; refine_rounds: coordinate-descent sweeps (0 = skip)."""

    points: int = 256
    starts: int = 3
    lawson_rounds: int = 6
    hopeless: float = 1e-4     # stage-1 relative error above which stage 2 is skipped (>= ~1000 ULP anyway)
    refine_below: float = 2e-6  # stage-2 relative error above which stage 3 is skipped (>= ~15 ULP: no 1-ULP hope)
    refine_points: int = 3000
    refine_rounds: int = 2


@dataclass(frozen=True)
class Fit:
    """Fitted float32 constants, and the refinement sample's max ULP error of the whole function with them."""

    constants: tuple[float, ...]
    sample_max_ulp: float
    relative_error: float      # stage-2 max relative error over the reduced interval (float64 arithmetic)


def _nodes(target: Target, n: int) -> np.ndarray:
    lo, hi = target.interval
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * t


def _residual_fn(program: Program, target: Target, r: np.ndarray):
    """Scaled residuals of every output at the nodes `r`; a target with `output_intervals` gets each output's
    residuals only on its own interval's nodes (`r` is then the concatenation, see `fit_nodes`)."""
    refs = target.reduced_reference(r)
    scales = target.reduced_scale(r, refs)
    inputs = target.program_inputs(r)
    keep = _output_masks(target, r)

    def residuals(c: np.ndarray) -> np.ndarray:
        outs = evaluate_f64(program, c, inputs, target.n_outputs)
        res = np.concatenate([((o - f) * s)[m] for o, f, s, m in zip(outs, refs, scales, keep)])
        return np.where(np.isfinite(res), res, 1e6)

    def jacobian(c: np.ndarray) -> np.ndarray:
        """Forward differences for all constants in one vectorised pass (row 0 = unperturbed)."""
        h = 1e-7 * np.maximum(np.abs(c), 1e-3)
        cols = np.tile(c, (c.size + 1, 1))
        cols[1:] += np.diag(h)
        outs = evaluate_f64(program, [cols[:, j:j + 1] for j in range(c.size)], inputs, target.n_outputs)
        res = np.concatenate([((np.broadcast_to(o, (c.size + 1, r.size)) - f) * s)[:, m]
                              for o, f, s, m in zip(outs, refs, scales, keep)], axis=1)
        res = np.where(np.isfinite(res), res, 1e6)
        return ((res[1:] - res[0]) / h[:, None]).T

    residuals.jacobian = jacobian
    return residuals


def _output_masks(target: Target, r: np.ndarray) -> list[np.ndarray]:
    if target.output_intervals is None:
        return [np.ones(r.size, bool)] * target.n_outputs
    return [(r >= lo) & (r <= hi) for lo, hi in target.output_intervals]


def fit_nodes(target: Target, n: int) -> np.ndarray:
    """Chebyshev nodes of the reduced interval, or of each output's interval in turn."""
    if target.output_intervals is None:
        return _nodes(target, n)
    return np.concatenate([_nodes_on(lo, hi, n) for lo, hi in target.output_intervals])


def _nodes_on(lo: float, hi: float, n: int) -> np.ndarray:
    t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * t


def _least_squares(residuals, x0: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    fn = residuals if weights is None else (lambda c: residuals(c) * weights)
    jac = residuals.jacobian if weights is None else (lambda c: residuals.jacobian(c) * weights[:, None])
    try:
        sol = least_squares(fn, x0, jac=jac, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=40 * (x0.size + 1))
        return sol.x
    except (ValueError, np.linalg.LinAlgError):
        return x0


def _max_abs(residuals, c: np.ndarray) -> float:
    v = float(np.max(np.abs(residuals(c))))
    return v if np.isfinite(v) else np.inf


def _refine_sample(target: Target, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([target.sample(n, np.random.default_rng(12345)), target.hard_points()])
    return x, target.reference(x)


_SAMPLES: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def refine_sample(target: Target, n: int) -> tuple[np.ndarray, np.ndarray]:
    key = (target.name, n)
    if key not in _SAMPLES:
        _SAMPLES[key] = _refine_sample(target, n)
    return _SAMPLES[key]


def _ulp_score(program: Program, target: Target, c32: np.ndarray, x: np.ndarray, ref: np.ndarray) -> float:
    err = ulp_error(target.evaluate(program, c32, x), ref)
    m = float(np.max(err))
    return m + 1e-3 * float(np.mean(np.minimum(err, 1e6))) if np.isfinite(m) else np.inf


def refine_float32(program: Program, target: Target, c: np.ndarray, settings: FitSettings) -> tuple[np.ndarray, float]:
    """Coordinate descent over float32 neighbours of each constant, on the whole function's max ULP error."""
    x, ref = refine_sample(target, settings.refine_points)
    return refine_float32_on(program, target, c, x, ref, rounds=settings.refine_rounds)


def refine_float32_on(program: Program, target: Target, c, x: np.ndarray, ref: np.ndarray, rounds: int = 2,
                      steps: tuple[int, ...] = (1, -1, 2, -2, 4, -4)) -> tuple[np.ndarray, float]:
    """Stage 3 on given inputs `x` with binary64 references `ref`: returns (float32 constants, score)."""
    best = np.asarray(c, np.float64).astype(np.float32)
    score = _ulp_score(program, target, best, x, ref)
    if not np.isfinite(score):
        return best, score
    for _ in range(rounds):
        improved = False
        for i in range(best.size):
            for step in steps:
                trial = best.copy()
                v = trial[i]
                for _ in range(abs(step)):
                    v = np.nextafter(v, np.float32(np.inf if step > 0 else -np.inf))
                trial[i] = v
                s = _ulp_score(program, target, trial, x, ref)
                if s < score:
                    best, score, improved = trial, s, True
                    break
        if not improved:
            break
    return best, score


def fit_constants(program: Program, target_name: str, settings: FitSettings = FitSettings()) -> Fit:
    """Constants for `program` (a canonical program: no dead code) approximating `target_name` after reduction."""
    return _fit_cached(program, target_name, settings)


@lru_cache(maxsize=4096)
def _fit_cached(program: Program, target_name: str, settings: FitSettings) -> Fit:
    target = TARGETS[target_name]
    n = n_constants(program)
    if n == 0:
        x, ref = refine_sample(target, settings.refine_points)
        return Fit((), _ulp_score(program, target, np.zeros(0, np.float32), x, ref), np.inf)
    residuals = _residual_fn(program, target, fit_nodes(target, settings.points))
    rng = np.random.default_rng(zlib.crc32(repr(program).encode()))
    starts = [np.ones(n), np.full(n, 0.5)] + [rng.normal(0.0, 1.0, n) for _ in range(max(0, settings.starts - 2))]
    candidates = [_least_squares(residuals, s) for s in starts[: settings.starts]]
    best = min(candidates, key=lambda c: _max_abs(residuals, c))
    best_err = _max_abs(residuals, best)
    w = np.full(residuals(best).size, 1.0)
    c = best
    stale = 0
    for _ in range(settings.lawson_rounds if best_err < settings.hopeless else 0):
        if stale >= 2:
            break
        w = w * np.abs(residuals(c)) + 1e-300
        w = w / w.sum()
        c = _least_squares(residuals, c, np.sqrt(w))
        err = _max_abs(residuals, c)
        if err < best_err:
            best, best_err, stale = c, err, 0
        else:
            stale += 1
    c32, score = (best.astype(np.float32), np.inf)
    if settings.refine_rounds > 0 and best_err < settings.refine_below:
        c32, score = refine_float32(program, target, best, settings)
    elif np.isfinite(best_err):
        x, ref = refine_sample(target, settings.refine_points)
        score = _ulp_score(program, target, c32, x, ref)
    return Fit(tuple(float(v) for v in c32), float(score), float(best_err))


def polish(program: Program, target_name: str, constants, points: int = 1 << 20, rounds: int = 4,
           hard: int = 4096, seed: int = 99) -> tuple[tuple[float, ...], float]:
    """Final float32 refinement for a chosen program, on a large stratified sample (2^20 by default) instead of
    the search's small one: coordinate descent on the current worst `hard` points plus as many random ones,
    accepted only when the max ULP over the whole large sample drops. Returns (constants, max ULP on the sample)."""
    target = TARGETS[target_name]
    rng = np.random.default_rng(seed)
    x = np.concatenate([target.sample(points, rng), target.hard_points()])
    ref = target.reference(x)
    best = np.asarray(constants, np.float64).astype(np.float32)

    def full(c):
        return ulp_error(target.evaluate(program, c, x), ref)

    err = full(best)
    score = float(err.max())
    for _ in range(rounds):
        pick = np.concatenate([np.argsort(err)[-hard:], rng.integers(0, x.size, hard)])
        trial, _ = refine_float32_on(program, target, best, x[pick], ref[pick], steps=(1, -1, 2, -2, 4, -4, 8, -8))
        trial_err = full(trial)
        if float(trial_err.max()) >= score:
            break
        best, err, score = trial, trial_err, float(trial_err.max())
    return tuple(float(v) for v in best), score
