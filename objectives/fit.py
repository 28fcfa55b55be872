"""Data fit of a formula genome: RMSE, normalised RMSE or R^2 against the run's dataset.

Works with any space that has `predict(genome, X) -> array` (real or complex). A prediction that is not finite,
or not real within `imag_tolerance` (|Im| <= tol * max(1, |Re|) at every point), scores as failed with the reason,
never as NaN. R^2 is always kept in the extras (it is what the Feynman comparison reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from search.protocols import Context, Evaluation, Objective, Space, UserError

_METRICS = {"rmse": "min", "nrmse": "min", "r2": "max"}


@dataclass(frozen=True)
class FitConfig:
    """metric: rmse (target units), nrmse (rmse / std(y), unitless) or r2 (coefficient of determination).
    imag_tolerance: relative imaginary part above which a complex-valued output is rejected."""

    metric: str = "rmse"
    imag_tolerance: float = 1e-9


class FitObjective(Objective):
    Config = FitConfig
    names = ("rmse",)
    directions = ("min",)

    def __init__(self, config: FitConfig, space: Space, context: Context):
        super().__init__(config, space, context)
        if config.metric not in _METRICS:
            raise UserError(f"objectives.fit.metric: {config.metric!r} is unknown; use one of {', '.join(_METRICS)}")
        if context.dataset is None:
            raise UserError("objectives.fit: the run has no data; add a [data] table with path and target")
        if not hasattr(space, "predict"):
            raise UserError(f"objectives.fit: space {type(space).__name__} cannot predict values; use a formula space")
        self.names = (config.metric,)
        self.directions = (_METRICS[config.metric],)
        self.X = np.asarray(context.dataset.X, dtype=np.float64)
        self.y = np.asarray(context.dataset.y, dtype=np.float64)
        self.y_var = float(np.var(self.y))

    def scores(self, prediction: np.ndarray) -> tuple[dict[str, float] | None, str | None]:
        """rmse, nrmse and r2 of one prediction vector, or (None, reason) when it is not finite and real."""
        p = np.asarray(prediction)
        if p.shape != self.y.shape:
            p = np.broadcast_to(p, self.y.shape)
        if not np.all(np.isfinite(p)):
            return None, f"non-finite output at {int(np.sum(~np.isfinite(p)))} of {p.size} points"
        if np.iscomplexobj(p):
            im = np.abs(p.imag)
            if np.any(im > self.config.imag_tolerance * np.maximum(1.0, np.abs(p.real))):
                return None, f"complex output (max |Im| {float(im.max()):.3g})"
            p = p.real
        with np.errstate(all="ignore"):
            mse = float(np.mean((p - self.y) ** 2))
        if not math.isfinite(mse):
            return None, "error overflows float64"
        rmse = math.sqrt(mse)
        nrmse = rmse / math.sqrt(self.y_var) if self.y_var > 0 else (0.0 if rmse == 0 else math.inf)
        r2 = 1.0 - mse / self.y_var if self.y_var > 0 else (1.0 if mse == 0 else -math.inf)
        return {"rmse": rmse, "nrmse": nrmse, "r2": r2}, None

    def evaluate(self, genome) -> Evaluation:
        scores, reason = self.scores(self.space.predict(genome, self.X))
        if scores is None:
            return Evaluation.failure(reason, 1, self.directions)
        return Evaluation(values=(scores[self.config.metric],), extras={"r2": scores["r2"]})
