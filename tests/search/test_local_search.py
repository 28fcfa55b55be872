"""Coordinate polish (search/local_search.py) on a synthetic separable objective and on the megakernel genes."""

from dataclasses import fields

from search.local_search import polish
from search.protocols import Evaluation

TARGET = (3, 0, 2, 1, 3)


def neighbourhood(g):
    return [[g[:i] + (v,) + g[i + 1:] for v in range(4) if v != g[i]] for i in range(len(g))]


def cost(g):
    return float(sum((a - b) ** 2 for a, b in zip(g, TARGET)))


def test_polish_walks_a_separable_objective_to_its_optimum_in_one_sweep_plus_a_check():
    calls = []

    def evaluate(genomes):
        calls.extend(genomes)
        return [Evaluation((cost(g),)) for g in genomes]

    start = (0, 3, 0, 3, 0)
    out = polish(start, Evaluation((cost(start),)), neighbourhood, evaluate, key=lambda g: g, max_evaluations=100)
    assert out.genome == TARGET and out.evaluation.values == (0.0,)
    assert out.sweeps == 2 and len(out.moves) == 5          # the second sweep moves nothing and stops
    assert out.evaluations == len(calls) == len(set(calls))  # nothing evaluated twice


def test_polish_never_moves_to_a_failed_evaluation_and_respects_its_budget():
    def evaluate(genomes):   # every change of the first gene "crashes" with a value better than anything
        return [Evaluation.failure("compile", 1, ("min",)) if g[0] != 0 else Evaluation((cost(g),)) for g in genomes]

    start = (0, 3, 0, 3, 0)
    out = polish(start, Evaluation((cost(start),)), neighbourhood, evaluate, key=lambda g: g, max_evaluations=7)
    assert out.genome[0] == 0 and out.evaluations == 7
    assert out.evaluation.values[0] < cost(start)


def test_polish_ignores_changes_inside_the_noise_band():
    start = (3, 0, 2, 1, 2)   # one step from the optimum: cost 1 against 0, a 100% gain; then a 0.1% "gain"
    out = polish(start, Evaluation((1000.0,)), neighbourhood,
                 lambda gs: [Evaluation((999.5,)) for _ in gs], key=lambda g: g, rel_gain=0.004)
    assert out.genome == start and out.moves == []


def test_the_megakernel_space_offers_one_group_of_single_gene_changes_per_gene():
    from search.protocols import Context
    from spaces.megakernel.stream import KernelGenes
    from spaces.megakernel.stream_space import GENE_NAMES, StreamKernelSpace

    space = StreamKernelSpace(StreamKernelSpace.Config(model_config="toy", kv_length=16, sms=4), Context())
    g = space.hand_written()
    groups = space.neighbourhood(g)
    assert len(groups) == len(GENE_NAMES)
    for name, group in zip(GENE_NAMES, groups):
        assert len(group) == len(KernelGenes.CHOICES[name]) - 1
        for h in group:
            changed = [f.name for f in fields(KernelGenes) if getattr(h, f.name) != getattr(g, f.name)]
            assert changed == [name]


def test_the_engine_polishes_its_best_through_the_run_cache_when_asked():
    from objectives.bit_problems import OneMax
    from search.engine import SearchSettings, evolve
    from search.protocols import Context
    from spaces.bitstring import BitStringSpace

    space = BitStringSpace(BitStringSpace.Config(length=32), Context())
    objective = OneMax(OneMax.Config(), space, Context())
    plain = evolve(space, objective, SearchSettings(population=4, generations=1), seed=0)
    polished = evolve(space, objective, SearchSettings(population=4, generations=1, polish=64), seed=0)
    assert plain.front[0].evaluation.values[0] < 32
    assert polished.front[0].evaluation.values == (32.0,) and polished.front[0].genome == (1,) * 32
    log = polished.logbook[-1]
    zeros = 32 - int(plain.front[0].evaluation.values[0])
    assert log["polish_sweeps"] == 2 and len(log["polish_moves"]) == zeros   # one flip per zero, then a check
    assert polished.evaluations == plain.evaluations + log["polish_evaluations"]
    again = evolve(space, objective, SearchSettings(population=4, generations=1, polish=64), seed=0)
    assert [i.key for i in again.front] == [i.key for i in polished.front]   # a seed fixes the polish too
