"""Search vs the naive lowering for megakernel schedules on the cost model, and (with --gpu, on a CUDA machine) the
emitted persistent kernel vs PyTorch eager and CUDA-graphed PyTorch at batch-1 decode.

Peers on the cost model: the naive lowering (round-robin tiles, one grid barrier between ops) of the same config at
each tiling, and hand-written variants: counters (join or per-tile) in front of every op instead of barriers, with
the RMSNorms separate or all fused into their consumers. The search (search.engine.evolve; validator as a hard constraint, makespan as
the objective) runs with several seeds; the table gives the median ratio naive / found. The best found schedule is
re-validated and run on the CPU executor against the numpy reference forward pass of random weights.

    python bench/schedule_search.py [--seeds 3] [--generations 60] [--population 32] [--gpu]

With --seeds 0 no search runs (no DEAP needed) and the best hand-written counter lowering stands in for the found
schedule: enough for the GPU timing alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.makespan import Makespan  # noqa: E402
from objectives.schedule_validator import ScheduleValidator, validate  # noqa: E402
from search.protocols import Context  # noqa: E402
from spaces.megakernel.cost_model import Device, makespan  # noqa: E402
from spaces.megakernel.executor import Memory, execute  # noqa: E402
from spaces.megakernel.lower import ModelDims  # noqa: E402
from spaces.megakernel.model import new_cache, random_weights, reference_step  # noqa: E402
from spaces.megakernel.space import MegakernelSpace  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def cpu_check(space: MegakernelSpace, genome, tokens=(5, 11, 2)) -> float:
    """Max abs logit error of the schedule on the threaded CPU executor vs the reference forward pass."""
    s = space.schedule(genome)
    d = ModelDims.of(space.shape)
    w = random_weights(d, np.random.default_rng(0))
    mem, cache, err = Memory.allocate(s, w), new_cache(d), 0.0
    for pos, tok in enumerate(tokens):
        err = max(err, float(np.abs(execute(s, mem, d, tok, pos) - reference_step(w, d, tok, pos, cache)).max()))
    return err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--generations", type=int, default=60)
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--wall-time", type=float, default=240.0, help="seconds per seed")
    ap.add_argument("--gpu", action="store_true", help="also time the emitted kernel (needs CUDA)")
    args = ap.parse_args()
    ctx = Context(seed=0)
    space = MegakernelSpace(MegakernelSpace.Config(), ctx)
    device = Device()
    naive = {}
    for t, tiling in enumerate(space.tilings):
        naive[f"rows={tiling.rows},heads={tiling.heads}"] = makespan(space.schedule(space.naive(t)), device) * 1e6
    naive_best = min(naive.values())
    counters = {}  # hand-written alternatives: counters instead of barriers everywhere, norms fused or not
    for t, tiling in enumerate(space.tilings):
        for mode in ("join", "tile"):
            for fused in (False, True):
                g = space.naive(t, mode)
                g = replace(g, fuse=(fused,) * len(g.fuse))
                name = f"{mode}{'+fused' if fused else ''} rows={tiling.rows},heads={tiling.heads}"
                counters[name] = makespan(space.schedule(g), device) * 1e6
    counters_best = min(counters.values())
    hand = {}  # the genomes behind `counters`, for --seeds 0
    for t, tiling in enumerate(space.tilings):
        for mode in ("join", "tile"):
            for fused in (False, True):
                g = space.naive(t, mode)
                hand[f"{mode}{'+fused' if fused else ''} rows={tiling.rows},heads={tiling.heads}"] = replace(
                    g, fuse=(fused,) * len(g.fuse))
    runs = []
    if args.seeds > 0:  # the engine (DEAP) is only needed for the search itself
        from search.combined import CombinedObjective
        from search.engine import SearchSettings, evolve
    for seed in range(args.seeds):
        objective = CombinedObjective([ScheduleValidator(ScheduleValidator.Config(), space, ctx),
                                       Makespan(Makespan.Config(), space, ctx)])
        t0 = time.perf_counter()
        state = evolve(space, objective, SearchSettings(population=args.population, generations=args.generations,
                                                        wall_time=args.wall_time), seed=seed)
        best = state.front[0]
        runs.append({"seed": seed, "makespan_us": best.evaluation.values[0], "feasible": best.evaluation.feasible,
                     "describe": space.describe(best.genome), "evaluations": state.evaluations,
                     "seconds": time.perf_counter() - t0, "genome": best.genome})
        print(f"seed {seed}: {best.evaluation.values[0]:.2f} us ({space.describe(best.genome)}), "
              f"{state.evaluations} evaluations, {runs[-1]['seconds']:.0f} s", flush=True)
    if not runs:  # --seeds 0: time the best hand-written lowering instead of a found schedule
        best_hand = min(counters, key=counters.get)
        runs.append({"seed": None, "makespan_us": counters[best_hand], "feasible": True, "describe": best_hand,
                     "evaluations": 0, "seconds": 0.0, "genome": hand[best_hand]})
    found = statistics.median(r["makespan_us"] for r in runs)
    top = min(runs, key=lambda r: r["makespan_us"])
    verdict = validate(space.schedule(top["genome"]))
    err = cpu_check(space, top["genome"])
    result = {
        "device_model": device.__dict__, "config": space.config.__dict__,
        "naive_us": naive, "naive_best_us": naive_best, "naive_default_us": naive["rows=32,heads=1"],
        "found_median_us": found, "found_best_us": top["makespan_us"],
        "ratio_vs_naive_best_tiling": naive_best / found,
        "ratio_vs_naive_default_tiling": naive["rows=32,heads=1"] / found,
        "all_counter_lowerings_us": counters, "all_counter_best_us": counters_best,
        "ratio_vs_best_all_counter_lowering": counters_best / found,
        "best_validated": verdict.accepted, "best_cpu_max_abs_error": err,
        "runs": [{k: v for k, v in r.items() if k != "genome"} for r in runs],
    }
    print(f"\n{'schedule':<40}{'makespan us':>12}{'naive/this':>12}")
    for k, v in naive.items():
        print(f"{'naive barrier ' + k:<40}{v:>12.2f}{naive_best / v:>12.3f}")
    best_counter = min(counters, key=counters.get)
    print(f"{'all-counter ' + best_counter:<40}{counters_best:>12.2f}{naive_best / counters_best:>12.3f}")
    label = f"search (median of {len(runs)} seeds)" if args.seeds else "hand-written (no search, --seeds 0)"
    print(f"{label:<40}{found:>12.2f}{naive_best / found:>12.3f}")
    print(f"best found re-validated: {verdict.accepted}; CPU executor max abs error vs reference: {err:.2e}")
    if args.gpu:
        from spaces.megakernel.gpu_bench import time_decode

        result["gpu"] = time_decode(space, top["genome"], space.naive(space.tilings.index(next(
            t for t in space.tilings if t.rows == 32 and t.heads == 1))))
        for k, v in result["gpu"].items():
            print(f"gpu {k}: {v}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # a run without search must not overwrite the search's results
    out = RESULTS / f"schedule_search{'_gpu' if args.gpu else ''}{'' if args.seeds else '_hand'}.json"
    out.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
