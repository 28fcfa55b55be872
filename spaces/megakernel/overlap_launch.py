"""Launching a decode step so it overlaps the previous step's tail (programmatic dependent launch, sm_90).

A persistent step ends with the LM head's tiles finishing one by one; with a plain launch the next step's blocks
are dispatched only after the last of them, and each then starts its first task cold. With the launch attribute
`PROGRAMMATIC_STREAM_SERIALIZATION` and `griddepcontrol.launch_dependents` at the top of the kernel, the next
grid's blocks take SMs as the old ones exit and issue their first weight loads while the tail runs.

Why that is safe for a certified schedule (checked by `launch_overlap_safe` before the attribute is used): the
embedding task (with `fuse_embed`, each of layer 0's QKV tiles) starts with `griddepcontrol.wait`, which returns
only when the previous grid has completed and its writes are visible. Every other block's first step is a wait on a counter whose target (count x epoch) only this
step's signals can reach, and the first signal of a step can only come after the embedding (a block signals after
its tasks, and its first task waits), so nothing a new block does past its first wait can meet the old grid.
Before that wait a task only reads weights (and attention's cached keys and values of earlier positions through
L2, `ld.global.cg`, written by tasks that signalled, with a release, before the old grid's end).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

EMBED_OPS = (0, 12)   # embed_argmax; embed_norm_matvec (fuse_embed): both start with griddepcontrol.wait
_PROGRAMMATIC_STREAM_SERIALIZATION = 6   # CUlaunchAttributeID in cuda.h


def launch_overlap_safe(steps: np.ndarray, starts: np.ndarray, tasks: np.ndarray) -> str | None:
    """None when every worker's first step is a wait on a counter with signals (kind 2, count > 0) or a run of a
    task that begins with the embedding (and its wait for the previous grid); else the first worker that breaks it, as a sentence. steps: (kind, arg, count) rows; starts:
    each worker's first row; tasks: the task table (op in column 0)."""
    for w in range(len(starts) - 1):
        if starts[w] == starts[w + 1]:
            continue   # a worker with no steps exits at once
        kind, arg, count = (int(v) for v in steps[starts[w]])
        if kind == 2 and count > 0:
            continue
        if kind == 0 and int(tasks[arg][0]) in EMBED_OPS:
            continue
        return (f"worker {w} starts with step kind {kind} (task/counter {arg}) instead of a wait or the embedding: "
                "it could run before the previous step's grid has finished")
    return None


class _Attribute(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_char * 64)]


class _Config(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shared", ctypes.c_uint),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(_Attribute)), ("num_attrs", ctypes.c_uint)]


class OverlapLauncher:
    """cuLaunchKernelEx with programmatic stream serialisation allowed, through the driver library (cupy's
    RawKernel has no launch attributes)."""

    def __init__(self, function_ptr: int, grid: int, block: int):
        lib = ctypes.CDLL("libcuda.so.1")
        self._launch = lib.cuLaunchKernelEx
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(_Config), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self._fn = ctypes.c_void_p(function_ptr)
        self._attr = _Attribute(id=_PROGRAMMATIC_STREAM_SERIALIZATION)
        ctypes.memmove(ctypes.addressof(self._attr) + _Attribute.value.offset, ctypes.byref(ctypes.c_int(1)), 4)
        self._config = _Config(grid=(ctypes.c_uint * 3)(grid, 1, 1), block=(ctypes.c_uint * 3)(block, 1, 1),
                               shared=0, attrs=ctypes.pointer(self._attr), num_attrs=1)

    def __call__(self, stream_ptr: int, pointers: list[int], ints: list[int]) -> None:
        values: list[Any] = [ctypes.c_uint64(p) for p in pointers] + [ctypes.c_int32(i) for i in ints]
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        self._config.stream = ctypes.c_void_p(stream_ptr)
        err = self._launch(ctypes.byref(self._config), self._fn, params, None)
        if err:
            raise RuntimeError(f"cuLaunchKernelEx failed with CUresult {err}")
