"""Multi-fidelity evaluation: a cheap stage on every child, an expensive measured stage only on promising ones.

The engine sees one `StagedObjective` whose names are the cheap stage's then the measured stage's, plus one
constraint, `measured`: a child the promotion rule did not send to the measured stage keeps its cheap values,
gets the worst measured values and violation 1 on `measured`, so it ranks below every measured child and never
enters the front, but above children that fail the cheap stage's own constraints (a pre-filter: those are never
measured). A failed or timed-out measurement is a failed evaluation, as everywhere else.

Promotion rules (`Promotion.rule`), applied to the cheap-feasible children of one generation:
- "all": every one is measured (the cheap stage is then only a pre-filter);
- "top_fraction": the best `fraction` of them by the cheap stage's ranking (at least one);
- "front": those that could enter the measured Pareto front: their measured values are predicted from their cheap
  values by least squares over every measurement made so far, made `margin` (a fraction) more optimistic for
  proxy error, and the child is measured unless that prediction is dominated by a front member. Until
  `min_history` children have been measured, every one is;
- "halving": successive halving over `rungs` rungs: every one is measured at 1/eta^(rungs-1) of the full effort,
  the best 1/eta (by that measurement) go on to eta times the effort, and so on; the last rung's survivors are
  measured in full and are the promoted ones. Needs a measured objective with `at_budget(fraction)` (the same
  measurement at a fraction of its effort: fewer timing repeats, fewer distillation steps).

The measured-stage evaluator evaluates `AtBudget(measured)`: genomes arrive as (budget, genome) pairs, so any
backend can run a measurement at any budget.

The cheap stage is deterministic; which children the "front" rule promotes depends on earlier measurements, so a
staged run is reproducible only within timing noise ("all" and "top_fraction" promote the same children).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from search.evaluation import Evaluator, normalise
from search.protocols import Evaluation, Objective, UserError
from search.selection import Individual, rank_order, weights_for

RULES = ("all", "top_fraction", "front", "halving")
MEASURED = "measured"


@dataclass(frozen=True)
class Promotion:
    """rule: one of RULES. fraction: share of cheap-feasible children measured by "top_fraction", in (0, 1].
    margin: optimism of "front" predictions, as a fraction of the predicted value. min_history: measurements
    before "front" starts filtering. eta, rungs: "halving" keeps the best 1/eta per rung, over `rungs` rungs."""

    rule: str = "front"
    fraction: float = 0.25
    margin: float = 0.1
    min_history: int = 8
    eta: int = 3
    rungs: int = 2

    def __post_init__(self):
        if self.rule not in RULES:
            raise UserError(f"stages.promote: unknown rule {self.rule!r}; allowed: {', '.join(RULES)}")
        if not 0.0 < self.fraction <= 1.0:
            raise UserError(f"stages.fraction: must be within (0, 1], got {self.fraction}")
        if self.margin < 0:
            raise UserError(f"stages.margin: must be >= 0, got {self.margin}")
        if self.min_history < 1:
            raise UserError(f"stages.min_history: must be a positive integer, got {self.min_history}")
        if self.eta < 2 or self.rungs < 2:
            raise UserError(f"stages.eta, stages.rungs: both must be >= 2, got {self.eta}, {self.rungs}")


class StagedObjective(Objective):
    """Cheap objective then measured objective, scored as one; `evaluate` runs both (full fidelity)."""

    @dataclass(frozen=True)
    class Config:
        """Built from its two stages, never from a spec table."""

    def __init__(self, cheap: Objective, measured: Objective):
        super().__init__(self.Config(), cheap.space, cheap.context)
        self.cheap, self.measured = cheap, measured
        self.names = cheap.names + measured.names
        self.directions = cheap.directions + measured.directions
        self.constraints = cheap.constraints + measured.constraints + (MEASURED,)

    def evaluate(self, genome: Any) -> Evaluation:
        cheap = normalise(self.cheap.evaluate(genome), self.cheap)
        if cheap.failed is not None:
            return self.combine(cheap, None)
        return self.combine(cheap, normalise(self.measured.evaluate(genome), self.measured))

    def combine(self, cheap: Evaluation, measured: Evaluation | None) -> Evaluation:
        """One evaluation from the two stages; `measured` None means the child was not promoted."""
        if cheap.failed is not None:
            return Evaluation.failure(f"cheap stage: {cheap.failed}", len(self.names), self.directions)
        if measured is None:
            worst = tuple(math.inf if d == "min" else -math.inf for d in self.measured.directions)
            return Evaluation(values=cheap.values + worst,
                              violations=cheap.violations + (0.0,) * len(self.measured.constraints) + (1.0,),
                              extras=cheap.extras)
        if measured.failed is not None:
            return Evaluation.failure(f"measured stage: {measured.failed}", len(self.names), self.directions)
        return Evaluation(values=cheap.values + measured.values,
                          violations=cheap.violations + measured.violations + (0.0,),
                          extras={**cheap.extras, **measured.extras})

    def split(self, evaluation: Evaluation) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(cheap values, measured values) of a combined evaluation."""
        k = len(self.cheap.names)
        return evaluation.values[:k], evaluation.values[k:]

    @staticmethod
    def was_measured(evaluation: Evaluation) -> bool:
        return evaluation.failed is None and evaluation.violations[-1] == 0.0


