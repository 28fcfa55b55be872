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
