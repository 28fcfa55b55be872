"""Run the from-scratch structure searches of several float32 functions at once, one process each, into one file.

    python bench/ulp_search_all.py --out DIR                     # the eight functions besides exp, 380 s each
    python bench/ulp_search_all.py --out DIR --only exp2 log --seconds 60 --workers 1
    python bench/ulp_search_all.py --split DIR/ulp_search_struct.json   # -> bench/results/ulp_search_NAME_struct.json

Each function runs `bench/ulp_search.py --space structure` (random structures, no textbook program seeded) as its own
process with --workers evaluation processes, all started together (BLAS threads pinned to 1, so a 64-core host runs
eight searches of two workers without oversubscription). The run writes one combined JSON,
DIR/ulp_search_struct.json (every search's result file, its stdout tail, exit status and wall time), and a one-line-
per-function summary, DIR/ulp_search_struct.txt: two files, whatever the number of functions. --split unpacks the
combined file into bench/results/ulp_search_NAME_struct.json, which `bench/ulp_publish.py` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT = ("exp2", "log", "log2", "sin", "cos", "tanh", "sigmoid", "erf")


def run_all(names: list[str], out: Path, seconds: float, workers: int, population: int, seed: int,
            grace: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ulp_search_all_"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = {}
    t0 = time.perf_counter()
    for name in names:
        cmd = [sys.executable, str(ROOT / "bench" / "ulp_search.py"), "--target", name, "--space", "structure",
               "--seconds", str(seconds), "--workers", str(workers), "--population", str(population),
               "--seed", str(seed), "--tag", "struct", "--out", str(tmp / f"ulp_search_{name}_struct.json")]
        log = open(tmp / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log,
                       time.perf_counter())
    combined = {"functions": names, "seconds_budget": seconds, "workers_per_search": workers,
                "population": population, "seed": seed, "cpu_count": os.cpu_count(),
                "load_average_start": os.getloadavg(), "runs": {}}
    for name, (proc, log, start) in procs.items():
        left = max(1.0, seconds + grace - (time.perf_counter() - t0))
        try:
            rc = proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        text = (tmp / f"{name}.log").read_text(errors="replace")
        path = tmp / f"ulp_search_{name}_struct.json"
        result = json.loads(path.read_text()) if path.exists() else None
        combined["runs"][name] = {"returncode": rc, "wall_seconds": round(time.perf_counter() - start, 1),
                                  "result": result, "stdout_tail": text[-4000:]}
    combined["load_average_end"] = os.getloadavg()
    combined["wall_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "ulp_search_struct.json").write_text(json.dumps(combined, indent=1))
    lines = [summary(name, run) for name, run in combined["runs"].items()]
    (out / "ulp_search_struct.txt").write_text("\n".join(lines) + f"\nwall {combined['wall_seconds']} s\n")
    print("\n".join(lines))
    return combined


def summary(name: str, run: dict) -> str:
    res = run["result"]
    if res is None:
        return f"{name:<8} no result (exit {run['returncode']}): {run['stdout_tail'][-300:]!r}"
    ok = [r for r in res["front"] if r["max_ulp_200k"] <= 1.0]
    best = min(ok, key=lambda r: (r["ops"], r["max_ulp_200k"])) if ok else None
    first = (res.get("first_feasible") or {}).get("seconds")
    head = f"{name:<8} {res['evaluations']:>6} evals {res['wall_seconds']:>6.0f} s"
    if best is None:
        return head + "  nothing under 1 ULP on 200k inputs"
    return head + f"  first <= 1 ULP at {first:.0f} s; fewest ops {best['ops']} at {best['max_ulp_200k']:.3f} ULP (200k)"


def split(path: Path) -> None:
    combined = json.loads(path.read_text())
    for name, run in combined["runs"].items():
        if run["result"] is None:
            print(f"{name}: no result to write")
            continue
        res = dict(run["result"], device_run={k: combined[k] for k in ("cpu_count", "workers_per_search",
                                                                         "load_average_start", "load_average_end")})
        dest = RESULTS / f"ulp_search_{name}_struct.json"
        dest.write_text(json.dumps(res, indent=1))
        print(f"{name}: {dest.relative_to(ROOT)}  {summary(name, run)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="folder for ulp_search_struct.json and .txt")
    ap.add_argument("--only", nargs="*", default=list(DEFAULT))
    ap.add_argument("--seconds", type=float, default=380.0, help="search budget per function (the front's 200k "
                    "re-measurement comes after it; a search also stops once its whole space is evaluated)")
    ap.add_argument("--workers", type=int, default=2, help="evaluation processes per search")
    ap.add_argument("--population", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grace", type=float, default=100.0, help="seconds after the budget before a search is killed "
                    "(its result is then lost): the last generation and the re-measurement run in it")
    ap.add_argument("--split", type=Path, help="unpack a combined result into bench/results and stop")
    args = ap.parse_args()
    if args.split:
        split(args.split)
        return
    if args.out is None:
        ap.error("--out DIR is required (or --split FILE)")
    run_all(args.only, args.out, args.seconds, args.workers, args.population, args.seed, args.grace)


if __name__ == "__main__":
    main()
