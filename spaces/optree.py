"""The classic operator-tree grammar beside EML: + - * / exp log sin cos sqrt pow over the variables and fitted
real constants, varied with DEAP gp's generators, crossover and mutations.

Genomes are plain tuples in prefix order: operator names and variable names as str, constants as float. DEAP gp
draws from Python's global `random`; it is re-seeded from the numpy Generator before every call, so a run seed
still fixes the run. Constants are refitted (scipy least squares, a few Levenberg-Marquardt iterations on up to
200 samples) in `random` and with probability `refit_prob` in `mutate`, so the fitted values travel in the genome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import sympy as sp
from deap import gp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import pycode

from search.protocols import Context, Space, UserError
from spaces.levenberg_marquardt import least_squares_lm
from spaces import snapping

ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "pow": 2, "exp": 1, "log": 1, "sin": 1, "cos": 1, "sqrt": 1}
NUMPY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power, "exp": np.exp,
         "log": np.log, "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt}
SYMPY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
         "pow": lambda a, b: a ** b, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos, "sqrt": sp.sqrt}
CONST = "c"


@dataclass(frozen=True)
class OpTreeConfig:
    """max_depth: height limit (DEAP counts a lone terminal as 0). operators: the primitive set. constants: allow
    fitted real constants. refit_prob: chance that a mutation also refits the constants. variables: names when
    the run has no dataset."""

    max_depth: int = 6
    init_depth: int = 3
    operators: tuple[str, ...] = ("add", "sub", "mul", "div", "exp", "log", "sin", "cos", "sqrt", "pow")
    constants: bool = True
    refit_prob: float = 0.3
    variables: tuple[str, ...] = ()


class OpTreeSpace(Space):
    Config = OpTreeConfig
    emit_languages = ("python", "numpy", "c", "sympy", "latex")

    def __init__(self, config: OpTreeConfig, context: Context):
        super().__init__(config, context)
        bad = [o for o in config.operators if o not in ARITY]
        if bad:
            raise UserError(f"space.operators: unknown {', '.join(bad)}; choose from {', '.join(ARITY)}")
        if config.max_depth < 1:
            raise UserError(f"space.max_depth: {config.max_depth} is too small; use 1 or more")
        data = context.dataset
        self.variables = tuple(data.variables) if data is not None else tuple(config.variables)
        if not self.variables:
            raise UserError("space.variables: the run has no [data] table; add one or list the variable names")
        self.pset = gp.PrimitiveSet("F", len(self.variables))
        self.arg_of = {v: f"ARG{i}" for i, v in enumerate(self.variables)}     # DEAP's own terminal names
        self.var_of = {a: v for v, a in self.arg_of.items()}
        for op in config.operators:
            self.pset.addPrimitive(NUMPY[op], ARITY[op], name=op)
        if config.constants:
            self.pset.addTerminal(1.0, name=CONST)

    # --- conversion between tuples and DEAP trees ----------------------------------------------------------------
    def _to_deap(self, genome: tuple) -> gp.PrimitiveTree:
        prims = {p.name: p for p in self.pset.primitives[self.pset.ret]}
        terms = {t.name: t for t in self.pset.terminals[self.pset.ret]}
        nodes = []
        for tok in genome:
            if isinstance(tok, float):
                nodes.append(gp.Terminal(tok, False, self.pset.ret))
            elif tok in prims:
                nodes.append(prims[tok])
            else:
                nodes.append(terms[self.arg_of.get(tok, tok)])
        return gp.PrimitiveTree(nodes)

    def _from_deap(self, tree: gp.PrimitiveTree, rng: np.random.Generator) -> tuple:
        out = []
        for n in tree:
            if isinstance(n, gp.Primitive):
                out.append(n.name)
            elif n.name in self.var_of:
                out.append(self.var_of[n.name])
            else:  # a fresh constant terminal, or a constant carried over from a parent
                out.append(float(rng.normal()) if n.name == CONST else float(n.value))
        return tuple(out)

    def _seed_python_random(self, rng: np.random.Generator) -> None:
        random.seed(int(rng.integers(2**63)))

    # --- variation -----------------------------------------------------------------------------------------------
    def random(self, rng: np.random.Generator) -> tuple:
        self._seed_python_random(rng)
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(self.pset, 1, self.config.init_depth))
        return self.fit_constants(self._from_deap(tree, rng))

    def mutate(self, genome: tuple, rng: np.random.Generator) -> tuple:
        self._seed_python_random(rng)
        tree = self._to_deap(genome)
        kind = rng.random()
        if kind < 0.5:
            (tree,) = gp.mutUniform(tree, expr=lambda pset, type_: gp.genGrow(pset, 0, 2), pset=self.pset)
        elif kind < 0.7:
            (tree,) = gp.mutNodeReplacement(tree, self.pset)
        elif kind < 0.85:
            (tree,) = gp.mutShrink(tree)
        else:
            (tree,) = gp.mutInsert(tree, self.pset)
        child = self._from_deap(tree, rng) if tree.height <= self.config.max_depth else genome
        if rng.random() < self.config.refit_prob or child != genome and any(isinstance(t, float) for t in child):
            child = self.fit_constants(child)
        return child

    def crossover(self, a: tuple, b: tuple, rng: np.random.Generator) -> tuple[tuple, tuple]:
        self._seed_python_random(rng)
        ta, tb = gp.cxOnePoint(self._to_deap(a), self._to_deap(b))
        ca = self._from_deap(ta, rng) if ta.height <= self.config.max_depth else a
        cb = self._from_deap(tb, rng) if tb.height <= self.config.max_depth else b
        return ca, cb

    def key(self, genome: tuple) -> str:
        return " ".join(f"{t:.12g}" if isinstance(t, float) else t for t in genome)

    def describe(self, genome: tuple) -> str:
        return str(self.exact_sympy(genome))

    def size(self, genome: tuple) -> int:
        return len(genome)

    # --- evaluation and constants ----------------------------------------------------------------------------
    def predict(self, genome: tuple, X: np.ndarray) -> np.ndarray:
        """Float64 values at the rows of X (inf/NaN where an operator leaves its real domain)."""
        stack: list[np.ndarray] = []
        index = {v: i for i, v in enumerate(self.variables)}
        with np.errstate(all="ignore"):
            for tok in reversed(genome):
                if isinstance(tok, float):
                    stack.append(np.full(X.shape[0], tok))
                elif tok in index:
                    stack.append(X[:, index[tok]].astype(np.float64))
                else:
                    args = [stack.pop() for _ in range(ARITY[tok])]
                    stack.append(NUMPY[tok](*args))
        return stack[0]

    def with_constants(self, genome: tuple, constants: np.ndarray) -> tuple:
        it = iter(constants.tolist())
        return tuple(next(it) if isinstance(t, float) else t for t in genome)

    def fit_constants(self, genome: tuple) -> tuple:
        """Least-squares constants on (a subsample of) the run's data; the genome unchanged if none or no data."""
        data = self.context.dataset
        c0 = np.array([t for t in genome if isinstance(t, float)])
        if data is None or c0.size == 0:
            return genome
        X, y = data.X[:200], data.y[:200]

        def residual(c):
            r = self.predict(self.with_constants(genome, c), X) - y
            return np.clip(np.where(np.isfinite(r), r, 1e6), -1e6, 1e6)

        with np.errstate(all="ignore"):  # deterministic LM: scipy's differs across processes (see the module)
            c, _ = least_squares_lm(residual, c0, max_nfev=20 * (c0.size + 1))
        c = c if np.all(np.isfinite(c)) else c0
        return self.with_constants(genome, np.round(c, 12))

    # --- output ----------------------------------------------------------------------------------------------
    def to_sympy(self, genome: tuple, simplify: bool = True) -> sp.Expr:
        symbols = {v: sp.Symbol(v, real=True) for v in self.variables}
        stack: list[sp.Expr] = []
        for tok in reversed(genome):
            if isinstance(tok, float):
                stack.append(sp.Float(tok))
            elif tok in symbols:
                stack.append(symbols[tok])
            else:
                args = [stack.pop() for _ in range(ARITY[tok])]
                stack.append(SYMPY[tok](*args))
        expr = stack[0]
        return sp.simplify(expr) if simplify and sp.count_ops(expr) < 200 else expr

    def exact_sympy(self, genome: tuple) -> sp.Expr:
        """The formula as a physicist writes it: fitted constants snapped to exact numbers where the fit on the
        run's data stays as good (`spaces.snapping`: 0.159154943092 -> 1/(2*pi), 1.0 -> 1), then simplified.
        A genome that is not finite on the data keeps its plain form (failed genomes are described too)."""
        data = self.context.dataset
        if data is None:
            return self.to_sympy(genome)
        X, y = data.X[:200], data.y[:200]
        if not np.all(np.isfinite(self.predict(genome, X))):
            return self.to_sympy(genome, simplify=False)
        symbols = snapping.positive_symbols(self.variables, X)
        plain = {sp.Symbol(v, real=True): s for v, s in zip(self.variables, symbols)}
        return snapping.exact_formula(self.to_sympy(genome, simplify=False).xreplace(plain), symbols, X, y)

    def emit(self, genome: tuple, lang: str) -> str:
        if lang not in self.emit_languages:
            raise self.unsupported(lang)
        expr = self.exact_sympy(genome)
        args = ", ".join(self.variables)
        head = f"operator tree ({len(genome)} nodes): {self.describe(genome)}"
        if lang == "latex":
            return sp.latex(expr) + "\n"
        if lang == "sympy":
            decl = "\n".join(f"{v} = sp.Symbol({v!r}, real=True)" for v in self.variables)
            local = ", ".join(f"{v!r}: {v}" for v in self.variables)
            return f'"""{head}"""\nimport sympy as sp\n\n{decl}\nexpr = sp.sympify({sp.sstr(expr)!r}, locals={{{local}}})\n'
        if lang == "python":
            return f'"""{head}"""\nimport math\n\n\ndef f({args}):\n    return {pycode(expr, fully_qualified_modules=True)}\n'
        if lang == "numpy":
            return f'"""{head}"""\nimport numpy\n\n\ndef f({args}):\n    return {NumPyPrinter().doprint(expr)}\n'
        params = ", ".join(f"double {v}" for v in self.variables)
        return f"/* {head} */\n#include <math.h>\n\ndouble f({params}) {{\n    return {sp.ccode(expr)};\n}}\n"
