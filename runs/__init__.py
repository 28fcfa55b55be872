"""The job layer: specs, run directories, the CLI, and evoforge from Python.

    from runs import api                    # run / resume / read_front / emit / presets (runs/api.py)
    from runs import SymbolicRegressor      # the scikit-learn estimator (runs/estimator.py)

`SymbolicRegressor` is imported on first use, so the CLI does not pay for scikit-learn.
"""

__all__ = ["SymbolicRegressor", "api"]


def __getattr__(name: str):
    if name == "SymbolicRegressor":
        from runs.estimator import SymbolicRegressor

        return SymbolicRegressor
    if name == "api":
        import runs.api

        return runs.api
    raise AttributeError(f"module 'runs' has no attribute {name!r}")
