"""The default symbolic-regression space (`evoforge run sr`): operator trees whose first population is seeded with
closed-form fits, a power law and short sums of monomials (`spaces.monomials`) of the target and of 1/y, y^2 and
1/y^2 (so 1/(1/d1 + n/d2) and m0/sqrt(1 - v^2/c^2) are sums of monomials too), before the evolutionary search
refines the rest. On the AI Feynman benchmark the seeds alone are exact for about 40 of the 100 laws
(bench/README.md); the search keeps its full operator set for the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.protocols import UserError
from spaces.monomials import LinearFit, Monomial, monomial_sums, power_law
from spaces.optree import OpTreeConfig, OpTreeSpace


@dataclass(frozen=True)
class SrConfig(OpTreeConfig):
    """OpTreeConfig, plus: seed_power_law (seed with c * prod x_i^a_i fitted on logarithms), seed_sums (seed with
    the best sums of up to `max_terms` monomials) of each of `target_transforms` of y (identity, inverse, square,
    inverse_square); a deeper default tree so those seeds fit in it."""

    max_depth: int = 8
    seed_power_law: bool = True
    seed_sums: bool = True
    max_terms: int = 3
    target_transforms: tuple[str, ...] = ("identity", "inverse", "square", "inverse_square")


class SrSpace(OpTreeSpace):
    Config = SrConfig

    def initial(self, rng: np.random.Generator, size: int) -> list[tuple]:
        """The seeds, then random trees; only the seeds when the best reproduces the data to rounding (1e-12
        relative): random trees, each with its constant fit, would cost most of a short budget for nothing."""
        seeds = self.closed_form_seeds()[: size // 2]
        if seeds and self.relative_error(seeds[0]) <= 1e-12:
            return seeds
        return seeds + [self.random(rng) for _ in range(size - len(seeds))]

    def relative_error(self, genome: tuple) -> float:
        """RMSE over the RMS of the target, on the run's data."""
        data = self.context.dataset
        with np.errstate(all="ignore"):
            value = float(np.sqrt(np.mean((self.predict(genome, data.X) - data.y) ** 2) / np.mean(data.y ** 2)))
        return value if np.isfinite(value) else np.inf

    def closed_form_seeds(self) -> list[tuple]:
        """Genomes of the closed-form fits on the run's data, lowest RMSE on y first (none without data)."""
        data = self.context.dataset
        if data is None:
            return []
        bad = [t for t in self.config.target_transforms if t not in TRANSFORMS]
        if bad:
            raise UserError(f"space.target_transforms: unknown {bad[0]!r}; choose from {', '.join(TRANSFORMS)}")
        X, y = data.X, data.y
        sign = -1.0 if np.all(y < 0) else 1.0
        allowed = set(self.config.operators) | set(self.variables)
        genomes = []
        for name in self.config.target_transforms:
            forward, wrap = TRANSFORMS[name]
            with np.errstate(all="ignore"):
                z = forward(y)
            if not np.all(np.isfinite(z)) or np.ptp(z) == 0:
                continue
            fits: list[LinearFit] = []
            if self.config.seed_power_law and name == "identity" and (fit := power_law(X, z)) is not None:
                fits.append(fit)
            if self.config.seed_sums and self.config.max_terms > 0:
                fits += monomial_sums(X, z, self.config.max_terms)
            scale = float(np.sqrt(np.mean(z ** 2)))
            genomes += [wrap(self.genome_of(f, scale), sign) for f in fits]
        genomes = [g for g in dict.fromkeys(genomes) if all(isinstance(t, float) or t in allowed for t in g)]
        with np.errstate(all="ignore"):
            errors = [float(np.sqrt(np.mean((self.predict(g, X) - y) ** 2))) for g in genomes]
        order = sorted(range(len(genomes)), key=lambda i: (errors[i] if np.isfinite(errors[i]) else np.inf,
                                                           len(genomes[i])))
        return [genomes[i] for i in order]

    def genome_of(self, fit: LinearFit, scale: float) -> tuple:
        """The prefix tuple of intercept + sum_k c_k * monomial_k (the intercept left out when below 1e-9 of the
        target's RMS)."""
        parts = [self._term(c, m) for c, m in zip(fit.coefficients, fit.terms)]
        if abs(fit.intercept) > 1e-9 * scale:
            parts.append([float(fit.intercept)])
        return tuple(_balanced("add", parts))

    def _term(self, c: float, m: Monomial) -> list:
        num = [_factor(self.variables[i], a) for i, a in m if a > 0]
        den = [_factor(self.variables[i], -a) for i, a in m if a < 0]
        body = ["mul", float(c), *_balanced("mul", num)] if num else [float(c)]
        return ["div", *body, *_balanced("mul", den)] if den else body


# name -> (z = forward(y), genome of y from the genome of z and the sign of y)
TRANSFORMS = {
    "identity": (lambda y: y, lambda g, sign: g),
    "inverse": (lambda y: 1.0 / y, lambda g, sign: ("div", 1.0, *g)),
    "square": (lambda y: y * y, lambda g, sign: ("sqrt", *g) if sign > 0 else ("mul", -1.0, "sqrt", *g)),
    "inverse_square": (lambda y: 1.0 / (y * y),
                       lambda g, sign: ("div", sign, "sqrt", *g)),
}


def _factor(name: str, a: float) -> list:
    """x^a for a > 0 with the operators a physicist writes: x, x*x, x*x*x, sqrt(x), x*sqrt(x), else pow."""
    return {1.0: [name], 2.0: ["mul", name, name], 3.0: ["mul", name, "mul", name, name], 0.5: ["sqrt", name],
            1.5: ["mul", name, "sqrt", name]}.get(a, ["pow", name, float(a)])


def _balanced(op: str, parts: list[list]) -> list:
    if len(parts) == 1:
        return parts[0]
    half = len(parts) // 2
    return [op, *_balanced(op, parts[:half]), *_balanced(op, parts[half:])]
