"""Our emitted float32 functions vs glibc's vector math (libmvec), glibc scalar and NumPy: throughput and max ULP.

    python bench/ulp_vs_libm.py                 # every bench/results/NAME.c present
    python bench/ulp_vs_libm.py --only sin cos --repeats 7
    python bench/ulp_vs_libm.py --march x86-64-v3 --out bench/results/ulp_vs_libm_avx2.json   # AVX2 builds

The named peer is libmvec, compiled the way a user gets it: a loop `out[i] = NAMEf(in[i])` built with
`gcc -O3 -march=native -ffast-math -fopenmp-simd` calls glibc's vector variants (_ZGVdN8v_NAMEf on AVX2); the
script disassembles that loop and records which _ZGV symbols it calls (the row is marked invalid if none). Beside it:
the same loop built without -ffast-math (glibc's scalar NAMEf), our `evoforge_NAME_array` from the committed
`bench/results/NAME.c` (gcc -O3 -march=native: no -ffast-math, which would break its exact error terms), and NumPy
float32 (`np.NAME`, scipy.special.erf for erf; sigmoid as 1 / (1 + exp(-x)) in every library: glibc has none).
Throughput: ns per element over 2^24 inputs, median of --repeats runs after a warm-up, the four implementations
interleaved within each repeat so a burst of load from other processes hits all alike; and in cache (2^12 inputs
called 2^12 times from C, so the arithmetic alone is timed: the 2^24 arrays are 64 MiB each way and time the
memory system too; NumPy has no in-cache row, its per-call overhead would dominate). Max ULP: on the same 2^24
inputs against a binary64 reference, and from bench/results/ulp_exhaustive.json (all 2^32 inputs) where that file
has the function and implementation.
Inputs: exp U(-87, 88), exp2 U(-126, 127), log/log2 uniform over the bit patterns of positive normal floats,
sin/cos U(-100, 100), tanh U(-10, 10), sigmoid U(-20, 20), erf U(-4, 4).

With --ops, for every function: the published program's op count vs the smallest classic form (our minimax
fitter, same reduction) at <= 1 ULP; and for exp: the op count of the committed (discovered) program vs a Taylor polynomial and a minimax polynomial,
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
import os
import platform
import re
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
from spaces.float32.space import classic_forms  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf")
IMPLS = ("ours", "libmvec", "glibc", "numpy")
N = 1 << 24
OURS_FLAGS = ["-O3", "-march=native"]
LIBMVEC_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd"]
#: on an AVX-512 host gcc's default tuning keeps 8-lane vectors, so the user's loop calls libmvec's AVX2 variants;
#: this flag makes it call the 16-lane AVX-512 ones (`_ZGVeN16v_*`), the strongest libmvec a user can get there
WIDE_FLAGS = ["-mprefer-vector-width=512"]


def has_avx512() -> bool:
    """Whether the builds below make AVX-512 code: the host has it and -march (native, or --march) keeps it."""
    march = next(f for f in OURS_FLAGS if f.startswith("-march="))
    macros = subprocess.run(["gcc", march, "-dM", "-E", "-"], input="", capture_output=True, text=True).stdout
    return " avx512f" in Path("/proc/cpuinfo").read_text() and "__AVX512F__" in macros


def set_march(march: str) -> None:
    """Build ours, the user's libmvec loop and glibc's scalar loop for MARCH instead of the host (e.g. x86-64-v3:
    what an AVX2 host gets, measured on whatever host runs this)."""
    for flags in (OURS_FLAGS, LIBMVEC_FLAGS):
        flags[:] = [f"-march={march}" if f.startswith("-march=") else f for f in flags]

GLIBC_LOOP = r"""
#include <stddef.h>
#include <math.h>
void loop(const float *restrict in, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = %(call)s;
}
""" + r"""
void repeat(const float *restrict in, float *restrict out, size_t n, int reps) {
    for (int r = 0; r < reps; r++) { loop(in, out, n); __asm__ volatile("" ::: "memory"); }
}
"""
OURS_REPEAT = r"""
#include "%(source)s"
void repeat(const float *restrict in, float *restrict out, size_t n, int reps) {
    for (int r = 0; r < reps; r++) { evoforge_%(name)s_array(in, out, n); __asm__ volatile("" ::: "memory"); }
}
"""
#: the in-cache measurement: this many elements (16 KiB in, 16 KiB out: L1/L2-resident), called N / CACHE_N times,
#: so it times the arithmetic, where the 2^24 arrays time the memory system too
CACHE_N = 1 << 12


def libm_call(name: str) -> str:
    """The C expression a user writes for NAME(in[i]) with glibc (sigmoid has no libm function)."""
    return "1.0f / (1.0f + expf(-in[i]))" if name == "sigmoid" else f"{name}f(in[i])"


def inputs(name: str, rng: np.random.Generator) -> np.ndarray:
    lo_hi = {"exp": (-87.0, 88.0), "exp2": (-126.0, 127.0), "sin": (-100.0, 100.0), "cos": (-100.0, 100.0),
             "tanh": (-10.0, 10.0), "sigmoid": (-20.0, 20.0), "erf": (-4.0, 4.0)}
    if name in ("log", "log2"):
        return rng.integers(0x00800000, 0x7F800000, N, dtype=np.uint32).view(np.float32)
    return rng.uniform(*lo_hi[name], N).astype(np.float32)


def numpy_fn(name: str):
    if name == "sigmoid":
        one = np.float32(1.0)
        return lambda x, out: np.divide(one, np.add(one, np.exp(np.negative(x, out=out), out=out), out=out), out=out)
    if name == "erf":
        from scipy.special import erf
        return lambda x, out: erf(x, out=out)
    fn = getattr(np, name)
    return lambda x, out: fn(x, out=out)


def _load(so: Path, symbol: str, *extra):
    f = getattr(ctypes.CDLL(str(so)), symbol)
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, *extra]
    f.restype = None
    return f


def vector_calls(so: Path) -> list[str]:
    """The _ZGV* (libmvec) symbols that the compiled loop calls, read from objdump."""
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so)], capture_output=True, text=True,
                         check=True).stdout
    body = dis[dis.index("<loop>:"):]
    body = body[: body.find("\n\n")] if "\n\n" in body else body
    return sorted(set(re.findall(r"call\s+\S+\s+<(_ZGV\w+)@plt>", body)))


def compile_impls(name: str, source: Path, workdir: Path) -> tuple[dict, list[str]]:
    """(ctypes loop per compiled implementation, libmvec symbols the user's loop calls)."""
    ours = workdir / f"ours_{name}.so"
    wrapper = workdir / f"ours_{name}.c"
    wrapper.write_text(OURS_REPEAT % {"source": source.resolve(), "name": name})
    subprocess.run(["gcc", *OURS_FLAGS, "-shared", "-fPIC", "-o", str(ours), str(wrapper)], check=True)
    c = workdir / f"libm_{name}.c"
    c.write_text(GLIBC_LOOP % {"call": libm_call(name)})
    mv, sc = workdir / f"libmvec_{name}.so", workdir / f"glibc_{name}.so"
    subprocess.run(["gcc", *LIBMVEC_FLAGS, "-shared", "-fPIC", "-o", str(mv), str(c), "-lmvec", "-lm"], check=True)
    subprocess.run(["gcc", *OURS_FLAGS, "-shared", "-fPIC", "-o", str(sc), str(c), "-lm"], check=True)
    built = {"ours": ours, "libmvec": mv, "glibc": sc}
    if has_avx512():
        wide = workdir / f"libmvec512_{name}.so"
        subprocess.run(["gcc", *LIBMVEC_FLAGS, *WIDE_FLAGS, "-shared", "-fPIC", "-o", str(wide), str(c), "-lmvec",
                        "-lm"], check=True)
        built["libmvec512"] = wide
    fns = {k: _load(so, f"evoforge_{name}_array" if k == "ours" else "loop") for k, so in built.items()}
    repeats = {k: _load(so, "repeat", ctypes.c_int) for k, so in built.items()}
    return fns, repeats, vector_calls(mv), (vector_calls(built["libmvec512"]) if "libmvec512" in built else [])


def timed(fns: dict, repeats: int, per_repeat: dict | None = None) -> dict:
    """Median wall seconds per implementation; repeats interleave the implementations, so a burst of load from
    other processes hits all of them alike. `per_repeat`, if given, receives every repeat's seconds."""
    times: dict = {k: [] for k in fns}
    for fn in fns.values():
        fn()                                            # warm-up: page in the arrays, resolve symbols
    keys = list(fns)
    for r in range(repeats):
        # the order rotates, so that no implementation always runs in the slot after the same other one (a core's
        # clock can differ after a scalar loop and after a 512-bit one)
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    if per_repeat is not None:
        per_repeat.update(times)
    return {k: float(np.median(v)) for k, v in times.items()}


def ratio_range(times: dict, k: str) -> list[float]:
    """Lowest and highest libmvec/ours ratio over the repeats (each from one interleaved repeat). On this shared
    machine the in-cache ratio moves between two states, not only by noise: while the host is quiet libmvec's loop
    runs ~1.8x faster and ours ~1.25x (sin in cache: 0.46 vs 0.54 ns), under the host's other load both slow down
    (0.82 vs 0.75 ns); the median says which state dominated the run, the range shows both."""
    r = np.asarray(times["libmvec"]) / np.asarray(times[k])
    return [float(r.min()), float(r.max())]


def program_ops(source: Path) -> int:
    """Operations of the evolved core, read back from the emitted C (one `const float vK = ...;` per op)."""
    text = source.read_text()
    core = text[text.index("ef_core("):]
    core = core[: core.index("\n}\n")]
    return core.count("    const float v")


def compare(name: str, source: Path, repeats: int, workdir: Path, exhaustive: dict) -> dict:
    x = inputs(name, np.random.default_rng(0))
    ref = TARGETS[name].reference(x)
    fns, repeat_fns, zgv, zgv_wide = compile_impls(name, source, workdir)
    impls = [*IMPLS, *(["libmvec512"] if "libmvec512" in fns else [])]
    out = {k: np.empty_like(x) for k in impls}
    calls = {k: (lambda k=k: fns[k](x.ctypes.data, out[k].ctypes.data, N)) for k in fns}
    np_fn = numpy_fn(name)
    calls["numpy"] = lambda: np_fn(x, out["numpy"])
    seconds = timed(calls, repeats)
    small, small_out = x[:CACHE_N].copy(), np.empty(CACHE_N, np.float32)
    cache_runs: dict = {}
    in_cache = timed({k: (lambda k=k: repeat_fns[k](small.ctypes.data, small_out.ctypes.data, CACHE_N,
                                                   N // CACHE_N)) for k in repeat_fns}, repeats, cache_runs)
    prog_ops = program_ops(source)
    row: dict = {"libmvec_symbols_called": zgv, "libm_expression": libm_call(name),
                 **({"libmvec512_symbols_called": zgv_wide} if zgv_wide else {}),
                 "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg()}
    best = min(v for k, v in seconds.items() if k.startswith("libmvec"))
    best_cache = min(v for k, v in in_cache.items() if k.startswith("libmvec"))
    for k in impls:
        sample_max = float(np.max(ulp_error(out[k], ref)))
        ex = exhaustive.get(name, {}).get(k)
        scope = exhaustive.get(name, {}).get("scope", "all 2^32 inputs")
        row[k] = {"max_ulp": ex["max_ulp"] if ex else sample_max,
                  "max_ulp_scope": scope if ex else "2^24 inputs (the timing sample)",
                  "max_ulp_2^24": sample_max,
                  "ops": prog_ops + TARGETS[name].harness_ops if k == "ours" else None,
                  "program_ops": prog_ops if k == "ours" else None,
                  "seconds": seconds[k], "ns_per_element": seconds[k] / N * 1e9,
                  "throughput_ratio_vs_libmvec": seconds["libmvec"] / seconds[k],
                  "throughput_ratio_vs_glibc": seconds["glibc"] / seconds[k],
                  "ns_per_element_in_cache": in_cache[k] / N * 1e9 if k in in_cache else None,
                  "throughput_ratio_vs_libmvec_in_cache": in_cache["libmvec"] / in_cache[k] if k in in_cache else None,
                  "throughput_ratio_vs_libmvec_in_cache_range": ratio_range(cache_runs, k) if k in in_cache else None,
                  # fastest repeat against fastest repeat: the quiet-host state for both (see ratio_range)
                  "throughput_ratio_vs_libmvec_in_cache_fastest":
                      min(cache_runs["libmvec"]) / min(cache_runs[k]) if k in in_cache else None,
                  **({"throughput_ratio_vs_best_libmvec": best / seconds[k],
                      "throughput_ratio_vs_best_libmvec_in_cache": best_cache / in_cache[k]}
                     if "libmvec512" in fns and k in in_cache else {})}
    row["libmvec"]["valid"] = bool(zgv) or name == "sigmoid"
    if "libmvec512" in row:
        row["libmvec512"]["valid"] = bool(zgv_wide) or name == "sigmoid"
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


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512f": " avx512f" in flags, "avx2": " avx2" in flags,
            "glibc": platform.libc_ver()[1], "load_average_start": os.getloadavg(),
            "shared": "a 2-core machine shared with other engineers' jobs: absolute ns vary with their load; "
                      "ratios come from interleaved repeats of the same run"}


def classic_ops_at_1ulp(name: str, published_ops: int, points: int = 1 << 20) -> dict:
    """The fewest program ops among the classic forms (Horner / odd-even / t P(t) in the same reduction, constants
    by our minimax fitter with float32 refinement) that reach <= 1 ULP on `points` sampled inputs, next to the
    published program's ops. Forms are tried in op order up to the published size + 2."""
    target = TARGETS[name]
    x = np.concatenate([target.sample(points, np.random.default_rng(5)), target.hard_points()])
    ref = target.reference(x)
    tried = []
    for prog in sorted(classic_forms(target, 40), key=len):
        if len(prog) > published_ops + 2:
            break
        fit = fit_constants(prog, name, FitSettings())
        err = float(np.max(ulp_error(target.evaluate(prog, fit.constants, x), ref)))
        tried.append({"ops": len(prog), "max_ulp": err})
        if err <= 1.0:
            break
    ok = [t["ops"] for t in tried if t["max_ulp"] <= 1.0]
    return {"published_program_ops": published_ops, "classic_minimax_ops_at_1ulp": ok[0] if ok else None,
            "classic_tried": tried, "sample": int(x.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--ops", action="store_true", help="also: published ops vs the smallest classic form at 1 ULP "
                    "(and, for exp, vs Taylor and minimax polynomials); minutes of fitting")
    ap.add_argument("--ops-only", action="store_true", help="only the --ops comparisons (no timing): the "
                    "function rows stay from the last run")
    ap.add_argument("--out", type=Path, default=RESULTS / "ulp_vs_libm.json",
                    help="results file (another machine's run: e.g. bench/results/ulp_vs_libm_avx512.json)")
    ap.add_argument("--machine-note", default=None, help="how the machine was shared during the run")
    ap.add_argument("--march", default=None, help="build every implementation for this -march instead of native "
                    "(x86-64-v3: the AVX2 code an AVX2 host runs; libmvec then calls its AVX2 variants)")
    args = ap.parse_args()
    args.ops = args.ops or args.ops_only
    if args.march:
        set_march(args.march)
    ex_path = RESULTS / "ulp_exhaustive.json"
    exhaustive = json.loads(ex_path.read_text()) if ex_path.exists() else {}
    results: dict = {"machine": machine(), "inputs": N, "repeats": args.repeats,
                     "compiler": subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
                     .splitlines()[0], "flags_ours": " ".join(OURS_FLAGS), "flags_libmvec": " ".join(LIBMVEC_FLAGS),
                     "flags_glibc_scalar": " ".join(OURS_FLAGS), "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [] if args.ops_only else args.only:
            source = RESULTS / f"{name}.c"
            if not source.exists() or name not in TARGETS:
                print(f"{name}: {source} missing, skipped")
                continue
            results["functions"][name] = compare(name, source, args.repeats, Path(tmp), exhaustive)
    results["machine"]["load_average_end"] = os.getloadavg()
    if args.machine_note:
        results["machine"]["shared"] = args.machine_note
    # rows of functions not measured in this run, and op comparisons not redone, stay from the earlier run
    old_path = args.out
    old = json.loads(old_path.read_text()) if old_path.exists() else {}
    if args.ops_only:
        results = {**old, "ops_measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.ops and (RESULTS / "exp.c").exists() and "exp" in args.only:
        results["exp_ops_vs_classic"] = exp_op_baselines(program_ops(RESULTS / "exp.c"))
    if args.ops:
        results["ops_vs_classic"] = {**old.get("ops_vs_classic", {}),   # functions not in --only stay as they were
                                     **{name: classic_ops_at_1ulp(name, program_ops(RESULTS / f"{name}.c"))
                                        for name in args.only if (RESULTS / f"{name}.c").exists()}}
    if "machine" in old and isinstance(old["machine"], dict):
        for name, row in old.get("functions", {}).items():
            results["functions"].setdefault(name, row)
        for key in ("exp_ops_vs_classic", "ops_vs_classic"):
            if key not in results and key in old:
                results[key] = old[key]
    old_path.write_text(json.dumps(results, indent=1))

    print(f"{'func':<8} {'impl':<10} {'max ULP':>9} {'scope':>8} {'ns/elem':>8} {'vs libmvec':>10} {'vs glibc':>9}"
          f" {'in cache':>9} {'vs libmvec':>10}")
    for name, row in results["functions"].items():
        for k in [k for k in (*IMPLS, "libmvec512") if k in row]:
            r = row[k]
            scope = {"all": "2^32", "2^2": "2^24"}.get(r["max_ulp_scope"][:3].rstrip(" "), "part")
            cache = r.get("ns_per_element_in_cache")
            cache = f"{cache:>9.3f} {r['throughput_ratio_vs_libmvec_in_cache']:>9.2f}x" if cache else f"{'-':>9} {'-':>10}"
            print(f"{name:<8} {k:<10} {r['max_ulp']:>9.4f} {scope:>8} {r['ns_per_element']:>8.3f} "
                  f"{r['throughput_ratio_vs_libmvec']:>9.2f}x {r['throughput_ratio_vs_glibc']:>8.2f}x {cache}")
        print(f"{'':<8} libmvec loop calls: {', '.join(row['libmvec_symbols_called']) or 'NO _ZGV symbol'}")
    if "exp_ops_vs_classic" in results:
        b = results["exp_ops_vs_classic"]
        print("\nexp, program ops at <= 1 ULP (same reduction): discovered", b["discovered_program_ops"],
              "| Taylor", b["taylor_ops_at_1ulp"], "| minimax", b["minimax_ops_at_1ulp"],
              "| minimax + float32 refinement", b["minimax+_ops_at_1ulp"])
        print(f"{'degree':>6} {'ops':>4} {'Taylor':>9} {'minimax':>9} {'minimax+':>9}   (max ULP)")
        for r in b["degrees"]:
            print(f"{r['degree']:>6} {r['ops']:>4} {r['taylor']:>9.3f} {r['minimax']:>9.3f} {r['minimax+']:>9.3f}")
    for name, r in results.get("ops_vs_classic", {}).items():
        tried = ", ".join(f"{t['ops']}: {t['max_ulp']:.3f}" for t in r["classic_tried"])
        print(f"{name}: program ops {r['published_program_ops']}, smallest classic form at <= 1 ULP: "
              f"{r['classic_minimax_ops_at_1ulp']} (ops: max ULP {tried})")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
