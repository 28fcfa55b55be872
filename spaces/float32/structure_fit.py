"""Coefficients for a structure genome (`structure.py`): linear minimax in binary64, then float32 polishing.

Every output of a compiled structure is N(x) or N(x) / D(x) with N and D affine in the free coefficients x, so:
1. N and D at Chebyshev nodes of the output's interval, for the pinned constants and for each unit coefficient, come
   from one binary64 evaluation of the program with all those constant vectors at once (exact for affine registers);
2. minimax by Lawson's iteratively re-weighted least squares on the scaled residual s (N - f D) / D_prev (Loeb's
   linearisation for quotients; plain Lawson for polynomials), keeping the best max error; milliseconds per genome,
   against a Levenberg-Marquardt solve from several starts for an arbitrary program (`fitting.py`);
3. round to float32 and measure the whole function (harness + program, float32 simulation) on a fixed stratified
   sample and the hard points; when that is near 1 ULP, coordinate descent over each free constant's float32
   neighbours, as `fitting.refine_float32_on` does. The harness's reduction of the sample is computed once per
   target and reused for every genome (it does not depend on the program).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from spaces.float32.fitting import Fit, _nodes_on, refine_sample
from spaces.float32.program import Program, fma_f32
from spaces.float32.reduction import TARGETS, Target, ulp_error
from spaces.float32.structure import Compiled, Genome, compile_structure


@dataclass(frozen=True)
class StructureFitSettings:
    """points: Chebyshev nodes per output. lawson_rounds: re-weightings. refine_points: stratified inputs of the
    float32 stage; refine_below: max ULP (after rounding) under which the float32 coordinate descent runs;
    refine_rounds: its sweeps."""

    points: int = 384
    lawson_rounds: int = 30
    refine_points: int = 3000
    refine_below: float = 1.6
    refine_rounds: int = 3


# per target, how the fitter weights an output's residual when the harness's default (relative) is wrong:
# log2's program g(f) enters as f g(f) next to f / ln 2, so its absolute error is what counts (g crosses 0)
_ABSOLUTE = {"log2"}


def _registers_f64(program: Program, columns: list[np.ndarray], inputs: list[np.ndarray],
                   wanted: list[int]) -> list[np.ndarray]:
    """Registers `wanted` of `program` over binary64, for k constant vectors at once (`columns`: one (k, 1)
    array per constant slot, in slot order); each result has shape (k, n)."""
    regs: list = list(inputs)
    consts = iter(columns)
    with np.errstate(all="ignore"):
        for op, args in program:
            v = [next(consts) if a < 0 else regs[a] for a in args]
            if op == "add":
                regs.append(v[0] + v[1])
            elif op == "sub":
                regs.append(v[0] - v[1])
            elif op == "mul":
                regs.append(v[0] * v[1])
            elif op == "div":
                regs.append(v[0] / v[1])
            else:
                regs.append(v[0] * v[1] + v[2])
    k = columns[0].shape[0] if columns else 1
    return [np.broadcast_to(regs[w], (k, inputs[0].size)) for w in wanted]


def _lawson(a: np.ndarray, rhs: np.ndarray, rounds: int, den=None) -> tuple[np.ndarray, float]:
    """min_x max |a x - rhs| (rows already scaled). `den`: for quotients, a function x -> (weights 1/D) that
    re-linearises around the current x (Loeb). Returns (best x, its max residual of the true error)."""
    norms = np.maximum(np.max(np.abs(a), axis=0), 1e-300)
    an = a / norms
    w = np.ones(a.shape[0])
    best, best_err = None, np.inf
    d_w = np.ones(a.shape[0])
    for _ in range(rounds + 1):
        sw = np.sqrt(w) * d_w
        try:
            y = np.linalg.lstsq(an * sw[:, None], rhs * sw, rcond=None)[0]
        except np.linalg.LinAlgError:
            break
        x = y / norms
        if den is None:
            res = an @ y - rhs
            err = float(np.max(np.abs(res)))
        else:
            res, d_w_next = den(x)
            err = float(np.max(np.abs(res))) if np.all(np.isfinite(res)) else np.inf
            d_w = d_w_next
        if err < best_err:
            best, best_err = x, err
        if not np.isfinite(err):
            break
        w = w * np.abs(res) + 1e-300
        w = w / w.sum() * w.size
    return (best if best is not None else np.zeros(a.shape[1])), best_err


def fit_linear(compiled: Compiled, target: Target, settings: StructureFitSettings) -> tuple[np.ndarray, float]:
    """Binary64 minimax coefficients: the constant vector in slot order (pins in place) and the worst scaled
    error over all outputs."""
    slots = compiled.slots
    consts = np.array([s[1] if s[0] == "pin" else 0.0 for s in slots])
    worst = 0.0
    intervals = target.output_intervals or (target.interval,) * target.n_outputs
    for o, (num, den) in enumerate(compiled.fractions):
        free = [i for i, s in enumerate(slots) if s[0] == "coef" and s[1] == o]
        if not free:
            continue
        r = _nodes_on(*intervals[o], settings.points)
        f = target.reduced_reference(r)[o]
        scale = np.ones_like(r) if target.name in _ABSOLUTE else target.reduced_scale(r, target.reduced_reference(r))[o]
        cols = np.tile(consts, (len(free) + 1, 1))
        for j, i in enumerate(free):
            cols[j + 1, i] = 1.0
        wanted = [num] if den is None else [num, den]
        vals = _registers_f64(compiled.program, [cols[:, i:i + 1] for i in range(len(slots))],
                              target.program_inputs(r), wanted)
        n0, nd = vals[0][0], vals[0][1:] - vals[0][0]
        if den is None:
            a = (nd * scale).T
            x, err = _lawson(a, (f - n0) * scale, settings.lawson_rounds)
        else:
            d0, dd = vals[1][0], vals[1][1:] - vals[1][0]
            # s (N0 + Nd x - f (D0 + Dd x)) = 0, linear in x (num and den coefficients are disjoint slots)
            a = ((nd - f * dd) * scale).T
            rhs = (f * d0 - n0) * scale

            def true_error(x, n0=n0, nd=nd, d0=d0, dd=dd, f=f, scale=scale):
                d = d0 + x @ dd
                with np.errstate(all="ignore"):
                    res = ((n0 + x @ nd) / d - f) * scale
                    return res, np.where(np.abs(d) > 1e-300, 1.0 / np.abs(d), 0.0)

            x, err = _lawson(a, rhs, settings.lawson_rounds, den=true_error)
        consts[free] = x
        worst = max(worst, err)
    return consts, worst


_REDUCED: dict[tuple[str, int], tuple] = {}


def reduced_sample(target: Target, n: int) -> tuple[np.ndarray, np.ndarray, object, dict]:
    """(x, binary64 reference, reduced program inputs, harness state) for the fitter's sample, computed once."""
    key = (target.name, n)
    if key not in _REDUCED:
        x, ref = refine_sample(target, n)
        with np.errstate(all="ignore"):
            r, state = target.reduce(x)
        _REDUCED[key] = (x, ref, r, state)
    return _REDUCED[key]


