"""Lowering a Llama-family decoder (one decode step, batch 1) to the schedule IR.

`task_graph(config, tiling)` cuts the forward pass into tasks (tiles) over named buffers, in reference order;
`build_schedule(graph, plan)` places them on workers and inserts the synchronisation a plan asks for;
`lower(config, tiling)` is the naive lowering: round-robin placement, reference order, one grid barrier between ops.

Ops per layer (phases): RMSNorm -> QKV projection tiles -> RoPE + KV-cache store per KV-head tile -> attention per
query-head tile -> output projection tiles (residual add fused) -> RMSNorm -> gate/up tiles (SiLU * up fused) ->
down projection tiles (residual add fused); then the final RMSNorm and LM-head tiles. Activation buffers (xn, qkv,
attn, act) are reused by every layer, so later layers overwrite memory earlier layers read: the write-after-read
hazards a schedule must order.

Synchronisation per phase (`Plan.sync`): "barrier" (a grid barrier before the phase), "join" (one counter per
producer op; a consumer waits for all of its tiles) or "tile" (one counter per producer tile; a consumer waits only
for the tiles it conflicts with).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spaces.megakernel.ir import BARRIER, Buffer, Region, Schedule, Step, Task, run, signal, wait

SYNC_MODES = ("barrier", "join", "tile")


@dataclass(frozen=True)
class ModelDims:
    """The shape of a Llama-family decoder, read from a `transformers.LlamaConfig` or any object with its fields."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_positions: int
    eps: float = 1e-6
    rope_theta: float = 10000.0
    tied: bool = False                          # lm_head shares the embedding table (Llama-3.2-1B)
    rope_scaling: tuple[float, ...] = ()        # Llama-3: (factor, low_freq_factor, high_freq_factor, original_max)

    @staticmethod
    def of(config: Any, max_positions: int | None = None) -> ModelDims:
        heads = int(config.num_attention_heads)
        hidden = int(config.hidden_size)
        return ModelDims(
            hidden=hidden, intermediate=int(config.intermediate_size), layers=int(config.num_hidden_layers),
            heads=heads, kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(getattr(config, "head_dim", None) or hidden // heads), vocab=int(config.vocab_size),
            max_positions=int(max_positions or min(int(getattr(config, "max_position_embeddings", 16)), 16)),
            eps=float(getattr(config, "rms_norm_eps", 1e-6)),
            rope_theta=float(getattr(config, "rope_theta", None) or _rope_theta(config)),
            tied=bool(getattr(config, "tie_word_embeddings", False)), rope_scaling=_llama3_scaling(config))

    @property
    def qkv_rows(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim


def _llama3_scaling(config: Any) -> tuple[float, ...]:
    """Llama-3 RoPE frequency scaling as (factor, low_freq_factor, high_freq_factor, original_max_positions)."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    params = dict(params) if isinstance(params, tuple) else params
    if not isinstance(params, dict) or params.get("rope_type", params.get("type")) != "llama3":
        return ()
    return (float(params["factor"]), float(params["low_freq_factor"]), float(params["high_freq_factor"]),
            float(params["original_max_position_embeddings"]))


def rope_inv_freq(d: ModelDims) -> Any:
    """Inverse frequencies (head_dim / 2,) as float32, with Llama-3 scaling when the config asks for it (the same
    arithmetic as transformers' `_compute_llama3_parameters`)."""
    hd = d.head_dim
    inv = 1.0 / (d.rope_theta ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))
    if d.rope_scaling:
        factor, low, high, original = d.rope_scaling
        low_wavelen, high_wavelen = original / low, original / high
        wavelen = 2 * np.pi / inv
        scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (original / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return float(params.get("rope_theta", 10000.0)) if isinstance(params, dict) else 10000.0


@dataclass(frozen=True)
class LlamaShape:
    """A plain stand-in for `transformers.LlamaConfig` (same field names) for code that must not import it."""

    hidden_size: int = 16
    intermediate_size: int = 32
    num_hidden_layers: int = 1
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    vocab_size: int = 32
    max_position_embeddings: int = 8
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    head_dim: int | None = None
    tie_word_embeddings: bool = False
    rope_scaling: tuple[tuple[str, Any], ...] = ()   # as sorted (key, value) pairs, e.g. Llama-3's llama3 scaling


@dataclass(frozen=True)
class Tiling:
    """How finely ops are cut: output rows per projection task, heads per attention / KV task, and workers."""

    rows: int = 8
    heads: int = 1
    workers: int = 2
    capacity: int = 132  # co-resident workers the device allows (an H100 has 132 SMs, one persistent block each)


@dataclass(frozen=True)
class TaskGraph:
    buffers: tuple[Buffer, ...]
    tasks: tuple[Task, ...]
    phases: int
    dims: ModelDims
    tiling: Tiling


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, max(1, size))]


def norm_count(config: Any) -> int:
    """RMSNorms in the forward pass: two per layer and the final one (the order `fuse` flags refer to)."""
    return 2 * int(config.num_hidden_layers) + 1


def task_graph(config: Any, tiling: Tiling, fuse: tuple[bool, ...] | None = None) -> TaskGraph:
    """The tasks of one decode step in reference order, with their read/write sets.

    `fuse[k]` folds the k-th RMSNorm into its consumer's tiles: every QKV / gate-up / LM-head tile recomputes the
    norm of x (4H FLOPs, H reads) instead of reading xn, which removes one synchronisation point at the price of
    redundant work. A fused norm's phase keeps its number but has no task, so phase-indexed plans stay valid."""
    d = ModelDims.of(config)
    fuse = tuple(fuse) if fuse is not None else (False,) * norm_count(config)
    H, inter, L, hd, P, V = d.hidden, d.intermediate, d.layers, d.head_dim, d.max_positions, d.vocab
    nh, nkv = d.heads, d.kv_heads
    Q, KV = nh * hd, nkv * hd
    sizes = {"x": H, "xn": H, "qkv": d.qkv_rows, "attn": Q, "act": inter, "logits": V,
             "kcache": L * nkv * P * hd, "vcache": L * nkv * P * hd,
             "w_embed": V * H, "w_attn_norm": L * H, "w_qkv": L * d.qkv_rows * H, "w_o": L * H * Q,
             "w_mlp_norm": L * H, "w_gate_up": L * 2 * inter * H, "w_down": L * H * inter, "w_final_norm": H, "w_lm_head": V * H}
    buffers = tuple(Buffer(name, size, name) for name, size in sizes.items())
    tasks: list[Task] = []
    phase = 0

    def add(name, op, reads, writes, flops, **params):
        tasks.append(Task(name, op, phase, tuple(Region(*r) for r in reads), tuple(Region(*r) for r in writes),
                          float(flops), tuple(sorted(params.items()))))

    def norm(k, name, weight, layer):
        if not fuse[k]:
            add(name, "rmsnorm", [("x", 0, H), (weight, layer * H, (layer + 1) * H)], [("xn", 0, H)], 4 * H,
                layer=layer, weight_index=layer)

    def normed_input(k, weight, layer):
        """(op prefix, input regions, extra FLOPs) for a consumer of the k-th norm."""
        if fuse[k]:
            return "norm_", [("x", 0, H), (weight, layer * H, (layer + 1) * H)], 4 * H
        return "", [("xn", 0, H)], 0

    # the token is only known at run time, so the read set is the whole table; the traffic is one row
    add("embed", "embed", [("w_embed", 0, V * H)], [("x", 0, H)], 0, bytes=8 * H)
    for layer in range(L):
        phase += 1
        norm(2 * layer, f"L{layer}.attn_norm", "w_attn_norm", layer)
        phase += 1
        prefix, src, extra = normed_input(2 * layer, "w_attn_norm", layer)
        for a, b in _chunks(d.qkv_rows, tiling.rows):
            add(f"L{layer}.qkv[{a}:{b}]", prefix + "matvec", src + [("w_qkv", (layer * d.qkv_rows + a) * H, (layer * d.qkv_rows + b) * H)],
                [("qkv", a, b)], 2 * (b - a) * H + extra, layer=layer, row0=a, row1=b)
        phase += 1
        for a, b in _chunks(nkv, tiling.heads):
            cache = ((layer * nkv + a) * P * hd, (layer * nkv + b) * P * hd)
            add(f"L{layer}.rope_kv[{a}:{b}]", "rope_kv", [("qkv", Q + a * hd, Q + b * hd), ("qkv", Q + KV + a * hd, Q + KV + b * hd)],
                [("kcache", *cache), ("vcache", *cache)], 6 * (b - a) * hd, layer=layer, head0=a, head1=b)
        phase += 1
        group = nh // nkv
        for a, b in _chunks(nh, tiling.heads):
            k0, k1 = a // group, (b - 1) // group + 1
            cache = ((layer * nkv + k0) * P * hd, (layer * nkv + k1) * P * hd)
            add(f"L{layer}.attention[{a}:{b}]", "attention", [("qkv", a * hd, b * hd), ("kcache", *cache), ("vcache", *cache)],
                [("attn", a * hd, b * hd)], (b - a) * (6 * hd + 4 * P * hd), layer=layer, head0=a, head1=b)
        phase += 1
        for a, b in _chunks(H, tiling.rows):
            add(f"L{layer}.o_proj[{a}:{b}]", "matvec_residual", [("attn", 0, Q), ("w_o", (layer * H + a) * Q, (layer * H + b) * Q), ("x", a, b)],
                [("x", a, b)], 2 * (b - a) * Q + (b - a), layer=layer, row0=a, row1=b)
        phase += 1
        norm(2 * layer + 1, f"L{layer}.mlp_norm", "w_mlp_norm", layer)
        phase += 1
        prefix, src, extra = normed_input(2 * layer + 1, "w_mlp_norm", layer)
        for a, b in _chunks(inter, tiling.rows):
            add(f"L{layer}.gate_up[{a}:{b}]", prefix + "gate_up",
                src + [("w_gate_up", (layer * 2 * inter + a) * H, (layer * 2 * inter + b) * H),
                       ("w_gate_up", (layer * 2 * inter + inter + a) * H, (layer * 2 * inter + inter + b) * H)],
                [("act", a, b)], 4 * (b - a) * H + 5 * (b - a) + extra, layer=layer, row0=a, row1=b)
        phase += 1
        for a, b in _chunks(H, tiling.rows):
            add(f"L{layer}.down[{a}:{b}]", "matvec_residual", [("act", 0, inter), ("w_down", (layer * H + a) * inter, (layer * H + b) * inter), ("x", a, b)],
                [("x", a, b)], 2 * (b - a) * inter + (b - a), layer=layer, row0=a, row1=b)
    phase += 1
    norm(2 * L, "final_norm", "w_final_norm", 0)
    phase += 1
    prefix, src, extra = normed_input(2 * L, "w_final_norm", 0)
    for a, b in _chunks(V, tiling.rows):
        add(f"lm_head[{a}:{b}]", prefix + "matvec", src + [("w_lm_head", a * H, b * H)], [("logits", a, b)],
            2 * (b - a) * H + extra, layer=-1, row0=a, row1=b)
    return TaskGraph(buffers, tuple(tasks), phase + 1, d, tiling)


def dependencies(graph: TaskGraph) -> list[list[int]]:
    """For each task, the earlier tasks it conflicts with (overlapping memory, at least one write): the order the
    reference imposes. Vectorised over all region pairs of a storage."""
    where = {b.name: b for b in graph.buffers}
    rows = []  # (task, storage id, physical start, physical stop, is_write)
    storages: dict[str, int] = {}
    for t, task in enumerate(graph.tasks):
        for regions, w in ((task.reads, 0), (task.writes, 1)):
            for r in regions:
                b = where[r.buffer]
                rows.append((t, storages.setdefault(b.storage, len(storages)), b.offset + r.start, b.offset + r.stop, w))
    a = np.array(rows, dtype=np.int64)
    deps: list[set[int]] = [set() for _ in graph.tasks]
    for sid in np.unique(a[:, 1]):
        s = a[a[:, 1] == sid]
        overlap = (s[:, None, 2] < s[None, :, 3]) & (s[None, :, 2] < s[:, None, 3])
        conflict = overlap & ((s[:, None, 4] + s[None, :, 4]) > 0) & (s[:, None, 0] > s[None, :, 0])
        for i, j in zip(*np.nonzero(conflict)):
            deps[s[i, 0]].add(int(s[j, 0]))
    return [sorted(x) for x in deps]


@dataclass(frozen=True)
class Plan:
    """Where and when tasks run: `worker[t]` places task t, `priority[t]` orders a worker's tasks (ascending),
    `sync[p]` picks the synchronisation in front of phase p (one of SYNC_MODES)."""

    worker: tuple[int, ...]
    priority: tuple[float, ...]
    sync: tuple[str, ...]
    workers: int


def naive_plan(graph: TaskGraph, sync: str = "barrier") -> Plan:
    n = len(graph.tasks)
    w = graph.tiling.workers
    # round-robin inside each phase, so every op is spread over all workers
    first = {}
    worker = []
    for t, task in enumerate(graph.tasks):
        first.setdefault(task.phase, t)
        worker.append((t - first[task.phase]) % w)
    return Plan(tuple(worker), tuple(float(t) for t in range(n)), tuple([sync] * graph.phases), w)


def build_schedule(graph: TaskGraph, plan: Plan, deps: Sequence[Sequence[int]] | None = None) -> Schedule:
    """Place tasks per `plan` and insert the synchronisation that makes the reference order hold.

    The result is only as good as the plan: a priority order that runs a consumer before its producer on one
    worker, say, gives a schedule that deadlocks or races, which is what the validator is for."""
    deps = dependencies(graph) if deps is None else deps
    tasks = graph.tasks
    order = [sorted((t for t in range(len(tasks)) if plan.worker[t] == w), key=lambda t: (plan.priority[t], t))
             for w in range(plan.workers)]
    members: dict[int, list[int]] = {}
    for t, task in enumerate(tasks):
        members.setdefault(task.phase, []).append(t)
    barrier_phases = [p for p in range(1, graph.phases) if plan.sync[p] == "barrier" and p in members]
    size = {p: len(m) for p, m in members.items()}

    def barrier_between(q: int, p: int) -> bool:  # a barrier in front of some phase in (q, p]
        return any(q < b <= p for b in barrier_phases)

    waits: list[list[tuple[str, int]]] = [[] for _ in tasks]
    signals: dict[int, list[str]] = {}
    joined: set[str] = set()
    for t, task in enumerate(tasks):
        mode = plan.sync[task.phase]
        for u in deps[t]:
            q = tasks[u].phase
            if plan.worker[u] == plan.worker[t] or barrier_between(q, task.phase):
                continue
            if mode == "tile":
                c = f"done.{tasks[u].name}"
                waits[t].append((c, 1))
                signals.setdefault(u, []).append(c)
            else:  # a join over the whole producer op (also used when a barrier-mode phase reaches past a barrier-free gap)
                c = f"op{q}"
                waits[t].append((c, size[q]))
                if c not in joined:
                    joined.add(c)
                    for v in members[q]:
                        signals.setdefault(v, []).append(c)
    programs = []
    for w in range(plan.workers):
        steps: list[Step] = []
        seen: dict[str, int] = {}
        done_barriers = 0
        for t in order[w]:
            while done_barriers < len(barrier_phases) and barrier_phases[done_barriers] <= tasks[t].phase:
                steps.append(BARRIER)
                done_barriers += 1
            for c, n in dict.fromkeys(waits[t]):
                if seen.get(c, 0) < n:
                    steps.append(wait(c, n))
                    seen[c] = n
            steps.append(run(t))
            for c in dict.fromkeys(signals.get(t, [])):
                steps.append(signal(c, 1))
        steps += [BARRIER] * (len(barrier_phases) - done_barriers)
        programs.append(tuple(steps))
    counters = tuple(sorted({c for cs in signals.values() for c in cs} | {c for ws in waits for c, _ in ws}))
    return Schedule(graph.buffers, tasks, counters, tuple(programs), graph.tiling.capacity,
                    {"dims": graph.dims.__dict__, "tiling": graph.tiling.__dict__,
                     "sync": sorted(set(plan.sync[1:]))})


def lower(config: Any, tiling: Tiling, sync: str = "barrier", fuse_norms: bool = False) -> Schedule:
    """The naive lowering of `config` (a LlamaConfig or LlamaShape): round-robin tiles, reference order, and
    `sync` synchronisation in front of every op (default: one grid barrier between ops); `fuse_norms` folds every
    RMSNorm into its consumers."""
    graph = task_graph(config, tiling, (fuse_norms,) * norm_count(config))
    return build_schedule(graph, naive_plan(graph, sync))
