"""The calibrated megakernel proxy's round-trip feature counts each op's own loads in flight."""

from dataclasses import replace

import pytest

from objectives.makespan import Makespan, _in_flight
from search.protocols import Context
from spaces.megakernel.stream import KernelGenes
from spaces.megakernel.stream_space import StreamKernelSpace


@pytest.fixture(scope="module")
def proxy():
    space = StreamKernelSpace(StreamKernelSpace.Config(model_config="toy", kv_length=256, sms=16,
                                                       dtype="float32"), Context())
    return Makespan(Makespan.Config(), space, Context())


def test_down_early_keeps_twice_the_down_loads_in_flight():
    g = KernelGenes(warps=8, unroll=2, fuse_mlp=1)
    lanes = 8 * 32 * 16
    # two thirds of the bytes at 2 loads per matrix (gate and up), one third at 2 (off) or 4 (down_early)
    assert _in_flight("norm_gate_up_down", g) == pytest.approx(1 / (2 / 3 / (lanes * 4) + 1 / 3 / (lanes * 2)))
    assert _in_flight("norm_gate_up_down", replace(g, down_early=1)) == \
        pytest.approx(1 / (2 / 3 / (lanes * 4) + 1 / 3 / (lanes * 4)))
    assert _in_flight("combine_group_matvec_acc", g) == lanes * 8
    assert _in_flight("norm_acc_matvec", replace(g, rows=2)) == lanes * 2 * 2


def test_rows_halve_the_row_gemvs_trips_but_not_the_fused_mlps(proxy):
    g = KernelGenes(warps=8, unroll=4, fuse_mlp=1, split_o=1)
    s = proxy.space.schedule(g)
    by_op = {}
    for t in s.tasks:
        by_op[t.op] = by_op.get(t.op, 0) + dict(t.params).get("bytes", 0)
    lanes = 8 * 32 * 16
    row_gemv = sum(b for op, b in by_op.items() if op not in ("norm_gate_up_down", "combine_group_matvec_acc"))
    one, two = proxy.cost_features(g)["round_trips"], proxy.cost_features(replace(g, rows=2))["round_trips"]
    # rows 2 doubles only the row gemvs' loads in flight: the saving is half their trips
    assert one - two == pytest.approx(row_gemv / (lanes * 4) / 2 / s.workers)
    assert two > 0 and one > two
