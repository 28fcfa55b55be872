from dataclasses import replace

import numpy as np
import pytest

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


def test_resuming_from_an_epoch_checkpoint_gives_the_uninterrupted_run():
    """Hosts keep caches between epochs and get only new entries; a resumed run (hosts holding nothing, whole caches
    sent) must make exactly the same evaluations and front as the run that never stopped."""
    import pickle

    space, objective = trap_problem(length=32)
    settings = SearchSettings(population=16, generations=12)
    islands = IslandSettings(islands=3, migration_interval=3, migrants=2)
    saved = []
    whole = evolve_islands(space, objective, settings, islands, seed=4,
                           on_epoch=lambda s, r: saved.append(pickle.dumps(s)) if s.epoch == 2 else None)
    resumed = evolve_islands(space, objective, settings, islands, seed=4, state=pickle.loads(saved[0]))
    assert keys(resumed) == keys(whole)
    assert resumed.evaluations == whole.evaluations
    assert [len(s.cache) for s in resumed.islands] == [len(s.cache) for s in whole.islands]
    assert [len(s.logbook) for s in whole.islands] == [13, 13, 13]  # generation 0 and 12 more, per island


def test_a_host_without_an_island_refuses_newcomers_alone():
    """A host keeps each island's whole state between epochs; one that does not hold an island (a restarted actor)
    must be sent it whole, and then gives back a small summary and the epoch's new cache entries."""
    from search.islands import IslandHost

    space, objective = trap_problem(length=16)
    settings = SearchSettings(population=6, generations=2)
    host = IslandHost(space, objective, settings, timeout=None, migrants=2)
    (summary,), ((light, entries, _),) = host.start([(0, 1)])
    assert len(entries) == 6 and light.cache == {} and len(summary.emigrants) == 2
    fresh = IslandHost(space, objective, settings, timeout=None, migrants=2)
    with pytest.raises(LookupError):
        fresh.advance([(0, None, [])], 1)
    whole = replace(light, cache=dict(entries))
    (summary,), ((state, new, reports),) = fresh.advance([(0, whole, None)], 1)
    assert len(reports) == 1 and len(new) == reports[0].stats["new_evaluations"]
    assert summary.generation == 1 and summary.evaluations == 6 + len(new)
    assert len(whole.cache) == 6  # the driver's copy is not touched by the host


def test_the_archipelago_logs_one_line_per_epoch():
    space, objective = trap_problem(length=16)
    state = evolve_islands(space, objective, SearchSettings(population=6, generations=5),
                           IslandSettings(islands=2, migration_interval=2), seed=1)
    assert [(line["epoch"], line["generation"]) for line in state.logbook] == [(0, 0), (1, 2), (2, 4), (3, 5)]
    assert state.logbook[-1]["evaluations"] == state.evaluations
    assert all(a["elapsed"] <= b["elapsed"] for a, b in zip(state.logbook, state.logbook[1:]))


def test_an_actor_that_dies_mid_run_is_replayed_to_the_same_front(ray_two_workers, tmp_path):
    """The actor hosting islands 0 and 2 exits after its 150th evaluation (once: a marker file): Ray restarts it,
    the driver replays that share of the epoch from its copy of the islands, and the front is the in-process one."""
    import os
    from dataclasses import dataclass

    from search.protocols import Evaluation

    class DyingTrap(Trap):
        @dataclass(frozen=True)
        class Config:
            k: int = 4
            work_seconds: float = 0.0
            marker: str = ""
            driver: int = 0

        made = 0

        def evaluate(self, genome) -> Evaluation:
            self.made += 1
            if self.made == 150 and os.getpid() != self.config.driver and not os.path.exists(self.config.marker):
                open(self.config.marker, "w").close()
                os._exit(1)
            return super().evaluate(genome)

    space = BitStringSpace(BitStringSpace.Config(length=48), Context())
    objective = DyingTrap(DyingTrap.Config(marker=str(tmp_path / "died"), driver=os.getpid()), space, Context())
    settings = SearchSettings(population=20, generations=12)
    islands = IslandSettings(islands=4, migration_interval=3, migrants=2, hosts=2)
    remote = evolve_islands(space, objective, settings, islands, seed=5, use_ray=True)  # first: `made` is 0
    local = evolve_islands(space, objective, settings, islands, seed=5)
    assert (tmp_path / "died").exists()
    assert keys(remote) == keys(local) and remote.evaluations == local.evaluations
    assert [list(s.cache) for s in remote.islands] == [list(s.cache) for s in local.islands]


@pytest.mark.parametrize("stop", [{"targets": {"trap": 44.0}}, {"max_evaluations": 900}])
def test_a_run_stopped_early_on_ray_is_the_in_process_run(ray_two_workers, stop):
    """On Ray a host starts its next epoch before the stopping rules are checked; when they stop the run, that
    epoch is dropped, so the result is the in-process one (states, caches and all)."""
    space, objective = trap_problem()
    settings = SearchSettings(population=20, generations=40, **stop)
    islands = IslandSettings(islands=5, migration_interval=3, migrants=2, topology="random")
    local = evolve_islands(space, objective, settings, islands, seed=3)
    remote = evolve_islands(space, objective, settings, IslandSettings(**{**islands.__dict__, "hosts": 3}), seed=3,
                            use_ray=True)
    assert local.generation < 40 and remote.stop_reason == local.stop_reason
    assert keys(remote) == keys(local) and remote.epoch == local.epoch and remote.rng_state == local.rng_state
    assert [list(s.cache) for s in remote.islands] == [list(s.cache) for s in local.islands]
