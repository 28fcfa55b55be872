"""Do two versions of a published function give the same bits? The committed bench/results/NAME.c against the one
at an earlier git commit, on random float32 inputs with |x| >= --above (both signs) plus inf, NaN and the edges.

    python bench/ulp_same_bits.py --only sin cos --commit 3bdfd85 --above 120

Why: when a change touches only part of a function's domain (sin/cos: the vectorised |x| < 120 path), the
exhaustive check is re-run on that part (`ulp_exhaustive.py --below`) and this shows the rest is unchanged, so the
earlier exhaustive verdict still covers it. Writes bench/results/ulp_same_bits.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent


def array_fn(name: str, source: Path, workdir: Path, tag: str):
    so = workdir / f"{name}_{tag}.so"
    subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", "-o", str(so), str(source)], check=True)
    fn = getattr(ctypes.CDLL(str(so)), f"evoforge_{name}_array")
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], None

    def call(x):
        out = np.empty_like(x)
        fn(x.ctypes.data, out.ctypes.data, x.size)
        return out
    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=["sin", "cos"])
    ap.add_argument("--commit", required=True)
    ap.add_argument("--above", type=float, default=120.0)
    ap.add_argument("--samples-log2", type=int, default=24)
    args = ap.parse_args()
    lo = int(np.array([args.above], np.float32).view(np.uint32)[0])
    rng = np.random.default_rng(2026)
    bits = rng.integers(lo, 0x7F800000, 1 << args.samples_log2, dtype=np.uint32)
    edges = np.array([0x7F800000, 0x7FC00000, 0x7F800001, lo, lo + 1, 0x7F7FFFFF], np.uint32)
    bits = np.concatenate([bits, edges])
    x = np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)
    out: dict = {"commit": args.commit, "above": args.above, "inputs": int(x.size), "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            old_src = Path(tmp) / f"{name}_old.c"
            old_src.write_text(subprocess.run(["git", "show", f"{args.commit}:bench/results/{name}.c"], cwd=ROOT,
                                              capture_output=True, text=True, check=True).stdout)
            a = array_fn(name, old_src, Path(tmp), "old")(x)
            b = array_fn(name, RESULTS / f"{name}.c", Path(tmp), "new")(x)
            same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
            out["functions"][name] = {"differing": int((~same).sum())}
            print(f"{name}: {int((~same).sum())} of {x.size} inputs with |x| >= {args.above:g} differ from {args.commit}")
    (RESULTS / "ulp_same_bits.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
