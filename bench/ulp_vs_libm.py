"""Our emitted float32 functions vs glibc vs NumPy: max ULP, ops per call and throughput, same machine, same run.

    python bench/ulp_vs_libm.py                 # every bench/results/NAME.c present
    python bench/ulp_vs_libm.py --only exp log --repeats 7

For each function NAME the committed `bench/results/NAME.c` and a loop calling glibc's NAMEf are compiled into one
shared object with gcc -O3 -march=native (same flags, same loop shape `out[i] = f(in[i])` over 2^24 inputs); NumPy
float32 (`np.exp(x)` on the same array) is the third column. Throughput = inputs / median wall time of --repeats runs
(after one warm-up; repeats interleave the three), reported as a ratio to glibc. Max ULP is measured on the same 2^24 inputs against binary64
libm (and taken from bench/results/ulp_exhaustive.json, all 2^32 inputs, when that file has the function).
Inputs: exp U(-87, 88), exp2 U(-126, 127), log/log2 uniform over the bit patterns of positive normal floats,
sin/cos U(-32, 32) (glibc's fast path; our Cody-Waite path).

Also for exp: the op count of the committed (discovered) program vs a Taylor polynomial and a minimax polynomial,
each of the smallest degree that reaches <= 1 ULP on 2^22 inputs with the same range reduction (both built here:
Taylor = 1/k! coefficients in Horner form; minimax = Lawson-reweighted least squares on the reduced interval,
coefficients rounded to nearest float32; "minimax+" adds our float32-aware refinement of the constants).
Writes bench/results/ulp_vs_libm.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spaces.float32.fitting import FitSettings, fit_constants  # noqa: E402
from spaces.float32.program import CONST  # noqa: E402
from spaces.float32.reduction import TARGETS, ulp_error  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos")
N = 1 << 24

LOOPS = r"""
#include <stddef.h>
#include "%(source)s"
float %(name)sf(float);
void loop_ours(const float *restrict in, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = evoforge_%(name)s_inline(in[i]);
}
void loop_glibc(const float *restrict in, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = %(name)sf(in[i]);
}
"""


def inputs(name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "exp":
        return rng.uniform(-87.0, 88.0, N).astype(np.float32)
    if name == "exp2":
        return rng.uniform(-126.0, 127.0, N).astype(np.float32)
    if name in ("log", "log2"):
        return rng.integers(0x00800000, 0x7F800000, N, dtype=np.uint32).view(np.float32)
    return rng.uniform(-32.0, 32.0, N).astype(np.float32)


def compile_loops(name: str, source: Path, workdir: Path):
    c = workdir / f"loops_{name}.c"
    c.write_text(LOOPS % {"source": source.resolve(), "name": name})
    so = workdir / f"loops_{name}.so"
    subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(c), "-lm"], check=True)
    lib = ctypes.CDLL(str(so))
    fns = {}
    for k in ("ours", "glibc"):
        f = getattr(lib, f"loop_{k}")
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        f.restype = None
        fns[k] = f
    return fns


def timed(fns: dict, repeats: int) -> dict:
    """Median wall seconds per implementation; repeats interleave the implementations, so a burst of load from
    other processes hits all of them alike."""
    times: dict = {k: [] for k in fns}
    for fn in fns.values():
        fn()                                            # warm-up: page in the arrays, resolve symbols
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def program_ops(source: Path) -> int:
    """Operations of the evolved core, read back from the emitted C (one `const float vK = ...;` per op)."""
    text = source.read_text()
    core = text[text.index("ef_core("):]
    core = core[: core.index("\n}\n")]
    return core.count("    const float v")


def compare(name: str, source: Path, repeats: int, workdir: Path, exhaustive: dict) -> dict:
    x = inputs(name, np.random.default_rng(0))
    ref = TARGETS[name].reference(x)
    fns = compile_loops(name, source, workdir)
    out = {k: np.empty_like(x) for k in ("ours", "glibc", "numpy")}
    np_fn = getattr(np, name)
    calls = {k: (lambda k=k: fns[k](x.ctypes.data, out[k].ctypes.data, N)) for k in ("ours", "glibc")}
    calls["numpy"] = lambda: np_fn(x, out=out["numpy"])
    seconds = timed(calls, repeats)
    prog_ops = program_ops(source)
    row = {}
    for k in ("ours", "glibc", "numpy"):
        sample_max = float(np.max(ulp_error(out[k], ref)))
        ex = exhaustive.get(name, {}).get(k) if k != "numpy" else None
        row[k] = {"max_ulp": ex["max_ulp"] if ex else sample_max, "max_ulp_scope": "all 2^32 inputs" if ex else
                  "2^24 inputs", "max_ulp_2^24": sample_max,
                  "ops": prog_ops + TARGETS[name].harness_ops if k == "ours" else None,
                  "program_ops": prog_ops if k == "ours" else None,
                  "seconds": seconds[k], "throughput_gelem_s": N / seconds[k] / 1e9,
                  "throughput_ratio_vs_glibc": seconds["glibc"] / seconds[k]}
    return row


def horner(degree: int) -> tuple:
    prog = [("fma", (0, CONST, CONST))]
    for _ in range(degree - 1):
        prog.append(("fma", (len(prog), 0, CONST)))
    return tuple(prog)


def exp_op_baselines(discovered_ops: int | None) -> dict:
    """Smallest Taylor / minimax degree reaching <= 1 ULP for exp with our reduction, on 2^22 inputs."""
    target = TARGETS["exp"]
    x = target.sample(1 << 22, np.random.default_rng(5))
    ref = target.reference(x)
    out: dict = {"discovered_program_ops": discovered_ops}
    rows = []
    for degree in range(3, 10):
        prog = horner(degree)
        taylor = [1.0 / math.factorial(k) for k in range(degree, -1, -1)]   # Horner order: highest first
        mm = fit_constants(prog, "exp", FitSettings(refine_rounds=0))
        mm_plus = fit_constants(prog, "exp", FitSettings())
        errs = {k: float(np.max(ulp_error(target.evaluate(prog, c, x), ref)))
                for k, c in (("taylor", taylor), ("minimax", mm.constants), ("minimax+", mm_plus.constants))}
        rows.append({"degree": degree, "ops": len(prog), **errs})
    out["degrees"] = rows
    for k in ("taylor", "minimax", "minimax+"):
        ok = [r for r in rows if r[k] <= 1.0]
        out[f"{k}_ops_at_1ulp"] = ok[0]["ops"] if ok else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    ex_path = RESULTS / "ulp_exhaustive.json"
    exhaustive = json.loads(ex_path.read_text()) if ex_path.exists() else {}
    results: dict = {"machine": platform.processor() or platform.machine(), "inputs": N, "repeats": args.repeats,
                     "compiler": subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
                     .splitlines()[0], "flags": "-O3 -march=native", "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            source = RESULTS / f"{name}.c"
            if not source.exists():
                print(f"{name}: {source} missing, skipped")
                continue
            results["functions"][name] = compare(name, source, args.repeats, Path(tmp), exhaustive)
    if (RESULTS / "exp.c").exists() and "exp" in args.only:
        results["exp_ops_vs_classic"] = exp_op_baselines(program_ops(RESULTS / "exp.c"))
    (RESULTS / "ulp_vs_libm.json").write_text(json.dumps(results, indent=1))

    print(f"{'func':<5} {'impl':<6} {'max ULP':>9} {'scope':>16} {'ops':>5} {'Gelem/s':>8} {'vs glibc':>9}")
    for name, row in results["functions"].items():
        for k, r in row.items():
            ops = "" if r["ops"] is None else f"{r['ops']}"
            print(f"{name:<5} {k:<6} {r['max_ulp']:>9.4f} {r['max_ulp_scope']:>16} {ops:>5} "
                  f"{r['throughput_gelem_s']:>8.3f} {r['throughput_ratio_vs_glibc']:>8.2f}x")
    if "exp_ops_vs_classic" in results:
        b = results["exp_ops_vs_classic"]
        print("\nexp, program ops at <= 1 ULP (same reduction): discovered", b["discovered_program_ops"],
              "| Taylor", b["taylor_ops_at_1ulp"], "| minimax", b["minimax_ops_at_1ulp"],
              "| minimax + float32 refinement", b["minimax+_ops_at_1ulp"])
        print(f"{'degree':>6} {'ops':>4} {'Taylor':>9} {'minimax':>9} {'minimax+':>9}   (max ULP)")
        for r in b["degrees"]:
            print(f"{r['degree']:>6} {r['ops']:>4} {r['taylor']:>9.3f} {r['minimax']:>9.3f} {r['minimax+']:>9.3f}")
    print(f"written: {RESULTS / 'ulp_vs_libm.json'}")


if __name__ == "__main__":
    main()
