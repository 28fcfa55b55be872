"""The genetic-search loop: (mu + lambda) with tournament parents, space-supplied variation and elitist survival.

All state lives in one `EngineState`: a step takes it in and gives it back, so a checkpoint is that state pickled
and resuming is unpickling it. The random stream is a `numpy.random.Generator` whose bit-generator state is part of
`EngineState`, and evaluations come back in input order from every backend, so a seed fixes the run: same front
in-process or on Ray with any number of workers, interrupted and resumed or not.

Usage::

    from search.engine import SearchSettings, evolve
    state = evolve(space, objective, SearchSettings(population=64, generations=30), seed=0)
    best = state.front[0]            # Individual(genome, evaluation, key)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from search.evaluation import Evaluator, LocalEvaluator
from search.guard import GenerationFaults, GuardedSpace, SpaceCallFailed, call_space
from search.protocols import Evaluation, Objective, Space
from search.selection import Individual, rank_order, select_survivors, tournament, update_front


@dataclass(frozen=True)
class SearchSettings:
    """How the search runs. Stopping rules combine: the first one met ends the run (None or 0 = not used).

    population: survivors kept each generation (mu). offspring: children made each generation (lambda; 0 = same
    as population). generations: generations after the initial one. max_evaluations: real (uncached) evaluations.
    wall_time: seconds, counted across resumes. targets: objective name -> value that counts as reached (<= for
    minimised objectives, >= for maximised) by one feasible individual. crossover_prob + mutation_prob <= 1; the
    rest of the children are copies. hall_of_fame: best kept for one objective (several: the whole Pareto front).
    space_time_limit: seconds one space call (key, describe, mutate, crossover, random) may run before it counts
    as failed (search/guard.py); 0 = no limit. Spaces bound their work by size first; this is the backstop.
    novelty_tries: when a varied child is a program already evaluated (or already made this generation), mutate it
    again, up to this many times, so a converged population keeps exploring instead of re-making its own members
    (0 = off: duplicates are free cache hits, but on the optree preset three children in four were duplicates).
    restart_after: when the best value of the first objective has not improved by more than `restart_gain`
    (relative) for this many generations, the population is replaced by a fresh initial one; the front (the archive)
    is kept, so a restart loses nothing and turns one stuck run into several independent tries (0 = off).
    polish: after the last generation, up to this many evaluations of single-coordinate changes from the best
    genome (search/local_search.py), moving when one beats it by more than `polish_gain` (relative); for spaces
    that define `neighbourhood` and runs with one objective (0 = off).
    """

    population: int = 64
    offspring: int = 0
    generations: int = 50
    max_evaluations: int | None = None
    wall_time: float | None = None
    targets: dict[str, float] = field(default_factory=dict)
    tournament: int = 2
    crossover_prob: float = 0.5
    mutation_prob: float = 0.5
    hall_of_fame: int = 10
    space_time_limit: float = 10.0
    novelty_tries: int = 0
    restart_after: int = 0
    restart_gain: float = 0.01
    polish: int = 0
    polish_gain: float = 0.004

    @property
    def n_offspring(self) -> int:
        return self.offspring or self.population


@dataclass
class EngineState:
    """Everything needed to continue a run exactly: checkpoint = this object; resume = load it and keep stepping.

    cache maps a genome's canonical key to its `Evaluation`, so no program is evaluated twice. elapsed is wall
    seconds spent so far (over all sessions of the run).
    """

    generation: int
    population: list[Individual]
    front: list[Individual]
    rng_state: dict[str, Any]
    cache: dict[Hashable, Evaluation]
    logbook: list[dict[str, Any]]
    evaluations: int = 0
    elapsed: float = 0.0
    stop_reason: str | None = None


@dataclass(frozen=True)
class GenerationReport:
    """What one step did: its statistics line and the genomes whose evaluation failed (with reasons)."""

    stats: dict[str, Any]
    failures: list[dict[str, Any]]


#: seconds `describe` may take for one line of failures.jsonl (the front gets the full space_time_limit)
LOG_DESCRIBE_SECONDS = 1.0


def _log_describe(space: GuardedSpace, genome: Any) -> str:
    return space.describe(genome, min(LOG_DESCRIBE_SECONDS, space.seconds or LOG_DESCRIBE_SECONDS))


def _evaluate(genomes: Sequence[Any], space: GuardedSpace, evaluator: Evaluator, cache: dict[Hashable, Evaluation],
              objective: Objective, faults: GenerationFaults) -> tuple[list[Individual], int, list[dict[str, Any]]]:
    """Individuals for `genomes`, evaluating each distinct uncached key once, in first-seen order. A genome whose
    key cannot be computed is a failed individual (not cached); every failure is logged with its reason."""
    keyed = [space.key(g, faults) for g in genomes]
    todo: dict[Hashable, Any] = {}
    for (k, reason), g in zip(keyed, genomes):
        if reason is None and k not in cache and k not in todo:
            todo[k] = g
    results = evaluator.evaluate(list(todo.values())) if todo else []
    failures = [{"key": None, "genome": _log_describe(space, g) if g is not None else None, "reason": reason}
                for reason, g in faults.failures]
    for (k, g), ev in zip(todo.items(), results):
        cache[k] = ev
        if ev.failed is not None:
            failures.append({"key": str(k), "genome": _log_describe(space, g), "reason": ev.failed})
    n_values = len(objective.names)
    individuals = [Individual(g, cache[k] if reason is None else
                              Evaluation.failure(reason, n_values, objective.directions), k)
                   for g, (k, reason) in zip(genomes, keyed)]
    return individuals, len(todo), failures


def _statistics(state: EngineState, objective: Objective, new_evals: int, seconds: float,
                failures: int, faults: GenerationFaults) -> dict[str, Any]:
    feasible = [ind.evaluation.values for ind in state.population if ind.evaluation.feasible]
    stats: dict[str, Any] = {
        "generation": state.generation,
        "evaluations": state.evaluations,
        "new_evaluations": new_evals,
        "failures": failures,
        "space_failures": len(faults.failures),
        "variation_retries": faults.variation_retries,
        "feasible": len(feasible),
        "elapsed": round(state.elapsed, 6),
        "evals_per_s": round(new_evals / seconds, 3) if seconds > 0 else None,
        "front_size": len(state.front),
    }
    if feasible:
        values = np.asarray(feasible, dtype=float)
        for j, (name, direction) in enumerate(zip(objective.names, objective.directions)):
            column = values[:, j]
            stats[f"best_{name}"] = float(column.min() if direction == "min" else column.max())
            stats[f"median_{name}"] = float(np.median(column))
    return stats


def initialise(space: Space, objective: Objective, settings: SearchSettings, seed: int,
               evaluator: Evaluator) -> tuple[EngineState, GenerationReport]:
    """Generation 0: the space's initial population, evaluated."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    guarded, faults = GuardedSpace(space, settings.space_time_limit or None), GenerationFaults()
    genomes = guarded.initial(rng, settings.population, faults)
    faults.check(space, 0)
    cache: dict[Hashable, Evaluation] = {}
    population, new_evals, failures = _evaluate(genomes, guarded, evaluator, cache, objective, faults)
    faults.check(space, 0)
    population = select_survivors(population, settings.population, objective.directions)
    front = update_front([], population, objective.directions, settings.hall_of_fame)
    seconds = time.perf_counter() - start
    state = EngineState(generation=0, population=population, front=front, rng_state=rng.bit_generator.state,
                        cache=cache, logbook=[], evaluations=new_evals, elapsed=seconds)
    stats = _statistics(state, objective, new_evals, seconds, len(failures), faults)
    state.logbook.append(stats)
    return state, GenerationReport(stats, failures)


