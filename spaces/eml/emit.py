"""Source code for an EML tree: sympy, LaTeX, Python (math), NumPy, C, or the raw eml(...) nest.

Python, NumPy and C get the simplified closed form when it is real and agrees with the tree's exact evaluation
(1e-9 relative) on the check points; otherwise they get a literal, self-contained implementation of the tree with
the extended-real EML semantics of `tree.py` (complex arithmetic; C99 <complex.h>). Either way the function is
named `f` and takes the dataset's variables, in order, as float64 arguments.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import pycode

from spaces.eml.compile import from_eml
from spaces.eml.tree import EML, ONE, VAR0, evaluate, real_part, to_string

_PY_LITERAL = '''import cmath
import math


def _exp(z):
    """exp with exp(-inf) = 0 and real in -> real out."""
    z = complex(z)
    if z.imag == 0:
        return complex(math.exp(z.real) if z.real < 709.78 else math.inf, 0.0)
    m = math.exp(z.real) if z.real < 709.78 else math.inf
    return complex(m * math.cos(z.imag), m * math.sin(z.imag)) if m else 0j


def _log(z):
    """Principal log with log(0) = -inf and a zero imaginary part read as +0 (log(-a) = ln a + i*pi)."""
    z = complex(z)
    im = 0.0 if z.imag == 0 else z.imag
    r = math.hypot(z.real, im)
    return complex(math.log(r) if r else -math.inf, math.atan2(im, z.real))


def eml(a, b):
    return _exp(a) - _log(b)
'''

_NP_LITERAL = '''import numpy as np


def _exp(z):
    """exp with exp(-inf) = 0 and real in -> real out."""
    re, im = z.real, z.imag
    m = np.exp(re)
    real_in = im == 0
    out_re = np.where(real_in, m, m * np.cos(np.where(real_in, 0.0, im)))
    out_im = np.where(real_in | (m == 0), 0.0, m * np.sin(np.where(real_in, 0.0, im)))
    return np.where(m == 0, 0.0, out_re) + 1j * out_im


def _log(z):
    """Principal log with log(0) = -inf and a zero imaginary part read as +0 (log(-a) = ln a + i*pi)."""
    im = np.where(z.imag == 0, 0.0, z.imag)
    return np.log(np.hypot(z.real, im)) + 1j * np.arctan2(im, z.real)


def eml(a, b):
    with np.errstate(all="ignore"):
        return _exp(np.asarray(a, dtype=np.complex128)) - _log(np.asarray(b, dtype=np.complex128))
'''

_C_LITERAL = '''#include <complex.h>
#include <math.h>

/* exp with exp(-inf) = 0 and real in -> real out. */
static double complex eml_exp(double complex z) {
    double m = exp(creal(z));
    if (cimag(z) == 0.0) return CMPLX(m, 0.0);
    if (m == 0.0) return CMPLX(0.0, 0.0);
    return CMPLX(m * cos(cimag(z)), m * sin(cimag(z)));
}

/* Principal log with log(0) = -inf and a zero imaginary part read as +0 (log(-a) = ln a + i*pi). */
static double complex eml_log(double complex z) {
    double im = cimag(z) == 0.0 ? 0.0 : cimag(z);
    return CMPLX(log(hypot(creal(z), im)), atan2(im, creal(z)));
}

static double complex eml(double complex a, double complex b) { return eml_exp(a) - eml_log(b); }
'''


def identifiers(variables: Sequence[str]) -> list[str]:
    """Variable names usable as Python and C identifiers (x0, x1, ... where a name is not)."""
    out = []
    for i, v in enumerate(variables):
        ok = v.isidentifier() and not keyword.iskeyword(v) and v not in {"f", "eml", "np", "math", "cmath", "I"}
        out.append(v if ok else f"x{i}")
    return out


def _check_points(n_vars: int, X: np.ndarray | None) -> np.ndarray:
    if X is not None and len(X):
        return X[:200]
    return np.random.default_rng(0).uniform(0.5, 2.0, (64, n_vars))


def closed_form(tree: Sequence[int], variables: Sequence[str], positive: Sequence[bool],
                X: np.ndarray | None) -> sp.Expr | None:
    """The simplified real formula over identifier-safe symbols, or None when it is complex, singular or does
    not match the tree numerically on the check points."""
    names = identifiers(variables)
    expr = from_eml(tree, names, positive)
    if expr.has(sp.I, sp.nan, sp.zoo, sp.oo, -sp.oo):
        return None
    points = _check_points(len(names), X)
    symbols = sorted(expr.free_symbols, key=lambda s: names.index(s.name))
    reference, _ = real_part(evaluate(tree, points))
    if reference is None:
        return None
    with np.errstate(all="ignore"):
        fn = sp.lambdify(symbols, expr, "numpy")
        got = np.asarray(fn(*[points[:, names.index(s.name)] for s in symbols]), dtype=np.complex128)
    got = np.broadcast_to(got, reference.shape)
    ok = np.all(np.abs(got - reference) <= 1e-9 * np.maximum(1.0, np.abs(reference)))
    return expr if ok else None


def _literal(tree: Sequence[int], names: Sequence[str], one: str) -> str:
    out: list[str] = []
    for code in reversed(tree):
        if code == EML:
            a = out.pop()
            b = out.pop()
            out.append(f"eml({a}, {b})")
        else:
            out.append(one if code == ONE else names[code - VAR0])
    return out[0]


def _main_block(names: Sequence[str], X: np.ndarray | None) -> str:
    """A `python FILE.py [values...]` entry point; with no arguments it evaluates the first data row."""
    example = [float(v) for v in X[0]] if X is not None and len(X) else [1.0] * len(names)
    usage = " ".join(names)
    return (f'\n\nif __name__ == "__main__":\n    import sys\n\n'
            f'    # usage: python THIS_FILE.py {usage}   (no arguments: the first sample of the data)\n'
            f"    values = [float(a) for a in sys.argv[1:]] or {example!r}\n"
            f"    print(f(*values))\n")


def _emit_python(tree: Sequence[int], lang: str, names: Sequence[str], header: str, args: str, form) -> str:
    literal_doc = f'"""{header}\n\nLiteral EML evaluation (the closed form is complex or did not check out)."""\n'
    if lang == "python":
        if form is not None:
            return f'"""{header}"""\nimport math\n\n\ndef f({args}):\n    return {pycode(form, fully_qualified_modules=True)}\n'
        return f"{literal_doc}{_PY_LITERAL}\n\ndef f({args}):\n    return {_literal(tree, names, '1.0')}.real\n"
    if form is not None:
        body = NumPyPrinter().doprint(form)
        return (f'"""{header}"""\nimport numpy\n\n\ndef f({args}):\n'
                f'    """Vectorised over numpy arrays."""\n    return {body}\n')
    return f"{literal_doc}{_NP_LITERAL}\n\ndef f({args}):\n    return np.real({_literal(tree, names, '1.0')})\n"


def emit(tree: Sequence[int], lang: str, variables: Sequence[str], positive: Sequence[bool],
         X: np.ndarray | None) -> str:
    """Source text for `tree` in `lang` (sympy, latex, python, numpy, c, eml)."""
    names = identifiers(variables)
    header = f"EML tree ({len(tree)} nodes): {to_string(tree, variables)}"
    if lang == "eml":
        return to_string(tree, variables) + "\n"
    expr = from_eml(tree, names, positive)
    if lang == "latex":
        return sp.latex(expr) + "\n"
    if lang == "sympy":
        decl = "\n".join(f"{n} = sp.Symbol({n!r}, {'positive' if p else 'real'}=True)" for n, p in zip(names, positive))
        local = ", ".join(f"{n!r}: {n}" for n in names)
        return (f'"""{header}"""\nimport sympy as sp\n\n{decl}\n'
                f"expr = sp.sympify({sp.sstr(expr)!r}, locals={{{local}}})\n")
    args = ", ".join(names)
    form = closed_form(tree, variables, positive, X)
    if lang in ("python", "numpy"):
        return _emit_python(tree, lang, names, header, args, form) + _main_block(names, X)
    if lang == "c":
        params = ", ".join(f"double {n}" for n in names) or "void"
        if form is not None:
            return f"/* {header} */\n#include <math.h>\n\ndouble f({params}) {{\n    return {sp.ccode(form)};\n}}\n"
        return (f"/* {header}\n   Literal EML evaluation (the closed form is complex or did not check out). */\n"
                f"{_C_LITERAL}\ndouble f({params}) {{\n    return creal({_literal(tree, names, '1.0')});\n}}\n")
    raise ValueError(f"unknown language {lang}")
