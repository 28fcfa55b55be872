"""Where a search runs, chosen from measured costs: in-process, on Ray one generation at a time, or as islands.

Ray pays only when the work it spreads outweighs what it costs: starting an embedded Ray (seconds on a small
machine) and one round trip through the driver per generation. Three placements:

* ``local``: everything in-process. Cheapest when the whole search is shorter than Ray's start-up.
* ``generational``: the driver runs the engine, every generation's evaluations go to Ray workers. Same front as
  ``local`` for a seed; pays when evaluations dominate a generation (tens of milliseconds and up).
* ``islands``: populations hosted on Ray actors that evolve `migration_interval` generations between two
  migrations, so selection and variation run where the evaluations run and the driver is idle in between. The only
  placement that speeds up cheap evaluations (microseconds to a millisecond), whose generations are mostly engine
  work that ``generational`` would keep serial in the driver. It is a different search than one population.

`measure` times the job itself in-process (a few evaluations, then generation 0 when that is cheap), and `choose`
predicts each placement's wall time from those figures, Ray's measured start-up and round-trip costs and the worker
count. Usage::

    costs, warm = measure(space, objective, settings, seed, timeout)
    placement = choose(costs, settings, workers=2, cores=os.cpu_count(), cluster=False, islands_in_spec=False)
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.engine import EngineState, GenerationReport, SearchSettings, initialise
from search.evaluation import Evaluator, LocalEvaluator, evaluate_chunk
from search.protocols import Evaluation, Objective, Space

# Ray's costs in units of `reference_seconds()` measured at the same moment, so that they follow the machine's
# speed and load as the job's own in-process timings do. `python bench/cheap_evals.py --part costs`, 2-core
# machine at load 18 (shared): start-up (import ray, embedded `ray.init` with 2 CPUs, the first task on each
# worker) 30.6 s = 3043 references, median of 3; one task per worker submitted and gathered 10.4 ms = 1.0
# reference. Start-up suffers more from load than one thread does, so the figure errs towards in-process.
RAY_START_REFERENCES = 3000.0
ROUND_TRIP_REFERENCES = 1.0
# Iterations of the fixed piece of Python work that `reference_seconds` times.
REFERENCE_ITERATIONS = 50_000
# Islands lose this share of their ideal speed to migration barriers, state shipping and uneven islands: 2 islands
# on 2 Ray workers vs the same islands in-process kept 78-88% (bench/cheap_evals.py --part eml and --part
# scaling16 --max-workers 2, 2-core machine under load).
ISLAND_LOSS = 0.2
# Ray must be predicted at least this much faster than in-process (fraction and seconds) before it is started:
# predictions are rough and a shared machine's start-up varies.
MARGIN_FRACTION, MARGIN_SECONDS = 0.2, 1.0
# Generational keeps the in-process front, so it is preferred to islands unless islands are this much faster.
GENERATIONAL_PREFERENCE = 1.25
# Time the probe spends evaluating in-process (seconds), and the most that generation 0 may cost in-process before
# it is left to the chosen backend instead.
PROBE_SECONDS, GENERATION0_BUDGET_SECONDS = 0.05, 1.0
# Generations between migrations when islands are derived for a spec that asked for one population.
DERIVED_MIGRATION_INTERVAL = 10


@dataclass(frozen=True)
class Costs:
    """What the job costs in-process. eval_seconds: one evaluation (seconds). generation_seconds: one generation,
    evaluations plus selection (seconds). evaluations_per_generation: new evaluations a generation asks for.
    reference_seconds: `reference_seconds()` at the same moment (Ray's costs are stored in its units)."""

    eval_seconds: float
    generation_seconds: float
    evaluations_per_generation: int
    reference_seconds: float

    @property
    def ray_start_seconds(self) -> float:
        return RAY_START_REFERENCES * self.reference_seconds

    @property
    def round_trip_seconds(self) -> float:
        return ROUND_TRIP_REFERENCES * self.reference_seconds


@dataclass(frozen=True)
class Placement:
    """mode: "local", "generational" or "islands". predicted: placement -> predicted search seconds. reason: the one
    line told to the user."""

    mode: str
    reason: str
    predicted: dict[str, float]


class PrimedEvaluator(Evaluator):
    """Hands back evaluations already made (by the probe) for their genomes and evaluates only the rest: the probe's
    work is not done twice, and results are the same as evaluating everything (evaluations are deterministic)."""

    def __init__(self, inner: Evaluator, space: Space, known: dict[Hashable, Evaluation]):
        self.inner, self.space, self.known = inner, space, dict(known)

    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        keys = [self.space.key(g) for g in genomes]
        todo = [g for g, k in zip(genomes, keys) if k not in self.known]
        fresh = iter(self.inner.evaluate(todo) if todo else [])
        return [self.known[k] if k in self.known else next(fresh) for k in keys]


def reference_seconds() -> float:
    """Seconds this machine takes right now for a fixed piece of Python work (median of 3): the unit in which Ray's
    start-up and round-trip costs are kept, so one figure holds on a quiet machine and on a loaded one."""
    times = []
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for i in range(REFERENCE_ITERATIONS):
            total += i * i
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def time_evaluations(objective: Objective, genomes: Sequence[Any], timeout: float | None,
                     budget: float = PROBE_SECONDS) -> tuple[float, list[Evaluation], float]:
    """Seconds per evaluation in-process: chunks of 1, 2, 4, ... genomes until `budget` seconds are spent; the last
    chunk (warm caches, imports done) gives the figure. Returns (seconds per evaluation, evaluations made, seconds)."""
    done: list[Evaluation] = []
    spent, size, per_eval = 0.0, 1, math.inf
    while len(done) < len(genomes) and spent < budget:
        chunk = genomes[len(done): len(done) + size]
        start = time.perf_counter()
        done += evaluate_chunk(objective, chunk, timeout)
        seconds = time.perf_counter() - start
        spent += seconds
        per_eval = seconds / len(chunk)
        size *= 2
    return per_eval, done, spent


def measure(space: Space, objective: Objective, settings: SearchSettings, seed: int, timeout: float | None,
            ) -> tuple[Costs, tuple[EngineState, GenerationReport] | None]:
    """Time the job in-process: a few of generation 0's evaluations, then all of generation 0 when that is predicted
    to take under GENERATION0_BUDGET_SECONDS. Returns the costs and, when generation 0 was run, its state and report
    (exactly what `evolve` would make first, so a run can continue from it)."""
    # The engine's generation 0 is space.initial(default_rng(seed), population): the probe evaluates the same
    # genomes, so PrimedEvaluator can reuse them (if that ever changes, they are merely not reused).
    reference = reference_seconds()
    genomes = space.initial(np.random.default_rng(seed), settings.population)
    per_eval, done, spent = time_evaluations(objective, genomes, timeout)
    per_generation = settings.n_offspring
    if per_eval * (len(genomes) - len(done)) > GENERATION0_BUDGET_SECONDS:
        return Costs(per_eval, per_eval * per_generation, per_generation, reference), None
    known = {space.key(g): e for g, e in zip(genomes, done)}
    start = time.perf_counter()
    state, report = initialise(space, objective, settings, seed,
                               PrimedEvaluator(LocalEvaluator(objective, timeout=timeout), space, known))
    generation = spent + time.perf_counter() - start
    state.elapsed += spent
    return Costs(per_eval, generation, per_generation, reference), (state, report)


def predict(costs: Costs, generations: int, workers: int, start_seconds: float) -> dict[str, float]:
    """Predicted search seconds of each placement for `generations` generations on `workers` usable cores, Ray's
    start-up counted as `start_seconds`."""
    evals = costs.evaluations_per_generation * costs.eval_seconds
    engine = max(0.0, costs.generation_seconds - evals)  # selection, variation, bookkeeping: serial in the driver
    local = generations * costs.generation_seconds
    generational = start_seconds + generations * (evals / workers + engine + costs.round_trip_seconds)
    islands = start_seconds + generations * costs.generation_seconds / workers * (1 + ISLAND_LOSS)
    return {"local": local, "generational": generational, "islands": islands}


def expected_generations(costs: Costs, settings: SearchSettings) -> int:
    """The most generations the stopping rules allow (a target may end the run sooner)."""
    generations = settings.generations
    if settings.max_evaluations:
        generations = min(generations, math.ceil(settings.max_evaluations / max(1, costs.evaluations_per_generation)))
    if settings.wall_time and costs.generation_seconds > 0:
        generations = min(generations, math.ceil(settings.wall_time / costs.generation_seconds))
    return max(1, generations)


def _describe(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.1f} s"


def choose(costs: Costs, settings: SearchSettings, workers: int, cores: int, cluster: bool,
           islands_in_spec: bool) -> Placement:
    """The placement predicted fastest. On a cluster (`cluster`) the search always uses Ray; embedded, Ray is started
    only when predicted faster than in-process by MARGIN_FRACTION and MARGIN_SECONDS."""
    usable = workers if cluster else max(1, min(workers, cores))
    generations = expected_generations(costs, settings)
    predicted = predict(costs, generations, usable, 0.0 if cluster else costs.ray_start_seconds)
    ray_modes = ("islands",) if islands_in_spec else ("generational", "islands")
    best_ray = min(ray_modes, key=lambda m: predicted[m])
    if best_ray == "islands" and "generational" in ray_modes and \
            predicted["generational"] <= GENERATIONAL_PREFERENCE * predicted["islands"]:
        best_ray = "generational"
    cost = f"evaluations take {_describe(costs.eval_seconds)}, a generation {_describe(costs.generation_seconds)}"
    local, remote = predicted["local"], predicted[best_ray]
    if not cluster and (usable < 2 or remote > local * (1 - MARGIN_FRACTION) or local - remote < MARGIN_SECONDS):
        return Placement("local", f"backend: in-process ({cost}; about {local:.1f} s in-process vs {remote:.1f} s "
                                  f"with Ray's start-up on {usable} worker(s)); backend.mode or --address overrides",
                         predicted)
    where = f"the cluster's {usable} CPUs" if cluster else f"{usable} Ray workers"
    what = "islands evolving on Ray actors" if best_ray == "islands" else "one population, evaluated on Ray"
    return Placement(best_ray, f"backend: {what} ({cost}; about {remote:.1f} s on {where} vs {local:.1f} s "
                               f"in-process); backend.mode overrides", predicted)