class AtBudget(Objective):
    """A measured objective whose genomes are (budget, genome) pairs: budget 1 is the full measurement, a smaller
    fraction runs `measured.at_budget(budget)` (successive halving's cheaper rungs)."""

    @dataclass(frozen=True)
    class Config:
        """Built from the measured objective, never from a spec table."""

    def __init__(self, measured: Objective):
        super().__init__(self.Config(), measured.space, measured.context)
        self.measured = measured
        self.names, self.directions, self.constraints = measured.names, measured.directions, measured.constraints
        self.resources = measured.resources
        self._reduced: dict[float, Objective] = {}

    def evaluate(self, pair: tuple[float, Any]) -> Evaluation | Sequence[float]:
        budget, genome = pair
        if budget >= 1.0:
            return self.measured.evaluate(genome)
        if budget not in self._reduced:
            self._reduced[budget] = self.measured.at_budget(budget)
        return self._reduced[budget].evaluate(genome)

    def evaluate_batch(self, pairs: Sequence[tuple[float, Any]]) -> list[Evaluation | Sequence[float]]:
        """The measured objective's own batch path, when every pair is at one budget (a rung, or the full stage)."""
        budgets = {budget for budget, _ in pairs}
        if len(budgets) != 1:
            return [self.evaluate(pair) for pair in pairs]
        budget = budgets.pop()
        if budget < 1.0 and budget not in self._reduced:
            self._reduced[budget] = self.measured.at_budget(budget)
        target = self.measured if budget >= 1.0 else self._reduced[budget]
        return target.evaluate_batch([genome for _, genome in pairs])


def _dominates(a: Sequence[float], b: Sequence[float], weights: Sequence[float]) -> bool:
    """a is at least as good as b everywhere and better somewhere (weights: +1 maximise, -1 minimise)."""
    pairs = [(x * w, y * w) for x, y, w in zip(a, b, weights)]
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


