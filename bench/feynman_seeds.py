"""How far the closed-form seeds of the `sr` space go alone, with no evolution: for each of the 100 AI Feynman
equations (noiseless, same data as bench/feynman.py), the best seed (power law or monomial sum of y, 1/y, y^2,
1/y^2; spaces/monomials.py) is snapped and checked exactly like a system's formula in bench/feynman.py. Prints a
table, writes bench/results/feynman_seeds.json. Compare: bench/results/feynman100*.json (the searches).

    python bench/feynman_seeds.py [--only I.12.1 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feynman import EQUATIONS, equation, problem  # noqa: E402

from search.protocols import Context, Dataset  # noqa: E402
from spaces.eml.recovery import check_recovery  # noqa: E402
from spaces.sr import SrConfig, SrSpace  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "feynman_seeds.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", default=None)
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for name in args.only or [e[0] for e in EQUATIONS]:
        target, symbols, _, _ = equation(name)
        Xtr, ytr, _, _ = problem(name, 0.0, args.train, 10, args.seed)
        data = Dataset(X=Xtr, y=ytr, variables=tuple(s.name for s in symbols), target="y")
        space = SrSpace(SrConfig(), Context(seed=args.seed, dataset=data))
        start = time.perf_counter()
        best = space.closed_form_seeds()[0]
        seconds = time.perf_counter() - start
        relative = float(np.sqrt(np.mean((space.predict(best, Xtr) - ytr) ** 2) / np.mean(ytr ** 2)))
        expr = space.exact_sympy(best).xreplace({sp.Symbol(s.name, real=True): s for s in symbols})
        rec = check_recovery(expr, target, symbols, Xtr, ops_limit=60)
        rows.append({"equation": name, "recovered": rec.recovered, "method": rec.method, "seconds": round(seconds, 2),
                     "relative_rmse": relative, "formula": str(expr)[:300], "truth": str(target)})
        print(f"{name:>10} {'EXACT' if rec.recovered else '-':>5} {seconds:6.1f}s rel.rmse {relative:.1e}  "
              f"{str(expr)[:80]}", flush=True)
    exact = sum(r["recovered"] for r in rows)
    print(f"\nclosed-form seeds alone: {exact}/{len(rows)} exact (noiseless), median "
          f"{float(np.median([r['seconds'] for r in rows])):.1f} s per equation")
    RESULTS.write_text(json.dumps({"equations": len(rows), "exact": exact, "train": args.train, "seed": args.seed,
                                   "runs": rows}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
