"""The automatic choice of where a search runs: measured in-process, predicted, chosen."""

import numpy as np

from objectives.bit_problems import OneMax, Trap
from search.engine import SearchSettings, evolve, initialise
from search.evaluation import LocalEvaluator
from search.placement import Costs, PrimedEvaluator, choose, expected_generations, measure, predict
from search.protocols import Context
from spaces.bitstring import BitStringSpace


def onemax(length=40, work_seconds=0.0):
    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    return space, OneMax(OneMax.Config(work_seconds=work_seconds), space, Context())


def test_trivially_cheap_objective_runs_in_process():
    space, objective = onemax()
    settings = SearchSettings(population=40, generations=30)
    costs, warm = measure(space, objective, settings, seed=3, timeout=None)
    assert costs.eval_seconds < 0.01 and costs.evaluations_per_generation == 40  # ~10 us quiet; margin for load
    assert warm is not None  # generation 0 was cheap enough to run in-process during the measurement
    placement = choose(costs, settings, workers=2, cores=2, cluster=False, islands_in_spec=False)
    assert placement.mode == "local"
    assert placement.reason.startswith("backend: in-process (evaluations take ")
    assert placement.predicted["local"] < costs.ray_start_seconds < placement.predicted["generational"]


def test_slow_objective_goes_to_ray_without_running_generation_0_in_process():
    space, objective = onemax(work_seconds=0.05)
    settings = SearchSettings(population=32, generations=1000)  # 1,600 s in-process: Ray pays even under load
    costs, warm = measure(space, objective, settings, seed=0, timeout=None)
    assert warm is None  # 32 x 50 ms > 1 s: left to the chosen backend
    assert 0.04 < costs.eval_seconds < 0.5
    placement = choose(costs, settings, workers=2, cores=2, cluster=False, islands_in_spec=False)
    assert placement.mode == "generational"  # evaluations dominate: same front as in-process, on Ray
    assert "one population, evaluated on Ray" in placement.reason


def test_continuing_from_the_measured_generation_0_gives_the_same_run():
    space = BitStringSpace(BitStringSpace.Config(length=32), Context())
    objective = Trap(Trap.Config(k=4), space, Context())
    settings = SearchSettings(population=24, generations=8)
    _, warm = measure(space, objective, settings, seed=5, timeout=None)
    continued = evolve(space, objective, settings, seed=5, state=warm[0])
    fresh = evolve(space, objective, settings, seed=5)
    assert [(f.key, f.evaluation) for f in continued.front] == [(f.key, f.evaluation) for f in fresh.front]
    assert continued.evaluations == fresh.evaluations


def test_primed_evaluator_evaluates_only_unknown_genomes():
    space, objective = onemax(length=8)
    genomes = space.initial(np.random.default_rng(0), 6)
    calls = []

    class Counting(LocalEvaluator):
        def evaluate(self, batch):
            calls.append(len(batch))
            return super().evaluate(batch)

    known = {space.key(g): e for g, e in zip(genomes[:4], LocalEvaluator(objective).evaluate(genomes[:4]))}
    primed = PrimedEvaluator(Counting(objective), space, known)
    assert primed.evaluate(genomes) == LocalEvaluator(objective).evaluate(genomes)
    assert calls == [2]
    state, _ = initialise(space, objective, SearchSettings(population=6), 0, PrimedEvaluator(Counting(objective),
                                                                                            space, known))
    assert state.evaluations == 6  # the engine counts them as its own: the run is the same as without priming


def test_cheap_evaluations_on_many_workers_pick_islands_and_a_cluster_never_runs_in_process():
    # 50 us evaluations, a 20 ms generation (selection dominates), 2,000 generations: 40 s in-process.
    costs = Costs(eval_seconds=50e-6, generation_seconds=0.020, evaluations_per_generation=200,
                  reference_seconds=0.002)  # Ray's start-up 6 s, a round trip 2 ms
    settings = SearchSettings(population=200, generations=2000)
    predicted = predict(costs, 2000, 16, costs.ray_start_seconds)
    assert round(predicted["local"], 3) == 40.0 and round(predicted["islands"], 3) == 9.0
    assert predicted["islands"] < predicted["generational"] < predicted["local"]
    assert choose(costs, settings, workers=16, cores=16, cluster=False, islands_in_spec=False).mode == "islands"
    # The same job on a 2-core machine with 16 workers asked for: only 2 cores are usable.
    assert choose(costs, settings, workers=16, cores=2, cluster=False, islands_in_spec=False).predicted["islands"] \
        > predicted["islands"]
    # A tiny job: in-process embedded, but a cluster address always uses the cluster.
    tiny = SearchSettings(population=200, generations=5)
    assert choose(costs, tiny, workers=2, cores=2, cluster=False, islands_in_spec=False).mode == "local"
    assert choose(costs, tiny, workers=2, cores=2, cluster=True, islands_in_spec=False).mode != "local"
    assert choose(costs, tiny, workers=2, cores=2, cluster=True, islands_in_spec=True).mode == "islands"


def test_ray_costs_scale_with_the_machine_s_current_speed():
    quiet = Costs(eval_seconds=1e-3, generation_seconds=0.1, evaluations_per_generation=100, reference_seconds=0.01)
    loaded = Costs(eval_seconds=1e-2, generation_seconds=1.0, evaluations_per_generation=100, reference_seconds=0.1)
    settings = SearchSettings(population=100, generations=20)
    assert round(loaded.ray_start_seconds / quiet.ray_start_seconds, 6) == 10.0
    # Ten times slower in every measured figure: the same choice, not "Ray" because the job looked slow.
    assert choose(quiet, settings, 2, 2, False, False).mode == choose(loaded, settings, 2, 2, False, False).mode


def test_expected_generations_follow_the_stopping_rules():
    costs = Costs(eval_seconds=1e-3, generation_seconds=0.1, evaluations_per_generation=100, reference_seconds=0.01)
    assert expected_generations(costs, SearchSettings(generations=50)) == 50
    assert expected_generations(costs, SearchSettings(generations=50, max_evaluations=1000)) == 10
    assert expected_generations(costs, SearchSettings(generations=50, wall_time=2.0)) == 20
