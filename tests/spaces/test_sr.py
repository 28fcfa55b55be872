import numpy as np
import pytest

from search.engine import SearchSettings, evolve
from search.protocols import Context, Dataset
from spaces.monomials import monomial_sums, power_law
from spaces.sr import SrConfig, SrSpace

rng = np.random.default_rng(0)
X = rng.uniform(1, 5, (300, 6))


def test_power_law_finds_exponents_in_halves_and_the_constant():
    y = 3.0 * X[:, 0] ** 2 * np.sqrt(X[:, 1]) / X[:, 2]
    fit = power_law(X[:, :3], y)
    assert fit.terms == (((0, 2.0), (1, 0.5), (2, -1.0)),)
    assert fit.coefficients[0] == pytest.approx(3.0, rel=1e-12)
    assert fit.rmse < 1e-12
    assert power_law(X[:, :1], X[:, 0] - 3.0) is None  # y of both signs: no logarithm


def test_monomial_sums_find_a_dot_product():
    y = X[:, 0] * X[:, 3] + X[:, 1] * X[:, 4] + X[:, 2] * X[:, 5]
    best = monomial_sums(X, y)[0]
    assert sorted(best.terms) == [((0, 1.0), (3, 1.0)), ((1, 1.0), (4, 1.0)), ((2, 1.0), (5, 1.0))]
    np.testing.assert_allclose(best.coefficients, [1, 1, 1], rtol=1e-10)
    assert abs(best.intercept) < 1e-10 and best.rmse < 1e-10


def test_sr_seeds_make_the_exact_law_in_the_first_population():
    h, omega = X[:, 0], X[:, 1]
    data = Dataset(X=X[:, :2], y=h * omega / (2 * np.pi), variables=("h", "omega"), target="E")
    space = SrSpace(SrConfig(), Context(seed=0, dataset=data))
    from objectives.fit import FitConfig, FitObjective
    from objectives.size import SizeConfig, SizeObjective
    from search.combined import CombinedObjective

    objective = CombinedObjective([FitObjective(FitConfig(), space, space.context),
                                   SizeObjective(SizeConfig(), space, space.context)])
    state = evolve(space, objective, SearchSettings(population=20, generations=5, targets={"rmse": 1e-10}), seed=0)
    assert state.stop_reason == "target reached" and state.generation == 0
    assert len(state.population) < 20  # an exact seed needs no random trees beside it
    best = min(state.front, key=lambda ind: ind.evaluation.values)
    assert space.describe(best.genome) == "h*omega/(2*pi)"
