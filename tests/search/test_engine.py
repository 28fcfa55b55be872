from dataclasses import dataclass

import pytest

from objectives.bit_problems import OneMax, Trap
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve
from search.protocols import Context, Evaluation, Objective
from spaces.bitstring import BitStringSpace


def make(length=32):
    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    return space, OneMax(OneMax.Config(), space, Context())


def fronts(state):
    return [(f.key, f.evaluation.values) for f in state.front]


def test_same_seed_same_front_and_other_seed_differs():
    space, objective = make()
    settings = SearchSettings(population=20, generations=8)
    a = evolve(space, objective, settings, seed=3)
    b = evolve(space, objective, settings, seed=3)
    c = evolve(space, objective, settings, seed=4)
    assert fronts(a) == fronts(b)
    assert [s["best_ones"] for s in a.logbook] == [s["best_ones"] for s in b.logbook]
    assert fronts(a) != fronts(c)


def test_onemax_reaches_target_and_stops_there():
    space, objective = make(48)
    state = evolve(space, objective, SearchSettings(population=40, generations=500, targets={"ones": 48}), seed=0)
    assert state.stop_reason == "target reached"
    assert state.front[0].evaluation.values == (48.0,)
    assert state.generation < 500


def test_evaluation_budget_and_generation_limits():
    space, objective = make()
    state = evolve(space, objective, SearchSettings(population=16, generations=1000, max_evaluations=200), seed=1)
    assert 200 <= state.evaluations < 200 + 16
    state = evolve(space, objective, SearchSettings(population=16, generations=5), seed=1)
    assert state.generation == 5 and len(state.logbook) == 6


class CountingOneMax(OneMax):
    calls: list

    def evaluate(self, genome):
        self.calls.append(genome)
        return super().evaluate(genome)


def test_cache_means_no_genome_is_evaluated_twice():
    space = BitStringSpace(BitStringSpace.Config(length=8), Context())  # tiny space: many repeats
    objective = CountingOneMax(OneMax.Config(), space, Context())
    objective.calls = []
    state = evolve(space, objective, SearchSettings(population=16, generations=30), seed=2)
    keys = [space.key(g) for g in objective.calls]
    assert len(keys) == len(set(keys)) == state.evaluations
    assert state.evaluations < 16 * 31  # repeats were served from the cache


def test_multiobjective_front_is_pareto_over_trap_and_onemax():
    space = BitStringSpace(BitStringSpace.Config(length=16), Context())
    objective = CombinedObjective([Trap(Trap.Config(k=4), space, Context()), OneMax(OneMax.Config(), space, Context())])
    state = evolve(space, objective, SearchSettings(population=30, generations=15), seed=5)
    values = [f.evaluation.values for f in state.front]
    for a in values:
        assert not any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in values)


class ConstrainedOneMax(Objective):
    """Maximise ones subject to at most 10 ones: the optimum sits on the constraint boundary."""

    @dataclass(frozen=True)
    class Config:
        pass

    names = ("ones",)
    directions = ("max",)
    constraints = ("at_most_10",)

    def evaluate(self, genome):
        ones = float(sum(genome))
        return Evaluation(values=(ones,), violations=(max(0.0, ones - 10),))


def test_constraint_keeps_front_feasible_and_finds_the_boundary():
    space = BitStringSpace(BitStringSpace.Config(length=24), Context())
    objective = ConstrainedOneMax(ConstrainedOneMax.Config(), space, Context())
    state = evolve(space, objective, SearchSettings(population=30, generations=40), seed=0)
    assert state.front[0].evaluation.values == (10.0,)
    assert all(f.evaluation.feasible for f in state.front)


def test_crossover_and_mutation_probabilities_must_leave_room():
    from runs.spec import SpecError, _check_search

    with pytest.raises(SpecError, match="must be <= 1"):
        _check_search(SearchSettings(crossover_prob=0.8, mutation_prob=0.5), ["ones"])
