"""Run a schedule on the CPU with real threads: one thread per worker, numpy tasks, atomic counters, a grid barrier.

Every task reads and writes only through its declared regions (views into storage arrays), so a schedule that
aliases buffers or lets a consumer run before its producer computes exactly the wrong thing a GPU would. Activation
storages are poisoned with NaN before each step, so reading a not-yet-written value shows up in the output.
`delays` (task name -> seconds slept before it runs) forces an adversarial thread order for race demonstrations.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from spaces.megakernel.ir import Region, Schedule, Task
from spaces.megakernel.lower import ModelDims
from spaces.megakernel.model import rmsnorm, rope, silu

CACHES = ("kcache", "vcache", "argmax", "tokens")


class ExecutionHang(Exception):
    """A wait or barrier did not complete within the timeout: the schedule deadlocked at run time."""


@dataclass
class Memory:
    """Storages (name -> float32 array). Caches persist across decode steps; activations are re-poisoned."""

    storages: dict[str, np.ndarray]

    @staticmethod
    def allocate(s: Schedule, weights: dict[str, np.ndarray]) -> Memory:
        size: dict[str, int] = {}
        for b in s.buffers:
            size[b.storage] = max(size.get(b.storage, 0), b.end)
        storages = {st: np.zeros(n, np.float32) for st, n in size.items()}
        for b in s.buffers:
            if b.name in weights:
                storages[b.storage][b.offset:b.end] = weights[b.name].reshape(-1)
        return Memory(storages)

    def view(self, s: Schedule, r: Region) -> np.ndarray:
        b = s.buffer(r.buffer)
        return self.storages[b.storage][b.offset + r.start:b.offset + r.stop]


def run_task(task: Task, s: Schedule, mem: Memory, d: ModelDims, token: int, pos: int) -> None:
    """Execute one task's numpy kernel through its regions."""
    R = [mem.view(s, r) for r in task.reads]
    out = mem.view(s, task.writes[0]) if task.writes else None
    hd, P = d.head_dim, d.max_positions
    if task.op == "embed":
        out[:] = R[0].reshape(d.vocab, d.hidden)[token]
    elif task.op == "rmsnorm":
        out[:] = rmsnorm(R[0].copy(), R[1], d.eps)
    elif task.op == "matvec":
        out[:] = R[1].reshape(out.size, -1) @ R[0]
    elif task.op == "matvec_residual":
        out[:] = R[2] + R[1].reshape(out.size, -1) @ R[0]
    elif task.op == "gate_up":
        out[:] = silu(R[1].reshape(out.size, -1) @ R[0]) * (R[2].reshape(out.size, -1) @ R[0])
    elif task.op == "norm_matvec":  # RMSNorm recomputed inside the tile
        out[:] = R[2].reshape(out.size, -1) @ rmsnorm(R[0].copy(), R[1], d.eps)
    elif task.op == "norm_gate_up":
        h = rmsnorm(R[0].copy(), R[1], d.eps)
        out[:] = silu(R[2].reshape(out.size, -1) @ h) * (R[3].reshape(out.size, -1) @ h)
    elif task.op == "rope_kv":
        n = task.param("head1") - task.param("head0")
        k, v = R[0].reshape(n, hd), R[1].reshape(n, hd)
        mem.view(s, task.writes[0]).reshape(n, P, hd)[:, pos] = rope(k, pos, d.rope_theta)
        mem.view(s, task.writes[1]).reshape(n, P, hd)[:, pos] = v
    elif task.op == "attention":
        h0, h1 = task.param("head0"), task.param("head1")
        group = d.heads // d.kv_heads
        q = rope(R[0].reshape(h1 - h0, hd), pos, d.rope_theta)
        keys, values = R[1].reshape(-1, P, hd), R[2].reshape(-1, P, hd)
        res = np.empty((h1 - h0, hd), np.float32)
        for i, h in enumerate(range(h0, h1)):
            kv = h // group - h0 // group
            sc = keys[kv, : pos + 1] @ q[i] / np.sqrt(np.float32(hd))
            p = np.exp(sc - sc.max())
            res[i] = (p / p.sum()) @ values[kv, : pos + 1]
        out[:] = res.reshape(-1)
    elif task.op in STREAM_OPS:
        _run_stream_task(task, R, out, mem, s, d, token, pos)
    else:
        raise ValueError(f"unknown op {task.op!r}")


