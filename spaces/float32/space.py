"""The float32 program space: straight-line register programs for exp, exp2, log, log2, sin, cos, tanh, sigmoid or
erf after a fixed range reduction (`reduction.py`, `activations.py`). Evolution changes structure only; constants come from the inner fitter
(`fitting.py`), deterministically, so a genome is just its instruction tuple and needs no numbers of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from search.protocols import Context, Space, UserError
from spaces.float32 import emit as emitters
from spaces.float32.fitting import Fit, FitSettings, fit_constants
from spaces.float32.program import ARITY, CONST, OPS, Instruction, Program, canonical, render
from spaces.float32.reduction import TARGETS, Target


class Float32Space(Space[Program]):
    """Genome: a tuple of `(op, args)` instructions (see `program.py`); the last `n_outputs` are the outputs."""

    @dataclass(frozen=True)
    class Config:
        """target: exp | exp2 | log | log2 | sin | cos | tanh | sigmoid | erf. max_ops / min_ops: instructions per genome (dead code
        included). ops: allowed operations. const_prob: chance that a new operand is a fitted constant.
        seed_polynomials: start the population with classic forms (Horner, odd/even splits) as well as random
        programs; off for a search from scratch. fit_points / fit_starts / lawson_rounds / refine_points /
        refine_rounds: the inner fitter's effort (see `fitting.FitSettings`)."""

        target: str = "exp"
        max_ops: int = 12
        min_ops: int = 1
        ops: tuple[str, ...] = OPS
        const_prob: float = 0.4
        seed_polynomials: bool = False
        fit_points: int = 256
        fit_starts: int = 3
        lawson_rounds: int = 6
        refine_points: int = 3000
        refine_rounds: int = 2

    emit_languages: ClassVar[tuple[str, ...]] = ("c", "numpy", "triton")

    def __init__(self, config: Float32Space.Config, context: Context):
        super().__init__(config, context)
        c = config
        if c.target not in TARGETS:
            raise UserError(f"space.target: unknown target {c.target!r}; choose one of {', '.join(TARGETS)}")
        bad = [op for op in c.ops if op not in ARITY]
        if bad or not c.ops:
            raise UserError(f"space.ops: unknown or empty {bad or list(c.ops)}; use a subset of {', '.join(OPS)}")
        self.target: Target = TARGETS[c.target]
        if not (1 <= c.min_ops <= c.max_ops and self.target.n_outputs <= c.max_ops):
            raise UserError(f"space.min_ops/max_ops: need 1 <= min_ops <= max_ops and max_ops >= "
                            f"{self.target.n_outputs} (outputs of {c.target}), got {c.min_ops}, {c.max_ops}; "
                            "raise max_ops")
        if not 0.0 <= c.const_prob < 1.0:
            raise UserError(f"space.const_prob: {c.const_prob} is outside [0, 1); use e.g. 0.4")
        self.fit_settings = FitSettings(c.fit_points, c.fit_starts, c.lawson_rounds, c.refine_points, c.refine_rounds)

    # ---- structure ------------------------------------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return self.target.n_inputs

    def canonical(self, genome: Program) -> Program:
        return canonical(genome, self.target.n_outputs, self.n_in)

    def fit(self, genome: Program) -> Fit:
        """Fitted float32 constants of the live program (cached per canonical program)."""
        return fit_constants(self.canonical(genome), self.target.name, self.fit_settings)

    def _operand(self, position: int, rng: np.random.Generator) -> int:
        """A fitted constant (const_prob), else a register defined before instruction `position`: the input,
        the latest result and any register each get a third of the rest (no operation or value is favoured)."""
        if rng.random() < self.config.const_prob:
            return CONST
        n_regs = self.n_in + position
        u = rng.random()
        if u < 1 / 3:
            return int(rng.integers(self.n_in))
        if u < 2 / 3:
            return int(n_regs - 1)
        return int(rng.integers(n_regs))

    def _instruction(self, position: int, rng: np.random.Generator) -> Instruction:
        op = self.config.ops[int(rng.integers(len(self.config.ops)))]
        args = [self._operand(position, rng) for _ in range(ARITY[op])]
        if all(a == CONST for a in args):      # an all-constant instruction is a constant: give it a register
            args[int(rng.integers(len(args)))] = int(rng.integers(self.n_in + position))
        return op, tuple(args)

    def random(self, rng: np.random.Generator) -> Program:
        n = int(rng.integers(max(self.config.min_ops, self.target.n_outputs), self.config.max_ops + 1))
        return tuple(self._instruction(i, rng) for i in range(n))

    def _repair(self, program: list[Instruction]) -> Program:
        """Clip references that point at or past their own instruction (after an insertion, deletion or cut)."""
        out = []
        for i, (op, args) in enumerate(program):
            limit = self.n_in + i
            fixed = tuple(a if a < limit else limit - 1 for a in args)
            if all(a == CONST for a in fixed):
                fixed = (limit - 1,) + fixed[1:]
            out.append((op, fixed))
        return tuple(out[: self.config.max_ops])

    def mutate(self, genome: Program, rng: np.random.Generator) -> Program:
        prog = list(genome)
        n, cap = len(prog), self.config.max_ops
        kinds = ["operand", "op", "insert", "delete", "append", "fresh"]
        kind = kinds[int(rng.choice(len(kinds), p=[0.3, 0.2, 0.15, 0.15, 0.15, 0.05]))]
        if kind in ("insert", "append") and n >= cap:
            kind = "delete"
        if kind == "delete" and n <= max(self.config.min_ops, self.target.n_outputs):
            kind = "operand"
        i = int(rng.integers(n))
        if kind == "operand":
            op, args = prog[i]
            args = list(args)
            args[int(rng.integers(len(args)))] = self._operand(i, rng)
            prog[i] = (op, tuple(args))
        elif kind == "op":
            op, args = prog[i]
            new = self.config.ops[int(rng.integers(len(self.config.ops)))]
            args = list(args)[: ARITY[new]]
            while len(args) < ARITY[new]:
                args.append(self._operand(i, rng))
            prog[i] = (new, tuple(args))
        elif kind == "insert":
            # shift later references by one so the program computes the same plus one (dead) instruction
            ins = self._instruction(i, rng)
            shifted = [(op, tuple(a + 1 if a >= self.n_in + i else a for a in args)) for op, args in prog[i:]]
            prog = prog[:i] + [ins] + shifted
        elif kind == "delete":
            gone = self.n_in + i
            replacement = prog[i][1][0] if prog[i][1][0] >= 0 else gone - 1
            rest = [(op, tuple(replacement if a == gone else (a - 1 if a > gone else a) for a in args))
                    for op, args in prog[i + 1:]]
            prog = prog[:i] + rest
        elif kind == "append":
            # a new last instruction that reads the previous output: grows the program at its end
            op = self.config.ops[int(rng.integers(len(self.config.ops)))]
            args = [self.n_in + n - 1] + [self._operand(n, rng) for _ in range(ARITY[op] - 1)]
            perm = rng.permutation(len(args))
            prog.append((op, tuple(args[j] for j in perm)))
        else:
            prog[i] = self._instruction(i, rng)
        return self._repair(prog)

    def crossover(self, a: Program, b: Program, rng: np.random.Generator) -> tuple[Program, Program]:
        """One-point crossover on the instruction lists; references are clipped to stay inside each child."""
        i = int(rng.integers(1, len(a) + 1))
        j = int(rng.integers(1, len(b) + 1))
        shift_b, shift_a = i - j, j - i

        def moved(part, shift, start):
            return [(op, tuple(x + shift if x >= self.n_in + start else x for x in args)) for op, args in part]

        c1 = list(a[:i]) + moved(b[j:], shift_b, j)
        c2 = list(b[:j]) + moved(a[i:], shift_a, i)
        floor = max(self.config.min_ops, self.target.n_outputs)
        c1 = c1 if len(c1) >= floor else list(a)
        c2 = c2 if len(c2) >= floor else list(b)
        return self._repair(c1), self._repair(c2)

    def key(self, genome: Program) -> str:
        return repr(self.canonical(genome))

    def describe(self, genome: Program) -> str:
        prog = self.canonical(genome)
        return render(prog, self.fit(genome).constants, self.n_in)

    # ---- seeding --------------------------------------------------------------------------------------------------
    def initial(self, rng: np.random.Generator, size: int) -> list[Program]:
        seeds = classic_forms(self.target, self.config.max_ops) if self.config.seed_polynomials else []
        seeds = seeds[:size]
        return seeds + [self.random(rng) for _ in range(size - len(seeds))]

    # ---- code -----------------------------------------------------------------------------------------------------
    def emit(self, genome: Program, lang: str) -> str:
        if lang not in self.emit_languages:
            raise self.unsupported(lang)
        prog = self.canonical(genome)
        fit = self.fit(genome)
        return emitters.emit(prog, fit.constants, self.target, lang,
                             note=f"max ULP {fit.sample_max_ulp:.4f} on the fitter's sample")


