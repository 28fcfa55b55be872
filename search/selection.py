"""Selection with constraint handling: feasible beats infeasible, infeasible ones rank by total violation.

One objective: plain sorting and tournaments. Several: NSGA-II (DEAP's non-dominated sort and crowding distance)
among the feasible. Every random draw comes from the `numpy.random.Generator` passed in; DEAP's own selectors use
the global `random` module, which would break determinism, so only its deterministic sorting parts are used.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from deap import base, tools

from search.protocols import Direction, Evaluation


@dataclass(frozen=True)
class Individual:
    """A genome with its score. `key` is the space's canonical key, kept so the front can be de-duplicated."""

    genome: Any
    evaluation: Evaluation
    key: Hashable


class _Fitness(base.Fitness):
    """A DEAP fitness whose weights are set per instance, so no `creator` class is needed (they do not pickle)."""

    def __init__(self, values: tuple[float, ...], weights: tuple[float, ...]):
        self.weights = weights
        super().__init__(values)


class _Ranked:
    """Adapter giving an `Individual` the `.fitness` attribute DEAP's emo functions expect."""

    __slots__ = ("individual", "fitness", "index")

    def __init__(self, individual: Individual, index: int, weights: tuple[float, ...]):
        self.individual = individual
        self.index = index
        self.fitness = _Fitness(individual.evaluation.values, weights)


def weights_for(directions: Sequence[Direction]) -> tuple[float, ...]:
    return tuple(-1.0 if d == "min" else 1.0 for d in directions)


def _scalar_key(ind: Individual, sign: float) -> float:
    return sign * ind.evaluation.values[0]


def rank_order(population: Sequence[Individual], directions: Sequence[Direction]) -> list[int]:
    """Indices of `population`, best first: feasible by (front, crowding) or value, then infeasible by violation.

    Ties keep population order, so the result is deterministic.
    """
    feasible = [i for i, ind in enumerate(population) if ind.evaluation.feasible]
    infeasible = [i for i, ind in enumerate(population) if not ind.evaluation.feasible]
    infeasible.sort(key=lambda i: population[i].evaluation.total_violation)
    if len(directions) == 1:
        sign = 1.0 if directions[0] == "min" else -1.0
        feasible.sort(key=lambda i: _scalar_key(population[i], sign))
        return feasible + infeasible
    weights = weights_for(directions)
    ranked = [_Ranked(population[i], i, weights) for i in feasible]
    order: list[int] = []
    for front in tools.sortNondominated(ranked, len(ranked)):
        tools.emo.assignCrowdingDist(front)
        front.sort(key=lambda r: -r.fitness.crowding_dist)  # stable: ties keep population order
        order.extend(r.index for r in front)
    return order + infeasible


def select_survivors(candidates: Sequence[Individual], k: int, directions: Sequence[Direction]) -> list[Individual]:
    """Environmental (mu + lambda) selection of `k` survivors, with duplicates (same key) used only as filler."""
    seen: set[Hashable] = set()
    unique, duplicates = [], []
    for ind in candidates:
        (duplicates if ind.key in seen else unique).append(ind)
        seen.add(ind.key)
    if len(directions) > 1:
        # NSGA-II truncation: whole fronts, then the last front by crowding distance, computed on that front only.
        chosen = _nsga2_truncate(unique, k, directions)
    else:
        chosen = [unique[i] for i in rank_order(unique, directions)[:k]]
    if len(chosen) < k:
        chosen += duplicates[: k - len(chosen)]
    return chosen


def _nsga2_truncate(unique: Sequence[Individual], k: int, directions: Sequence[Direction]) -> list[Individual]:
    feasible = [ind for ind in unique if ind.evaluation.feasible]
    infeasible = sorted((ind for ind in unique if not ind.evaluation.feasible),
                        key=lambda ind: ind.evaluation.total_violation)
    weights = weights_for(directions)
    ranked = [_Ranked(ind, i, weights) for i, ind in enumerate(feasible)]
    chosen: list[Individual] = []
    for front in tools.sortNondominated(ranked, min(k, len(ranked))):
        if len(chosen) + len(front) <= k:
            chosen.extend(r.individual for r in front)
            continue
        tools.emo.assignCrowdingDist(front)
        front.sort(key=lambda r: -r.fitness.crowding_dist)
        chosen.extend(r.individual for r in front[: k - len(chosen)])
        break
    return chosen + infeasible[: max(0, k - len(chosen))]


def tournament(population: Sequence[Individual], order: Sequence[int], n: int, size: int,
               rng: np.random.Generator) -> list[Individual]:
    """`n` winners of tournaments of `size` drawn with replacement; the better rank (position in `order`) wins."""
    position = np.empty(len(population), dtype=np.int64)
    position[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    entrants = rng.integers(0, len(population), size=(n, size))
    winners = entrants[np.arange(n), np.argmin(position[entrants], axis=1)]
    return [population[i] for i in winners]


def _dominates(a: tuple[float, ...], b: tuple[float, ...], weights: tuple[float, ...]) -> bool:
    better = False
    for x, y, w in zip(a, b, weights):
        if x * w < y * w:
            return False
        if x * w > y * w:
            better = True
    return better


def update_front(front: Sequence[Individual], newcomers: Sequence[Individual], directions: Sequence[Direction],
                 hall_of_fame: int) -> list[Individual]:
    """The archive of the best seen so far: the top `hall_of_fame` for one objective, the Pareto front for several.

    Only feasible individuals enter; one individual is kept per distinct objective vector (the first seen), so
    equivalent programs do not crowd the front.
    """
    pool: dict[tuple[float, ...], Individual] = {}
    for ind in list(front) + list(newcomers):
        ev = ind.evaluation
        if ev.feasible and all(math.isfinite(v) for v in ev.values):
            pool.setdefault(tuple(ev.values), ind)
    members = list(pool.values())
    if len(directions) == 1:
        sign = 1.0 if directions[0] == "min" else -1.0
        return sorted(members, key=lambda ind: _scalar_key(ind, sign))[:hall_of_fame]
    weights = weights_for(directions)
    nondominated = [a for a in members
                    if not any(_dominates(b.evaluation.values, a.evaluation.values, weights) for b in members)]
    sign0 = 1.0 if directions[0] == "min" else -1.0
    return sorted(nondominated, key=lambda ind: (_scalar_key(ind, sign0), tuple(ind.evaluation.values[1:])))