STREAM_OPS = ("embed_argmax", "attention_partial", "combine_matvec_residual", "norm_matvec_argmax",
              "norm_acc_matvec", "combine_matvec_residual_acc", "norm_gate_up_down", "norm_acc_matvec_argmax",
              "combine_group_matvec_acc", "embed_norm_matvec")
#: accumulates are atomic adds on a GPU; here one lock stands in for the atomics
ACCUMULATE_LOCK = threading.Lock()


def _run_stream_task(task: Task, R: list[np.ndarray], out: np.ndarray, mem: Memory, s: Schedule, d: ModelDims,
                     token: int, pos: int) -> None:
    """The ops of the streaming lowering (spaces/megakernel/stream.py), written plainly from their definitions."""
    hd, nh, nkv = d.head_dim, d.heads, d.kv_heads
    group, chunks = nh // nkv, s.buffer("part").size // (nh * (hd + 4))
    if task.op == "embed_argmax":
        out[:] = R[1].reshape(d.vocab, d.hidden)[token]
        mem.view(s, task.writes[1])[:] = token
        for r in task.writes[2:]:   # fuse_mlp: the residual accumulator starts the step at zero
            mem.view(s, r)[:] = 0.0
    elif task.op == "embed_norm_matvec":   # fuse_embed: layer 0's QKV tile starts from the embedding row itself
        row = R[1].reshape(d.vocab, d.hidden)[token]
        out[:] = R[3].reshape(out.size, -1) @ rmsnorm(row.copy(), R[2], d.eps)
        for r in task.writes[1:]:   # its share of x (and, fuse_mlp, of the accumulator, zeroed); the token
            mem.view(s, r)[:] = {"x": row[r.start:r.stop], "mlp_acc": 0.0, "tokens": token}[r.buffer]
    elif task.op in ("norm_matvec_argmax", "norm_acc_matvec_argmax"):
        x = R[0] + R[3] if task.op == "norm_acc_matvec_argmax" else R[0].copy()
        out[:] = R[2].reshape(out.size, -1) @ rmsnorm(x, R[1], d.eps)
        best = int(np.argmax(out))
        mem.view(s, task.writes[1])[:] = (out[best], best + task.param("row0"))
    elif task.op == "norm_acc_matvec":   # the residual is x plus the last MLP's accumulated sum
        out[:] = R[2].reshape(out.size, -1) @ rmsnorm(R[0] + R[3], R[1], d.eps)
    elif task.op == "norm_gate_up_down":   # gate/up rows, then their k-slice of the down projection, added
        h = rmsnorm(R[0].copy(), R[1], d.eps)
        act = silu(R[2].reshape(-1, d.hidden) @ h) * (R[3].reshape(-1, d.hidden) @ h)
        partial = (R[4].reshape(-1, d.hidden).T @ act).astype(np.float32)
        with ACCUMULATE_LOCK:
            mem.view(s, task.accumulates[0])[:] += partial
    elif task.op == "attention_partial":
        p0, p1 = task.param("pos0"), task.param("pos1")
        inv = R[5]
        q = rope_with(R[0].reshape(group, hd), pos, inv)
        keys, values = mem.view(s, task.writes[0]).reshape(-1, hd), mem.view(s, task.writes[1]).reshape(-1, hd)
        if p0 <= pos < p1:
            keys[pos - p0] = rope_with(R[1].reshape(1, hd), pos, inv)[0]
            values[pos - p0] = R[2]
        n = max(0, min(p1, pos + 1) - p0)
        for g in range(group):
            dst = mem.view(s, task.writes[2 + g])
            if n == 0:
                dst[:] = 0.0
                dst[hd] = -3.0e38
                continue
            sc = keys[:n] @ q[g] / np.sqrt(np.float32(hd))
            m = sc.max()
            p = np.exp(sc - m)
            dst[:hd], dst[hd], dst[hd + 1], dst[hd + 2:] = p @ values[:n], m, p.sum(), 0.0
    elif task.op == "combine_group_matvec_acc":   # split_o: one KV-head group's k-slice, added into x's rows
        y = R[1].reshape(-1, group * hd) @ _combined(R[0].reshape(group, chunks, hd + 4), hd).reshape(-1)
        a, f0, f1 = task.param("row0"), task.param("fold0"), task.param("fold1")
        with ACCUMULATE_LOCK:
            x = mem.view(s, task.accumulates[0])
            x += y.astype(np.float32)
            if task.writes:   # fuse_mlp: this tile's share of the previous MLP's sum moves into x
                x[f0 - a:f1 - a] += R[2]
                mem.view(s, task.writes[0])[:] = 0.0
    elif task.op in ("combine_matvec_residual", "combine_matvec_residual_acc"):
        attn = _combined(R[0].reshape(nh, chunks, hd + 4), hd)
        residual = R[2] + R[3] if task.op == "combine_matvec_residual_acc" else R[2]
        out[:] = residual + R[1].reshape(out.size, -1) @ attn.reshape(-1).astype(np.float32)
        if task.op == "combine_matvec_residual_acc":   # folded into x: the accumulator is free for this MLP
            mem.view(s, task.writes[1])[:] = 0.0


