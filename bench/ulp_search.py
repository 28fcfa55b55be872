"""Evolve a float32 approximation under 1 ULP and record how long it took; write the best program's C.

    python bench/ulp_search.py --target exp                  # from scratch: random structures (float32_structure)
    python bench/ulp_search.py --target exp --space program  # from scratch: random instruction lists (float32)
    python bench/ulp_search.py --target log --space program --seeded   # classic forms in the initial population

--space structure (the default) evolves the approximation's structure (core form, in-program reduction, degrees,
evaluation scheme, pinned terms; `spaces/float32/structure.py`) and fits the coefficients per genome by linear
minimax (`structure_fit.py`); --space program evolves instruction lists with the nonlinear fitter (`space.py`).

Objectives: max ULP (constraint <= 1) and op count; the run stops at --minutes, or earlier with --stop-at-target
(the first feasible program). The front's programs are then re-measured on 200k inputs; the run (settings, time
to the first feasible program, per-generation log, front; for a structure search also runners-up off the front,
marked on_front: false) goes to bench/results/ulp_search_TARGET_TAG.json and the
best feasible one's C to bench/results/TARGET_TAG_search.c. `bench/ulp_publish.py` then compares the front with the
classic forms (the peer) and commits the cheapest under 1 ULP as bench/results/NAME.c.
Evaluations run in a process pool (--workers, default 2 = this machine's cores).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.op_count import OpCountObjective  # noqa: E402
from objectives.ulp import UlpObjective  # noqa: E402
from search.combined import CombinedObjective  # noqa: E402
from search.engine import SearchSettings, evolve  # noqa: E402
from search.evaluation import Evaluator, evaluate_chunk  # noqa: E402
from search.protocols import Context  # noqa: E402
from spaces.float32.program import depth, op_count  # noqa: E402
from spaces.float32.space import Float32Space  # noqa: E402
from spaces.float32.structure import space_size  # noqa: E402
from spaces.float32.structure_space import Float32StructureSpace  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
_OBJECTIVE = None


def _init(objective):
    global _OBJECTIVE
    _OBJECTIVE = objective


def _work(genomes):
    return evaluate_chunk(_OBJECTIVE, genomes, None)


class PoolEvaluator(Evaluator):
    """Chunks of genomes to a local process pool; results in input order (the fitter's cache is per process)."""

    def __init__(self, objective, workers: int):
        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, initializer=_init, initargs=(objective,))

    def evaluate(self, genomes):
        chunks = [list(genomes[i::self.workers * 4]) for i in range(self.workers * 4)]
        results = list(self.pool.map(_work, chunks))
        out = [None] * len(genomes)
        for i, res in enumerate(results):
            for j, ev in enumerate(res):
                out[i + j * self.workers * 4] = ev
        return out

    def close(self):
        self.pool.shutdown()


def build(target: str, seeded: bool, max_ops: int, seed: int, kind: str = "program"):
    if kind == "structure":
        space = Float32StructureSpace(Float32StructureSpace.Config(target=target), Context(seed=seed))
    else:
        space = Float32Space(Float32Space.Config(target=target, max_ops=max_ops, seed_polynomials=seeded),
                             Context(seed=seed))
    ulp = UlpObjective(UlpObjective.Config(samples=6000), space, Context(seed=seed))
    ops = OpCountObjective(OpCountObjective.Config(), space, Context(seed=seed))
    return space, CombinedObjective([ulp, ops])


