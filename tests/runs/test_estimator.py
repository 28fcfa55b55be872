"""`SymbolicRegressor` as scikit-learn sees it: the estimator checks, a Pipeline in cross_val_score, exact recovery
of Feynman laws, the same front as `evoforge run` for the same seed and budget, warm starts and pickling."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import sympy as sp
import tomli_w
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from runs import SymbolicRegressor
from runs.cli import main
from runs.estimator import EstimatorParameterError
from spaces.eml.recovery import check_recovery

# Checks scikit-learn skips by design here: array-API input needs SCIPY_ARRAY_API=1 and an array-API estimator.
SKIPPED_BY_SKLEARN = {"check_array_api_input"}


def _results(estimator, expected_failed=None):
    results = check_estimator(estimator, on_fail=None, on_skip=None, expected_failed_checks=expected_failed)
    by_status = {}
    for r in results:
        by_status.setdefault(r["status"], set()).add(r["check_name"])
    return results, by_status


def test_check_estimator_passes_every_check():
    """Every scikit-learn estimator check (50 in sklearn 1.9) passes at a budget small enough for the suite;
    without constants a 10 x 2 search still reaches R^2 > 0.5 in check_regressors_train (a lone variable does)."""
    results, by_status = _results(SymbolicRegressor(population=10, generations=2, constants=False, random_state=0))
    assert by_status.get("failed", set()) == set()
    assert by_status.get("skipped", set()) <= SKIPPED_BY_SKLEARN
    assert len(by_status["passed"]) >= 45 and "check_estimators_pickle" in by_status["passed"]
    assert {"check_regressors_train", "check_fit_idempotent", "check_n_features_in_after_fitting",
            "check_estimators_dtypes", "check_estimators_nan_inf"} <= by_status["passed"]


@pytest.mark.slow
def test_check_estimator_with_fitted_constants():
    """With fitted constants (the default) every check but one passes at this budget: check_regressors_train wants
    R^2 > 0.5 on 10 noisy features and a 10 x 2 search with constants reaches less; the default budget does."""
    reason = "a 10 x 2 search with constants does not reach R^2 > 0.5 on 10 noisy features"
    results, by_status = _results(SymbolicRegressor(population=10, generations=2, random_state=0),
                                  {"check_regressors_train": reason})
    assert by_status.get("failed", set()) == set()
    assert by_status.get("skipped", set()) <= SKIPPED_BY_SKLEARN
    assert by_status.get("xfail", set()) <= {"check_regressors_train"}


def test_pipeline_with_scaler_in_cross_val_score():
    """The scaler turns y = 2.5 x - 1 into c1 z + c2 over the standardised z: found, constants fitted, in every fold."""
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 5, (60, 1))
    y = 2.5 * X[:, 0] - 1.0
    pipeline = make_pipeline(StandardScaler(), SymbolicRegressor(population=10, generations=10,
                                                                 operators=("add", "sub", "mul"), random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 1 - 1e-12


# (id, law, variables, sampling range): bench/feynman_formulas.py. The default suite runs three that need no
# constant; the slow set adds three whose constants (3/2, 1/(2 pi), 1/(2 pi)) must be fitted to 1e-12.
FEYNMAN = [("I.12.1", "mu*Nn", ("mu", "Nn"), (1, 5)),
           ("I.25.13", "q/C", ("q", "C"), (1, 5)),
           ("I.29.4", "omega/c_light", ("omega", "c_light"), (1, 10)),
           pytest.param("I.39.1", "3*pr*V/2", ("pr", "V"), (1, 5), marks=pytest.mark.slow),
           pytest.param("I.34.27", "h*omega/(2*pi)", ("h", "omega"), (1, 5), marks=pytest.mark.slow),
           pytest.param("III.12.43", "n*h/(2*pi)", ("n", "h"), (1, 5), marks=pytest.mark.slow)]


@pytest.mark.parametrize("law,formula,names,bounds", FEYNMAN)
def test_recovers_feynman_laws_exactly(law, formula, names, bounds):
    """100 noise-free samples as a DataFrame, seed 0: the best formula is the law (sympy proof, or 1e-12 relative
    agreement on 1,000 fresh points, half outside the training box)."""
    symbols = [sp.Symbol(n, positive=True) for n in names]
    target = sp.sympify(formula, locals=dict(zip(names, symbols)))
    X = np.random.default_rng(0).uniform(*bounds, (100, len(names)))
    y = np.asarray(sp.lambdify(symbols, target, "numpy")(*X.T), dtype=float)
    frame = pd.DataFrame(X, columns=names)
    model = SymbolicRegressor(population=100, generations=40, random_state=0).fit(frame, y)
    assert model.variables_ == tuple(names) and list(model.feature_names_in_) == list(names)
    found = model.sympy().subs({sp.Symbol(n, real=True): s for n, s in zip(names, symbols)})
    recovery = check_recovery(found, target, symbols, X, predict=lambda P: model.predict(pd.DataFrame(P, columns=names)))
    assert recovery.recovered, f"{law}: found {found}"
    assert model.state_.stop_reason == "target reached" and model.front_[0]["rmse"] <= 1e-10
    assert model.score(frame, y) == pytest.approx(1.0, abs=1e-12)


SPEC = """
seed = 3
[space]
name = "optree"
[[objectives]]
name = "fit"
metric = "rmse"
[[objectives]]
name = "size"
[data]
path = "data.csv"
target = "y"
[search]
population = 20
generations = 3
targets = {{ rmse = 1e-10 }}
[backend]
kind = "local"
"""


def test_front_matches_the_cli_for_the_same_seed_and_budget(tmp_path):
    """II.38.14, Y / (2 (1 + sigma)), is not found in 3 generations: a front of several members, which must be the
    same rows (programs, RMSE to the last bit, sizes) from Python and from `evoforge run` on a CSV."""
    rng = np.random.default_rng(7)
    X = rng.uniform(1, 5, (40, 2))
    y = X[:, 0] / (2 * (1 + X[:, 1]))
    frame = pd.DataFrame(X, columns=["Y", "sigma"])
    model = SymbolicRegressor(population=20, generations=3, random_state=3).fit(frame, y)
    with open(tmp_path / "data.csv", "w") as handle:  # repr() round-trips float64 exactly
        handle.write("Y,sigma,y\n" + "".join(f"{float(a)!r},{float(b)!r},{float(t)!r}\n" for (a, b), t in zip(X, y)))
    (tmp_path / "spec.toml").write_text(SPEC.format())
    main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "run"), "--quiet"])  # the CLI, in-process
    cli_front = json.loads((tmp_path / "run" / "front.json").read_text())["front"]
    assert len(cli_front) >= 2 and model.state_.stop_reason == "3 generations done"
    assert json.loads(json.dumps(model.front_)) == cli_front
    table = model.pareto_front()
    assert isinstance(table, pd.DataFrame) and list(table["program"]) == [r["program"] for r in cli_front]
    assert model.pareto_front(as_frame=False) == model.front_
    # the estimator's own spec (docs/python.md: add a [data] table and `evoforge run` it) runs the same search
    (tmp_path / "model.toml").write_text(tomli_w.dumps({**model.spec_table(), "data": {"path": "data.csv",
                                                                                       "target": "y"}}))
    main(["run", str(tmp_path / "model.toml"), "--out", str(tmp_path / "run2"), "--quiet"])
    assert json.loads((tmp_path / "run2" / "front.json").read_text())["front"] == cli_front


def test_warm_start_continues_the_same_search_and_survives_pickling():
    """3 generations, pickled and unpickled, then 3 more with warm_start: the same front as 6 in one go."""
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 5, (60, 2))
    y = np.sin(X[:, 0]) * X[:, 1] ** 1.5
    first = SymbolicRegressor(population=20, generations=3, constants=False, warm_start=True, random_state=1)
    first.fit(X, y)
    assert first.state_.generation == 3
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(X), first.predict(X))
    assert restored.sympy() == first.sympy() and restored.latex() == first.latex()
    restored.set_params(generations=6).fit(X, y)
    straight = SymbolicRegressor(population=20, generations=6, constants=False, random_state=1).fit(X, y)
    assert restored.state_.generation == 6 and restored.state_.evaluations == straight.state_.evaluations
    assert restored.front_ == straight.front_
    with pytest.raises(EstimatorParameterError, match="warm_start: X and y differ"):
        restored.fit(X, y + 1.0)


def test_bad_arguments_are_one_line_value_errors():
    X, y = np.ones((5, 1)) * np.arange(5)[:, None], np.arange(5.0)
    cases = [(dict(space="bitstring"), "space: 'bitstring' is not a formula space"),
             (dict(population=0), "^population: must be a positive integer, got 0$"),
             (dict(crossover_prob=1.5), r"^crossover_prob: must be within \[0, 1\], got 1.5$"),
             (dict(max_time=-1.0), "^max_time: must be >= 0 seconds"),
             (dict(n_jobs=0), "n_jobs: expected a positive integer or -1"),
             (dict(operators=("add", "tan")), "^operators: unknown tan"),
             (dict(space="eml", operators=("add",)), "operators: only the optree space")]
    for params, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            SymbolicRegressor(**params).fit(X, y)
        assert "\n" not in str(info.value)
    model = SymbolicRegressor(population=6, generations=1, constants=False, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"rank: 99 is out of range; the front has \d+ member"):
        model.sympy(99)


@pytest.mark.slow
def test_eml_space_and_unusable_column_names():
    """The EML space predicts real values; column names that clash with operator tokens become x0, x1.
    Slow only because spaces.eml imports torch (about 10 s on the shared 2-core machine)."""
    rng = np.random.default_rng(2)
    X = rng.uniform(0.5, 3, (40, 2))
    y = np.exp(X[:, 0]) - np.log(X[:, 1])                       # eml(x0, x1): one node over two leaves
    model = SymbolicRegressor(space="eml", population=30, generations=10, random_state=0)
    frame = pd.DataFrame(X, columns=["exp", "c"])
    model.fit(frame, y)
    assert model.variables_ == ("x0", "x1")
    assert model.predict(frame).dtype == np.float64 and model.score(frame, y) == pytest.approx(1.0, abs=1e-12)
    assert sp.simplify(model.sympy() - (sp.exp(sp.Symbol("x0", positive=True)) - sp.log(sp.Symbol("x1", positive=True)))) == 0


def test_evaluation_and_time_budgets_stop_the_fit():
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 5, (60, 2))
    y = np.sin(X[:, 0]) * X[:, 1] ** 1.5
    counted = SymbolicRegressor(population=20, generations=50, max_evaluations=50, constants=False,
                                random_state=1).fit(X, y)
    assert 50 <= counted.state_.evaluations < 50 + 20      # checked once per generation of 20 children
    assert counted.state_.stop_reason == f"{counted.state_.evaluations} evaluations done (limit 50)"
    timed = SymbolicRegressor(population=20, generations=10**6, max_time=0.5, constants=False,
                              random_state=1).fit(X, y)
    assert timed.state_.stop_reason == "wall time 0.5 s spent" and 0.5 <= timed.state_.elapsed < 5


@pytest.mark.slow
def test_ray_workers_give_the_in_process_front(ray_two_workers):
    """n_jobs=2 evaluates on Ray (here the session's 2-CPU Ray): the same front as in-process."""
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 5, (60, 2))
    y = np.sin(X[:, 0]) * X[:, 1] ** 1.5
    local = SymbolicRegressor(population=20, generations=3, random_state=1).fit(X, y)
    on_ray = SymbolicRegressor(population=20, generations=3, random_state=1, n_jobs=2).fit(X, y)
    assert on_ray.front_ == local.front_ and len(local.front_) >= 2