def _make_children(parents: list[Individual], n: int, space: GuardedSpace, settings: SearchSettings,
                   rng: np.random.Generator, faults: GenerationFaults,
                   cache: dict[Hashable, Evaluation] | None = None) -> list[Any]:
    """DEAP's varOr: each child comes from crossover, or mutation, or is a copy, never from two of them.
    An operator that raises is retried on other parents (`GuardedSpace.child`), counted in `faults`.
    With `settings.novelty_tries`, a varied child already in `cache` is mutated again (`_novel`)."""
    ops = rng.random(n)
    pairs = [(parents[2 * i].genome, parents[2 * i + 1].genome) for i in range(n)]
    children = []
    made: set[Hashable] = set()
    for i in range(n):
        if ops[i] < settings.crossover_prob:
            child = space.child(pairs, i, "crossover", rng, faults)
        elif ops[i] < settings.crossover_prob + settings.mutation_prob:
            child = space.child(pairs, i, "mutate", rng, faults)
        else:
            children.append(pairs[i][0])
            continue
        if settings.novelty_tries and cache is not None:
            child = _novel(child, space, cache, made, settings.novelty_tries, rng, faults)
        children.append(child)
    return children


def _novel(child: Any, space: GuardedSpace, cache: dict[Hashable, Evaluation], made: set[Hashable], tries: int,
           rng: np.random.Generator, faults: GenerationFaults) -> Any:
    """`child`, or a mutant of it whose key is new to the run and to this generation (after at most `tries`
    mutations; the last one is kept either way). Keys computed here are not counted as space calls."""
    for _ in range(tries):
        key, reason = space.key(child, GenerationFaults())
        if reason is not None or (key not in cache and key not in made):
            break
        child = space.child([(child, child)], 0, "mutate", rng, faults)
    else:
        key, reason = space.key(child, GenerationFaults())
    if reason is None:
        made.add(key)
    return child


