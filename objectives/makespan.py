"""Makespan of a megakernel schedule on the cost model's device (microseconds, minimised).

A deadlocking schedule has no makespan; it scores `deadlock_us` so that it still ranks (the validator, a separate
objective, marks it infeasible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search.protocols import Evaluation, Objective
from spaces.megakernel.cost_model import Device, makespan


class Makespan(Objective):
    @dataclass(frozen=True)
    class Config:
        deadlock_us: float = 1e9                          # score of a schedule that never finishes
        sm_bandwidth: float = Device.sm_bandwidth         # bytes/s per worker
        sm_flops: float = Device.sm_flops                 # FLOP/s per worker
        barrier_latency: float = Device.barrier_latency   # seconds per grid barrier
        wait_latency: float = Device.wait_latency         # seconds from signal to a waiter resuming

    names = ("makespan_us",)
    directions = ("min",)

    def cost_features(self, genome: Any) -> dict[str, float]:
        """What a calibrated proxy weighs: the event-simulated makespan (us) and, for streaming-kernel genomes,
        what the cost model cannot see: DRAM round trips per block (each task's bytes over the bytes its code keeps
        in flight, `_in_flight`), KV positions one attention task walks, signals per step, and the poll back-off and
        L2 prefetch per join (us)."""
        s = self.space.schedule(genome) if hasattr(self.space, "schedule") else genome
        features = {"makespan_us": self.evaluate(genome).values[0]}
        if hasattr(genome, "warps"):
            sms = s.workers // genome.blocks_per_sm
            trips = sum(dict(t.params).get("bytes", 0) / _in_flight(t.op, genome) for t in s.tasks) / s.workers
            joins = sum(st.kind == "wait" for st in s.programs[0])
            positions = max(dict(t.params).get("pos1", 0) - dict(t.params).get("pos0", 0) for t in s.tasks)
            features.update(round_trips=trips, attention_positions=float(positions) * joins / 5,
                            signals=float(sum(st.kind == "signal" for p in s.programs for st in p)) / sms,
                            spin_us=joins * genome.spin_ns * 1e-3, prefetch_kb=joins * genome.prefetch_kb / 1024)
        return features

    def cost_weights(self) -> dict[str, float]:
        """The uncalibrated proxy is the cost model's makespan alone."""
        return {"makespan_us": 1.0, "round_trips": 0.0, "attention_positions": 0.0, "signals": 0.0, "spin_us": 0.0,
                "prefetch_kb": 0.0}

    def evaluate(self, genome: Any) -> Evaluation:
        c = self.config
        device = Device(sm_bandwidth=c.sm_bandwidth, sm_flops=c.sm_flops, barrier_latency=c.barrier_latency,
                        wait_latency=c.wait_latency)
        s = self.space.schedule(genome) if hasattr(self.space, "schedule") else genome
        key = self.space.schedule_key(genome) if hasattr(self.space, "schedule_key") else None
        cache = self.__dict__.setdefault("_seconds", {})   # genomes sharing a schedule share its makespan
        seconds = cache[key] if key in cache else makespan(s, device)
        if key is not None:
            cache[key] = seconds
        us = c.deadlock_us if math.isinf(seconds) else seconds * 1e6
        return Evaluation(values=(us,), extras={"barriers": sum(st.kind == "barrier" for st in s.programs[0]),
                                                "counters": len(s.counters)})


def _in_flight(op: str, g: Any) -> float:
    """Bytes of weights one block of the streaming kernel keeps in flight in `op` (spaces/megakernel/emit_stream.py):
    a row gemv keeps unroll x rows 16-byte loads per lane, gate/up unroll per matrix, the fused MLP's down part
    DU = min(2 unroll, 8) with down_early, the split output-projection tile 8 per lane. The fused MLP task's bytes are
    two thirds gate/up and one third down."""
    lanes = g.warps * 32 * 16
    if op == "norm_gate_up":
        return lanes * g.unroll * 2
    if op == "norm_gate_up_down":
        down = min(2 * g.unroll, 8) if getattr(g, "down_early", 0) else g.unroll
        return 1.0 / (2 / 3 / (lanes * g.unroll * 2) + 1 / 3 / (lanes * down))
    if op == "combine_group_matvec_acc":
        return lanes * 8
    return lanes * g.unroll * g.rows
