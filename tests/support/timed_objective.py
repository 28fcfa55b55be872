"""Objectives that need a `timing_core` (a fake custom resource of the test Ray), to check where measured
objectives run and how their failures are scored.

Bit strings starting 1,1 raise; 0,1,1 sleep in Python (the alarm stops it); 0,0,1 block SIGALRM first and then
sleep, as code stuck inside one C call would (only killing the actor stops it).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from search.protocols import Evaluation, Objective


class TimedOnes(Objective):
    @dataclass(frozen=True)
    class Config:
        hang_seconds: float = 3600.0

    names = ("ones",)
    directions = ("max",)
    resources = {"resources": {"timing_core": 1}}

    def evaluate(self, genome) -> Evaluation:
        import ray

        if genome[0] == 1 and genome[1] == 1:
            raise ValueError("refusing genomes that start with 11")
        if genome[0] == 0 and genome[1] == 1 and genome[2] == 1:
            time.sleep(self.config.hang_seconds)
        if genome[0] == 0 and genome[1] == 0 and genome[2] == 1:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(self.config.hang_seconds)
        held = ray.get_runtime_context().get_assigned_resources().get("timing_core", 0.0)
        return Evaluation(values=(float(sum(genome)),), extras={"pid": os.getpid(), "timing_core": held})


class NeedsFpga(TimedOnes):
    """Asks for a resource no test cluster has."""

    resources = {"resources": {"fpga": 1}}


class GpuProbe(TimedOnes):
    """Needs a whole GPU; reports the GPU Ray gave it and runs one kernel there."""

    resources = {"num_gpus": 1}

    def evaluate(self, genome) -> Evaluation:
        import ray
        import torch

        total = float(torch.ones(1024, device="cuda").sum().item())
        return Evaluation(values=(float(sum(genome)),),
                          extras={"gpu_ids": [str(g) for g in ray.get_gpu_ids()], "kernel_sum": total})


class BatchCountingOnes(TimedOnes):
    """Records the size of the batch each genome was measured in (a batch that raises is retried one by one)."""

    def evaluate_batch(self, genomes):
        results = [self.evaluate(g) for g in genomes]
        for r in results:
            r.extras["batch_size"] = len(genomes)
        return results
