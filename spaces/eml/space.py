"""The EML search space: trees of the single operator eml(x, y) = exp(x) - ln(y) over the leaves 1 and the
input variables, searched by subtree variation (and optionally seeded by the gradient method).

Genomes are the prefix tuples of `spaces.eml.tree`. Variation keeps every genome within `max_depth`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from search.protocols import Context, Space, UserError
from spaces.eml import emit as emit_code
from spaces.eml.compile import from_eml
from spaces.eml.tree import EML, ONE, VAR0, Tree, depth, depths, evaluate, random_tree, subtree_end, to_string


@dataclass(frozen=True)
class EmlConfig:
    """max_depth: height limit of every genome (a leaf has height 0; the paper's gradient limit is 4).
    init_depth: height limit of random initial trees. leaf_one: probability that a random leaf is the constant 1.
    variables: variable names when the run has no dataset. seed_small: put every tree of height <= 1 in the
    first population. seed_with_gradient: also seed it with snapped circuits of the gradient method (the combined
    method); gradient_* are that method's settings. gradient_steps bounds its work; gradient_seconds (0 = none)
    would also cap its wall time, in seconds, which makes the first population depend on the machine's load, so a
    seed no longer fixes the run: keep it 0 except for wall-clock benchmarks."""

    max_depth: int = 4
    init_depth: int = 3
    leaf_one: float = 0.4
    variables: tuple[str, ...] = ()
    seed_small: bool = True
    seed_with_gradient: bool = False
    gradient_depth: int = 3
    gradient_restarts: int = 64
    gradient_steps: int = 400
    gradient_seconds: float = 0.0
    gradient_seeds: int = 2


class EmlSpace(Space):
    Config = EmlConfig
    emit_languages = ("python", "numpy", "c", "sympy", "latex", "eml")

    def __init__(self, config: EmlConfig, context: Context):
        super().__init__(config, context)
        if config.max_depth < 1 or config.max_depth > 12:
            raise UserError(f"space.max_depth: {config.max_depth} is out of range; use 1..12")
        if not 0 <= config.leaf_one <= 1:
            raise UserError(f"space.leaf_one: {config.leaf_one} is not a probability; use a value in [0, 1]")
        data = context.dataset
        if data is not None:
            self.variables = tuple(data.variables)
            self.positive = tuple(bool(np.all(data.X[:, i] > 0)) for i in range(data.X.shape[1]))
        elif config.variables:
            self.variables = tuple(config.variables)
            self.positive = (False,) * len(self.variables)
        else:
            raise UserError("space.variables: the run has no [data] table; add one or list the variable names")
        self.n_vars = len(self.variables)

    # --- variation -------------------------------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> Tree:
        d = int(rng.integers(1, self.config.init_depth + 1))
        return random_tree(rng, self.n_vars, d, full=bool(rng.random() < 0.5), leaf_one=self.config.leaf_one)

    def _leaf(self, rng: np.random.Generator) -> int:
        if self.n_vars == 0 or rng.random() < self.config.leaf_one:
            return ONE
        return VAR0 + int(rng.integers(self.n_vars))

    def mutate(self, genome: Tree, rng: np.random.Generator) -> Tree:
        """One of: replace a subtree by a random one, change a leaf, wrap a subtree in eml(., leaf) or
        eml(leaf, .), or hoist a subtree to the root."""
        at = depths(genome)
        i = int(rng.integers(len(genome)))
        end = subtree_end(genome, i)
        room = self.config.max_depth - at[i]
        kind = rng.random()
        if kind < 0.4:
            new = random_tree(rng, self.n_vars, int(rng.integers(0, min(room, 3) + 1)), leaf_one=self.config.leaf_one)
        elif kind < 0.65:
            leaves = [j for j, c in enumerate(genome) if c != EML]
            i = leaves[int(rng.integers(len(leaves)))]
            end = i + 1
            new = (self._leaf(rng),)
        elif kind < 0.85 and depth(genome[i:end]) < room:
            sub = genome[i:end]
            new = (EML, *sub, self._leaf(rng)) if rng.random() < 0.5 else (EML, self._leaf(rng), *sub)
        else:
            inner = [j for j in range(1, len(genome))]
            if not inner:
                return (EML, *genome, self._leaf(rng)) if self.config.max_depth > depth(genome) else genome
            j = inner[int(rng.integers(len(inner)))]
            return genome[j:subtree_end(genome, j)]
        return genome[:i] + tuple(new) + genome[end:]

    def crossover(self, a: Tree, b: Tree, rng: np.random.Generator) -> tuple[Tree, Tree]:
        """Swap a random subtree of each parent; retried a few times to respect max_depth, else the parents."""
        da, db = depths(a), depths(b)
        for _ in range(8):
            i = int(rng.integers(len(a)))
            j = int(rng.integers(len(b)))
            ie, je = subtree_end(a, i), subtree_end(b, j)
            sa, sb = a[i:ie], b[j:je]
            if da[i] + depth(sb) <= self.config.max_depth and db[j] + depth(sa) <= self.config.max_depth:
                return a[:i] + sb + a[ie:], b[:j] + sa + b[je:]
        return a, b

    def key(self, genome: Tree) -> str:
        return ",".join(map(str, genome))

    def describe(self, genome: Tree) -> str:
        return to_string(genome, self.variables)

    def size(self, genome: Tree) -> int:
        """Node count, leaves included (the paper's measure: ln x is 7)."""
        return len(genome)

    def predict(self, genome: Tree, X: np.ndarray) -> np.ndarray:
        """Complex128 values at the rows of X (see `tree.evaluate` for the semantics)."""
        return evaluate(genome, X)

    # --- seeding ---------------------------------------------------------------------------------------------
    def small_trees(self, height: int) -> list[Tree]:
        """Every tree of height <= `height` (38 for one variable at height 2)."""
        trees: list[Tree] = [(ONE,)] + [(VAR0 + i,) for i in range(self.n_vars)]
        for _ in range(height):
            trees = list(dict.fromkeys(trees + [(EML, *x, *y) for x, y in itertools.product(trees, trees)]))
        return trees

    def gradient_trees(self, count: int) -> list[Tree]:
        """Snapped circuits of the gradient method on the run's data, best first (empty without data)."""
        data = self.context.dataset
        if data is None:
            return []
        # torch is loaded only when gradients are asked for
        from spaces.eml.gradient import GradientSettings, fit_circuits

        cfg = self.config
        found: dict[Tree, float] = {}
        for k in range(cfg.gradient_seeds):
            settings = GradientSettings(depth=min(cfg.gradient_depth, cfg.max_depth), restarts=cfg.gradient_restarts,
                                        steps=cfg.gradient_steps,
                                        seconds=cfg.gradient_seconds / cfg.gradient_seeds or None)
            for rmse, tree in fit_circuits(data.X, data.y, settings, seed=self.context.seed * 1000 + k):
                found[tree] = min(rmse, found.get(tree, np.inf))
        ranked = sorted(found, key=lambda t: (found[t], len(t)))
        return ranked[:count]

    def initial(self, rng: np.random.Generator, size: int) -> list[Tree]:
        seeds: list[Tree] = []
        if self.config.seed_small:
            seeds += self.small_trees(1)
        if self.config.seed_with_gradient:
            seeds += self.gradient_trees(size // 2)
        seeds = list(dict.fromkeys(seeds))[:size]
        return seeds + [self.random(rng) for _ in range(size - len(seeds))]

    # --- output ----------------------------------------------------------------------------------------------
    def to_sympy(self, genome: Tree) -> sp.Expr:
        """The simplified formula (variables assumed positive where all training data are positive)."""
        return from_eml(genome, self.variables, self.positive)

    def emit(self, genome: Tree, lang: str) -> str:
        if lang not in self.emit_languages:
            raise self.unsupported(lang)
        X = self.context.dataset.X if self.context.dataset is not None else None
        return emit_code.emit(genome, lang, self.variables, self.positive, X)
