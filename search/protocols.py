"""The two extension points of evoforge: a `Space` (what is searched) and an `Objective` (how it is scored).

The engine in `search/` knows genomes only through `Space` and scores only through `Objective`; it never imports
from `spaces/` or `objectives/`. Adding a space or an objective is one new module plus one registry line
(`spaces/__init__.py` or `objectives/__init__.py`); nothing here changes.

Worked example: a space of integer vectors and an objective counting ones (OneMax), written from scratch::

    from dataclasses import dataclass
    import numpy as np
    from search.protocols import Space, Objective, Evaluation, Context

    class BitsSpace(Space):
        @dataclass(frozen=True)
        class Config:
            length: int = 32          # bits per genome

        def random(self, rng):
            return tuple(int(b) for b in rng.integers(0, 2, self.config.length))

        def mutate(self, genome, rng):
            i = int(rng.integers(len(genome)))
            return genome[:i] + (1 - genome[i],) + genome[i + 1:]

        def crossover(self, a, b, rng):
            cut = int(rng.integers(1, len(a)))
            return a[:cut] + b[cut:], b[:cut] + a[cut:]

        def key(self, genome):
            return "".join(map(str, genome))

        def emit(self, genome, lang):
            if lang != "python":
                raise self.unsupported(lang)
            return f"BITS = {list(genome)!r}\\n"

    class OnesObjective(Objective):
        @dataclass(frozen=True)
        class Config:
            pass

        names = ("ones",)
        directions = ("max",)

        def evaluate(self, genome):
            return Evaluation(values=(float(sum(genome)),))

    space = BitsSpace(BitsSpace.Config(length=16), Context(seed=0))
    objective = OnesObjective(OnesObjective.Config(), space, Context(seed=0))

Both classes are built by the job layer from a TOML table validated against their `Config` dataclass, so a space
or objective receives typed settings and never a raw dict.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np

G = TypeVar("G")
Direction = Literal["min", "max"]


class UserError(Exception):
    """A mistake the user can fix (bad spec, bad data, unsupported option). The CLI prints it as one line."""


@dataclass(frozen=True)
class Dataset:
    """Tabular data shared by a space (which needs the variable names) and an objective (which fits them).

    `X` has shape (n_samples, n_variables); `y` shape (n_samples,). Both float64.
    """

    X: np.ndarray
    y: np.ndarray
    variables: tuple[str, ...]
    target: str
    source: str = ""


@dataclass(frozen=True)
class Context:
    """What a space or objective may need beyond its own config: the run seed and optional shared data."""

    seed: int = 0
    dataset: Dataset | None = None


@dataclass(frozen=True)
class Evaluation:
    """The score of one genome.

    values: one float per objective name, in the objective's own units.
    violations: one float >= 0 per constraint name; 0 means satisfied. Feasible beats infeasible, then by the
        sum of violations.
    failed: a reason when evaluation raised, hung or produced garbage; the genome is then ranked below every
        feasible and every merely-infeasible one.
    extras: small JSON-able facts worth keeping with the front (e.g. a simplified formula).
    """

    values: tuple[float, ...]
    violations: tuple[float, ...] = ()
    failed: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.failed is None and all(v <= 0.0 for v in self.violations)

    @property
    def total_violation(self) -> float:
        if self.failed is not None:
            return math.inf
        return float(sum(max(0.0, v) for v in self.violations))

    @staticmethod
    def failure(reason: str, n_values: int, directions: Sequence[Direction]) -> Evaluation:
        worst = tuple(math.inf if d == "min" else -math.inf for d in directions)
        assert len(worst) == n_values
        return Evaluation(values=worst, failed=reason)


class Space(ABC, Generic[G]):
    """What is searched: genomes, how to vary them, how to tell two apart, and how to turn one into code.

    Genomes must be picklable plain values (tuples, dataclasses, numpy arrays), never DEAP `creator` classes: they
    travel to Ray workers and into checkpoints. Every random draw comes from the `rng` passed in, so a seed fixes a run.
    Subclasses declare a frozen `Config` dataclass; the job layer validates the spec's `[space]` table against it.
    """

    Config: ClassVar[type]
    emit_languages: ClassVar[tuple[str, ...]] = ("python",)

    def __init__(self, config: Any, context: Context):
        self.config = config
        self.context = context

    @abstractmethod
    def random(self, rng: np.random.Generator) -> G:
        """A random genome (used to fill the initial population)."""

    @abstractmethod
    def mutate(self, genome: G, rng: np.random.Generator) -> G:
        """A small random change; must return a valid genome (respecting size limits)."""

    @abstractmethod
    def crossover(self, a: G, b: G, rng: np.random.Generator) -> tuple[G, G]:
        """Recombine two parents into two children."""

    @abstractmethod
    def key(self, genome: G) -> Hashable:
        """A canonical key: genomes with equal keys are the same program (used to de-duplicate and cache)."""

    def describe(self, genome: G) -> str:
        """One human-readable line for tables and failure logs."""
        return str(self.key(genome))

    def initial(self, rng: np.random.Generator, size: int) -> list[G]:
        """The first population. Override to seed it (a naive lowering, snapped circuits, ...)."""
        return [self.random(rng) for _ in range(size)]

    def emit(self, genome: G, lang: str) -> str:
        """Source code for `genome` in `lang` (one of `emit_languages`)."""
        raise self.unsupported(lang)

    def unsupported(self, lang: str) -> UserError:
        return UserError(f"--lang {lang!r} is not supported by this space; choose one of {', '.join(self.emit_languages)}")


class Objective(ABC, Generic[G]):
    """How a genome is scored: named objectives with directions, optional constraints, and `evaluate`.

    `evaluate` must be deterministic for a given genome (draw randomness from a seed derived from the genome or the
    context), so results do not depend on which worker ran it or in which order. It may raise or hang: the
    evaluation backend turns that into a failed `Evaluation` and logs it; the run goes on.
    Objectives are pickled once and shipped to Ray workers: keep them light or put large data in `Context.dataset`.

    Objectives that measure hardware (a GPU kernel's time, CPU latency) declare what one evaluation needs in
    `resources`, with Ray's own keys: `{"num_gpus": 1}`, `{"resources": {"timing_core": 1}}`, optionally
    `"num_cpus"`. Such an objective is evaluated on Ray actors holding those resources, one measurement at a time
    per actor (`search/hardware.py`), and in a spec it defaults to the measured stage of a staged run
    (`search/fidelity.py`). Its `evaluate` should time with `search.measurement.measure` and put the spread in
    `extras` (e.g. `{"latency_ms_iqr": 0.03}`). This is the one extension point for hardware; nothing else changes.
    """

    Config: ClassVar[type]
    names: tuple[str, ...] = ()
    directions: tuple[Direction, ...] = ()
    constraints: tuple[str, ...] = ()
    resources: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any, space: Space, context: Context):
        self.config = config
        self.space = space
        self.context = context

    @abstractmethod
    def evaluate(self, genome: G) -> Evaluation | Sequence[float]:
        """Score one genome: an `Evaluation`, or just a sequence of objective values when there are no constraints."""

    def preflight(self) -> None:
        """Raise `UserError` (one line: what is missing, what to do) when this process cannot evaluate at all, e.g.
        a GPU objective on a machine without one. Called once before a run that evaluates in this process, so the
        user gets one error instead of a run of identical failures; never called where workers evaluate."""

    def evaluate_batch(self, genomes: Sequence[G]) -> list[Evaluation | Sequence[float]]:
        """Score several genomes at once. Override when a batch is cheaper than a loop (vectorised or on a GPU);
        the default loops over `evaluate`. Backends call `evaluate` one genome at a time when a per-evaluation
        timeout is set, so an override must give the same results as the loop."""
        return [self.evaluate(g) for g in genomes]
