"""The streaming lowering: a Llama decode step cut so that every SM streams weights all the time.

A decode step at batch 1 reads every weight once and does little else, so the lowering's job is to keep every
persistent block loading weights: each projection is split evenly over all workers (one or two row tiles per
worker), RMSNorms are fused into their consumers, RoPE and the KV-cache store are fused into attention, and
attention is split over (KV head, chunk of positions) with the chunks' partial softmax sums combined inside the
output-projection tiles (flash-decoding). Between ops there is one join counter: a consumer waits until every
producer tile has signalled (with `split_o`, one counter per KV-head group between attention and the output
projection). The embedding (by default done by each of layer 0's QKV tiles for itself, `fuse_embed`) reads the
previous step's argmax (each LM-head tile leaves its local best), so consecutive steps need no host round trip.

The result is an ordinary `Schedule` (spaces/megakernel/ir.py): the static validator certifies it before it is
compiled, and the CPU executor runs it on small configs. `KernelGenes` holds the choices with more than one good
answer per shape: how many blocks per SM and warps per block, loads in flight, rows per warp, attention chunks,
L2 prefetch of the next task's weights, and tiles per worker; the GA searches them (spaces/megakernel/stream_space.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spaces.megakernel.ir import Buffer, Region, Schedule, Step, Task, run, signal, wait
from spaces.megakernel.lower import LlamaShape, ModelDims

# Llama-3.2-1B's architecture (config.json of meta-llama/Llama-3.2-1B), weights drawn at random from it.
LLAMA_3_2_1B = LlamaShape(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                          num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                          rms_norm_eps=1e-5, rope_theta=500000.0, head_dim=64, tie_word_embeddings=True,
                          rope_scaling=(("factor", 32.0), ("high_freq_factor", 4.0), ("low_freq_factor", 1.0),
                                        ("original_max_position_embeddings", 8192), ("rope_type", "llama3")))
# The two smaller configs of the table.
TOY = LlamaShape(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=8,
                 num_key_value_heads=4, vocab_size=1024, max_position_embeddings=16)
HIDDEN_1024 = LlamaShape(hidden_size=1024, intermediate_size=2816, num_hidden_layers=4, num_attention_heads=16,
                         num_key_value_heads=4, vocab_size=8192, max_position_embeddings=1024)
CONFIGS = {"llama-3.2-1b": LLAMA_3_2_1B, "toy": TOY, "hidden-1024": HIDDEN_1024}

OPS = ("embed_argmax", "norm_matvec", "attention_partial", "combine_matvec_residual", "norm_gate_up",
       "matvec_residual", "norm_matvec_argmax")


@dataclass(frozen=True)
class KernelGenes:
    """Choices of the streaming kernel. blocks_per_sm x SMs = persistent workers; warps per block; unroll = 16-byte
    weight loads in flight per lane per row; rows = rows a warp streams at once; chunks = KV-position chunks per KV
    head in attention; prefetch_kb = KiB of the next task's weights pulled into L2 while waiting on a counter (0 =
    off); tiles = row tiles per worker per projection (2 = finer load balance, more signals); fuse_mlp = 1: gate/up
    and the down projection in one phase, each tile adding its k-slice of the down projection into a residual
    accumulator (`mlp_acc`, accumulate regions), 4 joins per layer instead of 5; l2_evict_first = 1: streamed
    weights are loaded with an L2 evict-first policy (read once per step, they should not push out activations);
    pollers = warps that poll a join's counter, staggered, so a completed join is seen sooner; partial_fp16 = 1:
    attention's partial outputs are stored normalised in fp16 (bfloat16 kernels only), halving the bytes every
    output-projection block reads to combine them; split_o = 1: the output projection is cut by KV-head group as
    well as by rows, each tile combining only its group's attention chunks and adding its k-slice into the
    residual, and each tile waits only for its own group's attention (one counter per group), not for all of it;
    overlap_launch = 1: a step's launch may begin while the previous step's last blocks finish (programmatic
    dependent launch, sm_90): its blocks become resident as the old ones exit and issue their first weight loads,
    and only the embedding waits for the previous grid (every other task waits on a counter downstream of it).
    Not a trade-off the search needs to make (it changes no task), so it is on by default and not in CHOICES.
    fuse_embed = 1: no embedding task; each of layer 0's QKV tiles picks the token and normalises its embedding
    row itself, writing its share of x, so a step has one join fewer (and no single-block phase at its start).
    Measured no slower at any config and ~1 us faster at two, so it is on by default and not in CHOICES either.
    down_early = 1 (fuse_mlp): the down projection's first loads are issued into the gate/up's freed register slots
    during its last batch, and the down phase keeps twice `unroll` loads in flight, so an SM's weight stream does
    not stop between the two (1B bf16: -8 us per step; fp32 hidden-1024: +2 to +4 us, hence a gene).
    attn_warps = 1: each warp of an attention task owns one query head and a slice of the positions end to end
    (scores, running max and sum, outputs), the warps' partial sums meeting once in shared memory: no idle warps and
    two barriers instead of four per block of positions (1B: -1 to -2 us; hidden-1024 and the toy: within noise)."""

    blocks_per_sm: int = 1
    warps: int = 8
    unroll: int = 4
    rows: int = 1
    chunks: int = 4
    prefetch_kb: int = 0
    tiles: int = 1
    spin_ns: int = 32
    fuse_mlp: int = 0
    l2_evict_first: int = 0
    pollers: int = 1
    partial_fp16: int = 0
    split_o: int = 0
    overlap_launch: int = 1
    fuse_embed: int = 1
    down_early: int = 0
    attn_warps: int = 0

    CHOICES = {"blocks_per_sm": (1, 2, 3, 4), "warps": (4, 8, 16), "unroll": (2, 4, 8), "rows": (1, 2),
               "chunks": (2, 4, 8, 16), "prefetch_kb": (0, 16, 64, 256), "tiles": (1, 2), "spin_ns": (0, 32, 256),
               "fuse_mlp": (0, 1), "l2_evict_first": (0, 1), "pollers": (1, 2), "partial_fp16": (0, 1),
               "split_o": (0, 1), "down_early": (0, 1), "attn_warps": (0, 1)}

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """n rows cut into `parts` contiguous, nearly equal tiles (empty ones dropped)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def stream_schedule(config: Any, genes: KernelGenes, sms: int = 132, kv_length: int | None = None,
                    max_steps: int = 4096) -> Schedule:
    """The streaming lowering of `config` (LlamaConfig or LlamaShape) for a device with `sms` SMs."""
    d = ModelDims.of(config, kv_length or min(int(config.max_position_embeddings), 1024))
    W = sms * genes.blocks_per_sm
    H, inter, L, hd, P, V = d.hidden, d.intermediate, d.layers, d.head_dim, d.max_positions, d.vocab
    nh, nkv, R = d.heads, d.kv_heads, d.qkv_rows
    Q, group = nh * hd, nh // nkv
    chunks = max(1, min(genes.chunks, P))
    lm_tiles = _split(V, W * genes.tiles)
    sizes = {"x": H, "qkv": R, "part": nh * chunks * (hd + 4), "act": inter, "logits": V,
             "argmax": 2 * len(lm_tiles), "tokens": max_steps + 1,
             "kcache": L * nkv * P * hd, "vcache": L * nkv * P * hd, "w_rope_inv": hd // 2,
             "w_embed": V * H, "w_attn_norm": L * H, "w_qkv": L * R * H, "w_o": L * H * Q, "w_mlp_norm": L * H,
             "w_gate_up": L * 2 * inter * H, "w_down": L * H * inter, "w_final_norm": H}
    fused = bool(genes.fuse_mlp)
    if fused and -(-inter // (W * genes.tiles)) > H:   # the kernel keeps a tile's activations in HID floats
        raise ValueError(f"fuse_mlp: tiles of {-(-inter // (W * genes.tiles))} intermediate rows exceed hidden {H}; "
                         "use more workers or tiles")
    if fused:   # the down projection stored transposed: a tile of intermediate rows reads whole rows of it
        sizes["mlp_acc"] = H
        sizes["w_down_t"] = sizes.pop("w_down")
    split = bool(genes.split_o)
    GQ = group * hd   # a KV-head group's query width: the k-slice of a split output-projection tile
    if split and (GQ & (GQ - 1) or GQ < 8):
        raise ValueError(f"split_o: a KV-head group's width {GQ} (heads/kv_heads x head_dim) must be a power of "
                         "two of at least 8; use split_o 0")
    if split:   # the output projection stored per (layer, KV-head group): a tile's rows of one group are contiguous
        sizes["w_o_g"] = sizes.pop("w_o")
    buffers = [Buffer(name, size, name) for name, size in sizes.items()]
    buffers.append(Buffer("w_lm_head", V * H, "w_embed") if d.tied else Buffer("w_lm_head", V * H, "w_lm_head"))
    tasks: list[Task] = []
    owner: list[int] = []
    phase_of: list[int] = []
    waits_on: dict[int, tuple[str, int]] = {}   # task -> the join it waits for, where not its phase's
    signals_to: dict[int, str] = {}             # task -> the counter it signals, where not its phase's
    wbytes = 2  # per weight element in bf16; the cost model reads it from the `bytes` parameter

    def add(name, op, phase, worker, reads, writes, flops, accumulates=(), **params):
        tasks.append(Task(name, op, phase, tuple(Region(*r) for r in reads), tuple(Region(*r) for r in writes),
                          float(flops), tuple(sorted(params.items())), tuple(Region(*r) for r in accumulates)))
        owner.append(worker)
        phase_of.append(phase)

    def tiled(rows: int, tiles_per_worker: int = genes.tiles):
        return [(i % W, a, b) for i, (a, b) in enumerate(_split(rows, W * tiles_per_worker))]

    phase = 0
    acc = [("mlp_acc", 0, H)] if fused else []
    if genes.fuse_embed:
        phase = -1   # layer 0's QKV tiles are phase 0 and begin the step themselves
    else:
        add("embed", "embed_argmax", phase, 0, [("argmax", 0, sizes["argmax"]), ("w_embed", 0, V * H)],
            [("x", 0, H), ("tokens", 0, sizes["tokens"]), *acc], 0, bytes=wbytes * H + 8 * len(lm_tiles))
    for layer in range(L):
        norm = ("w_attn_norm", layer * H, (layer + 1) * H)
        phase += 1
        if layer == 0 and genes.fuse_embed:
            qkv_tiles = tiled(R)
            for i, (w, a, b) in enumerate(qkv_tiles):
                # each tile normalises the embedding row itself and writes its share of x (whole float4s) and,
                # fuse_mlp, zeroes the same share of the accumulator; the first also records the token
                f0, f1 = 4 * (H // 4 * i // len(qkv_tiles)), 4 * (H // 4 * (i + 1) // len(qkv_tiles))
                share = [("x", f0, f1)] + ([("mlp_acc", f0, f1)] if fused else []) if f1 > f0 else []
                add(f"L0.embed_qkv[{a}:{b}]", "embed_norm_matvec", phase, w,
                    [("argmax", 0, sizes["argmax"]), ("w_embed", 0, V * H), norm,
                     ("w_qkv", a * H, b * H)],
                    [("qkv", a, b), *share, *([("tokens", 0, sizes["tokens"])] if i == 0 else [])],
                    2 * (b - a) * H + 4 * H, layer=0, row0=a, row1=b, x0=f0, x1=f1, token=int(i == 0),
                    bytes=wbytes * (b - a) * H + wbytes * 2 * H + 8 * len(lm_tiles) + 4 * (b - a + 2 * (f1 - f0)))
        for w, a, b in ([] if layer == 0 and genes.fuse_embed else tiled(R)):
            add(f"L{layer}.qkv[{a}:{b}]", "norm_acc_matvec" if fused else "norm_matvec", phase, w,
                [("x", 0, H), norm, ("w_qkv", (layer * R + a) * H, (layer * R + b) * H), *acc], [("qkv", a, b)],
                2 * (b - a) * H + 4 * H, layer=layer, row0=a, row1=b, bytes=wbytes * (b - a) * H + 4 * (2 * H + b - a))
        phase += 1
        n_attn = nkv * chunks
        for i in range(n_attn):
            h, c = divmod(i, chunks)
            p0, p1 = P * c // chunks, P * (c + 1) // chunks
            if p1 <= p0:
                continue
            cache = ((layer * nkv + h) * P + p0) * hd, ((layer * nkv + h) * P + p1) * hd
            heads = (h * group, (h + 1) * group)
            part = [("part", (q * chunks + c) * (hd + 4), (q * chunks + c + 1) * (hd + 4)) for q in range(*heads)]
            if split:
                signals_to[len(tasks)] = f"op{phase}.kv{h}"
            add(f"L{layer}.attention[kv{h}:c{c}]", "attention_partial", phase, i * W // n_attn,
                [("qkv", heads[0] * hd, heads[1] * hd), ("qkv", Q + h * hd, Q + (h + 1) * hd),
                 ("qkv", Q + (nkv + h) * hd, Q + (nkv + h + 1) * hd), ("kcache", *cache), ("vcache", *cache),
                 ("w_rope_inv", 0, hd // 2)],
                [("kcache", *cache), ("vcache", *cache), *part], group * 4 * (p1 - p0) * hd,
                layer=layer, head=h, chunk=c, pos0=p0, pos1=p1, bytes=2 * 2 * (p1 - p0) * hd)
        attention_phase = phase
        phase += 1
        if split:
            row_blocks = _split(H, max(1, min(H, W * genes.tiles // nkv)))
            n_o = nkv * len(row_blocks)
            for i in range(n_o):
                h, j = divmod(i, len(row_blocks))
                a, b = row_blocks[j]
                f0, f1 = a + (b - a) * h // nkv, a + (b - a) * (h + 1) // nkv   # its share of the MLP sum's fold
                fold = [("mlp_acc", f0, f1)] if fused and f1 > f0 else []
                waits_on[len(tasks)] = (f"op{attention_phase}.kv{h}", sum(
                    1 for c in range(chunks) if P * (c + 1) // chunks > P * c // chunks))
                w0 = ((layer * nkv + h) * H + a) * GQ
                add(f"L{layer}.o_proj[{a}:{b}|kv{h}]", "combine_group_matvec_acc", phase, i * W // n_o,
                    [("part", h * group * chunks * (hd + 4), (h + 1) * group * chunks * (hd + 4)),
                     ("w_o_g", w0, w0 + (b - a) * GQ), *fold], fold, 2 * (b - a) * GQ + 3 * GQ * chunks,
                    accumulates=[("x", a, b)], layer=layer, row0=a, row1=b, group=h, fold0=f0, fold1=f1,
                    bytes=wbytes * (b - a) * GQ + 4 * (group * chunks * (hd + 4) + 2 * (b - a)))
        for w, a, b in ([] if split else tiled(H)):
            fold = [("mlp_acc", a, b)] if fused else []   # the previous MLP's sum joins the residual here
            add(f"L{layer}.o_proj[{a}:{b}]", "combine_matvec_residual_acc" if fused else "combine_matvec_residual",
                phase, w,
                [("part", 0, sizes["part"]), ("w_o", (layer * H + a) * Q, (layer * H + b) * Q), ("x", a, b), *fold],
                [("x", a, b), *fold], 2 * (b - a) * Q + 3 * Q * chunks, layer=layer, row0=a, row1=b,
                bytes=wbytes * (b - a) * Q + 4 * (sizes["part"] + 2 * (b - a)))
        phase += 1
        mnorm = ("w_mlp_norm", layer * H, (layer + 1) * H)
        if fused:
            for w, a, b in tiled(inter):
                g0, u0, d0 = layer * 2 * inter + a, layer * 2 * inter + inter + a, layer * inter + a
                add(f"L{layer}.mlp[{a}:{b}]", "norm_gate_up_down", phase, w,
                    [("x", 0, H), mnorm, ("w_gate_up", g0 * H, (g0 + b - a) * H),
                     ("w_gate_up", u0 * H, (u0 + b - a) * H), ("w_down_t", d0 * H, (d0 + b - a) * H)],
                    [], 6 * (b - a) * H + 4 * H, accumulates=[("mlp_acc", 0, H)], layer=layer, row0=a, row1=b,
                    bytes=3 * wbytes * (b - a) * H + 4 * 3 * H)
            continue
        for w, a, b in tiled(inter):
            g0, u0 = layer * 2 * inter + a, layer * 2 * inter + inter + a
            add(f"L{layer}.gate_up[{a}:{b}]", "norm_gate_up", phase, w,
                [("x", 0, H), mnorm, ("w_gate_up", g0 * H, (g0 + b - a) * H), ("w_gate_up", u0 * H, (u0 + b - a) * H)],
                [("act", a, b)], 4 * (b - a) * H + 4 * H, layer=layer, row0=a, row1=b,
                bytes=2 * wbytes * (b - a) * H + 4 * (2 * H + b - a))
        phase += 1
        for w, a, b in tiled(H):
            add(f"L{layer}.down[{a}:{b}]", "matvec_residual", phase, w,
                [("act", 0, inter), ("w_down", (layer * H + a) * inter, (layer * H + b) * inter), ("x", a, b)],
                [("x", a, b)], 2 * (b - a) * inter, layer=layer, row0=a, row1=b,
                bytes=wbytes * (b - a) * inter + 4 * (inter + 2 * (b - a)))
    phase += 1
    for t, (a, b) in enumerate(lm_tiles):
        add(f"lm_head[{a}:{b}]", "norm_acc_matvec_argmax" if fused else "norm_matvec_argmax", phase, t % W,
            [("x", 0, H), ("w_final_norm", 0, H), ("w_lm_head", a * H, b * H), *acc],
            [("logits", a, b), ("argmax", 2 * t, 2 * t + 2)], 2 * (b - a) * H + 4 * H, layer=-1, row0=a, row1=b,
            slot=t, bytes=wbytes * (b - a) * H + 4 * (2 * H + b - a))
    return _with_joins(d, genes, W, buffers, tasks, owner, phase_of, phase + 1, kv_length=P, waits_on=waits_on,
                       signals_to=signals_to)


def _with_joins(d: ModelDims, genes: KernelGenes, W: int, buffers, tasks, owner, phase_of, phases: int,
                kv_length: int, waits_on: dict[int, tuple[str, int]] | None = None,
                signals_to: dict[int, str] | None = None) -> Schedule:
    """Worker programs: for each phase in order, wait on the join it reads (the previous phase's, unless
    `waits_on` names a finer one) unless the worker already has, run, signal (its phase's counter unless
    `signals_to` names another)."""
    waits_on, signals_to = waits_on or {}, signals_to or {}
    members: dict[int, list[int]] = {}
    for t, p in enumerate(phase_of):
        members.setdefault(p, []).append(t)
    # phase p reads what phase p - 1 wrote (embed -> qkv -> attention -> o_proj -> gate_up -> down -> qkv ...)
    programs: list[list[Step]] = [[] for _ in range(W)]
    waited: list[tuple[str, int] | None] = [None] * W
    counters: list[str] = []
    for p in range(phases):
        last = p == phases - 1
        for t in members.get(p, []):
            prog = programs[owner[t]]
            join = waits_on.get(t, (f"op{p - 1}", len(members.get(p - 1, ()))))
            if p > 0 and waited[owner[t]] != join:
                prog.append(wait(*join))
                waited[owner[t]] = join
            prog.append(run(t))
            if not last:
                counter = signals_to.get(t, f"op{p}")
                prog.append(signal(counter, 1))
                if counter not in counters:
                    counters.append(counter)
    meta = {"dims": {**d.__dict__, "max_positions": kv_length}, "genes": genes.as_dict(), "lowering": "stream",
            "workers": W}
    return Schedule(tuple(buffers), tuple(tasks), tuple(counters), tuple(tuple(p) for p in programs), W, meta)


def stream_weights(weights: dict[str, Any], d: ModelDims, genes: KernelGenes) -> dict[str, Any]:
    """`weights` (buffer name -> numpy array or torch tensor, the forward pass's layout) in the layout `genes`
    lowers to: with fuse_mlp, the down projection transposed per layer (`w_down_t`, intermediate x hidden); with
    split_o, the output projection per layer and KV-head group (`w_o_g`, hidden x the group's query width)."""
    out = dict(weights)

    def moved(w, axes):
        return w.permute(*axes).contiguous() if hasattr(w, "permute") else w.transpose(*axes).copy()

    if genes.fuse_mlp and "w_down" in out:
        out["w_down_t"] = moved(out.pop("w_down").reshape(d.layers, d.hidden, d.intermediate), (0, 2, 1))
    if genes.split_o and "w_o" in out:
        GQ = d.heads // d.kv_heads * d.head_dim
        out["w_o_g"] = moved(out.pop("w_o").reshape(d.layers, d.hidden, d.kv_heads, GQ), (0, 2, 1, 3))
    return out
