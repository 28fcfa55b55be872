"""Exhaustive check: every one of the 2^32 float32 inputs of each function, our emitted C vs glibc, in ULPs.

    python bench/ulp_exhaustive.py                      # every bench/results/NAME.c
    python bench/ulp_exhaustive.py --only exp --chunks 16
    python bench/ulp_exhaustive.py --only sin cos --below 120 --no-peers   # only |x| < 120, only our function

Independent of the tests and of the Python simulation: the committed C file (`bench/results/NAME.c`, exporting
`float evoforge_NAME(float)`) is compiled with gcc -O3 -march=native into a small checker that walks a range of bit
patterns, evaluates the function and glibc's binary64 NAME() as the reference, and keeps the max error in float32
ULPs (|y - ref| / ulp32(ref); binary64 is within 2^-27 ULP of exact, see objectives/ulp.py), where it occurs, and
how many results are not correctly rounded (> 0.5 ULP). NaN must meet NaN; inf must meet a reference that rounds to
inf. The same walk measures glibc's float32 NAMEf and glibc's vector variant (libmvec, the loop `out[i] = NAMEf(in[i])`
compiled in its own file with gcc -O3 -march=native -ffast-math -fopenmp-simd, as a user gets it, over blocks of
4096 inputs). sigmoid has no glibc function: the reference is 1 / (1 + exp(-x)) in binary64, the peers
1.0f / (1.0f + expf(-x)). Chunks run one after another (2^32 / chunks each).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf")
IMPLS = ("ours", "glibc", "libmvec")


def reference_expr(name: str, arg: str) -> str:
    return f"(1.0 / (1.0 + exp(-(double){arg})))" if name == "sigmoid" else f"{name}((double){arg})"


def libm_expr(name: str, arg: str) -> str:
    return f"(1.0f / (1.0f + expf(-{arg})))" if name == "sigmoid" else f"{name}f({arg})"


LIBMVEC_LOOP = r"""
#include <math.h>
#include <stddef.h>
void mv_loop(const float *restrict in, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = %(call)s;
}
"""

CHECKER = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "%(source)s"

/* 2^(exponent of |a| - 23) from the binary64 bits; 2^-149 below 2^-126 (float32 subnormals) */
static inline double ulp32(double a) {
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

void mv_loop(const float *restrict in, float *restrict out, size_t n);

int main(int argc, char **argv) {
    uint64_t start = strtoull(argv[1], 0, 0), end = strtoull(argv[2], 0, 0);
    const int peers = argc < 4 || argv[3][0] != '0';      /* 0: our function only (faster) */
    double worst[3] = {0, 0, 0};
    uint32_t at[3] = {0, 0, 0};
    uint64_t over_half[3] = {0, 0, 0}, over_one[3] = {0, 0, 0};
    static float xs[4096], mv[4096];
    for (uint64_t b0 = start; b0 < end; b0 += 4096) {
        size_t m = end - b0 < 4096 ? (size_t)(end - b0) : 4096;
        for (size_t j = 0; j < m; j++) { uint32_t u = (uint32_t)(b0 + j); memcpy(&xs[j], &u, 4); }
        if (peers) mv_loop(xs, mv, m);
        for (size_t j = 0; j < m; j++) {
            uint32_t u = (uint32_t)(b0 + j);
            float x = xs[j];
            double ref = %(ref)s;
            float y[3] = {evoforge_%(name)s(x), peers ? %(libm)s : 0.0f, peers ? mv[j] : 0.0f};
            for (int i = 0; i < (peers ? 3 : 1); i++) {
                double e = ulp_err(y[i], ref);
                if (e > 0.5) over_half[i]++;
                if (e > 1.0) over_one[i]++;
                if (e > worst[i]) { worst[i] = e; at[i] = u; }
            }
        }
    }
    printf("{");
    const char *names[3] = {"ours", "glibc", "libmvec"};
    for (int i = 0; i < 3; i++)
        printf("%%s\"%%s\": [%%.17g, %%u, %%llu, %%llu]", i ? ", " : "", names[i], worst[i], at[i],
               (unsigned long long)over_half[i], (unsigned long long)over_one[i]);
    printf("}\n");
    return 0;
}
"""


def build(name: str, source: Path, workdir: Path) -> Path:
    c = workdir / f"check_{name}.c"
    c.write_text(CHECKER % {"source": source.resolve(), "name": name, "ref": reference_expr(name, "x"),
                            "libm": libm_expr(name, "x")})
    mv = workdir / f"mv_{name}.c"
    mv.write_text(LIBMVEC_LOOP % {"call": libm_expr(name, "in[i]")})
    mv_o = workdir / f"mv_{name}.o"
    subprocess.run(["gcc", "-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-c", "-o", str(mv_o), str(mv)],
                   check=True)
    exe = workdir / f"check_{name}"
    subprocess.run(["gcc", "-O3", "-march=native", "-o", str(exe), str(c), str(mv_o), "-lmvec", "-lm"], check=True)
    return exe