def _combined(part: np.ndarray, hd: int) -> np.ndarray:
    """Flash-decoding combine of (heads, chunks, hd + 4) partial records (o, m, l) into (heads, hd) outputs."""
    m = part[:, :, hd].max(axis=1, keepdims=True)
    f = np.exp(part[:, :, hd] - m)
    return ((f[:, :, None] * part[:, :, :hd]).sum(axis=1) / (f * part[:, :, hd + 1]).sum(axis=1)[:, None]).astype(
        np.float32)


def rope_with(x: np.ndarray, pos: int, inv: np.ndarray) -> np.ndarray:
    """Rotary embedding of (heads, head_dim) at `pos` with given inverse frequencies (Llama-3 scaling included)."""
    ang = np.float32(pos) * inv.astype(np.float32)
    cos, sin = np.cos(np.concatenate([ang, ang])), np.sin(np.concatenate([ang, ang]))
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rot * sin).astype(np.float32)


def execute(s: Schedule, mem: Memory, d: ModelDims, token: int, pos: int, delays: dict[str, float] | None = None,
            timeout: float = 10.0) -> np.ndarray:
    """One decode step of `s` on `mem` with one thread per worker; returns a copy of the logits."""
    delays = delays or {}
    for b in s.buffers:
        if not b.name.startswith("w_") and b.name not in CACHES:
            mem.storages[b.storage][b.offset:b.end] = np.nan
    counts = {c: 0 for c in s.counters}
    cond = threading.Condition()
    barrier = threading.Barrier(s.workers, timeout=timeout)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for st in s.programs[w]:
                if st.kind == "run":
                    task = s.tasks[st.task]
                    if task.name in delays:
                        time.sleep(delays[task.name])
                    run_task(task, s, mem, d, token, pos)
                elif st.kind == "signal":
                    with cond:  # the lock's release is the release fence: earlier writes are visible to waiters
                        counts[st.counter] += st.count
                        cond.notify_all()
                elif st.kind == "wait":
                    with cond:
                        if not cond.wait_for(lambda c=st.counter, n=st.count: counts[c] >= n, timeout=timeout):
                            raise ExecutionHang(f"worker {w} timed out in wait({st.counter}>={st.count})")
                else:
                    barrier.wait()
        except threading.BrokenBarrierError:
            errors.append(ExecutionHang(f"worker {w}: grid barrier broken (timeout or another worker failed)"))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(s.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 2)
    if errors:
        raise errors[0]
    return mem.view(s, Region("logits", 0, d.vocab)).copy()
