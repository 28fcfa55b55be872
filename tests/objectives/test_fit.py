"""The fit and size objectives on formula genomes."""

import math

import numpy as np
import pytest

from objectives.fit import FitConfig, FitObjective
from objectives.size import SizeConfig, SizeObjective
from search.protocols import Context, Dataset, UserError
from spaces.eml.space import EmlConfig, EmlSpace
from spaces.eml.tree import EML, ONE

X = np.array([[0.5], [1.0], [2.0], [4.0]])
DATA = Dataset(X=X, y=np.log(X[:, 0]), variables=("x",), target="y")
CTX = Context(seed=0, dataset=DATA)
SPACE = EmlSpace(EmlConfig(), CTX)
LN = (EML, ONE, EML, EML, ONE, 2, ONE)


def test_exact_tree_scores_zero_rmse_and_r2_one():
    ev = FitObjective(FitConfig(), SPACE, CTX).evaluate(LN)
    assert ev.failed is None and ev.values[0] < 1e-15 and ev.extras["r2"] == pytest.approx(1.0)


def test_metrics_have_their_directions_and_values():
    exp_tree = (EML, 2, ONE)
    pred = np.exp(X[:, 0])
    rmse = math.sqrt(np.mean((pred - DATA.y) ** 2))
    for metric, direction, value in [("rmse", "min", rmse), ("nrmse", "min", rmse / np.std(DATA.y)),
                                     ("r2", "max", 1 - rmse ** 2 / np.var(DATA.y))]:
        obj = FitObjective(FitConfig(metric=metric), SPACE, CTX)
        assert obj.names == (metric,) and obj.directions == (direction,)
        assert obj.evaluate(exp_tree).values[0] == pytest.approx(value, rel=1e-12)


def test_complex_or_infinite_output_scores_failed_not_nan():
    data = Dataset(X=np.array([[-1.0], [2.0]]), y=np.zeros(2), variables=("x",), target="y")
    ctx = Context(dataset=data)
    obj = FitObjective(FitConfig(), EmlSpace(EmlConfig(), ctx), ctx)
    ev = obj.evaluate(LN)                                             # ln(-1) = i*pi
    assert ev.failed is not None and "complex" in ev.failed and ev.values == (math.inf,)
    zero = Dataset(X=np.array([[0.0], [2.0]]), y=np.zeros(2), variables=("x",), target="y")
    ctx = Context(dataset=zero)
    ev = FitObjective(FitConfig(), EmlSpace(EmlConfig(), ctx), ctx).evaluate(LN)   # ln 0 = -inf
    assert ev.failed is not None and "non-finite" in ev.failed


def test_bad_fit_config_is_a_user_error():
    with pytest.raises(UserError, match="metric"):
        FitObjective(FitConfig(metric="mae"), SPACE, CTX)
    with pytest.raises(UserError, match="no data"):
        FitObjective(FitConfig(), SPACE, Context())


def test_size_counts_nodes():
    assert SizeObjective(SizeConfig(), SPACE, CTX).evaluate(LN).values == (7.0,)
