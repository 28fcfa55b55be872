"""Engine overhead against plain DEAP, and the Ray backend's scaling from 1 to 2 workers.

1. Per-evaluation wall time of `search.engine.evolve` (in-process) vs DEAP's own `algorithms.eaSimple` on the
   same trivial problem (OneMax, 100 bits), same population and generations; the evaluation itself costs almost
   nothing, so the ratio is the engine's bookkeeping (keys, cache, selection, front, statistics) against DEAP's.
   Target: within 1.5x.
2. Evaluations per second of the Ray backend with 1 and 2 workers on a 10 ms (CPU-spinning) evaluation.
   Target: 2 workers >= 1.7x one worker.

Medians of repeated runs. Writes bench/results/engine_overhead.json.
    python bench/engine_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deap import algorithms, base, creator, tools  # noqa: E402

from objectives.bit_problems import OneMax  # noqa: E402
from search.engine import SearchSettings, evolve  # noqa: E402
from search.evaluation import LocalEvaluator  # noqa: E402
from search.protocols import Context  # noqa: E402
from spaces.bitstring import BitStringSpace  # noqa: E402

LENGTH, POPULATION, GENERATIONS = 100, 100, 150


def deap_seconds_per_eval(seed: int) -> tuple[float, int]:
    """DEAP's textbook OneMax: eaSimple with two-point crossover, bit-flip mutation, tournament of 2."""
    if not hasattr(creator, "FitnessMaxBench"):
        creator.create("FitnessMaxBench", base.Fitness, weights=(1.0,))
        creator.create("IndividualBench", list, fitness=creator.FitnessMaxBench)
    toolbox = base.Toolbox()
    toolbox.register("bit", random.randint, 0, 1)
    toolbox.register("individual", tools.initRepeat, creator.IndividualBench, toolbox.bit, LENGTH)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("evaluate", lambda ind: (float(sum(ind)),))
    toolbox.register("mate", tools.cxTwoPoint)
    toolbox.register("mutate", tools.mutFlipBit, indpb=1.0 / LENGTH)
    toolbox.register("select", tools.selTournament, tournsize=2)
    count = [0]
    evaluate = toolbox.evaluate

    def counted(ind):
        count[0] += 1
        return evaluate(ind)

    toolbox.register("evaluate", counted)
    random.seed(seed)
    population = toolbox.population(n=POPULATION)
    hall = tools.HallOfFame(10)
    start = time.perf_counter()
    algorithms.eaSimple(population, toolbox, cxpb=0.5, mutpb=0.5, ngen=GENERATIONS, halloffame=hall, verbose=False)
    seconds = time.perf_counter() - start
    return seconds / count[0], count[0]


def evoforge_seconds_per_eval(seed: int) -> tuple[float, int]:
    space = BitStringSpace(BitStringSpace.Config(length=LENGTH), Context(seed=seed))
    objective = OneMax(OneMax.Config(), space, Context(seed=seed))
    settings = SearchSettings(population=POPULATION, generations=GENERATIONS, tournament=2)
    start = time.perf_counter()
    state = evolve(space, objective, settings, seed=seed, evaluator=LocalEvaluator(objective))
    seconds = time.perf_counter() - start
    return seconds / state.evaluations, state.evaluations


def ray_evals_per_second(workers: int, work_seconds: float, population: int, generations: int) -> float:
    import ray

    from search.ray_backend import RayEvaluator

    space = BitStringSpace(BitStringSpace.Config(length=256), Context())
    objective = OneMax(OneMax.Config(work_seconds=work_seconds), space, Context())
    settings = SearchSettings(population=population, generations=generations)
    evaluator = RayEvaluator(objective, workers=workers)
    try:
        evaluator.evaluate([space.random(__import__("numpy").random.default_rng(0)) for _ in range(2 * workers)])  # warm workers
        start = time.perf_counter()
        state = evolve(space, objective, settings, seed=0, evaluator=evaluator)
        return state.evaluations / (time.perf_counter() - start)
    finally:
        evaluator.close()
        assert not ray.is_initialized()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ray-repeats", type=int, default=3)
    args = parser.parse_args()

    ours, deaps = [], []
    for r in range(args.repeats):
        deaps.append(deap_seconds_per_eval(r)[0])
        ours.append(evoforge_seconds_per_eval(r)[0])
    ratio = statistics.median(ours) / statistics.median(deaps)

    rates = {1: [], 2: []}
    for _ in range(args.ray_repeats):
        for workers in (1, 2):
            rates[workers].append(ray_evals_per_second(workers, 0.010, population=64, generations=8))
    speedup = statistics.median(rates[2]) / statistics.median(rates[1])

    result = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "problem": f"OneMax {LENGTH} bits, population {POPULATION}, {GENERATIONS} generations",
        "repeats": args.repeats,
        "evoforge_us_per_eval": round(statistics.median(ours) * 1e6, 2),
        "deap_easimple_us_per_eval": round(statistics.median(deaps) * 1e6, 2),
        "overhead_ratio_vs_deap": round(ratio, 3),
        "ray_eval_cost_ms": 10,
        "ray_evals_per_s_1_worker": round(statistics.median(rates[1]), 1),
        "ray_evals_per_s_2_workers": round(statistics.median(rates[2]), 1),
        "ray_speedup_2_vs_1": round(speedup, 3),
        "targets": {"overhead_ratio_vs_deap": "<= 1.5", "ray_speedup_2_vs_1": ">= 1.7"},
    }
    out = ROOT / "bench" / "results" / "engine_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measure | evoforge | peer | ratio |\n|---|---|---|---|")
    print(f"| us per evaluation, in-process | {result['evoforge_us_per_eval']} | DEAP eaSimple "
          f"{result['deap_easimple_us_per_eval']} | {result['overhead_ratio_vs_deap']}x |")
    print(f"| evals/s on Ray, 10 ms eval | 2 workers {result['ray_evals_per_s_2_workers']} | 1 worker "
          f"{result['ray_evals_per_s_1_worker']} | {result['ray_speedup_2_vs_1']}x |")
    print(f"written {out}")


if __name__ == "__main__":
    main()
