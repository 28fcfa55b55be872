"""The Ray backend against a real local Ray (2 CPUs): determinism and failure handling."""

import faulty_objective

from objectives.bit_problems import Trap
from search.engine import SearchSettings, evolve
from search.evaluation import LocalEvaluator
from search.protocols import Context
from search.ray_backend import RayEvaluator
from spaces.bitstring import BitStringSpace


def test_same_front_in_process_and_on_ray_with_two_workers(ray_two_workers):
    space = BitStringSpace(BitStringSpace.Config(length=40), Context())
    objective = Trap(Trap.Config(k=4), space, Context())
    settings = SearchSettings(population=30, generations=10)
    local = evolve(space, objective, settings, seed=11, evaluator=LocalEvaluator(objective))
    remote = evolve(space, objective, settings, seed=11, evaluator=RayEvaluator(objective, workers=2))
    assert [(f.key, f.evaluation) for f in local.front] == [(f.key, f.evaluation) for f in remote.front]
    assert [s["best_trap"] for s in local.logbook] == [s["best_trap"] for s in remote.logbook]


def test_ray_run_survives_raising_and_hanging_evaluations(ray_two_workers):
    space = BitStringSpace(BitStringSpace.Config(length=12), Context())
    objective = faulty_objective.FaultyOneMax(faulty_objective.FaultyOneMax.Config(), space, Context())
    failures = []
    state = evolve(space, objective, SearchSettings(population=12, generations=3), seed=0,
                   evaluator=RayEvaluator(objective, workers=2, timeout=0.2),
                   on_generation=lambda s, r: failures.extend(r.failures))
    reasons = {f["reason"].split(":")[0] for f in failures}
    assert reasons == {"ValueError", "timeout after 0.2 s"}
    assert state.front[0].evaluation.feasible
