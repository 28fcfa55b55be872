"""The float32 structure space: the genome chooses an approximation's shape, the fitter its coefficients.

Where `space.py` evolves raw instruction lists (and its fitter runs a nonlinear solve per program, most of them
hopeless), a genome here is a handful of structural genes (`structure.GENES`: the core's form and in-program
reduction, degrees, the evaluation scheme, pinned Taylor terms) that compile to a straight-line program for the same
fixed harness (`reduction.py`, `activations.py`), so every genome is a sensible candidate and its fit is a linear
minimax problem (`structure_fit.py`). The initial population is drawn uniformly over the genes: no textbook program
is seeded. Objectives (`ulp`, `ops`) see the compiled program through `canonical`, exactly as for `float32`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from search.protocols import Context, Space, UserError
from spaces.float32 import emit as emitters
from spaces.float32.fitting import Fit
from spaces.float32.program import Program, render
from spaces.float32.reduction import TARGETS, Target
from spaces.float32.structure import GENES, Genome, make
from spaces.float32.structure_fit import StructureFitSettings, fit_structure


class Float32StructureSpace(Space[Genome]):
    """Genome: `((gene, value), ...)` sorted by gene (see `structure.py`); e.g. for exp
    `(("degree", 6), ("den_degree", 1), ("form", "poly"), ("pin", 0), ("scheme", "horner"))`."""

    @dataclass(frozen=True)
    class Config:
        """target: exp | exp2 | log | log2 | sin | cos | tanh | sigmoid | erf. points / lawson_rounds /
        refine_points / refine_below / refine_rounds: the fitter's effort (`structure_fit.StructureFitSettings`)."""

        target: str = "exp"
        points: int = 384
        lawson_rounds: int = 30
        refine_points: int = 3000
        refine_below: float = 1.6
        refine_rounds: int = 3

    emit_languages: ClassVar[tuple[str, ...]] = ("c", "numpy", "triton")

    def __init__(self, config: Float32StructureSpace.Config, context: Context):
        super().__init__(config, context)
        if config.target not in GENES:
            raise UserError(f"space.target: unknown target {config.target!r}; choose one of {', '.join(GENES)}")
        if config.points < 16 or config.refine_points < 100:
            raise UserError(f"space.points / refine_points: {config.points} / {config.refine_points} are too few; "
                            "use at least 16 / 100")
        self.target: Target = TARGETS[config.target]
        self.genes = GENES[config.target]
        self.settings = StructureFitSettings(config.points, config.lawson_rounds, config.refine_points,
                                             config.refine_below, config.refine_rounds)

    @property
    def n_in(self) -> int:
        return self.target.n_inputs

    def _fitted(self, genome: Genome):
        return fit_structure(self.target.name, genome, self.settings)

    def canonical(self, genome: Genome) -> Program:
        """The compiled straight-line program (what `ulp` evaluates and `ops` counts)."""
        return self._fitted(genome)[0].program

    def fit(self, genome: Genome) -> Fit:
        return self._fitted(genome)[1]

    # ---- variation ------------------------------------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> Genome:
        return make(self.target.name, **{g: v[int(rng.integers(len(v)))] for g, v in self.genes.items()})

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One gene changes: an integer gene by one step (two thirds of the time) or to any allowed value; a
        change to a gene that does not act (see `structure.make`) is drawn again, up to 20 times."""
        for _ in range(20):
            child = self._mutate_once(genome, rng)
            if child != genome:
                return child
        return child

    def _mutate_once(self, genome: Genome, rng: np.random.Generator) -> Genome:
        values = dict(genome)
        names = sorted(self.genes)
        name = names[int(rng.integers(len(names)))]
        allowed = self.genes[name]
        i = allowed.index(values[name])
        if isinstance(values[name], int) and len(allowed) > 1 and rng.random() < 2 / 3:
            j = min(max(i + (1 if rng.random() < 0.5 else -1), 0), len(allowed) - 1)
        else:
            j = int(rng.integers(len(allowed)))
        if j == i:
            j = (i + 1 + int(rng.integers(len(allowed) - 1))) % len(allowed) if len(allowed) > 1 else i
        values[name] = allowed[j]
        return make(self.target.name, **values)

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> tuple[Genome, Genome]:
        """Uniform crossover: each gene from either parent."""
        da, db = dict(a), dict(b)
        c1, c2 = {}, {}
        for name in self.genes:
            if rng.random() < 0.5:
                c1[name], c2[name] = da[name], db[name]
            else:
                c1[name], c2[name] = db[name], da[name]
        return make(self.target.name, **c1), make(self.target.name, **c2)

    def key(self, genome: Genome) -> str:
        return repr(genome)

    def describe(self, genome: Genome) -> str:
        compiled, fit = self._fitted(genome)
        genes = ", ".join(f"{k}={v}" for k, v in genome)
        return f"[{genes}] " + render(compiled.program, fit.constants, self.n_in)

    def initial(self, rng: np.random.Generator, size: int) -> list[Genome]:
        return [self.random(rng) for _ in range(size)]

    def emit(self, genome: Genome, lang: str) -> str:
        if lang not in self.emit_languages:
            raise self.unsupported(lang)
        compiled, fit = self._fitted(genome)
        genes = ", ".join(f"{k}={v}" for k, v in genome)
        return emitters.emit(compiled.program, fit.constants, self.target, lang,
                             note=f"structure [{genes}]; max ULP {fit.sample_max_ulp:.4f} on the fitter's sample")
