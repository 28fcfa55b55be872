"""The ULP objective: error units, special-value rules, determinism and the <= 1 ULP constraint."""

import numpy as np
import pytest

from objectives.op_count import OpCountObjective
from objectives.ulp import UlpObjective
from search.protocols import Context, UserError
from spaces.float32.reduction import ulp32, ulp_error
from spaces.float32.space import Float32Space, classic_forms


def test_ulp32_units():
    assert ulp32(np.array([1.0]))[0] == 2.0 ** -23
    assert ulp32(np.array([0.75]))[0] == 2.0 ** -24
    assert ulp32(np.array([-3.0e38]))[0] == 2.0 ** 104
    assert ulp32(np.array([1e-40, 0.0]))[0] == 2.0 ** -149 and ulp32(np.array([0.0]))[0] == 2.0 ** -149


def test_ulp_error_counts_float32_steps_against_the_binary64_value():
    one = np.float32(1.0)
    up = np.nextafter(one, np.float32(2))
    err = ulp_error(np.array([one, up, one], np.float32), np.array([1.0, 1.0, 1.0 + 2.0 ** -24]))
    assert list(err) == [0.0, 1.0, 0.5]


def test_ulp_error_special_values():
    y = np.array([np.inf, np.inf, np.nan, np.nan, 1.0, 0.0], np.float32)
    ref = np.array([1e39, 3.0e38, np.nan, 1.0, np.nan, 0.0])
    err = ulp_error(y, ref)
    assert err[0] == 0.0          # reference overflows float32 too: inf is right
    assert err[1] == np.inf       # reference is finite in float32: inf is wrong
    assert err[2] == 0.0 and err[3] == np.inf and err[4] == np.inf and err[5] == 0.0


def _objective(target="exp", samples=3000, seed=0):
    space = Float32Space(Float32Space.Config(target=target, max_ops=12), Context(seed=seed))
    return space, UlpObjective(UlpObjective.Config(samples=samples), space, Context(seed=seed))


def test_constraint_separates_degree_6_from_degree_3_horner_and_is_deterministic():
    space, objective = _objective()
    forms = {len(f): f for f in classic_forms(space.target, 12)}
    good, bad = objective.evaluate(forms[6]), objective.evaluate(forms[3])
    assert good.feasible and good.values[0] <= 1.0
    assert not bad.feasible and bad.violations[0] == pytest.approx(bad.values[0] - 1.0)
    assert bad.values[0] > 100
    assert objective.evaluate(forms[6]) == good
    assert len(good.extras["constants"]) == 7


def test_garbage_programs_are_capped_not_inf():
    space, objective = _objective()
    prog = (("div", (0, 0)),)             # r / r: NaN at r = 0
    ev = objective.evaluate(prog)
    assert ev.values[0] == objective.config.cap and not ev.feasible


def test_op_count_objective_and_wrong_space():
    space, _ = _objective()
    ops = OpCountObjective(OpCountObjective.Config(), space, Context())
    prog = (("fma", (0, -1, -1)), ("mul", (0, 0)), ("fma", (1, 0, -1)))   # the mul is dead code
    assert ops.evaluate(prog).values == (2.0,)
    with_harness = OpCountObjective(OpCountObjective.Config(include_harness=True), space, Context())
    assert with_harness.evaluate(prog).values == (2.0 + space.target.harness_ops,)
    with pytest.raises(UserError, match="float32"):
        UlpObjective(UlpObjective.Config(), object(), Context())