class _Incremental:
    """The whole function on the fitter's sample, re-evaluating only the instructions downstream of a changed
    constant (coordinate descent changes one constant at a time; erf's three outputs share nothing but t)."""

    def __init__(self, program: Program, target: Target, sample):
        self.program, self.target, self.sample = program, target, sample
        self.n_in = len(sample[2]) if isinstance(sample[2], list) else 1
        self.slot_of = []                     # instruction index of every constant slot, in order
        for i, (_, args) in enumerate(program):
            self.slot_of += [i] * sum(1 for a in args if a < 0)
        self.first_slot = []
        k = 0
        for _, args in program:
            self.first_slot.append(k)
            k += sum(1 for a in args if a < 0)
        self.downstream = []
        for i in range(len(program)):
            hit = {self.n_in + i}
            for j in range(i + 1, len(program)):
                if any(a in hit for a in program[j][1]):
                    hit.add(self.n_in + j)
            self.downstream.append(sorted(h - self.n_in for h in hit))

    def _inputs(self):
        r = self.sample[2]
        return list(r) if isinstance(r, list) else [r]

    def _op(self, i: int, regs: list, c32: np.ndarray):
        op, args = self.program[i]
        k = self.first_slot[i]
        vals = []
        for a in args:
            if a < 0:
                vals.append(c32[k])
                k += 1
            else:
                vals.append(regs[a])
        if op == "add":
            return vals[0] + vals[1]
        if op == "sub":
            return vals[0] - vals[1]
        if op == "mul":
            return vals[0] * vals[1]
        if op == "div":
            return vals[0] / vals[1]
        return fma_f32(*vals)

    def registers(self, c32: np.ndarray) -> list:
        regs = self._inputs()
        with np.errstate(all="ignore"):
            for i in range(len(self.program)):
                regs.append(self._op(i, regs, c32))
        return regs

    def changed(self, regs: list, c32: np.ndarray, slot: int) -> list:
        regs = list(regs)
        with np.errstate(all="ignore"):
            for i in self.downstream[self.slot_of[slot]]:
                regs[self.n_in + i] = self._op(i, regs, c32)
        return regs

    def score(self, regs: list) -> float:
        x, ref, _, state = self.sample
        n_out = self.target.n_outputs
        shape = np.shape(x)
        outs = [np.broadcast_to(np.asarray(v, np.float32), shape) for v in regs[len(regs) - n_out:]]
        with np.errstate(all="ignore"):
            err = ulp_error(self.target.reconstruct(outs, state, x), ref)
        m = float(np.max(err))
        return m + 1e-3 * float(np.mean(np.minimum(err, 1e6))) if np.isfinite(m) else np.inf


