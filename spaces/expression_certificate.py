"""Certificates for formula artifacts (the eml and optree spaces): a sympy proof that the evolved expression equals
the simplified form that was emitted, and the artifact itself run at fresh points outside the training range and
compared with that form evaluated by mpmath at 30 significant digits.

Error measure: |artifact - reference| / max(|reference|, 1), i.e. relative error, absolute where |reference| < 1
(so a result that cancels to about 0 is not held to a relative bound float64 cannot meet). Points where the
reference is not a finite real number (outside the formula's real domain) are dropped and counted.
Python, NumPy and sympy artifacts are run in a subprocess; C artifacts are compiled with the system compiler.
This module is also the optree space's certifier (`certify`).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from runs.certificate import Check, Outcome, run_check

USES_COMPILER = True
TOOLS = ("mpmath",)
POINTS = 256            # fresh evaluation points per agreement check
TOLERANCE = 1e-9        # max error (measure above) for the agreement to hold
PROOF_OPS_LIMIT = 300   # sympy count_ops above which no proof is attempted (simplify can run for minutes)
DIGITS = 30

_DRIVER = r'''
import json, runpy, sys
path, lang, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
points = json.load(sys.stdin)
ns = runpy.run_path(path, run_name="evoforge_verify")   # not __main__: the file's own entry point stays quiet
out = []
if lang == "sympy":
    import mpmath, sympy
    expr = ns["expr"]
    by_name = {s.name: s for s in expr.free_symbols}
    fn = sympy.lambdify([by_name.get(n, sympy.Symbol(n)) for n in names], expr, "mpmath")
    with mpmath.workdps(30):
        for row in points:
            try:
                v = complex(fn(*[mpmath.mpf(x) for x in row]))
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                v = complex(float("nan"))
            out.append([v.real, v.imag])
elif lang == "numpy":
    import numpy as np
    cols = [np.array([row[j] for row in points]) for j in range(len(names))]
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(ns["f"](*cols), dtype=complex), (len(points),))
    out = [[v.real, v.imag] for v in values.tolist()]
else:
    for row in points:
        try:
            v = complex(ns["f"](*row))
        except (ValueError, ZeroDivisionError, OverflowError):
            v = complex(float("nan"))
        out.append([v.real, v.imag])
print(json.dumps(out))
'''


def fresh_points(ranges: list[list[float]], positive: list[bool], n: int, seed: int) -> np.ndarray:
    """n points with every coordinate outside its training range [lo, hi]: above it in (hi, hi + w] or below in
    [lo - w, lo) (w = hi - lo; at most lo / 2 below for a positive variable), side and place drawn at random."""
    rng = np.random.default_rng(seed)
    cols = []
    for (lo, hi), pos in zip(ranges, positive):
        w = hi - lo if hi > lo else max(abs(hi), 1.0)
        below_width = min(w, lo / 2) if pos else w
        u = 1.0 - rng.random(n)                       # in (0, 1]: strictly outside the range
        above = rng.random(n) < 0.5
        cols.append(np.where(above, hi + u * w, lo - u * below_width))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def training_ranges(X: np.ndarray | None, n_vars: int) -> list[list[float]]:
    if X is None or not len(X):
        return [[0.5, 2.0]] * n_vars                  # the emitters' own check interval when a run has no data
    return [[float(X[:, j].min()), float(X[:, j].max())] for j in range(n_vars)]


def _c_values(artifact: Path, points: np.ndarray) -> np.ndarray:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    k = points.shape[1]
    args = ", ".join(f"v[{j}]" for j in range(k))
    harness = (f'#include <stdio.h>\n#include <stdlib.h>\n#include "{artifact.resolve()}"\n'
               "int main(void) {\n    int n; char buf[64];\n    if (scanf(\"%d\", &n) != 1) return 2;\n"
               f"    for (int i = 0; i < n; i++) {{\n        double v[{max(k, 1)}];\n"
               f"        for (int j = 0; j < {k}; j++) {{ if (scanf(\"%63s\", buf) != 1) return 2; v[j] = strtod(buf, 0); }}\n"
               f"        printf(\"%a\\n\", (double)f({args}));\n    }}\n    return 0;\n}}\n")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "harness.c", Path(tmp) / "harness"
        src.write_text(harness)
        build = subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-lm"], capture_output=True, text=True, timeout=120)
        if build.returncode:
            raise RuntimeError(f"{Path(cc).name} cannot compile it: {build.stderr.strip().splitlines()[0]}")
        stdin = f"{len(points)}\n" + "\n".join(" ".join(float(x).hex() for x in row) for row in points) + "\n"
        out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, timeout=120, check=True).stdout
    values = [float.fromhex(t) if "0x" in t else float(t.replace("-nan", "nan")) for t in out.split()]
    return np.asarray(values, dtype=np.complex128)


def artifact_values(artifact: Path, lang: str, names: list[str], points: np.ndarray) -> np.ndarray:
    """The artifact's outputs at `points` (complex128), by running it the way a user would."""
    if lang == "c":
        return _c_values(artifact, points)
    if lang == "eml":
        from spaces.eml.tree import evaluate

        return evaluate(parse_eml(artifact.read_text(), names), points)
    run = subprocess.run([sys.executable, "-c", _DRIVER, str(artifact), lang, json.dumps(names)],
                         input=json.dumps(points.tolist()), capture_output=True, text=True, timeout=300)
    if run.returncode:
        raise RuntimeError(f"running it failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    pairs = json.loads(run.stdout)
    return np.asarray([complex(re, im) for re, im in pairs], dtype=np.complex128)


def parse_eml(text: str, names: list[str]) -> tuple[int, ...]:
    """The prefix tuple of an `eml(a, b)` nest over 1 and `names` (the inverse of `tree.to_string`)."""
    from spaces.eml.tree import EML, ONE, VAR0

    tokens = text.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split()
    out: list[int] = []
    pos = 0

    def expect(token: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != token:
            raise ValueError(f"expected {token!r} at token {pos} of the eml nest")
        pos += 1

    def term() -> None:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("the eml nest ends early")
        tok = tokens[pos]
        pos += 1
        if tok == "eml":
            out.append(EML)
            expect("(")
            term()
            expect(",")
            term()
            expect(")")
        elif tok == "1":
            out.append(ONE)
        elif tok in names:
            out.append(VAR0 + names.index(tok))
        else:
            raise ValueError(f"unknown leaf {tok!r} in the eml nest")

    term()
    if pos != len(tokens):
        raise ValueError("text after the eml nest")
    return tuple(out)


def reference_values(reference: dict[str, Any], names: list[str], points: np.ndarray) -> np.ndarray:
    """The certified function at `points`: a sympy form by mpmath at 30 digits, or an EML tree by its own exact
    complex128 semantics (spaces/eml/tree.py). NaN where it is undefined."""
    if reference["kind"] == "eml_tree":
        from spaces.eml.tree import evaluate

        return evaluate(parse_eml(reference["tree"], names), points)
    import mpmath

    form = sp.sympify(reference["form"])
    by_name = {s.name: s for s in form.free_symbols}
    symbols = [by_name.get(n, sp.Symbol(n)) for n in names]
    # the real domain as float64 code sees it: sqrt(-x) or log(-x) inside, say, cos(sqrt(x)) makes the artifact NaN
    # while mpmath's complex continuation stays real, so such points are not the formula's to answer
    with np.errstate(all="ignore"):
        real = np.broadcast_to(np.asarray(sp.lambdify(symbols, form, "numpy")(*points.T), dtype=np.float64),
                               (len(points),))
    fn = sp.lambdify(symbols, form, "mpmath")
    out = np.full(len(points), np.nan, dtype=np.complex128)
    with mpmath.workdps(DIGITS):
        for i, row in enumerate(points):
            if not np.isfinite(real[i]):
                continue
            try:
                out[i] = complex(mpmath.mpc(fn(*[mpmath.mpf(float(x)) for x in row])))
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                pass
    return out


def agreement(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The artifact against the certified reference at fresh points outside the training range."""
    names = list(params["variables"])
    points = fresh_points(params["ranges"], params["positive"], int(params["points"]), int(params["seed"]))
    ref = reference_values(params["reference"], names, points)
    mode = params.get("compare", "finite_real")
    if mode == "real":
        ref = ref.real.astype(np.complex128)    # a literal EML artifact returns the real part by design
    ok = np.isfinite(ref)
    if mode != "complex":
        ok &= np.abs(ref.imag) <= 1e-12 * np.maximum(1.0, np.abs(ref.real))
    got = artifact_values(artifact, params["lang"], names, points)
    if got.shape != ref.shape:
        return Outcome(False, {"points": int(ok.sum())}, f"the artifact gave {got.size} values for {ref.size} points")
    with np.errstate(all="ignore"):
        err = np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)
    err = np.where(np.isnan(err), np.inf, err)[ok]
    used = int(ok.sum())
    worst = float(err.max()) if used else math.inf
    at = points[ok][int(np.argmax(err))].tolist() if used else []
    passed = used >= max(1, int(params["points"]) // 4) and worst <= float(params["tolerance"])
    result = {"points_used": used, "points_dropped": int(len(points) - used), "max_error": worst if math.isfinite(worst) else None,
              "worst_point": at}
    shown = f"{worst:.3g}" if math.isfinite(worst) else "inf"
    return Outcome(passed, result, f"max error {shown} (bound {params['tolerance']:g}) at {used} fresh points outside "
                                   f"the training range")


def proof(artifact: Path, params: dict[str, Any]) -> Outcome:
    """sympy: simplify(evolved - emitted form) == 0 under the variables' assumptions (positive or real)."""
    raw, form = sp.sympify(params["evolved"]), sp.sympify(params["form"])
    difference = sp.simplify(raw - form)
    passed = difference == 0
    return Outcome(passed, {"difference": sp.sstr(difference)},
                   "sympy proves the evolved expression equals the emitted form" if passed
                   else f"sympy leaves a difference of {sp.sstr(difference)[:80]}")


def latex_rendering(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The LaTeX text is exactly sympy's rendering of the certified form."""
    expected = sp.latex(sp.sympify(params["form"])) + "\n"
    got = artifact.read_text()
    return Outcome(got == expected, {"chars": len(got)},
                   "the text is sympy.latex of the certified form" if got == expected
                   else "the text differs from sympy.latex of the certified form")


def expression_checks(evolved: sp.Expr, form: sp.Expr | None, reference: dict[str, Any], lang: str,
                      names: list[str], positive: list[bool], ranges: list[list[float]], seed: int,
                      artifact: Path) -> list[Check]:
    """The proof (when sympy finds one) and the artifact's agreement; shared by the eml and optree certifiers."""
    checks = []
    claimed = form if form is not None else None
    if claimed is not None and sp.count_ops(evolved) <= PROOF_OPS_LIMIT:
        params = {"evolved": sp.srepr(evolved), "form": sp.srepr(claimed)}
        check = run_check("expression.proof", "the evolved expression equals the simplified form that was emitted",
                          "sympy.simplify(evolved - form) == 0 under the variables' assumptions", params, artifact)
        if check.passed:      # no proof is not a failure: the numeric agreement below is then the evidence
            checks.append(check)
    if lang == "latex":
        checks.append(run_check("expression.latex", "the LaTeX is the certified form",
                                "compare with sympy.latex(form)", {"form": sp.srepr(form)}, artifact))
        return checks
    params = {"lang": lang, "variables": names, "positive": positive, "ranges": ranges, "points": POINTS,
              "seed": seed, "tolerance": TOLERANCE, "reference": reference,
              "compare": "complex" if lang in ("sympy", "eml") and reference["kind"] == "eml_tree" else
              ("real" if reference["kind"] == "eml_tree" else "finite_real")}
    how = {"c": "compiled with the system C compiler", "eml": "its eml nest evaluated exactly (complex128)"}.get(
        lang, f"run in a Python subprocess ({lang})")
    ref = "mpmath at 30 digits" if reference["kind"] == "sympy" else "the EML tree's exact complex128 evaluation"
    checks.append(run_check("expression.agreement",
                            "the artifact computes the certified function outside the training range",
                            f"{POINTS} fresh points outside each variable's training range; artifact {how}; "
                            f"reference: {ref}; error |got - ref| / max(|ref|, 1)", params, artifact))
    return checks


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    """The optree space's certificate: its simplified form is what every language emits."""
    names = list(space.variables)
    form = space.to_sympy(genome)
    evolved = space.to_sympy(genome, simplify=False)
    data = space.context.dataset
    ranges = training_ranges(data.X if data is not None else None, len(names))
    reference = {"kind": "sympy", "form": sp.srepr(form)}
    positive = [bool(lo > 0) for lo, _ in ranges] if data is not None else [False] * len(names)
    return expression_checks(evolved, form, reference, lang, names, positive, ranges, space.context.seed, artifact)
