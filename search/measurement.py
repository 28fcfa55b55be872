"""Timing one thing on real hardware: warm-up runs, repeated samples, and the median with its spread.

A single timing on a shared machine is noise (a context switch, a cold cache, a frequency step); the median of
several repeats after a warm-up is what a measured objective reports, and the interquartile range says how far
to trust it. Both are in the sample's own unit (seconds when `measure` times the call itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """median and iqr (75th - 25th percentile) of `samples`, all in the same unit."""

    median: float
    iqr: float
    samples: tuple[float, ...]

    @property
    def relative_spread(self) -> float:
        """iqr / median: 0.02 means the middle half of the samples lie within 2% of each other."""
        return self.iqr / self.median if self.median else float("inf")

    def scaled(self, factor: float) -> Measurement:
        """The same measurement in another unit (e.g. seconds per call -> nanoseconds per element)."""
        return Measurement(self.median * factor, self.iqr * factor, tuple(s * factor for s in self.samples))

    @staticmethod
    def of(samples: list[float] | tuple[float, ...]) -> Measurement:
        values = np.asarray(samples, dtype=float)
        if values.size == 0:
            raise ValueError("a measurement needs at least one sample")
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return Measurement(float(q50), float(q75 - q25), tuple(float(v) for v in values))


def measure(fn: Callable[[], Any], warmup: int = 2, repeats: int = 7, self_timed: bool = False,
            clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Call `fn` `warmup` times (discarded), then `repeats` times, and summarise the samples.

    A sample is the wall-clock seconds of one call; with `self_timed`, it is the number `fn` returns instead (for
    code that times itself more precisely, e.g. CUDA events around a kernel, or a clock inside compiled code).
    An exception from `fn` propagates: the caller's evaluation fails, as every raising evaluation does.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"measure: need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        begin = clock()
        own = fn()
        elapsed = clock() - begin
        samples.append(float(own) if self_timed else elapsed)
    return Measurement.of(samples)