def stagnant(logbook: Sequence[dict[str, Any]], objective: Objective, window: int, gain: float) -> bool:
    """Has the population's best first-objective value gained no more than `gain` (relative) over the last `window`
    generations since the last restart? Read from the logbook, so a resumed run decides exactly as before."""
    if window <= 0:
        return False
    since = max((i for i, stats in enumerate(logbook) if stats.get("restarted")), default=0)
    name, sign = f"best_{objective.names[0]}", 1.0 if objective.directions[0] == "min" else -1.0
    values = [sign * stats[name] for stats in logbook[since:] if name in stats]
    if len(logbook) - since <= window or len(values) <= window:
        return False
    before, now = min(values[:-window]), min(values)
    return not now < before - gain * abs(before)


def step(state: EngineState, space: Space, objective: Objective, settings: SearchSettings,
         evaluator: Evaluator) -> tuple[EngineState, GenerationReport]:
    """One generation: select parents, vary, evaluate the new, keep the best `population` of parents + children.
    When the run is `stagnant` (settings.restart_after), the generation is a fresh initial population instead.

    The cache inside `state` is updated in place (it only grows); everything else comes back as a new state.
    """
    start = time.perf_counter()
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    n = settings.n_offspring
    guarded, faults = GuardedSpace(space, settings.space_time_limit or None), GenerationFaults()
    restart = stagnant(state.logbook, objective, settings.restart_after, settings.restart_gain)
    if restart:
        children = guarded.initial(rng, settings.population, faults)
    else:
        order = rank_order(state.population, objective.directions)
        parents = tournament(state.population, order, 2 * n, settings.tournament, rng)
        children = _make_children(parents, n, guarded, settings, rng, faults, state.cache)
    offspring, new_evals, failures = _evaluate(children, guarded, evaluator, state.cache, objective, faults)
    faults.check(space, state.generation + 1)
    survivors = offspring if restart else state.population + offspring
    population = select_survivors(survivors, settings.population, objective.directions)
    front = update_front(state.front, offspring, objective.directions, settings.hall_of_fame)
    seconds = time.perf_counter() - start
    new_state = replace(state, generation=state.generation + 1, population=population, front=front,
                        rng_state=rng.bit_generator.state, evaluations=state.evaluations + new_evals,
                        elapsed=state.elapsed + seconds, logbook=list(state.logbook))
    stats = _statistics(new_state, objective, new_evals, seconds, len(failures), faults)
    if restart:
        stats["restarted"] = True
    new_state.logbook.append(stats)
    return new_state, GenerationReport(stats, failures)


def meets_targets(ind: Individual, objective: Objective, targets: dict[str, float]) -> bool:
    """Does `ind` meet every target (<= for minimised objectives, >= for maximised)? False without targets."""
    if not targets:
        return False
    index = {name: j for j, name in enumerate(objective.names)}
    for name, threshold in targets.items():
        value = ind.evaluation.values[index[name]]
        if not (value <= threshold if objective.directions[index[name]] == "min" else value >= threshold):
            return False
    return True


def target_reached(front: Sequence[Individual], objective: Objective, targets: dict[str, float]) -> bool:
    """True when one front member meets every target."""
    return any(meets_targets(ind, objective, targets) for ind in front)


