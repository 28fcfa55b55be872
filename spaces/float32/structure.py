"""Structure genomes for the float32 targets: the search picks the *shape* of an approximation, the fitter its numbers.

A genome is a tuple of `(gene, value)` pairs, sorted by gene name, e.g.
`(("degree", 5), ("form", "poly"), ("pin", 1), ("scheme", "estrin"))`. `GENES[target]` lists each gene's allowed
values; `compile_structure` turns a genome into a straight-line `program.Program` for the target's harness
(`reduction.py`, `activations.py`), together with what every constant slot of that program is:

- `("coef", output, role, index)`: a free coefficient of a polynomial (`role` "num" or "den") that the fitter sets;
- `("pin", value)`: a fixed constant (the 2 of s = f / (2 + f), a denominator's leading 1, a pinned Taylor term).

The genes (not every target has all of them):
- form: what the core is. `poly` P(r); `rational` P(r) / Q(r) with Q(0) = 1; for log `fP` f P(f), `small`
  f + f^2 P(f), `atanh` s P(s^2) with s = f / (2 + f) computed in the program (an in-program reduction);
- degree / den_degree: of P / Q (for sin, cos: s_degree, c_degree; for erf: g_degree, d_degree, the polynomials
  of its two pieces);
- scheme: how a polynomial is evaluated: `horner`, `estrin` (pairs, then powers of r^2: shorter dependency chains,
  a few more multiplications) or `evenodd` (E(r^2) + r O(r^2)); g_scheme / d_scheme per polynomial (erf);
- pin: how many of P's low coefficients are fixed to their Taylor values (0: all fitted);
- shift: P's variable centred on the reduced interval's midpoint (one subtraction; for the asymmetric log interval);

Every output is linear in its free coefficients, or a quotient of two linear expressions (`rational`), which is what
lets `structure_fit.py` fit it in milliseconds instead of running a nonlinear solver per genome.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from spaces.float32.program import CONST, Program

Genome = tuple[tuple[str, object], ...]
Slot = tuple

_POLY_SCHEMES = ("horner", "estrin", "evenodd")
_EXP_LIKE = {"form": ("poly", "rational"), "degree": tuple(range(2, 10)), "den_degree": (1, 2, 3, 4),
             "scheme": _POLY_SCHEMES, "pin": (0, 1, 2)}
_SMALL_TERM = {"form": ("poly", "rational", "evenodd"), "degree": tuple(range(1, 9)), "den_degree": (1, 2, 3),
               "scheme": ("horner", "estrin"), "pin": (0, 1)}
_TRIG = {"s_degree": (2, 3, 4, 5, 6), "c_degree": (2, 3, 4, 5, 6), "scheme": ("horner", "estrin")}
GENES: dict[str, dict[str, tuple]] = {
    "exp": _EXP_LIKE,
    "exp2": _EXP_LIKE,
    "log": {"form": ("fP", "small", "atanh", "rational"), "degree": tuple(range(2, 13)), "den_degree": (1, 2, 3),
            "scheme": _POLY_SCHEMES, "shift": (0, 1), "pin": (0, 1)},
    "log2": {"form": ("poly", "rational"), "degree": tuple(range(2, 12)), "den_degree": (1, 2, 3),
             "scheme": _POLY_SCHEMES, "shift": (0, 1)},
    "sin": _TRIG,
    "cos": _TRIG,
    "tanh": _SMALL_TERM,
    "sigmoid": _SMALL_TERM,
    "erf": {"g_degree": tuple(range(3, 11)), "d_degree": tuple(range(6, 19)),
            "g_scheme": ("horner", "estrin"), "d_scheme": ("horner", "estrin")},
}

# Taylor coefficients that `pin` may fix, per target and core (P's coefficients, low to high)
_TAYLOR = {"exp": (1.0, 1.0), "exp2": (1.0, math.log(2.0)), "log": (1.0,), "tanh": (0.5,), "sigmoid": (0.5,)}


@dataclass(frozen=True)
class Compiled:
    """A genome's program, what each of its constant slots is, and per output the registers the fitter reads
    (numerator, denominator or None) and the outputs' count of free coefficients."""

    program: Program
    slots: tuple[Slot, ...]
    fractions: tuple[tuple[int, int | None], ...]


def genes_of(target: str) -> dict[str, tuple]:
    return GENES[target]


