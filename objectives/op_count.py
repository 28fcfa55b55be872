"""Operations per call of a float32 program (`spaces.float32`): the cost side of the accuracy/cost trade-off."""

from __future__ import annotations

from dataclasses import dataclass

from search.protocols import Context, Evaluation, Objective, Space, UserError
from spaces.float32.program import ARITY, op_count


class OpCountObjective(Objective):
    """ops: live arithmetic operations of the evolved program (fma = 1, as on an FMA unit); with
    include_harness, plus the fixed range reduction's float operations (the same for every genome of a target)."""

    @dataclass(frozen=True)
    class Config:
        include_harness: bool = False

    names = ("ops",)
    directions = ("min",)

    def __init__(self, config: OpCountObjective.Config, space: Space, context: Context):
        super().__init__(config, space, context)
        if not hasattr(space, "target"):
            raise UserError("objectives.ops: needs the float32 space; set [space] name = \"float32\"")

    def cost_features(self, genome) -> dict[str, float]:
        """Live operations by kind, plus the fixed range reduction: what `search/calibration.py` refits a time per
        unit of (the proxy counts every operation as 1; a division costs far more than an fma)."""
        counts = {op: 0.0 for op in ARITY}
        for op, _ in self.space.canonical(genome):
            counts[op] += 1.0
        return {**counts, "harness": float(self.space.target.harness_ops)}

    def cost_weights(self) -> dict[str, float]:
        return {**{op: 1.0 for op in ARITY}, "harness": 1.0}

    def evaluate(self, genome) -> Evaluation:
        target = self.space.target
        n = op_count(self.space.canonical(genome), target.n_outputs, target.n_inputs)
        if self.config.include_harness:
            n += target.harness_ops
        return Evaluation(values=(float(n),))
