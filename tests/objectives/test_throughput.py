"""Measured throughput of compiled float32 programs: the timed code is the verified program, and the op-count
proxy's features are what calibration refits."""

import numpy as np
import pytest

from objectives.op_count import OpCountObjective
from objectives.throughput import Throughput
from search.protocols import Context, UserError
from spaces.float32.space import Float32Space, classic_forms

HORNER5 = (("fma", (0, -1, -1)), ("fma", (1, 0, -1)), ("fma", (2, 0, -1)), ("fma", (3, 0, -1)), ("fma", (4, 0, -1)))


@pytest.fixture(scope="module")
def space():
    return Float32Space(Float32Space.Config(target="exp"), Context())


def test_compiled_program_computes_exactly_what_the_space_simulates(space):
    objective = Throughput(Throughput.Config(elements=4096), space, Context(seed=3))
    out, seconds = objective.run(HORNER5, timed=False)
    assert seconds is None
    fit = space.fit(HORNER5)
    expected = space.target.evaluate(space.canonical(HORNER5), fit.constants, objective.inputs.astype(np.float64))
    np.testing.assert_array_equal(out.view(np.uint32), np.asarray(expected, np.float32).view(np.uint32))


def test_throughput_is_a_median_over_the_configured_repeats(space):
    objective = Throughput(Throughput.Config(elements=2048, calls=2, warmup=1, repeats=5), space, Context())
    ev = objective.evaluate(HORNER5)
    assert ev.failed is None and 0.01 < ev.values[0] < 1000.0       # ns per element, any sane CPU
    assert ev.extras["ns_per_element_repeats"] == 5 and ev.extras["ns_per_element_iqr"] >= 0.0
    assert Throughput.resources == {"num_cpus": 1, "resources": {"timing_core": 1}}


def test_op_count_features_split_the_count_by_operation(space):
    ops = OpCountObjective(OpCountObjective.Config(), space, Context())
    program = classic_forms(space.target, 12)[2] + (("div", (4, -1)),)
    features = ops.cost_features(program)
    assert features == {"add": 0.0, "sub": 0.0, "mul": 0.0, "div": 1.0, "fma": 4.0, "harness": 9.0}
    assert sum(features[k] for k in ("add", "sub", "mul", "div", "fma")) == ops.evaluate(program).values[0]


def test_bad_settings_are_one_line_errors(space):
    with pytest.raises(UserError, match="objectives.throughput.compiler: 'no-such-cc' not found on PATH"):
        Throughput(Throughput.Config(compiler="no-such-cc"), space, Context())
    with pytest.raises(UserError, match="objectives.throughput.repeats: must be a positive integer, got 0"):
        Throughput(Throughput.Config(repeats=0), space, Context())


def test_at_budget_keeps_the_measurement_with_fewer_repeats(space):
    objective = Throughput(Throughput.Config(repeats=9), space, Context(seed=5))
    reduced = objective.at_budget(1 / 3)
    assert reduced.config.repeats == 3 and objective.at_budget(0.01).config.repeats == 1
    np.testing.assert_array_equal(reduced.inputs, objective.inputs)