def make(target: str, **values) -> Genome:
    """A genome from keyword genes (missing genes take their first allowed value), validated, with genes that do
    not act in it (a denominator's degree without a `rational` form, ...) set to their first value, so that two
    genomes are equal exactly when they compile to the same program."""
    genes = GENES[target]
    bad = [k for k in values if k not in genes]
    if bad:
        raise ValueError(f"unknown genes {bad} for {target}; allowed: {sorted(genes)}")
    v = {name: values.get(name, allowed[0]) for name, allowed in genes.items()}
    for name, allowed in genes.items():
        if v[name] not in allowed:
            raise ValueError(f"gene {name}={v[name]!r} not in {allowed}")
    if v.get("form") == "evenodd" and v["degree"] < 2:     # two coefficients: even/odd is plain Horner
        v["form"] = "poly"
    for name in _inactive(target, v):
        v[name] = genes[name][0]
    return tuple(sorted(v.items()))


def _inactive(target: str, v: dict) -> list[str]:
    off = []
    if "den_degree" in v and v.get("form") != "rational":
        off.append("den_degree")
    if target == "log":
        if v["form"] == "atanh":
            off.append("shift")
        if v["form"] not in ("fP", "rational"):
            off.append("pin")
    if target in ("tanh", "sigmoid") and (v["form"] == "evenodd" or (
            v["degree"] < 2 and (v["form"] != "rational" or v["den_degree"] < 2))):
        off.append("scheme")                       # no polynomial of 3 or more coefficients to schedule
    if target in ("sin", "cos") and v["s_degree"] < 3 and v["c_degree"] < 3:
        off.append("scheme")
    return off


def space_size(target: str) -> int:
    """Distinct genomes (programs) of `target`."""
    genes = GENES[target]
    return len({make(target, **dict(zip(genes, combo))) for combo in itertools.product(*genes.values())})


class _Builder:
    """Appends instructions; operands are registers (int), ("coef", out, role, i) or ("pin", value)."""

    def __init__(self, n_in: int):
        self.n_in = n_in
        self.ins: list[tuple[str, tuple]] = []
        self.seen: dict[tuple, int] = {}

    def op(self, name: str, *args) -> int:
        """Append `name(args)`; an instruction of registers only that exists already (r^2 of two Estrin
        polynomials) is reused."""
        assert any(not isinstance(a, tuple) for a in args), "an instruction needs a register operand"
        key = (name, args)
        if all(not isinstance(a, tuple) for a in args) and key in self.seen:
            return self.seen[key]
        self.ins.append((name, args))
        self.seen[key] = self.n_in + len(self.ins) - 1
        return self.seen[key]

    def poly(self, var: int, coefs: list, scheme: str):
        """sum coefs[j] var^j (coefs are operands, low to high); returns an operand (a register, or the constant
        itself for degree 0)."""
        if len(coefs) == 1:
            return coefs[0]
        if scheme == "evenodd" and len(coefs) >= 3:
            z = self.op("mul", var, var)
            even = self.poly(z, coefs[0::2], "horner")
            odd = self.poly(z, coefs[1::2], "horner")
            return self.op("fma", var, odd, even)
        if scheme == "estrin" and len(coefs) >= 3:
            level = [self.op("fma", var, coefs[j + 1], coefs[j]) if j + 1 < len(coefs) else coefs[j]
                     for j in range(0, len(coefs), 2)]
            power = var
            while len(level) > 1:
                power = self.op("mul", power, power)
                level = [self.op("fma", power, level[j + 1], level[j]) if j + 1 < len(level) else level[j]
                         for j in range(0, len(level), 2)]
            return level[0]
        h = self.op("fma", var, coefs[-1], coefs[-2])
        for c in reversed(coefs[:-2]):
            h = self.op("fma", h, var, c)
        return h

    def finish(self, outputs: list[int], fractions: list[tuple[int, int | None]]) -> Compiled:
        """Move the output instructions to the end (in order; nothing may read them), renumber the registers and
        number the constant slots in order of appearance, as `program.py` does."""
        n_in = self.n_in
        idx = [o - n_in for o in outputs]
        order = [i for i in range(len(self.ins)) if i not in idx] + idx
        where = {old + n_in: new + n_in for new, old in enumerate(order)}
        where.update({i: i for i in range(n_in)})
        read = {a for i, (_, args) in enumerate(self.ins) for a in args if not isinstance(a, tuple)}
        assert not any(o in read for o in outputs), "an output is read by another instruction"
        program, slots = [], []
        for old in order:
            name, args = self.ins[old]
            enc = []
            for a in args:
                if isinstance(a, tuple):
                    enc.append(CONST)
                    slots.append(a)
                else:
                    enc.append(where[a])
            program.append((name, tuple(enc)))
        fr = tuple((where[n], None if d is None else where[d]) for n, d in fractions)
        return Compiled(tuple(program), tuple(slots), fr)


