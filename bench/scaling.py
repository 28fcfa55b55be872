"""How the Ray backend scales, what batching buys, and islands vs one panmictic population.

1. `--part workers`: a fixed search (OneMax, 40 bits, population 256, to the optimum) whose every evaluation burns
   50 ms of CPU, on an embedded Ray with 1, 2, 4, 8 and 16 workers: evaluations/s, time to target and parallel
   efficiency = rate(n) / (n * rate(1)). The trajectory is identical for every worker count (a seed fixes the
   run), so time-to-target compares the same work. Target: >= 80% efficiency at 16 workers (16-core machine).
2. `--part overhead`: 1 ms evaluations on all cores; Ray's overhead = 1 - ideal / measured wall time, with genomes
   batched into chunks (ours) vs one task per evaluation (the peer: plain per-task Ray). Target: < 20%.
3. `--part islands`: random depth-4 EML targets (as in bench/eml_recovery.py); 4 islands of 50 vs one population
   of 200, in-process, same evaluation budget: median time and evaluations to exact fit (RMSE <= 1e-10).

Writes bench/results/scaling.json (parts merge into it).
    python bench/scaling.py --part workers overhead islands [--max-workers 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from objectives.bit_problems import OneMax  # noqa: E402
from search.engine import SearchSettings, evolve  # noqa: E402
from search.protocols import Context  # noqa: E402
from spaces.bitstring import BitStringSpace  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scaling.json"


def timed_search(workers: int, work_seconds: float, chunks_per_worker: int, length: int, population: int,
                 generations: int, target: float | None) -> dict:
    import ray

    from search.ray_backend import RayEvaluator

    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    objective = OneMax(OneMax.Config(work_seconds=work_seconds), space, Context())
    settings = SearchSettings(population=population, generations=generations,
                              targets={"ones": target} if target else {})
    evaluator = RayEvaluator(objective, workers=workers, chunks_per_worker=chunks_per_worker,
                             min_task_seconds=0.05 if chunks_per_worker < 10**6 else 0.0)
    try:
        rng = np.random.default_rng(123)
        evaluator.evaluate([space.random(rng) for _ in range(4 * workers)])  # start every worker process first
        start = time.perf_counter()
        state = evolve(space, objective, settings, seed=0, evaluator=evaluator)
        seconds = time.perf_counter() - start
    finally:
        evaluator.close()
    assert not ray.is_initialized()
    return {"workers": workers, "seconds": round(seconds, 3), "evaluations": state.evaluations,
            "generations": state.generation, "evals_per_s": round(state.evaluations / seconds, 2),
            "stop_reason": state.stop_reason}


def part_workers(max_workers: int) -> dict:
    counts = [n for n in (1, 2, 4, 8, 16) if n <= max_workers]
    rows = {}
    for n in counts:
        rows[n] = timed_search(n, 0.050, 4, length=40, population=256, generations=200, target=40)
        print(f"workers {n:>2}: {rows[n]['evals_per_s']:8.2f} evals/s, {rows[n]['seconds']:7.2f} s to target "
              f"({rows[n]['generations']} generations)", flush=True)
    base = rows[1]["evals_per_s"]
    for n, row in rows.items():
        row["efficiency"] = round(row["evals_per_s"] / (n * base), 3)
        row["time_to_target_s"] = row["seconds"]
    return {str(n): row for n, row in rows.items()}


def engine_only_seconds(length: int, population: int, generations: int) -> float:
    """The engine's own time for the same search with free evaluations, in-process: not Ray's overhead."""
    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    objective = OneMax(OneMax.Config(), space, Context())
    start = time.perf_counter()
    evolve(space, objective, SearchSettings(population=population, generations=generations), seed=0)
    return time.perf_counter() - start


def part_overhead(workers: int) -> dict:
    engine = engine_only_seconds(64, 256, 6)
    out = {"engine_only_seconds": round(engine, 3)}
    for label, chunks in (("batched", 4), ("one_task_per_eval", 10**6)):
        row = timed_search(workers, 0.001, chunks, length=64, population=256, generations=6, target=None)
        ideal = row["evaluations"] * 0.001 / workers
        row["ideal_seconds"] = round(ideal, 3)
        row["overhead_fraction"] = round(1 - ideal / row["seconds"], 3)
        row["ray_overhead_fraction"] = round(max(0.0, row["seconds"] - ideal - engine) / row["seconds"], 3)
        out[label] = row
        print(f"{label:>18}: {row['seconds']:.2f} s for {row['evaluations']} x 1 ms on {workers} workers, "
              f"all overhead {100 * row['overhead_fraction']:.1f}% (engine alone {engine:.2f} s), Ray's share "
              f"{100 * row['ray_overhead_fraction']:.1f}%", flush=True)
    return out


def part_islands(targets: int, budget: float) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from eml_recovery import make_target

    from objectives.fit import FitConfig, FitObjective
    from objectives.size import SizeConfig, SizeObjective
    from search.combined import CombinedObjective
    from search.islands import IslandSettings, evolve_islands
    from search.protocols import Dataset
    from spaces.eml.space import EmlConfig, EmlSpace

    rng = np.random.default_rng(2028)
    X = rng.uniform(0.5, 3.0, (64, 1))
    seen: set = set()
    rows = {"islands_4x50": [], "panmictic_200": []}
    for i in range(targets):
        _, y = make_target(4, rng, X, seen)
        ctx = Context(seed=i, dataset=Dataset(X=X, y=y, variables=("x",), target="y"))
        space = EmlSpace(EmlConfig(max_depth=4), ctx)
        objective = CombinedObjective([FitObjective(FitConfig(), space, ctx), SizeObjective(SizeConfig(), space, ctx)])
        for label in rows:
            start = time.perf_counter()
            if label == "panmictic_200":
                settings = SearchSettings(population=200, generations=10**6, wall_time=budget, targets={"rmse": 1e-10})
                state = evolve(space, objective, settings, seed=i)
            else:
                settings = SearchSettings(population=50, generations=10**6, wall_time=budget, targets={"rmse": 1e-10})
                state = evolve_islands(space, objective, settings, IslandSettings(islands=4, migration_interval=5),
                                       seed=i)
            seconds = time.perf_counter() - start
            reached = state.stop_reason == "target reached"
            rows[label].append({"target": i, "reached": reached, "seconds": round(seconds, 3),
                                "evaluations": state.evaluations})
        print(f"target {i}: " + ", ".join(f"{k} {v[-1]['seconds']} s ({'ok' if v[-1]['reached'] else 'not reached'})"
                                          for k, v in rows.items()), flush=True)
    summary = {}
    for label, runs in rows.items():
        ok = [r for r in runs if r["reached"]]
        summary[label] = {"targets": len(runs), "reached": len(ok),
                          "median_seconds": statistics.median([r["seconds"] for r in ok]) if ok else None,
                          "median_evaluations": statistics.median([r["evaluations"] for r in ok]) if ok else None,
                          "runs": runs}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["workers", "overhead", "islands"])
    parser.add_argument("--max-workers", type=int, default=os.cpu_count())
    parser.add_argument("--island-targets", type=int, default=10)
    parser.add_argument("--island-budget", type=float, default=60.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    machine = f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    if "workers" in args.part:
        results["workers"] = part_workers(args.max_workers)
        results["workers_machine"] = machine
    if "overhead" in args.part:
        workers = min(args.max_workers, os.cpu_count() or 1)
        results[f"overhead_1ms_{workers}_workers"] = part_overhead(workers)
        results[f"overhead_1ms_{workers}_workers_machine"] = machine
    if "islands" in args.part:
        results["islands_vs_panmictic"] = part_islands(args.island_targets, args.island_budget)
        results["islands_machine"] = machine
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.results}")


if __name__ == "__main__":
    main()
