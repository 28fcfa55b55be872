"""Exhaustive check: every one of the 2^32 float32 inputs of each function, our emitted C vs glibc, in ULPs.

    python bench/ulp_exhaustive.py                      # all of bench/results/{exp,exp2,log,log2,sin,cos}.c
    python bench/ulp_exhaustive.py --only exp --chunks 16

Independent of the tests and of the Python simulation: the committed C file (`bench/results/NAME.c`, exporting
`float evoforge_NAME(float)`) is compiled with gcc -O3 -march=native into a small checker that walks a range of bit
patterns, evaluates the function and glibc's binary64 NAME() as the reference, and keeps the max error in float32
ULPs (|y - ref| / ulp32(ref); binary64 is within 2^-27 ULP of exact, see objectives/ulp.py), where it occurs, and
how many results are not correctly rounded (> 0.5 ULP). NaN must meet NaN; inf must meet a reference that rounds to
inf. The same walk measures glibc's float32 NAMEf, the peer. Chunks run one after another (2^32 / chunks each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos")

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

int main(int argc, char **argv) {
    uint64_t start = strtoull(argv[1], 0, 0), end = strtoull(argv[2], 0, 0);
    double worst[2] = {0, 0};
    uint32_t at[2] = {0, 0};
    uint64_t over_half[2] = {0, 0}, over_one[2] = {0, 0};
    for (uint64_t b = start; b < end; b++) {
        uint32_t u = (uint32_t)b; float x; memcpy(&x, &u, 4);
        double ref = %(ref)s((double)x);
        float y[2] = {evoforge_%(name)s(x), %(ref)sf(x)};
        for (int i = 0; i < 2; i++) {
            double e = ulp_err(y[i], ref);
            if (e > 0.5) over_half[i]++;
            if (e > 1.0) over_one[i]++;
            if (e > worst[i]) { worst[i] = e; at[i] = u; }
        }
    }
    printf("{\"ours\": [%%.17g, %%u, %%llu, %%llu], \"glibc\": [%%.17g, %%u, %%llu, %%llu]}\n",
           worst[0], at[0], (unsigned long long)over_half[0], (unsigned long long)over_one[0],
           worst[1], at[1], (unsigned long long)over_half[1], (unsigned long long)over_one[1]);
    return 0;
}
"""


def build(name: str, source: Path, workdir: Path) -> Path:
    c = workdir / f"check_{name}.c"
    c.write_text(CHECKER % {"source": source.resolve(), "name": name, "ref": name})
    exe = workdir / f"check_{name}"
    subprocess.run(["gcc", "-O3", "-march=native", "-o", str(exe), str(c), "-lm"], check=True)
    return exe


def check(name: str, source: Path, chunks: int, workdir: Path) -> dict:
    exe = build(name, source, workdir)
    total = 1 << 32
    step = total // chunks
    agg = {k: {"max_ulp": 0.0, "worst_input_bits": 0, "not_correctly_rounded": 0, "over_1_ulp": 0}
           for k in ("ours", "glibc")}
    t0 = time.perf_counter()
    for i in range(chunks):
        out = subprocess.run([str(exe), str(i * step), str(total if i == chunks - 1 else (i + 1) * step)],
                             capture_output=True, text=True, check=True).stdout
        part = json.loads(out.replace("inf", "1e999"))
        for k, (worst, at, half, one) in part.items():
            a = agg[k]
            a["not_correctly_rounded"] += half
            a["over_1_ulp"] += one
            if worst > a["max_ulp"]:
                a["max_ulp"], a["worst_input_bits"] = worst, at
        print(f"  {name}: chunk {i + 1}/{chunks} done, {time.perf_counter() - t0:.0f} s", flush=True)
    for a in agg.values():
        import struct
        a["worst_input"] = struct.unpack("<f", struct.pack("<I", a["worst_input_bits"]))[0]
        a["worst_input_bits"] = f"0x{a['worst_input_bits']:08x}"
    return {"function": name, "source": str(source.relative_to(RESULTS.parent.parent)), "inputs": total,
            "seconds": round(time.perf_counter() - t0, 1), **agg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--chunks", type=int, default=8)
    args = ap.parse_args()
    results_path = RESULTS / "ulp_exhaustive.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            source = RESULTS / f"{name}.c"
            if not source.exists():
                print(f"{name}: {source} missing, skipped")
                continue
            results[name] = check(name, source, args.chunks, Path(tmp))
            # merge into what is on disk now (another run may have written other functions meanwhile)
            on_disk = json.loads(results_path.read_text()) if results_path.exists() else {}
            on_disk[name] = results[name]
            results_path.write_text(json.dumps(on_disk, indent=1))
            (RESULTS / f"ulp_exhaustive_{name}.json").write_text(json.dumps(results[name], indent=1))
    print(f"\n{'function':<8} {'ours max ULP':>13} {'> 1 ULP':>8} {'> 0.5 ULP':>10} {'glibc max ULP':>14} "
          f"{'glibc > 0.5':>12} {'worst input (ours)':>20} {'s':>6}")
    for name in NAMES:
        if name in results:
            r = results[name]
            o, g = r["ours"], r["glibc"]
            print(f"{name:<8} {o['max_ulp']:>13.4f} {o['over_1_ulp']:>8} {o['not_correctly_rounded']:>10} "
                  f"{g['max_ulp']:>14.4f} {g['not_correctly_rounded']:>12} {o['worst_input']:>20.9g} {r['seconds']:>6}")
    print(f"written: {results_path}")


if __name__ == "__main__":
    main()
