"""The classic operator-tree grammar beside EML: + - * / exp log sin cos sqrt pow over the variables and fitted
real constants, varied with DEAP gp's generators, crossover and mutations.

Genomes are plain tuples in prefix order: operator names and variable names as str, constants as float. DEAP gp
draws from Python's global `random`; it is re-seeded from the numpy Generator before every call, so a run seed
still fixes the run. Constants are refitted (scipy least squares, a few Levenberg-Marquardt iterations on up to
200 samples) in `random` and with probability `refit_prob` in `mutate`, so the fitted values travel in the genome.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import sympy as sp
from deap import gp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import pycode

from search.protocols import Context, Space, UserError
from spaces import snapping
from spaces.levenberg_marquardt import least_squares_lm, pin_redundant

ARITY = {"add": 2, "sub": 2, "mul": 2, "div": 2, "pow": 2, "exp": 1, "log": 1, "sin": 1, "cos": 1, "sqrt": 1}
NUMPY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power, "exp": np.exp,
         "log": np.log, "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt}
SYMPY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
         "pow": lambda a, b: a ** b, "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos, "sqrt": sp.sqrt}
CONST = "c"
#: RMSE / RMS(y) at or below which a constant fit counts as exact (float64 rounding of a correct formula)
EXACT_FIT = 1e-9


def _number(value: float) -> sp.Expr:
    if math.isfinite(value):
        return sp.Float(value)
    return sp.nan if math.isnan(value) else (sp.oo if value > 0 else -sp.oo)


@dataclass(frozen=True)
class OpTreeConfig:
    """max_depth: height limit (DEAP counts a lone terminal as 0). operators: the primitive set. constants: allow
    fitted real constants. refit_prob: chance that a mutation also refits the constants. variables: names when
    the run has no dataset. pin_constants: after an exact fit, fix constants it does not need to 1, -1, e, 2 or
    1/2 (spaces/levenberg_marquardt.py `pin_redundant`), so snapping sees exp(-x**2/2), not 0.62**(1.05*x**2)."""

    max_depth: int = 6
    init_depth: int = 3
    operators: tuple[str, ...] = ("add", "sub", "mul", "div", "exp", "log", "sin", "cos", "sqrt", "pow")
    constants: bool = True
    refit_prob: float = 0.3
    variables: tuple[str, ...] = ()
    pin_constants: bool = True


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
        # constants fitted in the parent's context rarely suit the child's: refit, as mutation does
        return tuple(self.fit_constants(c) if c not in (a, b) else c for c in (ca, cb))

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
            c, cost = least_squares_lm(residual, c0, max_nfev=20 * (c0.size + 1))
            # an exact fit: pin constants it does not need (c**(k*x) -> e**(k'*x)) so snapping can read the rest
            exact = 0.5 * y.size * (EXACT_FIT * float(np.sqrt(np.mean(y * y)))) ** 2
            if self.config.pin_constants and c.size > 1 and np.all(np.isfinite(c)) and cost <= exact:
                c = pin_redundant(residual, c, 4.0 * exact, max_nfev=50 * c.size, bases=self._power_bases(genome))
        c = c if np.all(np.isfinite(c)) else c0
        with np.errstate(all="ignore"):  # np.round(1e300, 12) overflows to inf: huge constants stay as they are
            c = np.where(np.abs(c) < 1e250, np.round(c, 12), c)
        return self.with_constants(genome, c)

    def _power_bases(self, genome: tuple) -> list[bool]:
        """For each constant of `genome` (in order): is it the base of a pow?"""
        bases, parents = [], []  # parents: [operator, arguments still to come] of the open nodes, prefix order
        for tok in genome:
            under_pow = bool(parents) and parents[-1][0] == "pow" and parents[-1][1] == 2
            if parents:
                parents[-1][1] -= 1
            if isinstance(tok, float):
                bases.append(under_pow)
            if tok in ARITY and not isinstance(tok, float):
                parents.append([tok, ARITY[tok]])
            while parents and parents[-1][1] == 0:
                parents.pop()
        return bases

    # --- output ----------------------------------------------------------------------------------------------
    def to_sympy(self, genome: tuple, simplify: bool = True) -> sp.Expr:
        """The tree as a sympy expression. Subtrees without variables are folded in float64 first, as `predict`
        computes them: sympy would evaluate exp(exp(exp(700.0))) in arbitrary precision, and printing that number
        raised (the 4300-digit limit) or took minutes. Non-finite results become oo, -oo or nan."""
        symbols = {v: sp.Symbol(v, real=True) for v in self.variables}
        stack: list[tuple[sp.Expr, float | None]] = []   # (expression, float64 value when it has no variable)
        for tok in reversed(genome):
            if isinstance(tok, float):
                stack.append((_number(tok), tok))
            elif tok in symbols:
                stack.append((symbols[tok], None))
            else:
                args = [stack.pop() for _ in range(ARITY[tok])]
                if all(value is not None for _, value in args):
                    with np.errstate(all="ignore"):
                        value = float(NUMPY[tok](*(np.float64(v) for _, v in args)))
                    stack.append((_number(value), value))
                elif tok == "pow" and args[0][1] is not None and 0.0 < args[0][1] < math.inf:
                    # c**u = exp(ln(c)*u) for c > 0: a fitted 0.606530659713**(x**2) prints as exp(-0.5*x**2),
                    # whose constant snapping can read
                    stack.append((sp.exp(_number(math.log(args[0][1])) * args[1][0]), None))
                else:
                    stack.append((SYMPY[tok](*(e for e, _ in args)), None))
        expr = stack[0][0]
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
        expr = self.exact_sympy(genome).xreplace({sp.zoo: sp.nan})  # log(0): printers know nan, not zoo
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