def runners_up(space, state, taken: set[str], per_ops: int = 3, within: int = 3) -> list:
    """Feasible evaluated genomes off the front: the `per_ops` lowest-error ones of each op count from the cheapest
    feasible count up to `within` more, separately with and without a division (a division costs several fmas,
    `ulp_publish.py --div-cost`), plus, up to 2 `within` more, the lowest-error one of each other dependency-chain
    length (a shorter chain can run faster with more operations: `ulp_publish.py --time-within`). (genome, evaluation, False) triples;
    structure keys are genome reprs."""
    feasible = [(ast.literal_eval(k), ev) for k, ev in state.cache.items()
                if ev.failed is None and ev.feasible and k not in taken]
    if not feasible:
        return []
    cheapest = min(ev.values[1] for _, ev in feasible)

    def divides(genome) -> bool:
        return any(op == "div" for op, _ in space.canonical(genome))

    def chain(genome) -> int:
        return depth(space.canonical(genome), space.target.n_inputs)

    out = []
    for ops in range(int(cheapest), int(cheapest) + 2 * within + 1):
        for div in (False, True):
            same = sorted([(g, ev) for g, ev in feasible if ev.values[1] == ops and divides(g) == div],
                          key=lambda p: p[1].values[0])
            picked = same[:per_ops] if ops <= cheapest + within else []
            for g, ev in same:                  # and the lowest-error one of each dependency-chain length
                if all(chain(g) != chain(h) for h, _ in picked):
                    picked.append((g, ev))
            out += [(g, ev, False) for g, ev in picked]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="exp")
    ap.add_argument("--seeded", action="store_true")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--max-ops", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop-at-target", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--space", choices=("structure", "program"), default="structure")
    ap.add_argument("--seconds", type=float, help="budget in seconds (overrides --minutes)")
    ap.add_argument("--out", type=Path, help="result JSON (default bench/results/ulp_search_TARGET_TAG.json; "
                    "with --out no C file is written)")
    args = ap.parse_args()
    if args.seeded and args.space == "structure":
        ap.error("--seeded applies to --space program only (the structure space never seeds textbook forms)")
    budget = args.seconds if args.seconds is not None else args.minutes * 60

    space, objective = build(args.target, args.seeded, args.max_ops, args.seed, args.space)
    structure = args.space == "structure"
    size = space_size(args.target) if structure else None
    settings = SearchSettings(population=args.population, generations=1000000, wall_time=budget,
                              max_evaluations=size,
                              targets={"max_ulp": 1.0} if args.stop_at_target else {}, hall_of_fame=20,
                              novelty_tries=5 if structure else 0, restart_after=12 if structure else 0)
    first_feasible: dict = {}
    t0 = time.perf_counter()
    log = []

    def on_generation(state, report):
        s = report.stats
        feas = [ind for ind in state.front if ind.evaluation.feasible]
        if feas and not first_feasible:
            best = min(feas, key=lambda i: i.evaluation.values)
            first_feasible.update(seconds=time.perf_counter() - t0, generation=state.generation,
                                  evaluations=state.evaluations, max_ulp=best.evaluation.values[0],
                                  ops=best.evaluation.values[1], program=space.describe(best.genome))
        bestv = min((i.evaluation.total_violation, i.evaluation.values) for i in state.population)
        line = {"gen": state.generation, "evals": state.evaluations, "s": round(time.perf_counter() - t0, 1),
                "best_violation": bestv[0], "best_values": list(bestv[1]), "feasible": s.get("feasible")}
        # one line per generation that evaluated something new (a converged structure search makes many
        # generations of cache hits), and every 100th
        if not log or state.evaluations != log[-1]["evals"] or state.generation % 100 == 0:
            log.append(line)
            print(json.dumps(line), flush=True)

    load_start = os.getloadavg()
    with PoolEvaluator(objective, args.workers) as ev:
        state = evolve(space, objective, settings, seed=args.seed, evaluator=ev, on_generation=on_generation)
    worker_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_end = os.getloadavg()

    # re-measure the front on a larger sample; choose the cheapest feasible program. A structure search also
    # re-measures runners-up (feasible programs off the front, up to 3 per op count, within 3 ops of the cheapest):
    # the front's cheapest member is often within a few hundredths of 1 ULP, and a larger sample can reject it
    check = UlpObjective(UlpObjective.Config(samples=200000), space, Context(seed=args.seed + 1))
    members = [(ind.genome, ind.evaluation, True) for ind in state.front]
    if structure:
        members += runners_up(space, state, {repr(g) for g, _, _ in members})
    rows = []
    for genome, evaluation, on_front in members:
        err = float(np.max(check.errors(genome)))
        rows.append({"ops": op_count(space.canonical(genome), space.target.n_outputs, space.target.n_inputs),
                     "depth": depth(space.canonical(genome), space.target.n_inputs),
                     "max_ulp_search": evaluation.values[0], "max_ulp_200k": err, "on_front": on_front,
                     "program": space.describe(genome), "genome": repr(space.canonical(genome)),
                     "constants": [float(c).hex() for c in space.fit(genome).constants],
                     **({"structure": repr(genome)} if structure else {})})
    ok = sorted([r for r in rows if r["max_ulp_200k"] <= 1.0], key=lambda r: (r["ops"], r["max_ulp_200k"]))
    name = args.target + (args.tag and f"_{args.tag}")
    out = {"target": args.target, "space": "float32_structure" if structure else "float32", "space_size": size,
           "seeded": args.seeded,
           "seconds_budget": budget, "workers": args.workers, "cpu_count": os.cpu_count(),
           "population": args.population, "stop_reason": state.stop_reason, "evaluations": state.evaluations,
           "wall_seconds": round(time.perf_counter() - t0, 1), "first_feasible": first_feasible or None,
           "worker_cpu_seconds": round(worker_cpu.ru_utime + worker_cpu.ru_stime, 1),
           "load_average_start_end": [load_start, load_end],
           "front": rows, "log": log}
    path = args.out or RESULTS / f"ulp_search_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    if ok and args.out is None:
        best = next(g for g, _, _ in members if repr(space.canonical(g)) == ok[0]["genome"])
        (RESULTS / f"{name}_search.c").write_text(space.emit(best, "c"))
    print(f"{'ops':>4} {'max ULP (search)':>17} {'max ULP (200k)':>15}  program")
    for r in sorted(rows, key=lambda r: r["ops"]):
        print(f"{r['ops']:>4} {r['max_ulp_search']:>17.4f} {r['max_ulp_200k']:>15.4f}  {r['program'][:90]}")
    print("first feasible:", json.dumps(first_feasible))


if __name__ == "__main__":
    main()
