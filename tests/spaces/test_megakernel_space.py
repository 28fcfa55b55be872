"""The megakernel space, the cost model and the makespan objective, and a short search through the engine."""

import math
from dataclasses import replace

import numpy as np
import pytest

from objectives.makespan import Makespan
from objectives.schedule_validator import ScheduleValidator, validate
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve
from search.protocols import Context, UserError
from spaces.megakernel.cost_model import Device, makespan
from spaces.megakernel.ir import from_dict
from spaces.megakernel.lower import LlamaShape, Tiling, lower
from spaces.megakernel.space import Genome, MegakernelSpace

SMALL = MegakernelSpace.Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=128, max_position_embeddings=8, workers=6,
                               rows=(16, 32), heads=(1, 2))


@pytest.fixture(scope="module")
def space():
    return MegakernelSpace(SMALL, Context(seed=0))


def test_initial_population_is_the_naive_lowering_and_is_certified(space):
    pop = space.initial(np.random.default_rng(0), 6)
    assert pop[: len(space.tilings)] == [space.naive(t) for t in range(len(space.tilings))]
    for g in pop[: len(space.tilings)]:
        assert set(g.sync[1:]) == {"barrier"} and validate(space.schedule(g)).accepted


def test_mutation_and_crossover_give_well_formed_genomes(space):
    rng = np.random.default_rng(1)
    g = space.naive(0)
    for _ in range(200):
        g = space.mutate(g, rng)
        n = len(space.naive(g.tiling).worker)  # genomes index the unfused task graph
        assert isinstance(g, Genome) and len(g.worker) == len(g.priority) == n
        assert len(space.schedule(g).tasks) == n - sum(g.fuse)
        assert all(0 <= w < SMALL.workers for w in g.worker)
    a, b = space.crossover(g, space.naive(g.tiling, "tile"), rng)
    assert len(a.worker) == len(g.worker) and hash(space.key(a)) is not None


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="num_attention_heads"):
        MegakernelSpace(replace(SMALL, num_key_value_heads=3), Context())


def test_emit_json_is_a_loadable_certified_schedule(space):
    import json

    text = space.emit(space.naive(1, "join"), "json")
    assert validate(from_dict(json.loads(text))).accepted
    with pytest.raises(UserError, match="not supported"):
        space.emit(space.naive(0), "fortran")


def test_counters_beat_barriers_and_deadlock_has_no_makespan():
    cfg = LlamaShape(hidden_size=64, intermediate_size=128, vocab_size=64, num_attention_heads=4, num_key_value_heads=2)
    barrier = makespan(lower(cfg, Tiling(rows=16, workers=4), "barrier"))
    join = makespan(lower(cfg, Tiling(rows=16, workers=4), "join"))
    d = Device()
    n_barriers = sum(st.kind == "barrier" for st in lower(cfg, Tiling(rows=16, workers=4)).programs[0])
    assert join < barrier and barrier - join < n_barriers * d.barrier_latency
    s = lower(cfg, Tiling(rows=16, workers=4), "tile")
    w, i = next((w, i) for w, p in enumerate(s.programs) for i, st in enumerate(p) if st.kind == "signal")
    stuck = replace(s, programs=s.programs[:w] + (s.programs[w][:i] + s.programs[w][i + 1:],) + s.programs[w + 1:])
    assert math.isinf(makespan(stuck))


def test_fused_norms_remove_sync_points_and_stay_correct(space):
    from spaces.megakernel.executor import Memory, execute
    from spaces.megakernel.lower import ModelDims
    from spaces.megakernel.model import new_cache, random_weights, reference_step

    g = space.naive(0, "join")
    fused = replace(g, fuse=(True,) * len(g.fuse))
    plain_s, fused_s = space.schedule(g), space.schedule(fused)
    assert len(fused_s.tasks) == len(plain_s.tasks) - len(g.fuse)
    assert validate(fused_s).accepted and makespan(fused_s) < makespan(plain_s)
    d = ModelDims.of(space.shape)
    w = random_weights(d, np.random.default_rng(2))
    mem, cache = Memory.allocate(fused_s, w), new_cache(d)
    for pos, tok in enumerate([4, 9]):
        assert np.abs(execute(fused_s, mem, d, tok, pos) - reference_step(w, d, tok, pos, cache)).max() <= 1e-4


def test_single_task_makespan_is_the_roofline():
    cfg = LlamaShape(hidden_size=16, num_hidden_layers=1)
    s = lower(cfg, Tiling(rows=8, workers=1), "tile")
    d = Device(task_overhead=0.0)
    assert makespan(s, d) == pytest.approx(sum(
        max(t.flops / d.sm_flops, dict(t.params).get("bytes", 4 * sum(r.stop - r.start for r in (*t.reads, *t.writes))) / d.sm_bandwidth)
        for t in s.tasks))


def test_search_beats_the_naive_lowering(space):
    ctx = Context(seed=0)
    objective = CombinedObjective([ScheduleValidator(ScheduleValidator.Config(), space, ctx),
                                   Makespan(Makespan.Config(), space, ctx)])
    state = evolve(space, objective, SearchSettings(population=16, generations=8), seed=0)
    best = state.front[0]
    naive = min(makespan(space.schedule(space.naive(t))) for t in range(len(space.tilings))) * 1e6
    assert best.evaluation.feasible and validate(space.schedule(best.genome)).accepted
    assert best.evaluation.values[0] < naive