def preferred_rank(front: Sequence[Individual], objective: Objective, targets: dict[str, float]) -> int:
    """The front member a user takes as the result: among those meeting every target, the best on the objectives
    that have none, in order (the smallest formula within the rmse target, not a bloated one that fits 1e-14
    closer by rounding luck); rank 0 when no member meets the targets or there are none."""
    fits = [i for i, ind in enumerate(front) if meets_targets(ind, objective, targets)]
    free = [j for j, name in enumerate(objective.names) if name not in targets]
    if not fits or not free:
        return 0

    def order(i: int) -> tuple[float, ...]:
        values = front[i].evaluation.values
        return tuple(values[j] if objective.directions[j] == "min" else -values[j] for j in free) + (i,)

    return min(fits, key=order)


def stop_reason(state: EngineState, objective: Objective, settings: SearchSettings) -> str | None:
    """Why the run should stop now, or None to go on."""
    if target_reached(state.front, objective, settings.targets):
        return "target reached"
    if state.generation >= settings.generations:
        return f"{settings.generations} generations done"
    if settings.max_evaluations and state.evaluations >= settings.max_evaluations:
        return f"{state.evaluations} evaluations done (limit {settings.max_evaluations})"
    if settings.wall_time and state.elapsed >= settings.wall_time:
        return f"wall time {settings.wall_time:g} s spent"
    return None


def evolve(space: Space, objective: Objective, settings: SearchSettings, seed: int = 0,
           evaluator: Evaluator | None = None, state: EngineState | None = None,
           on_generation: Callable[[EngineState, GenerationReport], None] | None = None) -> EngineState:
    """Run the search to a stopping rule; pass `state` to continue one. `on_generation` sees every step
    (the job layer uses it to checkpoint and log). Returns the final state with `stop_reason` set."""
    evaluator = evaluator or LocalEvaluator(objective)
    if state is None:
        state, report = initialise(space, objective, settings, seed, evaluator)
        if on_generation:
            on_generation(state, report)
    while (reason := stop_reason(state, objective, settings)) is None:
        state, report = step(state, space, objective, settings, evaluator)
        if on_generation:
            on_generation(state, report)
    state.stop_reason = reason
    if settings.polish and state.front and len(objective.directions) == 1 and hasattr(space, "neighbourhood"):
        state = _polish(state, space, objective, settings, evaluator)
    return state


def _polish(state: EngineState, space: Space, objective: Objective, settings: SearchSettings,
            evaluator: Evaluator) -> EngineState:
    """The coordinate polish from the front's best, through the run's cache (a resumed run re-pays nothing)."""
    from search.local_search import polish

    t0 = time.perf_counter()
    best = state.front[0]
    out = polish(best.genome, best.evaluation, space.neighbourhood, evaluator.evaluate, space.key,
                 objective.directions[0], rel_gain=settings.polish_gain, max_evaluations=settings.polish,
                 describe=space.describe, cache=state.cache)
    state.evaluations += out.evaluations
    if out.moves:
        state.front = update_front(state.front, [Individual(out.genome, out.evaluation, space.key(out.genome))],
                                   objective.directions, settings.hall_of_fame)
    state.elapsed += time.perf_counter() - t0
    state.logbook.append({"polish_evaluations": out.evaluations, "polish_sweeps": out.sweeps,
                          "polish_moves": out.moves})
    return state


def _guarded_describe(describe: Callable[[Any], str], genome: Any, seconds: float | None) -> str:
    try:
        return call_space("describe", describe, genome, seconds=seconds)
    except SpaceCallFailed as exc:
        return f"{genome!r:.300} [{exc.reason}]"


def front_table(front: Sequence[Individual], objective: Objective, describe: Callable[[Any], str] | None = None,
                describe_seconds: float | None = SearchSettings.space_time_limit) -> list[dict[str, Any]]:
    """The front as JSON-able rows (rank, program, objective values, extras), the form written to `front.json`.
    A `describe` that raises or runs past `describe_seconds` gives the genome's repr with the reason instead."""
    rows = []
    for rank, ind in enumerate(front):
        row: dict[str, Any] = {"rank": rank, "key": str(ind.key)}
        if describe is not None:
            row["program"] = _guarded_describe(describe, ind.genome, describe_seconds)
        row.update({name: (None if math.isinf(v) else v) for name, v in zip(objective.names, ind.evaluation.values)})
        row.update(ind.evaluation.extras)
        rows.append(row)
    return rows
