"""The float32 structure space: genomes compile to valid programs for every target, the linear minimax fitter reaches
1 ULP where the degree allows it and not below, and a short search from random structures finds a program."""

import itertools

import numpy as np
import pytest

from objectives.op_count import OpCountObjective
from objectives.ulp import UlpObjective
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve
from search.protocols import Context, UserError
from spaces import REGISTRY
from spaces.float32.program import ARITY, CONST, canonical, n_constants, op_count
from spaces.float32.reduction import TARGETS, ulp_error
from spaces.float32.structure import GENES, compile_structure, make, space_size
from spaces.float32.structure_fit import StructureFitSettings, _Incremental, fit_structure, reduced_sample
from spaces.float32.structure_space import Float32StructureSpace


def space(target="exp"):
    return Float32StructureSpace(Float32StructureSpace.Config(target=target), Context(seed=0))


@pytest.mark.parametrize("target", sorted(GENES))
def test_every_genome_compiles_to_a_valid_program_without_dead_code(target):
    sp = space(target)
    rng = np.random.default_rng(3)
    n_in, n_out = TARGETS[target].n_inputs, TARGETS[target].n_outputs
    pop = [sp.random(rng) for _ in range(12)]
    for _ in range(60):
        a, b = pop[rng.integers(len(pop))], pop[rng.integers(len(pop))]
        child = sp.mutate(a, rng)
        assert child != a and dict(child).keys() == GENES[target].keys()
        assert all(v in GENES[target][k] for k, v in child)
        pop += list(sp.crossover(b, child, rng))
    for genome in set(pop):
        c = compile_structure(target, genome, TARGETS[target].interval)
        for i, (op, args) in enumerate(c.program):
            assert op in ARITY and len(args) == ARITY[op]
            assert all(x == CONST or 0 <= x < n_in + i for x in args)
        assert n_constants(c.program) == len(c.slots)
        assert canonical(c.program, n_out, n_in) == c.program      # outputs last, nothing dead
        assert len(c.fractions) == n_out


def test_genes_that_do_not_act_are_normalised_so_equal_genomes_mean_equal_programs():
    assert make("exp", degree=6, den_degree=3) == make("exp", degree=6)          # no denominator without rational
    assert make("log", form="atanh", shift=1, pin=1) == make("log", form="atanh")
    assert make("exp", form="rational", den_degree=3) != make("exp", form="rational")
    for target in ("exp", "log", "tanh", "sin"):
        compiled = [compile_structure(target, make(target, **dict(zip(GENES[target], combo))))
                    for combo in itertools.product(*GENES[target].values())]
        programs = {(c.program, c.slots) for c in compiled}          # pins: same instructions, fixed constants
        assert len(programs) == space_size(target)
    assert space_size("exp") == 360 and space_size("erf") == 416


def test_estrin_shares_powers_and_counts_its_operations():
    c = compile_structure("exp", make("exp", degree=7, scheme="estrin"))
    assert op_count(c.program, 1) == 9            # 4 pairs, r^2, 2 combines, r^4, 1 combine
    assert sum(1 for op, args in c.program if op == "mul") == 2
    h = compile_structure("exp", make("exp", degree=7))
    assert op_count(h.program, 1) == 7 and all(op == "fma" for op, _ in h.program)


def test_fitter_brings_degree6_exp_under_one_ulp_and_degree5_not():
    _, fit6 = fit_structure("exp", make("exp", degree=6))
    _, fit5 = fit_structure("exp", make("exp", degree=5))
    assert fit6.sample_max_ulp < 1.0
    assert 2.0 < fit5.sample_max_ulp < 5.0         # the degree, not the fitter, is the limit


def test_rational_and_multi_output_fits_reach_one_ulp():
    for target, genes in (("sigmoid", {"form": "rational", "degree": 2, "den_degree": 2}),
                          ("sin", {"s_degree": 3, "c_degree": 3}),
                          ("erf", {"g_degree": 6, "d_degree": 14})):
        c, fit = fit_structure(target, make(target, **genes))
        t = TARGETS[target]
        x = t.sample(20000, np.random.default_rng(5))            # inputs the fitter never saw
        err = ulp_error(t.evaluate(c.program, fit.constants, x), t.reference(x))
        assert fit.sample_max_ulp < 1.0 and float(err.max()) < 1.0, target


def test_pinned_constants_keep_their_values():
    c, fit = fit_structure("exp2", make("exp2", degree=6, pin=2))
    pinned = [(s[1], v) for s, v in zip(c.slots, fit.constants) if s[0] == "pin"]
    assert [p for p, _ in pinned] == [np.log(2.0), 1.0]          # Horner: c1 then c0 come last
    assert [v for _, v in pinned] == [float(np.float32(np.log(2.0))), 1.0]


def test_incremental_evaluation_equals_the_whole_function():
    target = TARGETS["erf"]
    c, fit = fit_structure("erf", make("erf", g_degree=4, d_degree=10))
    sample = reduced_sample(target, StructureFitSettings().refine_points)
    ev = _Incremental(c.program, target, sample)
    c32 = np.array(fit.constants, np.float32)
    regs = ev.registers(c32)
    for slot in (0, 5, len(c32) - 1):
        trial = c32.copy()
        trial[slot] = np.nextafter(trial[slot], np.float32(np.inf))
        got = ev.score(ev.changed(regs, trial, slot))
        err = ulp_error(target.evaluate(c.program, trial, sample[0]), sample[1])
        assert got == pytest.approx(float(err.max()) + 1e-3 * float(np.mean(np.minimum(err, 1e6))), rel=1e-12)


def test_registered_and_bad_target_is_a_user_error():
    assert REGISTRY["float32_structure"] == "spaces.float32.structure_space:Float32StructureSpace"
    with pytest.raises(UserError, match="space.target"):
        space("tan")


def test_short_search_from_random_structures_finds_exp2_under_one_ulp():
    sp = space("exp2")
    ulp = UlpObjective(UlpObjective.Config(samples=2000), sp, Context(seed=0))
    ops = OpCountObjective(OpCountObjective.Config(), sp, Context(seed=0))
    state = evolve(sp, CombinedObjective([ulp, ops]), SearchSettings(population=12, generations=4), seed=0)
    feasible = [i for i in state.front if i.evaluation.feasible]
    assert feasible
    best = min(feasible, key=lambda i: i.evaluation.values[1])
    assert best.evaluation.values[1] <= 8 and best.evaluation.values[0] <= 1.0
