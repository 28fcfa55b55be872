"""The operator-tree space: variation stays valid, constants get fitted, a simple law is recovered, code compiles."""

import subprocess

import numpy as np
import pytest
import sympy as sp

from objectives.fit import FitConfig, FitObjective
from objectives.size import SizeConfig, SizeObjective
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve
from search.protocols import Context, Dataset, UserError
from spaces.optree import OpTreeConfig, OpTreeSpace

RNG = np.random.default_rng(0)
X = RNG.uniform(1, 3, (60, 2))
CTX = Context(seed=0, dataset=Dataset(X=X, y=0.5 * X[:, 0] * X[:, 1] ** 2, variables=("m", "v"), target="E"))


def test_variation_is_deterministic_and_within_depth():
    space = OpTreeSpace(OpTreeConfig(max_depth=5), CTX)
    a = [space.random(np.random.default_rng(1)) for _ in range(3)]
    b = [space.random(np.random.default_rng(1)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(2)
    pop = [space.random(rng) for _ in range(20)]
    for _ in range(100):
        child = space.mutate(pop[int(rng.integers(20))], rng)
        c1, _ = space.crossover(pop[int(rng.integers(20))], pop[int(rng.integers(20))], rng)
        for g in (child, c1):
            assert space._to_deap(g).height <= 5
        pop[int(rng.integers(20))] = child


def test_constants_are_fitted_by_least_squares():
    space = OpTreeSpace(OpTreeConfig(), CTX)
    fitted = space.fit_constants(("mul", 3.0, "mul", "m", "mul", "v", "v"))
    assert fitted[1] == pytest.approx(0.5, abs=1e-10)


def test_evolution_recovers_kinetic_energy_and_emits_compilable_c(tmp_path):
    space = OpTreeSpace(OpTreeConfig(), CTX)
    objective = CombinedObjective([FitObjective(FitConfig(), space, CTX), SizeObjective(SizeConfig(), space, CTX)])
    state = evolve(space, objective, SearchSettings(population=200, generations=40, targets={"rmse": 1e-10}), seed=0)
    best = min(state.front, key=lambda ind: ind.evaluation.values)
    assert best.evaluation.values[0] < 1e-10
    exact = space.exact_sympy(best.genome)  # constants snapped, as describe and emit print it
    symbol = {s.name: s for s in exact.free_symbols}
    assert sp.simplify(exact - symbol["m"] * symbol["v"] ** 2 / 2) == 0
    (tmp_path / "f.c").write_text(space.emit(best.genome, "c"))
    subprocess.run(["gcc", "-O3", "-c", str(tmp_path / "f.c"), "-o", str(tmp_path / "f.o")], check=True)
    ns: dict = {}
    exec(space.emit(best.genome, "numpy"), ns)
    assert np.allclose(ns["f"](X[:, 0], X[:, 1]), CTX.dataset.y, rtol=1e-12)


def test_unknown_operator_is_a_user_error():
    with pytest.raises(UserError, match="operators"):
        OpTreeSpace(OpTreeConfig(operators=("add", "tanh")), CTX)
