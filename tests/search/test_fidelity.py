"""Two-stage evaluation: which children reach the measured stage under each promotion rule, and how unpromoted,
pre-filtered and failed measurements are scored (in-process, exact counts)."""

from dataclasses import dataclass

import pytest

from objectives.bit_problems import OneMax
from search.engine import SearchSettings, evolve
from search.evaluation import LocalEvaluator
from search.fidelity import AtBudget, Promotion, StagedEvaluator, StagedObjective
from search.protocols import Context, Evaluation, Objective, UserError
from spaces.bitstring import BitStringSpace


class CappedOnes(Objective):
    """Cheap stage: ones (max), with the constraint ones <= cap (a pre-filter)."""

    @dataclass(frozen=True)
    class Config:
        cap: int = 99

    names = ("ones",)
    directions = ("max",)
    constraints = ("cap",)

    def evaluate(self, genome):
        ones = sum(genome)
        return Evaluation(values=(float(ones),), violations=(float(max(0, ones - self.config.cap)),))


class CountedZeros(Objective):
    """Measured stage: zeros (min); records every genome it measured; raises on all-zero genomes."""

    @dataclass(frozen=True)
    class Config:
        pass

    names = ("zeros",)
    directions = ("min",)

    def __init__(self, config, space, context, budget=1.0, calls=None):
        super().__init__(config, space, context)
        self.budget = budget
        self.calls = [] if calls is None else calls
        self.budgets = {}

    def at_budget(self, fraction):
        """Same measurement at `fraction` of the effort; a cheap rung ranks by zeros of the first 3 bits only."""
        reduced = CountedZeros(self.config, self.space, self.context, budget=fraction, calls=self.calls)
        reduced.budgets = self.budgets
        return reduced

    def evaluate(self, genome):
        self.calls.append(tuple(genome))
        self.budgets.setdefault(self.budget, []).append(tuple(genome))
        if sum(genome) == 0:
            raise RuntimeError("device fault")
        bits = genome if self.budget >= 1 else genome[:3]
        return Evaluation(values=(float(len(bits) - sum(bits)),), extras={"zeros_iqr": 0.5})


def _staged(rule, cap=99, **kw):
    space = BitStringSpace(BitStringSpace.Config(length=8), Context())
    cheap = CappedOnes(CappedOnes.Config(cap=cap), space, Context())
    measured = CountedZeros(CountedZeros.Config(), space, Context())
    objective = StagedObjective(cheap, measured)
    # a timeout makes the backend call evaluate once per genome (no batch-then-retry after a raise)
    evaluator = StagedEvaluator(objective, LocalEvaluator(cheap), LocalEvaluator(AtBudget(measured), timeout=30.0),
                                Promotion(rule, **kw))
    return space, objective, measured, evaluator


def _bits(ones: int, length: int = 8) -> tuple[int, ...]:
    return (1,) * ones + (0,) * (length - ones)


def test_top_fraction_measures_only_the_best_quarter_by_the_cheap_stage():
    _, objective, measured, evaluator = _staged("top_fraction", fraction=0.25)
    genomes = [_bits(k % 8 + 1) for k in range(16)]          # ones = 1..8, twice each
    results = evaluator.evaluate(genomes)
    assert sorted(sum(g) for g in measured.calls) == [7, 7, 8, 8]   # ceil(0.25 * 16) = 4, the four best
    assert evaluator.promoted == [(16, 4)]
    for g, r in zip(genomes, results):
        assert objective.was_measured(r) == (sum(g) >= 7)
        if sum(g) < 7:
            assert r.values[1] == float("inf") and r.violations == (0.0, 1.0) and not r.feasible
    assert objective.names == ("ones", "zeros") and objective.constraints == ("cap", "measured")


def test_cheap_constraint_is_a_prefilter_and_failed_measurements_fail():
    _, objective, measured, evaluator = _staged("all", cap=5)
    genomes = [_bits(0), _bits(3), _bits(5), _bits(6), _bits(8)]
    results = evaluator.evaluate(genomes)
    assert measured.calls == [_bits(0), _bits(3), _bits(5)]          # ones > 5 never reach the measured stage
    assert results[0].failed.startswith("measured stage: RuntimeError: device fault")
    assert results[1].values == (3.0, 5.0) and results[1].feasible and results[1].extras == {"zeros_iqr": 0.5}
    assert results[3].violations == (1.0, 1.0) and results[4].violations == (3.0, 1.0)
    assert [h[2] for h in evaluator.history] == [(5.0,), (3.0,)]     # successful measurements only, in order


def test_front_rule_measures_only_children_whose_predicted_score_could_enter_the_front():
    _, objective, measured, evaluator = _staged("front", min_history=3, margin=0.1)
    evaluator.evaluate([_bits(2), _bits(4), _bits(6)])               # history: zeros = 8 - ones exactly
    assert len(measured.calls) == 3
    measured.calls.clear()
    evaluator.evaluate([_bits(5), _bits(6), _bits(7), _bits(3)])
    # front so far: (6 ones, 2 zeros). Predicted zeros 3, 2, 1, 5 made 10% optimistic: 2.7, 1.8, 0.9, 4.5;
    # (5, 2.7) and (3, 4.5) are dominated by (6, 2); (6, 1.8) and (7, 0.9) are not.
    assert measured.calls == [_bits(6), _bits(7)]


