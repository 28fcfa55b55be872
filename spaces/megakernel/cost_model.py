"""Makespan of a schedule on a stated device: task times from a per-SM roofline, plus synchronisation latencies.

The device (default: an H100 SXM, one persistent worker per SM) is described by per-SM shares of its peaks:
float32 CUDA-core throughput 67 TFLOP/s / 132 SMs and HBM3 bandwidth 3.35 TB/s / 132 SMs (a decode step is
memory-bound, and a worker streams its weight tiles at about its share). A task costs
`task_overhead + max(flops / sm_flops, bytes / sm_bandwidth)` seconds, bytes being every element of its read and
write regions at 4 bytes
(or the task's `bytes` parameter where a region over-approximates a run-time index, as for the embedding row). A signal costs `signal_latency` (atomic add at L2 behind a release fence); a wait resumes
`wait_latency` after the signal that satisfies it (polling an L2 line); a grid barrier releases `barrier_latency`
after the last arrival (cooperative-groups grid sync measured at about 1-3 us on Hopper-class parts).

The simulation is event-driven in time order, so the n-th signal processed is the n-th in time, and a wait's
resume time is exact for the given schedule.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from spaces.megakernel.ir import ELEMENT_BYTES, Schedule


@dataclass(frozen=True)
class Device:
    name: str = "H100-SXM per-SM share"
    sm_flops: float = 67e12 / 132       # FLOP/s per worker (fp32 CUDA cores)
    sm_bandwidth: float = 3.35e12 / 132  # bytes/s per worker
    task_overhead: float = 0.3e-6       # s: decode a task descriptor, index math, loop set-up
    signal_latency: float = 0.5e-6      # s
    wait_latency: float = 0.7e-6        # s
    barrier_latency: float = 2.0e-6     # s


def task_seconds(s: Schedule, device: Device) -> list[float]:
    out = []
    for t in s.tasks:
        nbytes = dict(t.params).get("bytes", ELEMENT_BYTES * sum(r.stop - r.start for r in (*t.reads, *t.writes)))
        out.append(device.task_overhead + max(t.flops / device.sm_flops, nbytes / device.sm_bandwidth))
    return out


def _reached(times: list[tuple[float, int]], n: int) -> float:
    """When a counter fed by (time, amount) signals first reaches n."""
    total = 0
    for when, k in sorted(times):
        total += k
        if total >= n:
            return when
    return math.inf


def makespan(s: Schedule, device: Device = Device()) -> float:
    """Seconds from launch until the last worker finishes; math.inf if the schedule deadlocks."""
    cost = task_seconds(s, device)
    W = s.workers
    pc = [0] * W
    clock = [0.0] * W
    signal_times: dict[str, list[tuple[float, int]]] = {}
    amount: dict[str, int] = {}
    blocked: dict[int, tuple[str, int]] = {}
    at_barrier: list[int] = []
    heap = [(0.0, w) for w in range(W)]
    finished = 0
    while heap:
        t, w = heapq.heappop(heap)
        prog = s.programs[w]
        if pc[w] == len(prog):
            finished += 1
            continue
        st = prog[pc[w]]
        if st.kind == "run":
            clock[w] = t + cost[st.task]
        elif st.kind == "signal":
            clock[w] = t + device.signal_latency
            amount[st.counter] = amount.get(st.counter, 0) + st.count
            signal_times.setdefault(st.counter, []).append((clock[w], st.count))
            for v, (c, n) in list(blocked.items()):
                if c == st.counter and amount[c] >= n:
                    del blocked[v]
                    pc[v] += 1
                    clock[v] = max(clock[v], clock[w] + device.wait_latency)
                    heapq.heappush(heap, (clock[v], v))
        elif st.kind == "wait":
            if amount.get(st.counter, 0) < st.count:
                blocked[w] = (st.counter, st.count)
                clock[w] = t
                continue
            clock[w] = max(t, _reached(signal_times[st.counter], st.count) + device.wait_latency)
        else:
            clock[w] = t
            at_barrier.append(w)
            if len(at_barrier) == W:
                release = max(clock) + device.barrier_latency
                for v in at_barrier:
                    pc[v] += 1
                    clock[v] = release
                    heapq.heappush(heap, (release, v))
                at_barrier = []
            continue
        pc[w] += 1
        heapq.heappush(heap, (clock[w], w))
    if finished < W:
        return math.inf
    return max(clock)
