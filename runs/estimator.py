"""`SymbolicRegressor`: evoforge's formula search as a scikit-learn estimator (fit / predict / score).

It runs the same job as `evoforge run` on a spec with objectives `fit` (RMSE) and `size`: the keyword arguments
become a spec table, validated by `runs.spec` like any TOML spec, and the data go to the space in memory instead of
through a CSV. So a fit with `random_state=s` gives the same Pareto front as the CLI on that spec, seed and data.

    from runs import SymbolicRegressor
    model = SymbolicRegressor(generations=30, random_state=0).fit(X, y)     # X: array or DataFrame
    model.predict(X), model.score(X, y), model.sympy(), model.latex()
    model.pareto_front()        # DataFrame (list of dicts without pandas): rank, program, rmse, size, r2
"""

from __future__ import annotations

import hashlib
import keyword
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from search.protocols import Dataset, UserError

SPACES = ("optree", "eml")
SEED_LIMIT = 2**31 - 1
# spec field -> the estimator argument that sets it, so that an error names what the caller wrote
ARGUMENT_OF = {"search.population": "population", "search.generations": "generations",
               "search.max_evaluations": "max_evaluations", "search.wall_time": "max_time",
               "search.targets.rmse": "stop_rmse", "search.tournament": "tournament",
               "search.crossover_prob + search.mutation_prob": "crossover_prob + mutation_prob",
               "search.crossover_prob": "crossover_prob", "search.mutation_prob": "mutation_prob",
               "space.max_depth": "max_depth", "space.operators": "operators", "space.init_depth": "max_depth",
               "backend.timeout": "eval_timeout", "backend.address": "ray_address", "backend.workers": "n_jobs"}


class EstimatorParameterError(UserError, ValueError):
    """A bad estimator argument or call: one line naming the argument (a ValueError, as scikit-learn expects)."""


