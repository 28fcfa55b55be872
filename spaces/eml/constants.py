"""EML trees with fitted constant leaves: the grammar S -> 1 | x_i | c_j | eml(S, S), where each c_j is a real
number fitted by least squares to the run's data (the paper's weighted, "complete" circuits reduced to what a
law needs: E = E0 - ln Q is eml(ln-chain, ...) with E0 a constant leaf).

A genome is (tree, constants): `tree` is an EML prefix tuple in which codes VAR0 + n_vars + j stand for constant
slot j, and `constants` holds the `constants` slot values (float64). Evaluation appends the constants as extra
input columns, so the exact extended-real semantics of `tree.evaluate` apply unchanged. Variation reuses the EML
space's operators (a constant slot is one more leaf); every new tree has its constants refitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.optimize import least_squares
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import pycode

from search.protocols import Context, UserError
from spaces import snapping
from spaces.eml.compile import from_eml
from spaces.eml.space import EmlConfig, EmlSpace
from spaces.eml.tree import VAR0, evaluate, to_string

Genome = tuple[tuple[int, ...], tuple[float, ...]]
MAX_CONSTANT = 1e4  # a fit that runs past this has diverged (exp of a huge constant); the old values are kept


@dataclass(frozen=True)
class EmlConstantsConfig(EmlConfig):
    """EmlConfig, plus: constants (number of constant slots a tree may use), fit_rows (samples the constants are
    fitted on), starts (initial values tried for a fresh constant; positive, so ln c starts real)."""

    constants: int = 2
    fit_rows: int = 200
    starts: tuple[float, ...] = (1.5, 0.5)


class EmlConstantsSpace(EmlSpace):
    Config = EmlConstantsConfig
    emit_languages = ("python", "numpy", "c", "sympy", "latex", "eml")

    def __init__(self, config: EmlConstantsConfig, context: Context):
        super().__init__(config, context)
        if not 0 <= config.constants <= 8:
            raise UserError(f"space.constants: {config.constants} is out of range; use 0..8")
        self.n_data = self.n_vars
        self.n_vars = self.n_data + config.constants  # constant slots are leaves to the EML variation operators
        self.constant_names = tuple(f"c{j}" for j in range(config.constants))

    # --- genomes -----------------------------------------------------------------------------------------------
    def _with_fit(self, tree: tuple[int, ...], constants: tuple[float, ...] | None = None) -> Genome:
        start = list(constants) if constants is not None else [self.config.starts[0]] * self.config.constants
        return tree, self.fit_constants(tree, tuple(start))

    def random(self, rng: np.random.Generator) -> Genome:
        return self._with_fit(super().random(rng))

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        tree, constants = genome
        child = super().mutate(tree, rng)
        return genome if child == tree else self._with_fit(child, constants)

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> tuple[Genome, Genome]:
        ta, tb = super().crossover(a[0], b[0], rng)
        return self._with_fit(ta, a[1]), self._with_fit(tb, b[1])

    def initial(self, rng: np.random.Generator, size: int) -> list[Genome]:
        seeds = [self._with_fit(t) for t in self.small_trees(1)] if self.config.seed_small else []
        seeds = list(dict.fromkeys(seeds))[:size]
        return seeds + [self.random(rng) for _ in range(size - len(seeds))]

    def key(self, genome: Genome) -> str:
        tree, constants = genome
        used = self.used_slots(tree)
        return ",".join(map(str, tree)) + "|" + ",".join(f"{constants[j]:.12g}" for j in used)

    def size(self, genome: Genome) -> int:
        return len(genome[0])

    def used_slots(self, tree: tuple[int, ...]) -> list[int]:
        return sorted({c - VAR0 - self.n_data for c in tree if c >= VAR0 + self.n_data})

    # --- evaluation and fitting ----------------------------------------------------------------------------
    def predict(self, genome: Genome, X: np.ndarray) -> np.ndarray:
        tree, constants = genome
        columns = np.broadcast_to(np.asarray(constants, dtype=np.float64), (X.shape[0], len(constants)))
        return evaluate(tree, np.hstack([X, columns]))

    def fit_constants(self, tree: tuple[int, ...], start: tuple[float, ...]) -> tuple[float, ...]:
        """Least-squares values of the slots the tree uses (real and imaginary residuals both, so a fit that goes
        complex is penalised), from `start`, then from each of config.starts until one is exact; the best with
        |c| <= MAX_CONSTANT kept, rounded to 12 digits. Few iterations: variation calls this on every child."""
        used = self.used_slots(tree)
        data = self.context.dataset
        if not used or data is None:
            return start
        X, y = data.X[: self.config.fit_rows], data.y[: self.config.fit_rows]

        def residual(values: np.ndarray) -> np.ndarray:
            constants = np.array(start, dtype=np.float64)
            constants[used] = values
            p = self.predict((tree, tuple(constants)), X)
            r = np.concatenate([p.real - y, p.imag])
            return np.clip(np.where(np.isfinite(r), r, 1e6), -1e6, 1e6)

        best, best_cost = np.array([start[j] for j in used]), np.inf
        tolerance = 0.5 * 1e-20 * float(np.sum(y ** 2))  # exact to rounding: no other start can do better
        for c0 in [best.copy()] + [np.full(len(used), s) for s in self.config.starts]:
            try:
                with np.errstate(all="ignore"):
                    fit = least_squares(residual, c0, method="lm", max_nfev=10 * (len(used) + 1))
            except (ValueError, np.linalg.LinAlgError):  # a degenerate Jacobian: keep what we had
                continue
            if np.all(np.abs(fit.x) <= MAX_CONSTANT) and fit.cost < best_cost:
                best, best_cost = fit.x, fit.cost
            if best_cost <= tolerance:
                break
        out = np.array(start, dtype=np.float64)
        out[used] = np.round(best, 12)
        return tuple(float(v) for v in out)

    # --- output --------------------------------------------------------------------------------------------
    def to_sympy(self, genome: Genome) -> sp.Expr:
        """The formula with the fitted constants snapped to exact numbers where the fit stays as good."""
        tree, constants = genome
        data = self.context.dataset
        positive = tuple(self.positive) + (False,) * len(constants)
        expr = from_eml(tree, self.variables + self.constant_names, positive, simplify=False)
        values = {sp.Symbol(n, real=True): sp.Float(v) for n, v in zip(self.constant_names, constants)}
        expr = expr.xreplace(values)
        if data is None or not np.all(np.isfinite(self.predict(genome, data.X[:200]))):
            return expr
        symbols = [s for s in sorted(expr.free_symbols, key=lambda s: self.variables.index(s.name))]
        columns = [self.variables.index(s.name) for s in symbols]
        return snapping.exact_formula(expr, symbols, data.X[:200][:, columns], data.y[:200])

    def describe(self, genome: Genome) -> str:
        return str(self.to_sympy(genome))

    def emit(self, genome: Genome, lang: str) -> str:
        if lang not in self.emit_languages:
            raise self.unsupported(lang)
        tree, constants = genome
        if lang == "eml":
            return to_string(tree, self.variables + tuple(f"{v:.17g}" for v in constants)) + "\n"
        expr = self.to_sympy(genome)
        head = f"EML tree with constants ({len(tree)} nodes): {expr}"
        if lang == "latex":
            return sp.latex(expr) + "\n"
        if lang == "sympy":
            decl = "\n".join(f"{v} = sp.Symbol({v!r}, real=True)" for v in self.variables)
            local = ", ".join(f"{v!r}: {v}" for v in self.variables)
            return f'"""{head}"""\nimport sympy as sp\n\n{decl}\nexpr = sp.sympify({sp.sstr(expr)!r}, locals={{{local}}})\n'
        if expr.has(sp.I):
            raise UserError(f"--lang {lang}: this formula is complex-valued ({expr}); emit it with --lang eml")
        args = ", ".join(self.variables)
        if lang == "python":
            return f'"""{head}"""\nimport math\n\n\ndef f({args}):\n    return {pycode(expr, fully_qualified_modules=True)}\n'
        if lang == "numpy":
            return f'"""{head}"""\nimport numpy\n\n\ndef f({args}):\n    return {NumPyPrinter().doprint(expr)}\n'
        params = ", ".join(f"double {v}" for v in self.variables)
        return f"/* {head} */\n#include <math.h>\n\ndouble f({params}) {{\n    return {sp.ccode(expr)};\n}}\n"