def test_staged_search_front_holds_only_measured_members():
    space, objective, measured, evaluator = _staged("top_fraction", fraction=0.5)
    state = evolve(space, objective, SearchSettings(population=10, generations=4), seed=3, evaluator=evaluator)
    assert state.front and all(objective.was_measured(ind.evaluation) for ind in state.front)
    cheap_feasible = sum(f for f, _ in evaluator.promoted)
    assert sum(p for _, p in evaluator.promoted) == len(measured.calls) < cheap_feasible
    again = evaluator.remeasure(state.front)
    assert [ind.evaluation.values for ind in again] == [ind.evaluation.values for ind in state.front]
    assert all(ind.evaluation.extras["remeasured_zeros"] == ind.evaluation.values[1] for ind in again)
    assert all(ind.evaluation.extras["remeasured_zeros_iqr"] == 0.5 for ind in again)


def test_halving_measures_everyone_cheaply_then_the_best_third_in_full():
    _, objective, measured, evaluator = _staged("halving", eta=3, rungs=2)
    # 9 cheap-feasible children; at budget 1/3 they rank by zeros among their first 3 bits
    genomes = [(1, 0, 0, 1, 1, 1, 1, 1), (1, 1, 1, 0, 0, 0, 0, 0), (0, 0, 1, 1, 1, 1, 1, 1),
               (1, 1, 0, 1, 1, 1, 1, 1), (1, 1, 1, 1, 1, 1, 1, 0), (0, 1, 0, 1, 0, 1, 0, 1),
               (1, 0, 1, 0, 0, 0, 0, 1), (0, 0, 0, 1, 1, 1, 1, 1), (1, 1, 1, 1, 0, 0, 0, 0)]
    results = evaluator.evaluate(genomes)
    assert measured.budgets[1 / 3] == genomes                        # rung 0: all nine at a third of the effort
    assert measured.budgets[1.0] == [genomes[1], genomes[4], genomes[8]]   # the three with 111 up front
    assert [i for i, r in enumerate(results) if objective.was_measured(r)] == [1, 4, 8]
    assert [results[i].values[1] for i in (1, 4, 8)] == [5.0, 1.0, 4.0]     # full-budget values, all 8 bits
    assert evaluator.promoted == [(9, 3)] and len(evaluator.history) == 3


def test_halving_needs_a_measured_objective_with_a_budget():
    space = BitStringSpace(BitStringSpace.Config(length=8), Context())
    cheap, measured = CappedOnes(CappedOnes.Config(), space, Context()), OneMax(OneMax.Config(), space, Context())
    with pytest.raises(UserError, match="stages.promote: 'halving' needs a measured objective with at_budget"):
        StagedEvaluator(StagedObjective(cheap, measured), LocalEvaluator(cheap), LocalEvaluator(AtBudget(measured)),
                        Promotion("halving"))


def test_promotion_settings_are_checked():
    with pytest.raises(UserError, match=r"stages.eta, stages.rungs: both must be >= 2, got 1, 2"):
        Promotion("halving", eta=1)
    with pytest.raises(UserError, match=r"stages.promote: unknown rule 'best'; allowed: all, top_fraction, front"):
        Promotion("best")
    with pytest.raises(UserError, match=r"stages.fraction: must be within \(0, 1\], got 1.5"):
        Promotion("top_fraction", fraction=1.5)


def test_restore_rebuilds_the_measurement_history_of_a_resumed_run():
    _, objective, _, first = _staged("all", cap=5)
    results = first.evaluate([_bits(2), _bits(7), _bits(4)])          # 7 ones fails the cap: not measured
    _, _, _, resumed = _staged("all", cap=5)
    resumed.restore((None, ev) for ev in results)
    assert [(c, m) for _, c, m in resumed.history] == [((2.0,), (6.0,)), ((4.0,), (4.0,))]


def test_at_budget_keeps_the_measured_objectives_batch_path():
    _, _, measured, _ = _staged("all")
    batches = []
    measured.evaluate_batch = lambda genomes: batches.append(len(genomes)) or [measured.evaluate(g) for g in genomes]
    wrapped = AtBudget(measured)
    out = wrapped.evaluate_batch([(1.0, _bits(3)), (1.0, _bits(5))])
    assert batches == [2] and [ev.values for ev in out] == [(5.0,), (3.0,)]
    mixed = wrapped.evaluate_batch([(1.0, _bits(3)), (0.5, _bits(5))])   # two budgets: one pair at a time
    assert batches == [2] and [ev.values for ev in mixed] == [(5.0,), (0.0,)]