def _first_score(program: Program, target: Target, c32: np.ndarray, sample) -> float:
    ev = _Incremental(program, target, sample)
    return ev.score(ev.registers(c32))


def refine(program: Program, target: Target, c32: np.ndarray, free: list[int], sample, rounds: int,
           steps: tuple[int, ...] = (1, -1, 2, -2, 4, -4)) -> tuple[np.ndarray, float]:
    """Coordinate descent over the float32 neighbours of the free constants, on the whole function's max ULP."""
    ev = _Incremental(program, target, sample)
    best = c32.astype(np.float32)
    regs = ev.registers(best)
    score = ev.score(regs)
    if not np.isfinite(score):
        return best, score
    for _ in range(rounds):
        improved = False
        for i in free:
            for step in steps:
                trial = best.copy()
                bits = trial[i:i + 1].view(np.int32)
                bits += step if trial[i] >= 0 else -step      # one float32 step up (step > 0) or down
                trial_regs = ev.changed(regs, trial, i)
                s = ev.score(trial_regs)
                if s < score:
                    best, score, regs, improved = trial, s, trial_regs, True
                    break
        if not improved:
            break
    return best, score


def fit_structure(target_name: str, genome: Genome, settings: StructureFitSettings = StructureFitSettings()
                  ) -> tuple[Compiled, Fit]:
    """Compile `genome` for `target_name` and fit its constants (see the module docstring)."""
    return _fit_cached(target_name, genome, settings)


@lru_cache(maxsize=8192)
def _fit_cached(target_name: str, genome: Genome, settings: StructureFitSettings) -> tuple[Compiled, Fit]:
    target = TARGETS[target_name]
    compiled = compile_structure(target_name, genome, target.interval)
    consts, rel = fit_linear(compiled, target, settings)
    with np.errstate(all="ignore"):
        c32 = consts.astype(np.float32)
    sample = reduced_sample(target, settings.refine_points)
    if not np.all(np.isfinite(c32)):
        return compiled, Fit(tuple(float(v) for v in c32), np.inf, float(rel))
    free = [i for i, s in enumerate(compiled.slots) if s[0] == "coef"]
    c32, score = refine(compiled.program, target, c32, free, sample,
                        settings.refine_rounds if _first_score(compiled.program, target, c32, sample)
                        < settings.refine_below else 0)
    return compiled, Fit(tuple(float(v) for v in c32), float(score), float(rel))
