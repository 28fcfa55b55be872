"""EML search: gradient circuits, exact-recovery check, and evolution through the engine."""

import numpy as np
import sympy as sp

from objectives.fit import FitConfig, FitObjective
from objectives.size import SizeConfig, SizeObjective
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve
from search.protocols import Context, Dataset
from spaces.eml.compile import raw_sympy, sympy_symbols
from spaces.eml.gradient import GradientSettings, fit_circuits
from spaces.eml.recovery import check_recovery
from spaces.eml.space import EmlConfig, EmlSpace
from spaces.eml.tree import EML, ONE, evaluate

X = np.random.default_rng(3).uniform(0.5, 3.0, (48, 1))


def test_gradient_method_recovers_a_depth_two_tree():
    target = (EML, 2, EML, 2, 2)                     # exp(x) - ln(exp(x) - ln x)
    y = evaluate(target, X).real
    scored = fit_circuits(X, y, GradientSettings(depth=2, restarts=32, steps=300), seed=0)
    assert scored[0][0] < 1e-10


def test_recovery_check_accepts_equal_and_rejects_close_formulas():
    symbols = sympy_symbols(["x"], [True])
    x = symbols[0]
    ln_tree = (EML, ONE, EML, EML, ONE, 2, ONE)
    assert check_recovery(raw_sympy(ln_tree, symbols), sp.log(x), symbols, X).recovered
    assert not check_recovery(sp.log(x) + 1e-9 * x ** 3, sp.log(x), symbols, X).recovered


def test_evolution_recovers_the_nernst_equation_exactly():
    rng = np.random.default_rng(0)
    data_X = np.column_stack([rng.uniform(0.2, 2.0, 40), rng.uniform(0.05, 20.0, 40)])
    data = Dataset(X=data_X, y=data_X[:, 0] - np.log(data_X[:, 1]), variables=("E0", "Q"), target="E")
    ctx = Context(seed=0, dataset=data)
    space = EmlSpace(EmlConfig(max_depth=4), ctx)
    objective = CombinedObjective([FitObjective(FitConfig(), space, ctx), SizeObjective(SizeConfig(), space, ctx)])
    state = evolve(space, objective, SearchSettings(population=200, generations=200, targets={"rmse": 1e-10}), seed=0)
    best = min(state.front, key=lambda ind: ind.evaluation.values)
    e0, q = sp.symbols("E0 Q", positive=True)
    assert best.evaluation.values[0] < 1e-10
    assert sp.simplify(space.to_sympy(best.genome) - (e0 - sp.log(q))) == 0