def _horner(prog: list[Instruction], var: int, degree: int, n_in: int) -> int:
    """Append c0 + var*(c1 + var*(...)) of `degree` >= 1; return the register of the result."""
    prog.append(("fma", (var, CONST, CONST)))
    for _ in range(degree - 1):
        prog.append(("fma", (n_in + len(prog) - 1, var, CONST)))
    return n_in + len(prog) - 1


def classic_forms(target: Target, max_ops: int) -> list[Program]:
    """Textbook programs used only when `seed_polynomials` is on: Horner polynomials in r (exp, exp2), f*(poly)
    and f + f^2*(poly) (log, log2), odd/even polynomials in r^2 for sin/cos, r^2 * (poly in r) for the small term
    e^r - 1 - r of tanh and sigmoid, of every degree that fits."""
    n_in = target.n_inputs
    forms: list[Program] = []
    if target.name == "erf":
        return [f for f in (_erf_form(*d) for d in ((5, 12), (6, 13), (6, 14), (7, 14), (7, 15))) if len(f) <= max_ops]
    if target.name in ("tanh", "sigmoid"):
        for d in range(1, max_ops - 1):
            prog = [("mul", (0, 0))]                                    # r^2
            h = _horner(prog, 0, d, n_in)
            prog.append(("mul", (n_in, h)))
            forms.append(tuple(prog))
    elif target.name in ("exp", "exp2"):
        for d in range(2, max_ops + 1):
            prog: list[Instruction] = []
            _horner(prog, 0, d, n_in)
            forms.append(tuple(prog))
    elif target.name in ("log", "log2"):
        for d in range(2, max_ops - 1):
            prog = []
            h = _horner(prog, 0, d, n_in)
            prog.append(("mul", (h, 0)))
            if target.name == "log":
                prog.append(("fma", (n_in + len(prog) - 1, 0, 0)))     # f + f*(f*poly)
            forms.append(tuple(prog))
    else:
        for d in range(2, 7):                                           # P, Q: d coefficients each, Horner in z
            prog = [("mul", (0, 0))]                                    # z = r^2
            z = n_in
            last = []
            for _ in range(2):                                          # all but the last step of P, then of Q
                prog.append(("fma", (z, CONST, CONST)))
                for _ in range(d - 2):
                    prog.append(("fma", (n_in + len(prog) - 1, z, CONST)))
                last.append(n_in + len(prog) - 1)
            prog += [("fma", (last[0], z, CONST)), ("fma", (last[1], z, CONST))]   # P ~ (sin r - r)/r^3, Q
            forms.append(tuple(prog))
    return [f for f in forms if len(f) <= max_ops]


def _erf_form(g: int, d: int) -> Program:
    """erf's two outputs: G, a Horner polynomial of degree g in r (= a^2 - 81/128), and D, one of degree d in r1
    (= a - 2.5); all but the last Horner step of each first, then the two last steps (the outputs, in order)."""
    n_in = 2
    prog: list[Instruction] = []

    def steps(var: int, count: int) -> int:
        prog.append(("fma", (var, CONST, CONST)))
        for _ in range(count - 1):
            prog.append(("fma", (n_in + len(prog) - 1, var, CONST)))
        return n_in + len(prog) - 1

    hg = steps(0, g - 1)
    hd = steps(1, d - 1)
    prog += [("fma", (hg, 0, CONST)), ("fma", (hd, 1, CONST))]
    return tuple(prog)
