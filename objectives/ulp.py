"""Max error in float32 ULPs of a float32 program (`spaces.float32`), with the constraint max ULP <= bound.

Why a binary64 reference is enough (no mpmath needed): for y a float32 result and f(x) the exact value, we measure
|y - ref| / ulp32(ref) with ref = f(x)(1 + d) from binary64 libm (numpy / glibc), |d| <= 4 * 2^-53 (glibc and numpy's
binary64 exp, log, exp2, log2, sin, cos are documented within a few binary64 ULPs; glibc's are < 1). Then
| |y - ref| - |y - f(x)| | <= |f(x)| * 2^-51 <= ulp32(f(x)) * 2^24 * 2^-51 = 2^-27 ULP32, since |f(x)| < 2^24 ulp32(f(x))
for every normal binade (and |f(x)| < 2^-126 = 2^23 * 2^-149 for subnormal results). ulp32(ref) differs from
ulp32(f(x)) only when f(x) lies within 2^-51 relative of a power of two, where the two scales differ by 2 but the
error there is at most 2^-27 ULP either way. So the measured error is the true error within 2^-27 ULP, far below the
0.5 .. 1 ULP range that matters; the binary64 result itself is rounded to float32 only for the special-case rules
(`reduction.ulp_error`: inf/NaN agreement).

During search the error is measured on a stratified sample (seeded from the run seed: half uniform over the bit
patterns of the domain, so every binade counts, half uniform over the reduction's periods) plus the target's hard
points (reduction boundaries, overflow/underflow thresholds, x = 1, multiples of pi/2, known worst cases). The final
front is verified exhaustively, over all 2^32 inputs, by `bench/ulp_exhaustive.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.protocols import Context, Evaluation, Objective, Space, UserError
from spaces.float32.reduction import ulp_error


class UlpObjective(Objective):
    """max_ulp: the largest error in float32 ULPs over the sample (min). Constraint ulp_bound: max_ulp - bound."""

    @dataclass(frozen=True)
    class Config:
        """samples: stratified inputs besides the hard points. bound: the ULP limit (constraint). cap: values
        above it (garbage programs, inf) are reported as cap, so rankings stay finite."""

        samples: int = 20000
        bound: float = 1.0
        cap: float = 1e9

    names = ("max_ulp",)
    directions = ("min",)
    constraints = ("ulp_bound",)

    def __init__(self, config: UlpObjective.Config, space: Space, context: Context):
        super().__init__(config, space, context)
        if not hasattr(space, "target") or not hasattr(space, "fit"):
            raise UserError("objectives.ulp: needs the float32 space; set [space] name = \"float32\"")
        if config.samples < 1 or config.bound <= 0:
            raise UserError(f"objectives.ulp: samples ({config.samples}) and bound ({config.bound}) must be > 0")
        target = space.target
        rng = np.random.default_rng(context.seed)
        self.x = np.concatenate([target.sample(config.samples, rng), target.hard_points()])
        self.reference = target.reference(self.x)

    def errors(self, genome) -> np.ndarray:
        """ULP error at every sample point, with the space's fitted constants."""
        fit = self.space.fit(genome)
        y = self.space.target.evaluate(self.space.canonical(genome), fit.constants, self.x)
        return ulp_error(y, self.reference)

    def evaluate(self, genome) -> Evaluation:
        err = self.errors(genome)
        worst = float(np.max(err))
        worst = self.config.cap if not np.isfinite(worst) else min(worst, self.config.cap)
        fit = self.space.fit(genome)
        at = float(self.x[int(np.argmax(err))])
        extras = {"constants": [float(c).hex() for c in fit.constants], "worst_input": at,
                  "mean_ulp": float(np.mean(np.minimum(err, self.config.cap)))}
        return Evaluation(values=(worst,), violations=(max(0.0, worst - self.config.bound),), extras=extras)
