"""Measured objectives on Ray actors holding their resources (a fake `timing_core` on the test Ray): where they
run, one at a time per device, and how raising, hanging and stuck measurements are scored."""

import os

import pytest
import timed_objective

from search.hardware import HardwareEvaluator, actor_options, embedded_resources, slots
from search.protocols import Context, UserError
from spaces.bitstring import BitStringSpace


@pytest.fixture(scope="module")
def ray_timing(ray_two_workers):
    ray_two_workers.cloudpickle.register_pickle_by_value(timed_objective)
    return ray_two_workers


def _objective(cls=timed_objective.TimedOnes):
    space = BitStringSpace(BitStringSpace.Config(length=6), Context())
    return cls(cls.Config(), space, Context())


def test_objective_declaring_a_timing_core_runs_on_an_actor_holding_it(ray_timing):
    evaluator = HardwareEvaluator(_objective(), devices=3, timeout=30.0)
    try:
        assert evaluator.workers == 1  # the test cluster has one timing core, so one actor despite devices=3
        placement = evaluator.placements()[0]
        assert placement["assigned"] == {"timing_core": 1.0}
        genomes = [(1, 0, 1, 0, 1, 1), (0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0)]
        results = evaluator.evaluate(genomes)
    finally:
        evaluator.close()
    assert [r.values for r in results] == [(4.0,), (0.0,), (1.0,)]
    assert {r.extras["timing_core"] for r in results} == {1.0}
    assert {r.extras["pid"] for r in results} == {placement["pid"]} != {os.getpid()}


def test_without_timeout_each_actor_takes_one_chunk_through_evaluate_batch(ray_timing):
    evaluator = HardwareEvaluator(_objective(timed_objective.BatchCountingOnes), devices=1, timeout=None)
    try:
        whole = evaluator.evaluate([(1, 0, 1, 0, 0, 0), (1, 0, 1, 1, 0, 0), (1, 0, 0, 0, 0, 1)])
        raising = evaluator.evaluate([(1, 0, 1, 0, 0, 0), (1, 1, 0, 0, 0, 0), (1, 0, 0, 0, 0, 1)])
    finally:
        evaluator.close()
    assert [r.values for r in whole] == [(2.0,), (3.0,), (2.0,)]
    assert [r.extras["batch_size"] for r in whole] == [3, 3, 3]
    # a batch that raises is retried one genome at a time: only the bad genome fails
    assert [r.values for r in raising[::2]] == [(2.0,), (2.0,)] and "batch_size" not in raising[0].extras
    assert raising[1].failed.startswith("ValueError: refusing genomes that start with 11")


def test_raising_hanging_and_stuck_measurements_are_failed_evaluations(ray_timing):
    evaluator = HardwareEvaluator(_objective(), devices=1, timeout=0.5, grace=1.0)
    try:
        genomes = [(1, 1, 0, 0, 0, 0),   # raises
                   (0, 1, 1, 0, 0, 0),   # sleeps: the alarm inside the actor stops it
                   (0, 0, 1, 0, 0, 0),   # blocks the alarm and sleeps: the actor is killed
                   (1, 0, 1, 1, 1, 1)]   # fine, on the replacement actor
        results = evaluator.evaluate(genomes)
    finally:
        evaluator.close()
    assert results[0].failed.startswith("ValueError: refusing genomes that start with 11")
    assert results[1].failed.startswith("timeout")
    assert results[2].failed.startswith("timeout")
    assert results[3].failed is None and results[3].values == (5.0,)


def test_missing_resource_is_one_line_user_error(ray_timing):
    with pytest.raises(UserError, match=r"needs \{'fpga': 1.0\} but the Ray cluster has \{'fpga': 0\}") as err:
        HardwareEvaluator(_objective(timed_objective.NeedsFpga))
    assert "\n" not in str(err.value)


def test_actor_options_and_slots():
    assert actor_options({"num_gpus": 1}) == {"num_cpus": 0.0, "num_gpus": 1.0}
    assert actor_options({"resources": {"timing_core": 1}}) == {"num_cpus": 0.0, "resources": {"timing_core": 1.0}}
    assert slots({"CPU": 16.0, "GPU": 8.0}, {"GPU": 1.0}) == 8
    assert slots({"CPU": 16.0, "GPU": 8.0}, {"GPU": 0.5, "CPU": 4.0}) == 4
    assert embedded_resources({"num_cpus": 1, "resources": {"timing_core": 1}}, workers=2, devices=2) == (
        4, {"timing_core": 2.0})
    assert embedded_resources({"num_gpus": 1}, workers=2, devices=8) == (2, {})
    with pytest.raises(UserError, match="unknown key 'gpus'"):
        actor_options({"gpus": 1})


@pytest.mark.gpu
def test_objective_declaring_a_gpu_runs_on_an_actor_holding_one(ray_timing):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    evaluator = HardwareEvaluator(_objective(timed_objective.GpuProbe), devices=1, timeout=120.0)
    try:
        assert evaluator.placements()[0]["assigned"].get("GPU") == 1.0
        results = evaluator.evaluate([(1, 0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1)])
    finally:
        evaluator.close()
    assert [r.values for r in results] == [(2.0,), (1.0,)]
    assert all(len(r.extras["gpu_ids"]) == 1 and r.extras["kernel_sum"] == 1024.0 for r in results)
