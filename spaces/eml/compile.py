"""The paper's constructive theorem, executable: `to_eml` lowers a calculator-basis sympy expression to an EML
tree and `from_eml` lifts a tree back to a simplified sympy expression.

The lowering follows the identities of the paper (exp x = eml(x, 1), ln x = eml(1, eml(eml(1, x), 1)),
a - b = eml(ln a, exp b), then -b = 0 - b, a + b = a - (-b), a * b = exp(ln a + ln b), a / b = exp(ln a - ln b),
a ** b = exp(b ln a)); trig, hyperbolic and their inverses are first rewritten by sympy into exp/log with I.
The trees are correct, not shortest (the shortest known ln x is the 7-node one above; x * y is 25 nodes in the
paper, longer here). Branch caveat, inherent to EML: a - b goes through Log(exp b), which returns b only when
Im b is in (-pi, pi]; the lowering orders operands so that purely imaginary terms come first, which keeps every
basis function exact on the usual real domains.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import sympy as sp

from spaces.eml.tree import EML, ONE, VAR0, Tree, node

ONE_T: Tree = (ONE,)


def exp_t(a: Tree) -> Tree:
    return node(a, ONE_T)


def ln_t(a: Tree) -> Tree:
    return node(ONE_T, node(node(ONE_T, a), ONE_T))


def sub_t(a: Tree, b: Tree) -> Tree:
    return node(ln_t(a), exp_t(b))


ZERO_T: Tree = ln_t(ONE_T)


def neg_t(b: Tree) -> Tree:
    # ln 0 = -inf and exp(-inf) = 0 make eml(ln 0, exp b) = -b (extended-real semantics of tree.py).
    return node(ln_t(ZERO_T), exp_t(b))


def add_t(a: Tree, b: Tree) -> Tree:
    return sub_t(a, neg_t(b))


def mul_t(a: Tree, b: Tree) -> Tree:
    return exp_t(add_t(ln_t(a), ln_t(b)))


def div_t(a: Tree, b: Tree) -> Tree:
    return exp_t(sub_t(ln_t(a), ln_t(b)))


def pow_t(a: Tree, b: Tree) -> Tree:
    return exp_t(mul_t(b, ln_t(a)))


@cache
def integer_t(n: int) -> Tree:
    """A positive or negative integer by binary doubling: O(log n) additions."""
    if n < 0:
        return neg_t(integer_t(-n))
    if n == 0:
        return ZERO_T
    if n == 1:
        return ONE_T
    half = integer_t(n // 2)
    twice = add_t(half, half)
    return add_t(twice, ONE_T) if n % 2 else twice


E_T: Tree = node(ONE_T, ONE_T)                      # eml(1, 1) = e
MINUS_ONE_T: Tree = neg_t(ONE_T)
I_PI_T: Tree = ln_t(MINUS_ONE_T)                    # Log(-1) = i*pi (principal branch)
I_T: Tree = exp_t(div_t(I_PI_T, integer_t(2)))      # exp(i*pi/2) = i
PI_T: Tree = div_t(I_PI_T, I_T)                      # (i*pi) / i


def _has_imaginary(e: sp.Expr) -> bool:
    return e.has(sp.I)


def _rewrite(expr: sp.Expr) -> sp.Expr:
    """Trig, hyperbolic and inverse functions as exp / log / sqrt with I (sympy's own identities)."""
    inverse = (sp.asin, sp.acos, sp.atan, sp.asinh, sp.acosh, sp.atanh)
    expr = expr.replace(lambda e: isinstance(e, inverse), lambda e: e.rewrite(sp.log))
    direct = (sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh)
    expr = expr.replace(lambda e: isinstance(e, direct), lambda e: e.rewrite(sp.exp))
    return expr


def _lower(e: sp.Expr, index: dict[sp.Symbol, int]) -> Tree:
    if e.is_Symbol:
        if e not in index:
            raise ValueError(f"to_eml: unknown symbol {e}; pass it in `variables`")
        return (VAR0 + index[e],)
    if e is sp.E:
        return E_T
    if e is sp.pi:
        return PI_T
    if e is sp.I:
        return I_T
    if e.is_Integer:
        return integer_t(int(e))
    if e.is_Rational:
        return div_t(integer_t(int(e.p)), integer_t(int(e.q)))
    if e.is_Float:
        raise ValueError(f"to_eml: floating constant {e} has no exact EML tree; use a rational")
    if isinstance(e, sp.exp):
        return exp_t(_lower(e.args[0], index))
    if isinstance(e, sp.log):
        return ln_t(_lower(e.args[0], index))
    if e.is_Add:
        # Purely imaginary terms first: a - b needs Im b in (-pi, pi] (see the module docstring).
        terms = sorted(e.args, key=lambda t: (not _has_imaginary(t), sp.default_sort_key(t)))
        out = _lower(terms[0], index)
        for t in terms[1:]:
            coeff, rest = t.as_coeff_Mul()
            if coeff.is_Number and coeff < 0:
                out = sub_t(out, _lower(-coeff * rest, index))
            else:
                out = add_t(out, _lower(t, index))
        return out
    if e.is_Mul:
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return neg_t(_lower(rest, index))
        numer, denom = sp.fraction(e)
        if denom != 1:
            return div_t(_lower(numer, index), _lower(denom, index))
        factors = list(e.args)
        out = _lower(factors[0], index)
        for f in factors[1:]:
            out = mul_t(out, _lower(f, index))
        return out
    if e.is_Pow:
        base, expo = e.args
        if expo.is_Integer and expo < 0:
            return div_t(ONE_T, _lower(base ** (-expo), index))
        if expo.is_Integer and 1 < expo <= 4:
            b = _lower(base, index)
            out = b
            for _ in range(int(expo) - 1):
                out = mul_t(out, b)
            return out
        if expo == sp.Rational(1, 2):
            return exp_t(div_t(ln_t(_lower(base, index)), integer_t(2)))
        return pow_t(_lower(base, index), _lower(expo, index))
    raise ValueError(f"to_eml: {type(e).__name__} ({e}) is outside the calculator basis")


def to_eml(expr: sp.Expr | str, variables: Sequence[sp.Symbol | str]) -> Tree:
    """An EML tree computing `expr` over `variables` (variable i is leaf code 2 + i)."""
    expr = sp.sympify(expr)
    symbols = [sp.Symbol(v) if isinstance(v, str) else v for v in variables]
    by_name = {s.name: i for i, s in enumerate(symbols)}
    index = {}
    for s in expr.free_symbols:
        if s.name not in by_name:
            raise ValueError(f"to_eml: unknown symbol {s}; pass it in `variables`")
        index[s] = by_name[s.name]
    return _lower(_rewrite(expr), index)


def sympy_symbols(variables: Sequence[str], positive: Sequence[bool] | None = None) -> list[sp.Symbol]:
    """Real symbols for the variables, positive where the data says so (that lets log(exp(z)) and
    exp(log(x)) simplify)."""
    positive = positive or [False] * len(variables)
    return [sp.Symbol(v, positive=True) if p else sp.Symbol(v, real=True) for v, p in zip(variables, positive)]


def raw_sympy(tree: Sequence[int], symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """The tree as exp(a) - log(b) nests, unsimplified."""
    stack: list[sp.Expr] = []
    for code in reversed(tree):
        if code == EML:
            a = stack.pop()
            b = stack.pop()
            # Log(0) = -inf as in the numeric evaluator (sympy's log(0) is zoo, which would poison the result).
            stack.append(sp.exp(a) - (sp.oo * -1 if b == 0 else sp.log(b)))
        elif code == ONE:
            stack.append(sp.Integer(1))
        else:
            stack.append(symbols[code - VAR0])
    return stack[0]


def from_eml(tree: Sequence[int], variables: Sequence[str], positive: Sequence[bool] | None = None,
             simplify: bool = True) -> sp.Expr:
    """The tree as a sympy expression over `variables`, simplified (log(exp(.)) and exp(log(.)) cancelled where
    the assumptions allow; `positive[i]` says variable i only takes positive values)."""
    symbols = sympy_symbols(variables, positive)
    expr = raw_sympy(tree, symbols)
    if not simplify:
        return expr
    expr = sp.expand_log(expr, force=False)
    if sp.count_ops(expr) <= 400:
        expr = sp.simplify(expr)
    return expr