class SymbolicRegressor(RegressorMixin, BaseEstimator):
    """Symbolic regression by evolutionary search over operator trees ("optree") or EML trees ("eml").

    space: "optree" (+ - * / exp log sin cos sqrt pow with fitted constants) or "eml" (exp(a) - ln(b) trees).
    population / generations: survivors per generation and generations after the first (stopping rules combine:
        the first one met ends the fit). max_evaluations: formulas scored (uncached). max_time: wall seconds.
    stop_rmse: stop once a formula fits this well (RMSE, in units of y). max_depth: tree height limit (None: the
        space's default, 6 for optree, 4 for eml). operators: the optree primitive set (None: all). constants:
        optree formulas may hold fitted real constants (off: faster, formulas over the variables alone).
    tournament, crossover_prob, mutation_prob: the engine's variation settings (search.engine.SearchSettings).
    n_jobs: 1 evaluates in-process; N > 1 on an embedded Ray with N CPUs; -1 all CPUs. ray_address: an existing
        Ray cluster ("host:6379" or "ray://host:10001"); evaluations then run there whatever n_jobs is.
    eval_timeout: seconds per evaluation (None: no limit; a formula that runs longer scores as failed).
    random_state: int seed (the same seed gives the same front), a RandomState, or None for a fresh seed.
    warm_start: a second `fit` on the same data continues the previous search (raise `generations` to go on).
    verbose: print one line per generation.

    Fitted attributes: `front_` (rows: rank, key, program, rmse, size, r2; best RMSE first), `best_program_`,
    `state_` (the engine state, for warm starts), `variables_` (formula variable names), `n_features_in_`,
    `feature_names_in_` (DataFrame input only), `seed_` (the seed used).
    """

    def __init__(self, space: str = "optree", population: int = 200, generations: int = 50,
                 max_evaluations: int | None = None, max_time: float | None = None, stop_rmse: float = 1e-10,
                 max_depth: int | None = None, operators: tuple[str, ...] | None = None, constants: bool = True,
                 tournament: int = 2,
                 crossover_prob: float = 0.5, mutation_prob: float = 0.5, n_jobs: int | None = 1,
                 ray_address: str | None = None, eval_timeout: float | None = None, random_state=None,
                 warm_start: bool = False, verbose: bool = False):
        self.space = space
        self.population = population
        self.generations = generations
        self.max_evaluations = max_evaluations
        self.max_time = max_time
        self.stop_rmse = stop_rmse
        self.max_depth = max_depth
        self.operators = operators
        self.constants = constants
        self.tournament = tournament
        self.crossover_prob = crossover_prob
        self.mutation_prob = mutation_prob
        self.n_jobs = n_jobs
        self.ray_address = ray_address
        self.eval_timeout = eval_timeout
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # --- the spec ----------------------------------------------------------------------------------------------
    def spec_table(self, seed: int | None = None) -> dict[str, Any]:
        """The run spec this estimator executes (TOML-ready: `tomli_w.dumps`); add a [data] table to run it with
        `evoforge run`. seed: None uses `random_state` when it is an int, else 0."""
        if self.space not in SPACES:
            raise EstimatorParameterError(f"space: {self.space!r} is not a formula space; use one of {', '.join(SPACES)}")
        space: dict[str, Any] = {"name": self.space}
        if self.max_depth is not None:
            space["max_depth"] = self.max_depth
        if self.operators is not None:
            if self.space != "optree":
                raise EstimatorParameterError("operators: only the optree space has operators; leave it None for eml")
            space["operators"] = list(self.operators)
        if not self.constants:
            if self.space != "optree":
                raise EstimatorParameterError("constants: only the optree space fits constants; leave it True for eml")
            space["constants"] = False
        search: dict[str, Any] = {"population": self.population, "generations": self.generations,
                                  "tournament": self.tournament, "crossover_prob": self.crossover_prob,
                                  "mutation_prob": self.mutation_prob, "targets": {"rmse": self.stop_rmse}}
        if self.max_evaluations is not None:
            search["max_evaluations"] = self.max_evaluations
        if self.max_time is not None:
            search["wall_time"] = self.max_time
        if seed is None:
            seed = self.random_state if _is_int(self.random_state) else 0
        return {"seed": int(seed), "space": space,
                "objectives": [{"name": "fit", "metric": "rmse"}, {"name": "size"}],
                "search": search, "backend": self._backend_table()}

    def _backend_table(self) -> dict[str, Any]:
        backend: dict[str, Any] = {"timeout": 0.0 if self.eval_timeout is None else self.eval_timeout}
        if self.n_jobs is not None and (not _is_int(self.n_jobs) or self.n_jobs == 0 or self.n_jobs < -1):
            raise EstimatorParameterError(f"n_jobs: expected a positive integer or -1 (all CPUs), got {self.n_jobs!r}")
        workers = (os.cpu_count() or 1) if self.n_jobs == -1 else (self.n_jobs or 1)
        # "generational": one population, each generation's evaluations on Ray, so the front is the in-process
        # one; the CLI's default "auto" may choose islands, a different search
        if self.ray_address:
            backend.update(kind="ray", address=self.ray_address, workers=workers, mode="generational")
        elif workers > 1:
            backend.update(kind="ray", workers=workers, mode="generational")
        else:
            backend["kind"] = "local"
        return backend

    def _seed(self) -> int:
        if _is_int(self.random_state):
            if self.random_state < 0:
                raise EstimatorParameterError(f"random_state: expected a non-negative seed, got {self.random_state}")
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(SEED_LIMIT))

    # --- fitting -----------------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Search for formulas y ~ f(X); X: (n_samples, n_features) array or DataFrame, y: (n_samples,)."""
        from runs.job import build_job, make_evaluator
        from runs.spec import parse_spec
        from search.engine import evolve

        continuing = self.warm_start and hasattr(self, "state_")
        previous = (self.n_features_in_, _names(self)) if continuing else None
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if continuing and (X.shape[1], _names(self)) != previous:
            raise EstimatorParameterError("warm_start: X has other features than the previous fit; fit with "
                                          "warm_start=False to start a new search")
        y = np.asarray(y, dtype=np.float64)
        fingerprint = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
        seed = self.seed_ if continuing else self._seed()
        table = self.spec_table(seed)
        try:
            spec = parse_spec(table, "SymbolicRegressor", Path.cwd())
        except UserError as exc:
            raise _argument_error(exc) from None
        if continuing:
            if fingerprint != self._data_fingerprint:
                raise EstimatorParameterError("warm_start: X and y differ from the previous fit, whose cached "
                                              "scores would be wrong; fit with warm_start=False to start afresh")
            if table["space"] != self._space_table:
                raise EstimatorParameterError("warm_start: space, max_depth or operators changed since the previous "
                                              "fit; fit with warm_start=False to start afresh")
            job, state = self._job, self.state_
        else:
            self.variables_ = formula_variables(getattr(self, "feature_names_in_", None), X.shape[1])
            dataset = Dataset(X=X, y=y, variables=self.variables_, target="y", source="SymbolicRegressor.fit")
            try:
                job, state = build_job(spec, dataset), None
            except UserError as exc:  # a space's or objective's own check of its settings
                raise _argument_error(exc) from None
        with make_evaluator(spec, job.objective) as evaluator:
            state = evolve(job.space, job.objective, spec.search, seed=seed, evaluator=evaluator, state=state,
                           on_generation=self._report if self.verbose else None)
        if not state.front:
            raise EstimatorParameterError("fit: no formula could be evaluated on this data (every one failed); "
                                          "check X and y for extreme values")
        self._job, self._space_table, self._data_fingerprint = job, table["space"], fingerprint
        self.seed_, self.state_ = seed, state
        self.front_ = _rows(state, job)
        self.best_program_ = self.front_[0]["program"]
        return self

    @staticmethod
    def _report(state, report) -> None:
        stats = report.stats
        print(f"generation {stats['generation']}: {stats['evaluations']} evaluations, best rmse "
              f"{stats.get('best_rmse', float('nan')):.6g}, front {stats['front_size']}", flush=True)

    # --- using the fit -----------------------------------------------------------------------------------------
    def predict(self, X, rank: int = 0) -> np.ndarray:
        """Values of front member `rank` (0: the best RMSE) at the rows of X (float64; NaN outside its domain)."""
        check_is_fitted(self, "state_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        genome = self._member(rank).genome
        with np.errstate(all="ignore"):
            values = np.asarray(self._job.space.predict(genome, X))
        if np.iscomplexobj(values):  # EML trees compute in complex128; the fit kept only real-valued ones
            values = values.real
        return np.array(np.broadcast_to(values, (X.shape[0],)), dtype=np.float64)

    def sympy(self, rank: int = 0):
        """Front member `rank` as a sympy expression over `variables_`."""
        check_is_fitted(self, "state_")
        return self._job.space.to_sympy(self._member(rank).genome)

    def latex(self, rank: int = 0) -> str:
        """Front member `rank` as LaTeX."""
        import sympy as sp

        return sp.latex(self.sympy(rank))

    def pareto_front(self, as_frame: bool | None = None):
        """The error-size Pareto front: a pandas DataFrame when pandas is installed (as_frame=None) or asked for
        (True), else a list of dicts. Columns: rank, key, program, rmse (units of y), size (nodes), r2."""
        check_is_fitted(self, "state_")
        rows = [dict(r) for r in self.front_]
        if as_frame is False:
            return rows
        try:
            import pandas as pd
        except ImportError:
            if as_frame:
                raise EstimatorParameterError("as_frame: pandas is not installed; pip install pandas") from None
            return rows
        return pd.DataFrame(rows)

    def _member(self, rank: int):
        front = self.state_.front
        if not _is_int(rank) or not 0 <= rank < len(front):
            raise EstimatorParameterError(f"rank: {rank!r} is out of range; the front has {len(front)} member(s), "
                                          f"ranks 0..{len(front) - 1}")
        return front[rank]



def formula_variables(feature_names, n_features: int) -> tuple[str, ...]:
    """Variable names for the formula: the DataFrame's column names when every one is a usable, distinct name
    (an identifier that is no operator or constant token of the spaces), else x0, x1, ..."""
    from spaces.optree import ARITY, CONST

    reserved = set(ARITY) | {CONST}
    if feature_names is not None:
        names = [str(n) for n in feature_names]
        if all(n.isidentifier() and not keyword.iskeyword(n) and n not in reserved for n in names) \
                and len(set(names)) == len(names):
            return tuple(names)
    return tuple(f"x{i}" for i in range(n_features))


def _rows(state, job) -> list[dict[str, Any]]:
    from search.engine import front_table

    return front_table(state.front, job.objective, job.space.describe)


def _argument_error(exc: UserError) -> EstimatorParameterError:
    """The spec layer's one-line error, renamed from the spec field to the estimator argument it came from."""
    message = str(exc)
    for field, argument in ARGUMENT_OF.items():
        if message.startswith(field + ":"):
            return EstimatorParameterError(argument + message[len(field):])
    return EstimatorParameterError(message)


def _names(estimator) -> tuple[str, ...] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else tuple(str(n) for n in names)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
