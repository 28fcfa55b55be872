import numpy as np

from objectives.bit_problems import OneMax, Trap
from search.engine import SearchSettings
from search.islands import IslandSettings, destinations, evolve_islands, island_seeds, migrate
from search.protocols import Context
from spaces.bitstring import BitStringSpace


def trap_problem(length=48):
    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    return space, Trap(Trap.Config(k=4), space, Context())


def keys(state):
    return [(f.key, f.evaluation.values) for f in state.front]


def test_destinations_ring_and_random_derangement():
    assert destinations(4, "ring", np.random.default_rng(0)) == [1, 2, 3, 0]
    for seed in range(20):
        d = destinations(5, "random", np.random.default_rng(seed))
        assert sorted(d) == list(range(5)) and all(d[i] != i for i in range(5))


def test_island_seeds_are_distinct_and_reproducible():
    assert island_seeds(3, 4) == island_seeds(3, 4)
    assert len(set(island_seeds(3, 4))) == 4


def test_migration_moves_the_best_to_the_neighbour():
    space = BitStringSpace(BitStringSpace.Config(length=16), Context())
    objective = OneMax(OneMax.Config(), space, Context())
    settings = SearchSettings(population=6, generations=1)
    from search.engine import initialise
    from search.evaluation import LocalEvaluator

    states = [initialise(space, objective, settings, s, LocalEvaluator(objective))[0] for s in (1, 2)]
    best0 = max(states[0].population, key=lambda i: i.evaluation.values[0])
    moved = migrate(states, objective, settings, IslandSettings(islands=2, migrants=1), np.random.default_rng(0))
    assert best0.key in {i.key for i in moved[1].population}
    assert len(moved[1].population) == 6


def test_same_front_on_one_host_and_on_four_ray_actors(ray_two_workers):
    space, objective = trap_problem()
    settings = SearchSettings(population=20, generations=12)
    islands = IslandSettings(islands=4, migration_interval=4, migrants=2, topology="random")
    local = evolve_islands(space, objective, settings, islands, seed=9)
    one = evolve_islands(space, objective, settings, IslandSettings(**{**islands.__dict__, "hosts": 1}), seed=9,
                         use_ray=True)
    four = evolve_islands(space, objective, settings, IslandSettings(**{**islands.__dict__, "hosts": 4}), seed=9,
                          use_ray=True)
    assert keys(local) == keys(one) == keys(four)
    assert local.epoch == 3 and local.generation == 12
