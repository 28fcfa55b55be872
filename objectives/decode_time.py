"""Measured time per token of a streaming megakernel on the GPU (microseconds, minimised), with its cheap proxy.

One evaluation: lower the genome, certify the schedule with the static validator (a rejected schedule is never
compiled: it scores as failed with the validator's reason), compile (nvcc, cached by source), load random weights
built from the space's config (once per process), decode `steps` tokens greedily from `start_pos` with a random
KV cache, and report the median of `repeats` CUDA-event timings with its spread. A kernel whose watchdog fires, or
that cannot be made resident, is a failed evaluation. `resources = {"num_gpus": 1}`: a staged run measures on
actors that hold a GPU, one kernel at a time.

The proxy (`proxy_us`) is the schedule's cost-model makespan (spaces/megakernel/cost_model.py), cheap on a CPU.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from search.protocols import Evaluation, Objective, UserError


class DecodeTime(Objective):
    @dataclass(frozen=True)
    class Config:
        steps: int = 128          # decode steps timed back to back
        repeats: int = 5          # timed repetitions (median reported)
        start_pos: int = -1       # first position (-1: kv_length - steps, a nearly full cache)
        seed: int = 0             # weights

    names = ("us_per_token",)
    directions = ("min",)
    resources = {"num_gpus": 1}

    def __init__(self, config, space, context):
        super().__init__(config, space, context)
        if not hasattr(space, "schedule") or not hasattr(space, "dims"):
            raise UserError("objectives.decode_time: needs the megakernel_stream space")
        if config.steps < 1 or config.repeats < 1:
            raise UserError("objectives.decode_time.steps/repeats: must be positive integers")
        self._weights = None
        self._verdicts: dict[Any, str | None] = {}   # schedule key -> the validator's first rejection, or None

    def preflight(self) -> None:
        """A run that times kernels in this process needs a CUDA GPU, torch built for it, cupy and a compiler."""
        try:
            import torch
        except ImportError:
            torch = None
        missing = [what for what, ok in (("a CUDA GPU visible to torch", torch is not None and torch.cuda.is_available()),
                                         ("cupy", _importable("cupy"))) if not ok]
        if missing:
            raise UserError(f"objectives.decode_time: times kernels on this machine but it lacks {' and '.join(missing)}; "
                            "run on a CUDA host (pip install cupy-cuda12x), or search on the cost model with "
                            "`evoforge run megakernel`")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_weights"}

    def proxy(self, genome) -> float:
        """Cost-model makespan in microseconds: the cheap stage's estimate of this objective."""
        from spaces.megakernel.cost_model import makespan

        return makespan(self.space.schedule(genome)) * 1e6

    def _key(self, genome) -> tuple:
        return (self.space.config.model_config, *self.space.schedule_key(genome))

    def certify_all(self, genomes) -> None:
        """Validate the distinct schedules of `genomes` not yet certified, in parallel processes."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        todo = {self._key(g): g for g in genomes if self._key(g) not in self._verdicts}
        if len(todo) > 1:
            args = [(self.space.model, g, self.space.config.sms, self.space.config.kv_length) for g in todo.values()]
            with ProcessPoolExecutor(min(len(args), 16), mp_context=multiprocessing.get_context("spawn")) as pool:
                for key, verdict in zip(todo, pool.map(_verdict, args)):
                    self._verdicts[key] = verdict

    def _certified(self, genome) -> str | None:
        key = self._key(genome)
        if key not in self._verdicts:
            self._verdicts[key] = _verdict((self.space.model, genome, self.space.config.sms, self.space.config.kv_length))
        return self._verdicts[key]

    def evaluate(self, genome) -> Evaluation:
        return self.evaluate_batch([genome])[0]

    def evaluate_batch(self, genomes):
        """Compile the batch in parallel (nvcc processes), then time one kernel at a time."""
        from spaces.megakernel.emit_stream import emit_stream_cuda
        from spaces.megakernel.stream_runtime import compile_kernel

        self.certify_all(genomes)
        sources = [emit_stream_cuda(self.space.dims, g, self.space.config.dtype) for g in genomes]
        with ThreadPoolExecutor(max_workers=8) as pool:
            kernels = list(pool.map(_try(compile_kernel), sources))
        return [self._time(g, k) for g, k in zip(genomes, kernels)]

    def _time(self, genome, kernel) -> Evaluation:
        from spaces.megakernel.stream_runtime import KernelFailure, StreamMegakernel, random_weights_gpu

        rejection = self._certified(genome)
        if rejection:
            return Evaluation.failure(f"validator: {rejection}", 1, self.directions)
        if isinstance(kernel, Exception):
            return Evaluation.failure(f"compile: {kernel}", 1, self.directions)
        c, d = self.config, self.space.dims
        if self._weights is None:
            self._weights = random_weights_gpu(d, self.space.config.dtype, c.seed)
        try:
            mk = StreamMegakernel(self.space.schedule(genome), self._weights, self.space.config.dtype,
                                  validate_first=False, kernel=kernel)
            start = c.start_pos if c.start_pos >= 0 else max(0, d.max_positions - c.steps)
            timing = mk.time_decode(start, min(c.steps, d.max_positions - start), c.repeats)
        except KernelFailure as e:
            return Evaluation.failure(str(e), 1, self.directions)
        finally:
            import torch

            torch.cuda.empty_cache()
        spread = max(timing.samples_us) - min(timing.samples_us)
        return Evaluation(values=(timing.us_per_token,), extras={"spread_us": round(spread, 3)})


def _verdict(args) -> str | None:
    """None when the validator accepts the streaming schedule of (model, genes, sms, kv_length), else its reason."""
    from objectives.schedule_validator import validate
    from spaces.megakernel.stream import stream_schedule

    model, genes, sms, kv = args
    try:
        schedule = stream_schedule(model, genes, sms=sms, kv_length=kv)
    except ValueError as e:   # genes this shape cannot lower (e.g. fused MLP tiles wider than the kernel keeps)
        return str(e)
    verdict = validate(schedule)
    return None if verdict.accepted else str(verdict.rejections[0])


def _try(fn):
    def call(x):
        try:
            return fn(x)
        except Exception as e:  # noqa: BLE001 - a compile error is this genome's failure, not the run's
            return e
    return call


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
