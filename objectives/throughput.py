"""Measured speed of a float32 program (`spaces.float32`): nanoseconds per element of its compiled C array function.

Op count (`objectives/op_count.py`) is the proxy; this is the measurement it stands in for. The program is emitted
as C (`spaces/float32/emit.py`, with the target's range reduction and the space's fitted constants), compiled with
`gcc -O3 -march=native` into a shared library, and its `evoforge_NAME_array` loop (which gcc vectorises for exp,
exp2, log and log2) is timed over a fixed array of inputs drawn once from the target's own sample (seeded by the
run seed), so every candidate sees the same data. One sample = `calls` calls over `elements` inputs; the value is
the median over `repeats` samples after `warmup`, in ns per element, and the interquartile range goes into extras.
"""

from __future__ import annotations

import _ctypes
import ctypes
import dataclasses
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.measurement import Measurement, measure
from search.protocols import Context, Evaluation, Objective, Space, UserError


class Throughput(Objective):
    """ns_per_element: measured time per element of the compiled program (min). Needs one `timing_core` (a
    custom Ray resource naming a core kept for timing, so two measurements never share it) and holds one CPU, so
    Ray schedules no cheap-stage task in its place while it measures."""

    @dataclass(frozen=True)
    class Config:
        """elements: inputs per call. calls: calls per timing sample. warmup / repeats: samples discarded / kept.
        compiler and flags: how the emitted C is built (flags as a list of strings)."""

        elements: int = 16384
        calls: int = 8
        warmup: int = 2
        repeats: int = 9
        compiler: str = "gcc"
        flags: tuple[str, ...] = ("-O3", "-march=native")

    names = ("ns_per_element",)
    directions = ("min",)
    resources = {"num_cpus": 1, "resources": {"timing_core": 1}}

    def __init__(self, config: Throughput.Config, space: Space, context: Context):
        super().__init__(config, space, context)
        if not hasattr(space, "target") or not hasattr(space, "fit"):
            raise UserError("objectives.throughput: needs the float32 space; set [space] name = \"float32\"")
        for name in ("elements", "calls", "repeats"):
            if getattr(config, name) < 1:
                value = getattr(config, name)
                raise UserError(f"objectives.throughput.{name}: must be a positive integer, got {value}")
        if config.warmup < 0:
            raise UserError(f"objectives.throughput.warmup: must be >= 0, got {config.warmup}")
        if shutil.which(config.compiler) is None:
            raise UserError(f"objectives.throughput.compiler: {config.compiler!r} not found on PATH; install it or "
                            "set compiler = \"cc\"")
        rng = np.random.default_rng(context.seed)
        self.inputs = np.ascontiguousarray(space.target.sample(config.elements, rng), dtype=np.float32)

    def at_budget(self, fraction: float) -> Throughput:
        """The same measurement with `fraction` of the repeats (at least one), for successive halving's rungs."""
        repeats = max(1, round(self.config.repeats * fraction))
        return Throughput(dataclasses.replace(self.config, repeats=repeats), self.space, self.context)

    def compile(self, genome, directory: Path) -> Path:
        """The genome's emitted C built as a shared library in `directory`; a compiler error raises."""
        source = directory / "program.c"
        library = directory / "program.so"
        source.write_text(self.space.emit(genome, "c"))
        command = [self.config.compiler, *self.config.flags, "-shared", "-fPIC", "-o", str(library), str(source)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{self.config.compiler} failed: {done.stderr.strip().splitlines()[-1:]}")
        return library

    def run(self, genome, timed: bool = True) -> tuple[np.ndarray, Measurement | None]:
        """Compile, run over the inputs (timed: `warmup` + `repeats` samples of `calls` calls), and return the
        outputs of the last call with the measurement in seconds per sample (None when not timed)."""
        c = self.config
        out = np.empty_like(self.inputs)
        with tempfile.TemporaryDirectory(prefix="evoforge-throughput-") as tmp:
            library = ctypes.CDLL(str(self.compile(genome, Path(tmp))))
            try:
                kernel = getattr(library, f"evoforge_{self.space.target.name}_array")
                kernel.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
                kernel.restype = None
                src, dst, n = self.inputs.ctypes.data, out.ctypes.data, len(self.inputs)

                def run_calls():
                    for _ in range(c.calls):
                        kernel(src, dst, n)

                seconds = measure(run_calls, warmup=c.warmup, repeats=c.repeats) if timed else None
                if not timed:
                    kernel(src, dst, n)
            finally:
                _ctypes.dlclose(library._handle)
        return out, seconds

    def evaluate(self, genome) -> Evaluation:
        c = self.config
        _, seconds = self.run(genome)
        m = seconds.scaled(1e9 / (c.calls * c.elements))
        return Evaluation(values=(m.median,), extras={"ns_per_element_iqr": m.iqr,
                                                      "ns_per_element_repeats": len(m.samples)})
