"""Measured CPU latency of student shapes, and the GFLOPs proxy's features that calibration refits."""

import pytest
import torch

from objectives.gflops import GFlops
from objectives.latency import Latency
from search.protocols import Context, UserError
from spaces.architecture.shapes import Shape, TransformerShapeSpace
from spaces.bitstring import BitStringSpace


@pytest.fixture(scope="module")
def space():
    return TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=32), Context())


def test_latency_is_a_median_at_one_thread_and_threads_are_restored(space):
    objective = Latency(Latency.Config(warmup=1, repeats=3), space, Context())
    before = torch.get_num_threads()
    ev = objective.evaluate(Shape(layers=1, hidden=64, heads=2, intermediate=128, vocab=1000, positions=64))
    assert ev.failed is None and 0.0 < ev.values[0] < 5000.0             # ms
    assert ev.extras["latency_ms_repeats"] == 3 and ev.extras["latency_ms_iqr"] >= 0.0
    assert torch.get_num_threads() == before
    assert objective.seq_length == 32


def test_gflops_features_add_up_to_gflops(space):
    proxy = GFlops(GFlops.Config(), space, Context())
    shape = Shape(layers=3, hidden=128, heads=4, intermediate=512, vocab=2000, positions=64)
    f = proxy.cost_features(shape)
    assert f["matmul_gflops"] + f["attention_gflops"] == pytest.approx(proxy.evaluate(shape).values[0], rel=1e-12)
    assert f["attention_gflops"] == pytest.approx(3 * 4 * 32 * 32 * 128 / 1e9)
    assert f["softmax_gelements"] == pytest.approx(3 * 4 * 32 * 32 / 1e9) and f["layers"] == 3.0
    prior = proxy.cost_weights()
    assert sum(prior[k] * f[k] for k in f) == pytest.approx(proxy.evaluate(shape).values[0], rel=1e-12)


def test_latency_needs_the_shape_space():
    bits = BitStringSpace(BitStringSpace.Config(length=4), Context())
    with pytest.raises(UserError, match="objectives.latency: needs the transformer_shapes space"):
        Latency(Latency.Config(), bits, Context())
