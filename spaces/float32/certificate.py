"""The float32 space's certifier: the emitted function's max error in float32 ULPs, measured on the artifact.

C: the file is compiled with the system compiler into a checker that walks float32 bit patterns, evaluates the
function and the system libm's binary64 function (the reference; within 2^-27 ULP32 of exact, see
objectives/ulp.py) and keeps the max ULP error, where it occurs and how many results exceed 0.5 and 1 ULP.
Every one of the 2^32 inputs when that is affordable (estimated from the timing of the sample, against
`EXHAUSTIVE_BUDGET_S`), otherwise a strided sample: every `STRIDE`-th bit pattern from a seeded offset (each
binade equally represented) plus the target's hard points (reduction boundaries, overflow and underflow
thresholds); the certificate says which. NumPy: the module is run in a subprocess on the same strided sample
against numpy's binary64 function. Triton needs a GPU: its certificate says the source parses and is not run.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from runs.certificate import Check, Outcome, run_check

USES_COMPILER = True
TOOLS = ()
BOUND = 1.0                  # ULPs: the ulp objective's default constraint
STRIDE = 4096                # sample = 2^32 / STRIDE = 2^20 bit patterns
EXHAUSTIVE_BUDGET_S = 60.0   # seconds of checker time (all cores) allowed for the exhaustive walk
# binary64 reference in C for each target, of the double `xd` (C99 libm; the logistic function has none)
C_REFERENCE = {"exp": "exp(xd)", "exp2": "exp2(xd)", "log": "log(xd)", "log2": "log2(xd)", "sin": "sin(xd)",
               "cos": "cos(xd)", "tanh": "tanh(xd)", "erf": "erf(xd)", "sigmoid": "1.0 / (1.0 + exp(-xd))"}

_CHECKER = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "%(source)s"

static const uint32_t hard[] = {%(hard)s};
static const size_t n_hard = %(n_hard)d;

static inline double ulp32(double a) {   /* 2^(exponent of |a| - 23); 2^-149 below 2^-126 */
    uint64_t u; memcpy(&u, &a, 8);
    int64_t e = (int64_t)((u >> 52) & 0x7ff) - 1023;
    if (e < -126) e = -126;
    uint64_t v = (uint64_t)(e - 23 + 1023) << 52;
    double r; memcpy(&r, &v, 8);
    return r;
}

static double ulp_err(float y, double ref) {
    if (isnan(y) || isnan(ref)) return (isnan(y) && isnan(ref)) ? 0.0 : INFINITY;
    if (isinf(y)) return (y == (float)ref) ? 0.0 : INFINITY;
    if (isinf(ref)) return INFINITY;
    return fabs((double)y - ref) / ulp32(ref);
}

static double worst = 0; static uint32_t at = 0; static unsigned long long half = 0, one = 0, count = 0;

static void check(uint32_t u) {
    float x; memcpy(&x, &u, 4);
    const double xd = (double)x;
    double e = ulp_err(evoforge_%(name)s(x), %(reference)s);
    count++;
    if (e > 0.5) half++;
    if (e > 1.0) one++;
    if (e > worst || (isinf(e) && !isinf(worst))) { worst = e; at = u; }
}

int main(int argc, char **argv) {
    uint64_t start = strtoull(argv[1], 0, 0), end = strtoull(argv[2], 0, 0), stride = strtoull(argv[3], 0, 0);
    int with_hard = atoi(argv[4]);
    for (uint64_t b = start; b < end; b += stride) check((uint32_t)b);
    if (with_hard) for (size_t i = 0; i < n_hard; i++) check(hard[i]);
    printf("{\"max_ulp\": %%.17g, \"worst_bits\": %%u, \"over_half\": %%llu, \"over_one\": %%llu, \"count\": %%llu}\n",
           isinf(worst) ? 1e308 : worst, at, half, one, count);
    return 0;
}
"""


