"""Measured CPU latency of a student shape (`spaces/architecture`): milliseconds per forward pass at batch 1.

GFLOPs (`objectives/gflops.py`) is the proxy; this is what it stands in for, and the two disagree: per-layer
overheads, attention's softmax and LayerNorm cost time but no counted FLOPs. The student is built with random
weights (latency does not depend on their values), in float32, and timed on `threads` torch threads (1 by
default: batch-1 serving on one core) over one input of `seq_length` random token ids drawn from a generator
seeded by the run seed, so every candidate sees the same input length. The median over `repeats` passes after
`warmup` is the value; the interquartile range goes into extras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from search.measurement import measure
from search.protocols import Context, Evaluation, Objective, Space, UserError


class Latency(Objective):
    """latency_ms: measured forward time at batch 1 (min). Needs one `timing_core` (a custom Ray resource naming a
    core kept for timing, so two measurements never share it) and holds one CPU, so Ray schedules no cheap-stage
    task in its place while it measures."""

    @dataclass(frozen=True)
    class Config:
        seq_length: int = 0  # tokens per input; 0 = the space's seq_length
        threads: int = 1     # torch CPU threads while timing
        warmup: int = 2
        repeats: int = 7

    names = ("latency_ms",)
    directions = ("min",)
    resources = {"num_cpus": 1, "resources": {"timing_core": 1}}

    def __init__(self, config: Latency.Config, space: Space, context: Context):
        super().__init__(config, space, context)
        if not hasattr(space, "teacher_config"):
            raise UserError("objectives.latency: needs the transformer_shapes space; set [space] name = "
                            "\"transformer_shapes\"")
        for name in ("threads", "repeats"):
            if getattr(config, name) < 1:
                raise UserError(f"objectives.latency.{name}: must be a positive integer, got {getattr(config, name)}")
        if config.warmup < 0 or config.seq_length < 0:
            raise UserError(f"objectives.latency: warmup ({config.warmup}) and seq_length ({config.seq_length}) "
                            "must be >= 0")
        self.seq_length = config.seq_length or space.config.seq_length
        self.embedding_dim = int(space.teacher_config["hidden_size"])

    def at_budget(self, fraction: float) -> Latency:
        """The same measurement with `fraction` of the repeats (at least one), for successive halving's rungs."""
        repeats = max(1, round(self.config.repeats * fraction))
        return Latency(dataclasses.replace(self.config, repeats=repeats), self.space, self.context)

    def evaluate(self, genome) -> Evaluation:
        import torch

        from spaces.architecture.student import build_student

        c = self.config
        student = build_student(genome, self.space.teacher_config, self.embedding_dim, seed=self.context.seed).eval()
        rng = np.random.default_rng(self.context.seed)
        ids = torch.from_numpy(rng.integers(0, genome.vocab, size=(1, self.seq_length), dtype=np.int64))
        mask = torch.ones_like(ids)
        before = torch.get_num_threads()
        torch.set_num_threads(c.threads)
        try:
            with torch.inference_mode():
                seconds = measure(lambda: student(ids, mask), warmup=c.warmup, repeats=c.repeats)
        finally:
            torch.set_num_threads(before)
        m = seconds.scaled(1e3)
        return Evaluation(values=(m.median,), extras={"latency_ms_iqr": m.iqr, "latency_ms_repeats": len(m.samples)})