def bit_ranges(below: float | None) -> list[tuple[int, int]]:
    """Bit-pattern ranges to walk: all 2^32, or those of |x| < below (both signs)."""
    if below is None:
        return [(0, 1 << 32)]
    top = struct.unpack("<I", struct.pack("<f", below))[0]
    return [(0, top), (0x80000000, 0x80000000 + top)]


def check(name: str, source: Path, chunks: int, workdir: Path, below: float | None = None,
          peers: bool = True) -> dict:
    exe = build(name, source, workdir)
    pieces = []
    for lo, hi in bit_ranges(below):
        step = max(1, (hi - lo) // chunks)
        pieces += [(a, min(a + step, hi)) for a in range(lo, hi, step)]
    impls = IMPLS if peers else ("ours",)
    agg = {k: {"max_ulp": 0.0, "worst_input_bits": 0, "not_correctly_rounded": 0, "over_1_ulp": 0}
           for k in impls}
    t0 = time.perf_counter()
    for i, (lo, hi) in enumerate(pieces):
        out = subprocess.run([str(exe), str(lo), str(hi), "1" if peers else "0"],
                             capture_output=True, text=True, check=True).stdout
        part = json.loads(out.replace("inf", "1e999"))
        for k in impls:
            worst, at, half, one = part[k]
            a = agg[k]
            a["not_correctly_rounded"] += half
            a["over_1_ulp"] += one
            if worst > a["max_ulp"]:
                a["max_ulp"], a["worst_input_bits"] = worst, at
        print(f"  {name}: chunk {i + 1}/{len(pieces)} done, {time.perf_counter() - t0:.0f} s", flush=True)
    for a in agg.values():
        a["worst_input"] = struct.unpack("<f", struct.pack("<I", a["worst_input_bits"]))[0]
        a["worst_input_bits"] = f"0x{a['worst_input_bits']:08x}"
    scope = "all 2^32 inputs" if below is None else f"every input with |x| < {below:g}"
    return {"function": name, "source": str(source.relative_to(RESULTS.parent.parent)),
            "inputs": sum(hi - lo for lo, hi in pieces), "scope": scope,
            "seconds": round(time.perf_counter() - t0, 1), **agg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--below", type=float, default=None, help="walk only the inputs with |x| < BELOW")
    ap.add_argument("--no-peers", action="store_true", help="our function only (glibc and libmvec not run)")
    args = ap.parse_args()
    results_path = RESULTS / "ulp_exhaustive.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            source = RESULTS / f"{name}.c"
            if not source.exists():
                print(f"{name}: {source} missing, skipped")
                continue
            entry = check(name, source, args.chunks, Path(tmp), args.below, not args.no_peers)
            # merge into what is on disk now (another run may have written other functions meanwhile)
            on_disk = json.loads(results_path.read_text()) if results_path.exists() else {}
            old = on_disk.get(name)
            if args.below is not None and old:       # a partial walk keeps the last run over the rest
                entry["previous_run"] = old.get("previous_run", old) if "scope" in old else old
            if args.no_peers and old:                # the peers' code did not change: keep their last walk
                kept = [peer for peer in ("glibc", "libmvec") if peer in old and peer not in entry]
                for peer in kept:
                    entry[peer] = old[peer]
                if kept:
                    entry["peers_from"] = old.get("peers_from", "the previous walk (--no-peers: not re-run)")
            results[name] = on_disk[name] = entry
            results_path.write_text(json.dumps(on_disk, indent=1))
            (RESULTS / f"ulp_exhaustive_{name}.json").write_text(json.dumps(results[name], indent=1))
    print(f"\n{'function':<8} {'ours max ULP':>13} {'> 1 ULP':>8} {'> 0.5 ULP':>10} {'glibc max ULP':>14} "
          f"{'libmvec max ULP':>16} {'libmvec > 1':>12} {'worst input (ours)':>20} {'s':>6}")
    for name in NAMES:
        if name in results:
            r = results[name]
            nan = {"max_ulp": float("nan"), "over_1_ulp": "-", "not_correctly_rounded": "-"}
            o, g, v = r["ours"], r.get("glibc", nan), r.get("libmvec", nan)
            print(f"{name:<8} {o['max_ulp']:>13.4f} {o['over_1_ulp']:>8} {o['not_correctly_rounded']:>10} "
                  f"{g['max_ulp']:>14.4f} {v['max_ulp']:>16.4f} {v['over_1_ulp']:>12} {o['worst_input']:>20.9g} "
                  f"{r['seconds']:>6}")
    print(f"written: {results_path}")


if __name__ == "__main__":
    main()