class StagedEvaluator(Evaluator):
    """Runs the cheap stage on `cheap` (any backend) for every genome, then the measured stage on `measured` (an
    evaluator of `AtBudget(objective.measured)`, usually a `HardwareEvaluator`) for the promoted ones. Keeps the
    run's measurements: `history` holds (genome, cheap values, measured values) of every successful full
    measurement, in order (calibration reads it)."""

    def __init__(self, objective: StagedObjective, cheap: Evaluator, measured: Evaluator, promotion: Promotion):
        if promotion.rule == "halving" and not hasattr(objective.measured, "at_budget"):
            raise UserError(f"stages.promote: 'halving' needs a measured objective with at_budget (throughput, "
                            f"latency); {'/'.join(objective.measured.names)} has none: use front or top_fraction")
        self.objective = objective
        self.cheap, self.measured = cheap, measured
        self.promotion = promotion
        self.workers = cheap.workers
        self.history: list[tuple[Any, tuple[float, ...], tuple[float, ...]]] = []
        self.promoted: list[tuple[int, int]] = []  # per call: (cheap-feasible children, promoted children)

    def evaluate(self, genomes: Sequence[Any]) -> list[Evaluation]:
        cheap = self.cheap.evaluate(genomes)
        chosen = self.promote(cheap)
        if self.promotion.rule == "halving":
            chosen = self._halving(genomes, chosen)
        self.promoted.append((sum(ev.feasible for ev in cheap), len(chosen)))
        measured = dict(zip(chosen, self._measure(genomes, chosen, 1.0))) if chosen else {}
        results = [self.objective.combine(ev, measured.get(i)) for i, ev in enumerate(cheap)]
        for i in chosen:
            if results[i].failed is None:
                self.history.append((genomes[i], cheap[i].values, measured[i].values))
        return results

    def restore(self, evaluations: Iterable[tuple[Any, Evaluation]]) -> None:
        """Rebuild `history` from a resumed run's cached (genome, evaluation) pairs, in their original order."""
        for genome, ev in evaluations:
            if self.objective.was_measured(ev):
                self.history.append((genome, *self.objective.split(ev)))

    def _measure(self, genomes: Sequence[Any], indices: Sequence[int], budget: float) -> list[Evaluation]:
        return self.measured.evaluate([(budget, genomes[i]) for i in indices])

    def _halving(self, genomes: Sequence[Any], candidates: list[int]) -> list[int]:
        """Successive halving: the survivors of rungs at budgets eta^-(rungs-1), ..., eta^-1 (ascending indices)."""
        eta, rungs = self.promotion.eta, self.promotion.rungs
        survivors = candidates
        for rung in range(rungs - 1):
            if len(survivors) <= 1:
                break
            evaluations = self._measure(genomes, survivors, float(eta) ** -(rungs - 1 - rung))
            ok = [(i, ev) for i, ev in zip(survivors, evaluations) if ev.failed is None]
            order = rank_order([Individual(None, ev, i) for i, ev in ok], self.objective.measured.directions)
            keep = max(1, math.ceil(len(survivors) / eta))
            survivors = sorted(ok[j][0] for j in order[:keep])
        return survivors

    # --- promotion ---------------------------------------------------------------------------------------------
    def promote(self, cheap: Sequence[Evaluation]) -> list[int]:
        """Indices (ascending) of the children to measure."""
        feasible = [i for i, ev in enumerate(cheap) if ev.feasible]
        rule = self.promotion.rule
        if rule in ("all", "halving") or not feasible:
            return feasible
        if rule == "top_fraction":
            population = [Individual(None, cheap[i], i) for i in feasible]
            order = rank_order(population, self.objective.cheap.directions)
            keep = max(1, math.ceil(self.promotion.fraction * len(feasible)))
            return sorted(feasible[j] for j in order[:keep])
        if len(self.history) < self.promotion.min_history:
            return feasible
        predicted = self._predict(np.asarray([cheap[i].values for i in feasible], dtype=float))
        front = self._measured_front()
        weights = weights_for(self.objective.directions)
        chosen = []
        for i, guess in zip(feasible, predicted):
            candidate = tuple(cheap[i].values) + tuple(guess)
            if not any(_dominates(member, candidate, weights) for member in front):
                chosen.append(i)
        return chosen

    def _predict(self, cheap_values: np.ndarray) -> np.ndarray:
        """Measured values predicted from cheap values (least squares, with an intercept), made `margin` more
        optimistic in each measured objective's direction."""
        x = np.asarray([h[1] for h in self.history], dtype=float)
        y = np.asarray([h[2] for h in self.history], dtype=float)
        design = np.column_stack([x, np.ones(len(x))])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        guess = np.column_stack([cheap_values, np.ones(len(cheap_values))]) @ coef
        sign = np.asarray([-1.0 if d == "min" else 1.0 for d in self.objective.measured.directions])
        return guess + sign * self.promotion.margin * np.abs(guess)

    def _measured_front(self) -> list[tuple[float, ...]]:
        """Non-dominated full objective vectors (cheap + measured) among the measurements so far."""
        weights = weights_for(self.objective.directions)
        points = [tuple(c) + tuple(m) for _, c, m in self.history if all(math.isfinite(v) for v in m)]
        return [p for p in points if not any(_dominates(q, p, weights) for q in points)]

    # --- end of run --------------------------------------------------------------------------------------------
    def remeasure(self, front: Sequence[Individual]) -> list[Individual]:
        """Measure the front again (timing noise: a lucky first sample should not decide the result). The search's
        values stay; the new median and spread go into extras as `remeasured_NAME` and `remeasured_*` copies."""
        measured = [ind for ind in front if self.objective.was_measured(ind.evaluation)]
        again = dict(zip((id(ind) for ind in measured),
                         self.measured.evaluate([(1.0, ind.genome) for ind in measured])))
        out = []
        for ind in front:
            ev = again.get(id(ind))
            if ev is None:
                out.append(ind)
                continue
            extras = dict(ind.evaluation.extras)
            if ev.failed is not None:
                extras["remeasure_failed"] = ev.failed
            else:
                extras.update({f"remeasured_{n}": v for n, v in zip(self.objective.measured.names, ev.values)})
                extras.update({f"remeasured_{k}": v for k, v in ev.extras.items()})
            out.append(replace(ind, evaluation=replace(ind.evaluation, extras=extras)))
        return out

    def close(self) -> None:
        self.cheap.close()
        self.measured.close()
