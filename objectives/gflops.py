"""Forward-pass GFLOPs of a student for one input of a stated length: the Compressor paper's proxy for capacity.

Counted like `torch.utils.flop_counter.FlopCounterMode` (a test checks equality on real models): matrix
multiplications only, a multiply-add = 2 FLOPs; embeddings lookups, LayerNorm, softmax and GELU are not counted.
One input of `seq_length` tokens, batch 1, with the pooler (it runs in `BertModel.forward`) and the projection to
the teacher's embedding width.
"""

from __future__ import annotations

from dataclasses import dataclass

from search.protocols import Evaluation, Objective, UserError
from spaces.architecture.shapes import Shape


def forward_flops(shape: Shape, seq_length: int, embedding_dim: int) -> int:
    """FLOPs of one forward pass: per layer Q, K, V and output projections (8 s h^2), attention scores and
    weighted values (4 s^2 h), feed-forward (4 s h i); then the pooler (2 h^2) and the projection (2 h d)."""
    s, h, i = seq_length, shape.hidden, shape.intermediate
    per_layer = 8 * s * h * h + 4 * s * s * h + 4 * s * h * i
    projection = 0 if h == embedding_dim else 2 * h * embedding_dim
    return shape.layers * per_layer + 2 * h * h + projection


class GFlops(Objective):
    """Maximise GFLOPs (10^9 FLOPs) per input of `seq_length` tokens (0 = the space's seq_length), optionally
    with the hard constraint GFLOPs <= `max_gflops` (a speed floor: compress sets it to the teacher's / speed-up)."""

    @dataclass(frozen=True)
    class Config:
        seq_length: int = 0      # tokens per input; 0 = the space's seq_length
        max_gflops: float = 0.0  # upper limit on GFLOPs (a constraint); 0 = none

    names = ("gflops",)
    directions = ("max",)

    def __init__(self, config: GFlops.Config, space, context):
        super().__init__(config, space, context)
        if config.seq_length < 0:
            raise UserError(f"seq_length: {config.seq_length} must be >= 0 (0 = the space's)")
        if config.max_gflops < 0:
            raise UserError(f"max_gflops: {config.max_gflops} must be >= 0 (0 = no limit)")
        self.constraints = ("gflops_limit",) if config.max_gflops else ()
        self.seq_length = config.seq_length or space.config.seq_length
        self.embedding_dim = int(space.teacher_config["hidden_size"])

    def cost_features(self, genome: Shape) -> dict[str, float]:
        """GFLOPs split by kind, plus work GFLOPs leave out (per layer: LayerNorm/residual over s*h, GELU over s*i,
        softmax over heads*s^2, in 10^9 elements; layer count for fixed per-layer overhead): the features
        `search/calibration.py` refits a time per unit of. The proxy itself weighs only the GFLOPs."""
        s, h, i, n = self.seq_length, genome.hidden, genome.intermediate, genome.layers
        attention = n * 4 * s * s * h / 1e9
        return {"matmul_gflops": forward_flops(genome, self.seq_length, self.embedding_dim) / 1e9 - attention,
                "attention_gflops": attention, "norm_gelements": n * s * (2 * h + i) / 1e9,
                "softmax_gelements": n * genome.heads * s * s / 1e9, "layers": float(n)}

    def cost_weights(self) -> dict[str, float]:
        return {"matmul_gflops": 1.0, "attention_gflops": 1.0, "norm_gelements": 0.0, "softmax_gelements": 0.0,
                "layers": 0.0}

    def evaluate(self, genome: Shape) -> Evaluation:
        gflops = forward_flops(genome, self.seq_length, self.embedding_dim) / 1e9
        if not self.config.max_gflops:
            return Evaluation(values=(gflops,))
        return Evaluation(values=(gflops,), violations=(max(0.0, gflops - self.config.max_gflops),))
