"""Analytic GFLOPs against torch's FlopCounterMode on real students (eager attention, so every matmul is seen)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from objectives.gflops import GFlops, forward_flops
from search.protocols import Context
from spaces.architecture.shapes import Shape, TransformerShapeSpace
from spaces.architecture.student import build_student


@pytest.mark.parametrize("shape,seq", [(Shape(2, 32, 4, 64, 300, 64), 17), (Shape(1, 48, 3, 96, 257, 80), 64),
                                       (Shape(3, 64, 2, 40, 200, 32), 32), (Shape(1, 384, 12, 96, 200, 32), 8)])
def test_analytic_flops_equal_flop_counter(shape, seq):
    student = build_student(shape, {}, 384, seed=0)
    student.encoder.set_attn_implementation("eager")
    ids = torch.randint(0, shape.vocab, (1, seq))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        student(ids, torch.ones_like(ids))
    assert forward_flops(shape, seq, 384) == counter.get_total_flops()


def test_objective_reports_gflops_at_the_space_length():
    space = TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=128), Context())
    objective = GFlops(GFlops.Config(), space, Context())
    shape = Shape(2, 128, 4, 256, 3000, 128)
    assert objective.evaluate(shape).values[0] == pytest.approx(forward_flops(shape, 128, 384) / 1e9)
    assert objective.directions == ("max",)
    bigger = Shape(3, 128, 4, 256, 3000, 128)
    assert objective.evaluate(bigger).values[0] > objective.evaluate(shape).values[0]


def test_gflops_limit_is_a_hard_constraint():
    space = TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64, max_positions=64), Context())
    small, large = Shape(1, 64, 2, 256, 400, 64), Shape(6, 384, 12, 1536, 400, 64)
    limit = forward_flops(small, 64, 384) / 1e9 * 2
    objective = GFlops(GFlops.Config(max_gflops=limit), space, Context())
    assert objective.constraints == ("gflops_limit",)
    assert objective.evaluate(small).violations == (0.0,)
    assert objective.evaluate(large).violations[0] == pytest.approx(forward_flops(large, 64, 384) / 1e9 - limit)
    assert space.bounds.max_positions == 64  # the position table is capped where asked
    assert GFlops(GFlops.Config(), space, Context()).constraints == ()