def _coefs(out: int, role: str, n: int, pinned: tuple[float, ...] = ()) -> list:
    return [("pin", float(pinned[j])) if j < len(pinned) else ("coef", out, role, j) for j in range(n)]


def _den(b: _Builder, var: int, out: int, degree: int, scheme: str):
    """Q(var) = 1 + d1 var + ... (the leading 1 pinned, so P/Q has no scale freedom)."""
    return b.poly(var, [("pin", 1.0)] + _coefs(out, "den", degree + 1)[1:], scheme)


def _times(b: _Builder, a: int, p) -> int:
    return b.op("mul", a, p)


def compile_structure(target: str, genome: Genome, interval: tuple[float, float] = (0.0, 0.0)) -> Compiled:
    """The program of `genome` for `target` (inputs: the harness's reduced registers, outputs last, in order).
    `interval`: the reduced interval (its midpoint is the `shift` gene's centre)."""
    g = dict(genome)
    b = _Builder(2 if target == "erf" else 1)
    outs: list[int] = []
    fractions: list[tuple[int, int | None]] = []

    def quotient(num: int, var: int, out: int, degree: int) -> None:
        q = _den(b, var, out, degree, g["scheme"])
        outs.append(b.op("div", num, q))
        fractions.append((num, q))

    def plain(reg: int) -> None:
        outs.append(reg)
        fractions.append((reg, None))

    if target in ("exp", "exp2"):
        p = b.poly(0, _coefs(0, "num", g["degree"] + 1, _TAYLOR[target][: g["pin"]]), g["scheme"])
        quotient(p, 0, 0, g["den_degree"]) if g["form"] == "rational" else plain(p)
    elif target in ("log", "log2"):
        form = g["form"]
        centred = g["shift"] and form != "atanh"        # atanh's polynomial is in s^2, never centred
        var = b.op("sub", 0, ("pin", 0.5 * (interval[0] + interval[1]))) if centred else 0
        if target == "log2":
            p = b.poly(var, _coefs(0, "num", g["degree"] + 1), g["scheme"])
            quotient(p, var, 0, g["den_degree"]) if form == "rational" else plain(p)
        elif form == "atanh":                      # log1p(f) = 2 atanh(s), s = f / (2 + f): odd in s
            s = b.op("div", 0, b.op("add", 0, ("pin", 2.0)))
            z = b.op("mul", s, s)
            plain(_times(b, s, b.poly(z, _coefs(0, "num", g["degree"] + 1), g["scheme"])))
        elif form == "small":                      # f + f^2 P(f)
            f2 = b.op("mul", 0, 0)
            plain(b.op("fma", f2, b.poly(var, _coefs(0, "num", g["degree"] + 1), g["scheme"]), 0))
        else:                                      # f P(f), or f P(f) / Q(f)
            p = b.poly(var, _coefs(0, "num", g["degree"] + 1, _TAYLOR["log"][: g["pin"]]), g["scheme"])
            num = _times(b, 0, p)
            quotient(num, var, 0, g["den_degree"]) if form == "rational" else plain(num)
    elif target in ("sin", "cos"):                 # P(z) ~ (sin r - r)/r^3, Q(z) ~ (cos r - 1 + z/2)/z^2, z = r^2
        z = b.op("mul", 0, 0)                      # (the harness applies r^3 and z^2 inside its fmas)
        plain(b.poly(z, _coefs(0, "num", g["s_degree"]), g["scheme"]))
        plain(b.poly(z, _coefs(1, "num", g["c_degree"]), g["scheme"]))
    elif target in ("tanh", "sigmoid"):            # q ~ e^r - 1 - r = r^2 P(r)
        z = b.op("mul", 0, 0)
        scheme = "evenodd" if g["form"] == "evenodd" else g["scheme"]
        p = b.poly(0, _coefs(0, "num", g["degree"] + 1, _TAYLOR[target][: g["pin"]]), scheme)
        num = _times(b, z, p)
        quotient(num, 0, 0, g["den_degree"]) if g["form"] == "rational" else plain(num)
    elif target == "erf":                          # G(v) ~ erf(a)/a - 1 below 1, D(u) ~ erfc(a) above
        plain(b.poly(0, _coefs(0, "num", g["g_degree"] + 1), g["g_scheme"]))
        plain(b.poly(1, _coefs(1, "num", g["d_degree"] + 1), g["d_scheme"]))
    else:
        raise ValueError(f"no structure genes for target {target!r}")
    return b.finish(outs, fractions)
