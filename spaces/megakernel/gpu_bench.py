"""Run emitted megakernels on a CUDA GPU: token-for-token check against `transformers`, and per-token latency
against PyTorch eager and CUDA-graphed PyTorch running the same decode step (float32, batch 1, static KV cache).

Needs torch with CUDA, cupy (NVRTC compiles the emitted source) and transformers. Used by bench/schedule_search.py
--gpu and tests/spaces/test_megakernel_gpu.py.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from spaces.megakernel.emit_cuda import THREADS, arena_layout, emit_cuda
from spaces.megakernel.ir import Schedule
from spaces.megakernel.lower import ModelDims
from spaces.megakernel.model import random_weights, to_transformers


class Megakernel:
    """A compiled schedule with its arena (weights loaded) on the current CUDA device."""

    def __init__(self, s: Schedule, weights: dict[str, np.ndarray]):
        import cupy as cp
        import torch

        self.s, self.d = s, ModelDims(**s.meta["dims"])
        base, size = arena_layout(s)
        arena = np.zeros(size, np.float32)
        for b in s.buffers:
            if b.name in weights:
                arena[base[b.storage] + b.offset: base[b.storage] + b.end] = weights[b.name].reshape(-1)
        self.arena = torch.from_numpy(arena).cuda()
        self.sync = torch.zeros(len(s.counters) + 1, dtype=torch.int32, device="cuda")
        logits = s.buffer("logits")
        self.logits = self.arena[base[logits.storage] + logits.offset: base[logits.storage] + logits.end]
        self.kernel = cp.RawModule(code=emit_cuda(s), options=("--std=c++17",)).get_function("megakernel")
        self._args = (cp.asarray(self.arena), cp.asarray(self.sync[:-1] if len(s.counters) else self.sync),
                      cp.asarray(self.sync[-1:]))

    def step(self, token: int, pos: int):
        """Launch one decode step (async on the null stream); returns the logits view."""
        self.sync.zero_()
        self.kernel((self.s.workers,), (THREADS,), (*self._args, np.int32(token), np.int32(pos)))
        return self.logits


def torch_step_fn(w: dict[str, np.ndarray], d: ModelDims, device: str = "cuda"):
    """A static-shape decode step in plain PyTorch (what eager and CUDA-graph timings run); (tok, pos) are 0-d
    int64 tensors on `device` and are only ever used through index_select (no host sync), so the step can be
    captured in a CUDA graph."""
    import torch

    t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in w.items()}
    nh, nkv, hd, P, inter = d.heads, d.kv_heads, d.head_dim, d.max_positions, d.intermediate
    Q, KV = nh * hd, nkv * hd
    inv = 1.0 / (d.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float().to(device) / hd))
    ang = torch.arange(P, device=device).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    kc = torch.zeros(d.layers, nkv, P, hd, device=device)
    vc = torch.zeros_like(kc)
    positions = torch.arange(P, device=device)

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean() + d.eps))

    def rot(x):
        return torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], -1)

    def step(tok, pos):
        x = t["w_embed"].index_select(0, tok.view(1))[0]
        c, s = cos.index_select(0, pos.view(1))[0], sin.index_select(0, pos.view(1))[0]
        for layer in range(d.layers):
            qkv = t["w_qkv"][layer] @ rms(x, t["w_attn_norm"][layer])
            q, k, v = qkv[:Q].view(nh, hd), qkv[Q:Q + KV].view(nkv, hd), qkv[Q + KV:].view(nkv, hd)
            q, k = q * c + rot(q) * s, k * c + rot(k) * s
            kc[layer].index_copy_(1, pos.view(1), k.unsqueeze(1))
            vc[layer].index_copy_(1, pos.view(1), v.unsqueeze(1))
            keys, vals = kc[layer].repeat_interleave(nh // nkv, 0), vc[layer].repeat_interleave(nh // nkv, 0)
            sc = (keys @ q.unsqueeze(-1)).squeeze(-1) * hd ** -0.5
            p = torch.softmax(sc.masked_fill(positions > pos, float("-inf")), -1)
            x = x + t["w_o"][layer] @ (p.unsqueeze(1) @ vals).reshape(-1)
            gu = t["w_gate_up"][layer] @ rms(x, t["w_mlp_norm"][layer])
            x = x + t["w_down"][layer] @ (torch.nn.functional.silu(gu[:inter]) * gu[inter:])
        return t["w_lm_head"] @ rms(x, t["w_final_norm"])

    return step


def _per_token_us(run_all, n_tokens: int, repeats: int) -> float:
    import torch

    run_all()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run_all()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / n_tokens)
    return float(np.median(times))


def _graph_per_token_us(step, toks, pos_t, P: int, repeats: int) -> float:
    """The decode step captured once in a CUDA graph, replayed per token with the token and position copied into
    its static inputs."""
    import torch

    static_tok, static_pos = toks[:1].clone()[0], pos_t[:1].clone()[0]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step(static_tok, static_pos)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_tok, static_pos)

    def replay_all():
        for p in range(P):
            static_tok.copy_(toks[p])
            static_pos.copy_(pos_t[p])
            graph.replay()

    return _per_token_us(replay_all, P, repeats)


def time_decode(space: Any, found: Any, naive: Any, prompt=(1, 2, 3, 4), repeats: int = 20) -> dict[str, Any]:
    """Tokens and per-token latency (us) of the found and naive megakernels, PyTorch eager, CUDA graph, and
    transformers' own generate, for greedy decoding of a random-weight Llama built from the space's config."""
    import torch

    d = ModelDims.of(space.shape)
    w = random_weights(d, np.random.default_rng(0))
    hf = to_transformers(w, d).cuda()
    new = d.max_positions - len(prompt)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([list(prompt)], device="cuda"), max_new_tokens=new, min_new_tokens=new,
                          do_sample=False)[0].tolist()
        hf_logits = hf(torch.tensor([ref], device="cuda")).logits[0]
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(), "hf_tokens": ref}
    kernels = {"found": Megakernel(space.schedule(found), w), "naive": Megakernel(space.schedule(naive), w)}
    for name, mk in kernels.items():
        tokens, err = list(prompt), 0.0
        for pos in range(d.max_positions):
            logits = mk.step(tokens[pos] if pos < len(tokens) else tokens[-1], pos)
            err = max(err, float((logits - hf_logits[pos]).abs().max()))
            if pos >= len(prompt) - 1 and len(tokens) < d.max_positions:
                tokens.append(int(logits.argmax()))
        out[f"{name}_tokens_match"] = tokens == ref
        out[f"{name}_max_abs_logit_error_vs_hf"] = err
        print(f"megakernel {name}: tokens match transformers: {tokens == ref}; max |logit - hf| = {err:.2e}", flush=True)
    step = torch_step_fn(w, d)
    toks = torch.tensor(ref, device="cuda")
    with torch.no_grad():
        eager_tokens = list(prompt)
        for pos in range(d.max_positions - 1):
            nxt = int(step(toks[pos], torch.tensor(pos, device="cuda")).argmax())
            if pos >= len(prompt) - 1:
                eager_tokens.append(nxt)
        out["torch_step_tokens_match"] = eager_tokens == ref
        pos_t = torch.arange(d.max_positions, device="cuda")
        P = d.max_positions
        us = {}
        for name, mk in kernels.items():
            us[f"megakernel_{name}"] = _per_token_us(lambda mk=mk: [mk.step(ref[p], p) for p in range(P)], P, repeats)
        us["torch_eager"] = _per_token_us(lambda: [step(toks[p], pos_t[p]) for p in range(P)], P, repeats)
        print(f"us per token so far: {us}", flush=True)
        try:  # a failed capture must not lose the other measurements
            us["torch_cuda_graph"] = _graph_per_token_us(step, toks, pos_t, P, repeats)
        except RuntimeError as e:
            out["cuda_graph_error"] = str(e).splitlines()[0]
        t0 = time.perf_counter()
        hf.generate(torch.tensor([list(prompt)], device="cuda"), max_new_tokens=new, min_new_tokens=new, do_sample=False)
        torch.cuda.synchronize()
        us["transformers_generate"] = (time.perf_counter() - t0) * 1e6 / new
    out["us_per_token"] = us
    out["speedup_found_vs_eager"] = us["torch_eager"] / us["megakernel_found"]
    if "torch_cuda_graph" in us:
        out["speedup_found_vs_cuda_graph"] = us["torch_cuda_graph"] / us["megakernel_found"]
    out["speedup_found_vs_naive_megakernel"] = us["megakernel_naive"] / us["megakernel_found"]
    return out