def _compile(artifact: Path, name: str, hard: list[int], workdir: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    src = workdir / "checker.c"
    if name not in C_REFERENCE:
        raise ValueError(f"no C reference for {name!r}; known: {', '.join(C_REFERENCE)}")
    src.write_text(_CHECKER % {"source": artifact.resolve(), "name": name, "reference": C_REFERENCE[name],
                               "hard": ", ".join(f"0x{b:08x}u" for b in hard) or "0", "n_hard": len(hard)})
    exe = workdir / "checker"
    build = subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-lm"], capture_output=True, text=True, timeout=120)
    if build.returncode:
        raise RuntimeError(f"{Path(cc).name} cannot compile it: {(build.stderr.strip().splitlines() or ['?'])[0]}")
    return exe


def _walk(exe: Path, start: int, end: int, stride: int, with_hard: bool) -> dict[str, Any]:
    out = subprocess.run([str(exe), str(start), str(end), str(stride), str(int(with_hard))], capture_output=True,
                         text=True, check=True, timeout=3600).stdout
    return json.loads(out)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(parts, key=lambda p: p["max_ulp"])
    return {"max_ulp": worst["max_ulp"], "worst_bits": worst["worst_bits"],
            "over_half": sum(p["over_half"] for p in parts), "over_one": sum(p["over_one"] for p in parts),
            "count": sum(p["count"] for p in parts)}


def _c_errors(artifact: Path, params: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        exe = _compile(artifact, params["function"], params["hard_points"], Path(tmp))
        if params["mode"] == "exhaustive":
            cores = max(1, os.cpu_count() or 1)
            chunk = (1 << 32) // cores
            bounds = [(i * chunk, (1 << 32) if i == cores - 1 else (i + 1) * chunk) for i in range(cores)]
            with ThreadPoolExecutor(cores) as pool:
                parts = list(pool.map(lambda b: _walk(exe, b[0], b[1], 1, False), bounds))
            return _merge(parts + [_walk(exe, 0, 0, 1, True)])
        return _walk(exe, int(params["offset"]), 1 << 32, int(params["stride"]), True)


_NUMPY_DRIVER = r'''
import runpy, sys
import numpy as np
path, name, inputs, output = sys.argv[1:5]
ns = runpy.run_path(path, run_name="evoforge_verify")
x = np.load(inputs)
np.save(output, np.asarray(ns["evoforge_" + name](x), np.float32))
'''


def _numpy_errors(artifact: Path, params: dict[str, Any]) -> dict[str, Any]:
    from spaces.float32.reduction import TARGETS, ulp_error

    bits = np.arange(int(params["offset"]), 1 << 32, int(params["stride"]), dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([bits, np.asarray(params["hard_points"], np.uint32)])
    x = bits.view(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(inputs, x)
        run = subprocess.run([sys.executable, "-c", _NUMPY_DRIVER, str(artifact), params["function"], str(inputs),
                              str(output)], capture_output=True, text=True, timeout=600)
        if run.returncode:
            raise RuntimeError(f"running it failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
        y = np.load(output)
    err = ulp_error(y, TARGETS[params["function"]].reference(x))
    i = int(np.argmax(err))
    return {"max_ulp": float(min(err[i], 1e308)), "worst_bits": int(bits[i]), "over_half": int(np.sum(err > 0.5)),
            "over_one": int(np.sum(err > 1.0)), "count": int(x.size)}


def max_ulp(artifact: Path, params: dict[str, Any]) -> Outcome:
    """Max ULP error of the artifact over every float32 input or the strided sample, against binary64."""
    r = _c_errors(artifact, params) if params["lang"] == "c" else _numpy_errors(artifact, params)
    worst_x = float(np.array([r["worst_bits"]], np.uint32).view(np.float32)[0])
    r["worst_input"] = worst_x if np.isfinite(worst_x) else str(worst_x)
    passed = r["max_ulp"] <= float(params["bound"])
    scope = "all 2^32 inputs" if params["mode"] == "exhaustive" else \
        f"{r['count']} inputs (every {params['stride']}th bit pattern + hard points; a sample, not exhaustive)"
    shown = "inf" if r["max_ulp"] >= 1e308 else f"{r['max_ulp']:.4f}"
    return Outcome(passed, r, f"max {shown} ULP (bound {params['bound']:g}) at x = {worst_x!r} over {scope}; "
                              f"{r['over_one']} above 1 ULP")


def python_parses(artifact: Path, params: dict[str, Any]) -> Outcome:
    """The Triton source parses and defines the function (it is not run: that needs a GPU)."""
    tree = ast.parse(artifact.read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    passed = params["function_name"] in names
    return Outcome(passed, {"functions": sorted(names)},
                   f"parses and defines {params['function_name']}; not run (needs a GPU)" if passed
                   else f"{params['function_name']} is not defined")


def certify(space, genome, lang: str, source: str, artifact: Path) -> list[Check]:
    target = space.target
    name = target.name
    if lang == "triton":
        return [run_check("float32.python_parses", "the Triton source is well-formed Python defining the function",
                          "ast.parse; the kernel is not executed (no GPU here)",
                          {"function_name": f"evoforge_{name}"}, artifact)]
    rng = np.random.default_rng(space.context.seed)
    hard = sorted({int(b) for b in np.asarray(target.hard_points(), np.float32).view(np.uint32)})
    params = {"lang": lang, "function": name, "bound": BOUND, "mode": "strided", "stride": STRIDE,
              "offset": int(rng.integers(STRIDE)), "hard_points": hard}
    reference = (f"the system libm's binary64 {C_REFERENCE.get(name, name)} (xd = x as a double)" if lang == "c"
                 else f"evoforge's binary64 numpy reference for {name} (spaces/float32)")
    t0 = time.perf_counter()
    check = run_check("float32.max_ulp", f"max error of evoforge_{name} <= {BOUND:g} ULP",
                      f"{reference} as the reference (within 2^-27 ULP32 of exact); every {STRIDE}th float32 bit "
                      f"pattern from offset {params['offset']} plus {len(hard)} hard points (a stratified sample)",
                      params, artifact)
    estimate = (time.perf_counter() - t0) * STRIDE / max(1, os.cpu_count() or 1)
    if lang == "c" and estimate <= EXHAUSTIVE_BUDGET_S:
        params = dict(params, mode="exhaustive")
        check = run_check("float32.max_ulp", f"max error of evoforge_{name} <= {BOUND:g} ULP",
                          f"{reference} as the reference (within 2^-27 ULP32 of exact); exhaustive: every one of the "
                          f"2^32 float32 inputs", params, artifact)
    else:
        check.result["exhaustive_estimate_s"] = round(estimate, 1)
    return [check]
